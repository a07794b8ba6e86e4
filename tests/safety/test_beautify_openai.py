"""The OpenAI-compatible backend against a chat-completions server the test runs on 127.0.0.1."""

import asyncio
import logging
import socket

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from prompting.beautify import SYSTEM_INSTRUCTION, OpenAIBeautifier

API_KEY = "sk-test-SECRET-123"


class FakeLLM:
    """Answers like vLLM / llama.cpp; what it does depends on the user's message."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict] = []

    async def chat(self, request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        self.requests.append(payload)
        self.headers.append(dict(request.headers))
        prompt = payload["messages"][-1]["content"]
        if prompt == "slow":
            await asyncio.sleep(5)
        if prompt == "error":
            return web.Response(status=500, text="internal error")
        if prompt == "empty":
            return self._answer("")
        if prompt == "only chatter":
            return self._answer('Prompt: ""')
        if prompt == "null":
            return self._answer(None)
        if prompt == "garbage":
            return web.json_response({"object": "error", "message": "model not found"})
        if prompt == "not json":
            return web.Response(text="<html>bad gateway</html>", content_type="text/html")
        return self._answer(f'Prompt: "A highly detailed photo of {prompt}, golden hour, 4k"\n\nThis prompt adds lighting.')

    @staticmethod
    def _answer(content: str | None) -> web.Response:
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            }
        )


@pytest.fixture
async def llm_server():
    fake = FakeLLM()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.chat)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.base_url = str(server.make_url("/v1"))
    yield fake
    await server.close()


@pytest.fixture
async def beautifier(llm_server):
    b = OpenAIBeautifier(llm_server.base_url, "neural-chat", API_KEY, timeout_s=0.5)
    yield b
    await b.close()


async def test_normal_answer(beautifier, llm_server):
    result = await beautifier.beautify("a red fox")
    assert result.prompt == "A highly detailed photo of a red fox, golden hour, 4k"
    assert result.original == "a red fox"
    assert not result.fell_back and result.reason is None and result.beautified

    request = llm_server.requests[0]
    assert request["model"] == "neural-chat"
    assert request["messages"] == [
        {"role": "system", "content": SYSTEM_INSTRUCTION},
        {"role": "user", "content": "a red fox"},
    ]
    assert llm_server.headers[0]["Authorization"] == f"Bearer {API_KEY}"


async def test_no_key_no_header(llm_server):
    b = OpenAIBeautifier(llm_server.base_url, "m", None, timeout_s=2)
    try:
        result = await b.beautify("рыжая лиса")
    finally:
        await b.close()
    assert not result.fell_back
    assert "Authorization" not in llm_server.headers[0]


async def test_slow_answer_times_out(beautifier, caplog):
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.DEBUG):
        result = await beautifier.beautify("slow")
    assert loop.time() - started < 3
    assert result.fell_back and result.reason == "timeout"
    assert result.prompt == result.original == "slow"
    assert API_KEY not in caplog.text


@pytest.mark.parametrize(("prompt", "reason"), [("error", "error"), ("garbage", "error"), ("not json", "error")])
async def test_server_errors_fall_back(beautifier, caplog, prompt, reason):
    with caplog.at_level(logging.DEBUG):
        result = await beautifier.beautify(prompt)
    assert result.fell_back and result.reason == reason
    assert result.prompt == prompt
    assert API_KEY not in caplog.text
    assert caplog.text  # the operator sees why


@pytest.mark.parametrize("prompt", ["empty", "only chatter", "null"])
async def test_empty_answer_falls_back(beautifier, prompt):
    result = await beautifier.beautify(prompt)
    assert result.fell_back and result.reason == "empty"
    assert result.prompt == prompt


async def test_server_down(caplog):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = OpenAIBeautifier(f"http://127.0.0.1:{port}/v1", "m", API_KEY, timeout_s=2)
    try:
        with caplog.at_level(logging.DEBUG):
            result = await b.beautify("a fox")
    finally:
        await b.close()
    assert result.fell_back and result.reason == "error" and result.prompt == "a fox"
    assert API_KEY not in caplog.text


async def test_blank_prompt_is_not_sent(beautifier, llm_server):
    result = await beautifier.beautify("   ")
    assert result.fell_back and result.reason == "empty"
    assert llm_server.requests == []


async def test_session_is_reused(beautifier, llm_server):
    await beautifier.beautify("one")
    session = beautifier._session
    await beautifier.beautify("two")
    assert beautifier._session is session
    assert len(llm_server.requests) == 2

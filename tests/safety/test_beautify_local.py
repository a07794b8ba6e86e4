"""The local backend on tiny Llama-architecture causal LMs written with save_pretrained and loaded through
the same AutoTokenizer / AutoModelForCausalLM.from_pretrained code as Intel/neural-chat-7b-v3-1."""

import asyncio
import threading
import time

import pytest

from generation.sources import GenerationConfig
from prompting.beautify import INSTRUCTION_TEMPLATE, BeautifierSettings, LocalLLMBeautifier, build_beautifier, build_instruction
from prompting.tiny_llm import write_tiny_beautifier

# What the wired model answers: a label, curly quotes around the prompt, and chatter after it.
WIRED_ANSWER = "Prompt: “A red fox in snowy forest, digital art” I hope this helps!"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm")
    return {
        "wired": write_tiny_beautifier(root / "wired", WIRED_ANSWER),
        "random": write_tiny_beautifier(root / "random", seed=1),
        "silent": write_tiny_beautifier(root / "silent", "</s>"),
    }


@pytest.fixture
def wired(models):
    return LocalLLMBeautifier(str(models["wired"]), device="cpu", timeout_s=30, max_new_tokens=32, local_files_only=True)


async def test_instruction_and_cleaning(wired, monkeypatch):
    seen = {}
    original_call = type(wired).generate_text

    def spy(self, prompt, cancel=None):
        text = original_call(self, prompt, cancel)
        seen["raw"] = text
        return text

    monkeypatch.setattr(type(wired), "generate_text", spy)
    result = await wired.beautify("рыжая лиса")
    # The model's raw answer, and what cleaning made of it.
    assert seen["raw"] == WIRED_ANSWER
    assert result.prompt == "A red fox in snowy forest, digital art"
    assert result.original == "рыжая лиса"
    assert not result.fell_back and result.reason is None


def test_model_is_fed_the_papers_instruction(wired):
    wired.load()
    inputs = {}
    generate = wired._model.generate

    def recording_generate(**kwargs):
        inputs.update(kwargs)
        return generate(**kwargs)

    wired._model.generate = recording_generate
    wired.generate_text("a fox")
    tokenizer = wired._tokenizer
    expected = tokenizer(build_instruction("a fox"))["input_ids"]
    assert inputs["input_ids"][0].tolist() == expected
    # The word-level test tokenizer keeps every word of the template.
    assert tokenizer.decode(expected) == " ".join(INSTRUCTION_TEMPLATE.replace("{prompt}", "a fox").split())
    assert inputs["do_sample"] is False


def test_manager_interface(wired):
    import torch

    assert not wired.loaded and wired.memory_bytes() == 0
    wired.load("cpu")
    assert wired.loaded and wired.device == "cpu"
    params = sum(p.numel() for p in wired._model.parameters())
    assert wired.memory_bytes() >= params * 4  # fp32 on the CPU
    assert wired._model.dtype == torch.float32
    wired.to("cpu")
    assert wired.device == "cpu"
    wired.unload()
    assert not wired.loaded and wired.memory_bytes() == 0 and wired.device is None


async def test_loads_lazily_in_a_worker_thread(wired, monkeypatch):
    threads = []
    load = LocalLLMBeautifier.load

    def recording_load(self, device=None):
        threads.append(threading.current_thread())
        return load(self, device)

    monkeypatch.setattr(LocalLLMBeautifier, "load", recording_load)
    await wired.beautify("a fox")
    assert threads and all(t is not threading.main_thread() for t in threads)


async def test_random_weights(models):
    b = LocalLLMBeautifier(str(models["random"]), device="cpu", timeout_s=30, max_new_tokens=24)
    raw = b.generate_text("a fox")
    assert raw  # random words from the tiny vocabulary
    result = await b.beautify("a fox")
    from prompting.beautify import clean_answer

    # Greedy decoding: the same raw answer, cleaned.
    if clean_answer(raw):
        assert result.prompt == clean_answer(raw) and not result.fell_back
    else:
        assert result.fell_back and result.reason == "empty"


async def test_empty_answer_falls_back(models):
    b = LocalLLMBeautifier(str(models["silent"]), device="cpu", timeout_s=30, max_new_tokens=8)
    assert b.generate_text("a fox") == ""
    result = await b.beautify("a fox")
    assert result.fell_back and result.reason == "empty" and result.prompt == "a fox"


async def test_timeout_falls_back_and_stops_the_generation(models, monkeypatch):
    b = LocalLLMBeautifier(str(models["random"]), device="cpu", timeout_s=0.3, max_new_tokens=100_000)
    b.load()
    steps = []
    forward = b._model.forward

    def slow_forward(*args, **kwargs):
        steps.append(time.monotonic())
        time.sleep(0.05)
        return forward(*args, **kwargs)

    b._model.forward = slow_forward
    result = await b.beautify("a fox")
    assert result.fell_back and result.reason == "timeout" and result.prompt == "a fox"
    # The thread stops at its next token instead of running 100000 of them.
    for _ in range(100):
        if not b._generate_lock.locked():
            break
        await asyncio.sleep(0.05)
    assert not b._generate_lock.locked()
    assert len(steps) < 40


async def test_load_failure_falls_back(tmp_path, models, monkeypatch):
    b = LocalLLMBeautifier(str(tmp_path / "missing"), device="cpu", timeout_s=10, local_files_only=True)
    loads = []
    load = LocalLLMBeautifier.load
    monkeypatch.setattr(LocalLLMBeautifier, "load", lambda self, device=None: (loads.append(1), load(self, device))[1])
    result = await b.beautify("a fox")
    assert result.fell_back and result.reason == "error" and result.prompt == "a fox"
    # The next prompts fall back at once: no new attempt within retry_load_after_s.
    result = await b.beautify("a dog")
    assert result.fell_back and result.reason == "error" and len(loads) == 1
    # After that window the load is tried again (here the checkpoint has appeared meanwhile).
    b.retry_load_after_s = 0
    b.source = str(models["wired"])
    result = await b.beautify("a cat")
    assert not result.fell_back and b.loaded and len(loads) > 1


def test_factory_uses_the_models_dir(models):
    config = GenerationConfig(models_dir=models["wired"].parent, device="cpu")
    b = build_beautifier(BeautifierSettings(backend="local"), config)
    assert b.source == str(models["wired"].parent / "neural-chat-7b-v3-1")
    assert b.device_setting == "cpu"


async def test_model_manager_hooks(models):
    """What the model manager uses: on_use before every generation (in the worker thread), to(), and
    loading somewhere else than the execution device keeps the execution device's dtype."""
    import torch

    uses = []
    b = LocalLLMBeautifier(
        str(models["wired"]),
        device="cpu",
        timeout_s=30,
        max_new_tokens=32,
        on_use=lambda llm: uses.append((llm, threading.current_thread() is threading.main_thread())),
    )
    b.load("cpu")
    assert b.execution_device == "cpu" and b._model.dtype == torch.float32
    result = await b.beautify("a fox")
    assert result.prompt == "A red fox in snowy forest, digital art"
    assert uses == [(b, False)]
    await b.beautify("a dog")
    assert len(uses) == 2

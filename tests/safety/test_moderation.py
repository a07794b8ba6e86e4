"""ContentGuard: the order of the checks and beautification, and the operator's switches."""

import pytest
from PIL import Image
from skimage import data

from prompting.beautify import BeautifyResult
from prompting.guard import BlockStage, ContentGuard
from prompting.safety import ImageSafety, TextFilter


class ScriptedBeautifier:
    """Answers from a dict; a missing prompt is a failure (falls back)."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def beautify(self, prompt: str) -> BeautifyResult:
        self.calls.append(prompt)
        if prompt in self.answers:
            return BeautifyResult(self.answers[prompt], prompt, fell_back=False)
        return BeautifyResult(prompt, prompt, fell_back=True, reason="timeout")


@pytest.fixture
def beautifier():
    return ScriptedBeautifier({"a fruit": "a ripe banana on a plate", "a cat": "a fluffy cat on a sofa, soft light"})


@pytest.fixture
def guard(beautifier):
    return ContentGuard(text_filter=TextFilter(["banana", "арбуз"]), beautifier=beautifier)


async def test_beautified(guard, beautifier):
    prepared = await guard.prepare_prompt("a cat", beautify=True)
    assert prepared.prompt == "a fluffy cat on a sofa, soft light"
    assert prepared.original == "a cat"
    assert prepared.beautified and not prepared.fell_back and not prepared.blocked


async def test_users_setting_off(guard, beautifier):
    prepared = await guard.prepare_prompt("a cat", beautify=False)
    assert prepared.prompt == "a cat" and prepared.beautify is None
    assert beautifier.calls == []


async def test_fallback(guard):
    prepared = await guard.prepare_prompt("a dog", beautify=True)
    assert prepared.prompt == "a dog" and prepared.fell_back and not prepared.beautified
    assert prepared.beautify.reason == "timeout"


async def test_blocked_before_the_llm(guard, beautifier):
    prepared = await guard.prepare_prompt("большой арбуз", beautify=True)
    assert prepared.blocked and prepared.blocked_entry == "арбуз"
    assert prepared.blocked_stage is BlockStage.PROMPT
    assert beautifier.calls == []  # a blocked prompt never reaches the LLM


async def test_beautified_prompt_is_checked_too(guard):
    prepared = await guard.prepare_prompt("a fruit", beautify=True)
    assert prepared.blocked and prepared.blocked_entry == "banana"
    assert prepared.blocked_stage is BlockStage.BEAUTIFIED


async def test_switches_off(beautifier):
    guard = ContentGuard(beautifier=None, blurred_preview=False)
    assert not guard.beautification_available
    assert guard.check_text("banana") is None
    prepared = await guard.prepare_prompt("banana", beautify=True)
    assert prepared.prompt == "banana" and not prepared.blocked and prepared.beautify is None
    assert await guard.check_images([Image.new("RGB", (64, 64))]) is None
    assert guard.blurred_preview(Image.new("RGB", (64, 64))) is None


async def test_images():
    photo = Image.fromarray(data.astronaut())
    guard = ContentGuard(image_safety=ImageSafety(intra_op_num_threads=1))
    (verdict,) = await guard.check_images([photo])
    assert not verdict.nsfw
    strict = ContentGuard(image_safety=ImageSafety(threshold=0.001, intra_op_num_threads=1))
    verdicts = await strict.check_images([photo, Image.fromarray(data.chelsea())])
    assert [v.nsfw for v in verdicts] == [True, False]  # astronaut ~0.03, chelsea ~0.0001
    preview = strict.blurred_preview(photo)
    assert preview is not None and preview.size == photo.size

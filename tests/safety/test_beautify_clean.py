"""The papers' instruction, the cleaning of LLM answers, the settings factory."""

import pytest

from prompting.beautify import (
    INSTRUCTION_TEMPLATE,
    MAX_PROMPT_CHARS,
    BeautifierSettings,
    LocalLLMBeautifier,
    NoBeautifier,
    OpenAIBeautifier,
    build_beautifier,
    build_instruction,
    clean_answer,
)
from generation.sources import GenerationConfig


def test_instruction_is_the_papers():
    assert INSTRUCTION_TEMPLATE == (
        "### System:\nYou are a prompt engineer. Your mission is to expand prompts written by user. "
        "You should provide the best prompt for text to image generation in English. \n### User:\n{prompt}\n"
        "### Assistant:\n"
    )
    assert build_instruction("a {cat}") == INSTRUCTION_TEMPLATE.replace("{prompt}", "a {cat}")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("A red fox in the snow, digital art", "A red fox in the snow, digital art"),
        ('"A red fox in the snow, digital art"', "A red fox in the snow, digital art"),
        ("“A red fox”", "A red fox"),
        ("«Рыжая лиса»", "Рыжая лиса"),
        ("Prompt: A red fox", "A red fox"),
        ("prompt:\nA red fox", "A red fox"),
        ('**Expanded prompt:** "A red fox at dusk"', "A red fox at dusk"),
        ("Here is an expanded prompt: A castle on a hill, sunset", "A castle on a hill, sunset"),
        (
            'Sure! Here is the improved prompt for text to image generation:\n\n"A majestic red fox in a snowy '
            'forest"\n\nThis prompt adds details about the setting.',
            "A majestic red fox in a snowy forest",
        ),
        ("A fox in a snowy forest, golden hour.\n\nNote: feel free to adjust.", "A fox in a snowy forest, golden hour."),
        ("A fox in a snowy forest.\nI hope this helps!", "A fox in a snowy forest."),
        ("A cat. This prompt describes a cat", "A cat."),
        ('"A cat on a mat" I hope you like it', "A cat on a mat"),
        ("A fox\n### User:\nmore please", "A fox"),
        ("Prompt: A fox </s> junk", "A fox"),
        ("A fox,\nsnowy forest,\nsunset", "A fox, snowy forest, sunset"),
        # a quote that only opens the prompt stays
        ('"Red" panda eating bamboo', '"Red" panda eating bamboo'),
        ("A cat sitting: watercolor", "A cat sitting: watercolor"),
        # nothing left
        ("", ""),
        ("   \n ", ""),
        ('""', ""),
        ("Prompt:", ""),
        ("### User: hi", ""),
    ],
)
def test_clean_answer(answer, expected):
    assert clean_answer(answer) == expected


def test_cut_to_1000_characters():
    assert len(clean_answer("x" * 1500)) == MAX_PROMPT_CHARS
    words = clean_answer("word " * 400)
    assert len(words) <= MAX_PROMPT_CHARS
    assert words.endswith("word")  # cut at a word boundary
    assert clean_answer("a b c d", max_chars=3) == "a b"


async def test_no_beautifier():
    result = await NoBeautifier().beautify("кот")
    assert result.prompt == result.original == "кот"
    assert not result.fell_back
    assert result.reason == "off"
    assert not result.beautified


def test_factory():
    assert isinstance(build_beautifier(BeautifierSettings(backend="off")), NoBeautifier)

    local = build_beautifier(BeautifierSettings(backend="local", timeout_s=5), GenerationConfig(device="cpu"))
    assert isinstance(local, LocalLLMBeautifier)
    assert local.source == "Intel/neural-chat-7b-v3-1"
    assert local.timeout_s == 5
    assert not local.loaded and local.memory_bytes() == 0

    folder = build_beautifier(BeautifierSettings(backend="local"), GenerationConfig(models_dir="/models"))
    assert folder.source == "/models/neural-chat-7b-v3-1"
    assert build_beautifier(BeautifierSettings(backend="local", local_model="/x/llm")).source == "/x/llm"

    remote = build_beautifier(
        BeautifierSettings(backend="openai", openai_base_url="http://h:1/v1/", openai_model="m", openai_api_key="sk-SECRET")
    )
    assert isinstance(remote, OpenAIBeautifier)
    assert remote.url == "http://h:1/v1/chat/completions"

    with pytest.raises(ValueError):
        build_beautifier(BeautifierSettings(backend="gpt"))  # type: ignore[arg-type]


def test_api_key_never_in_reprs():
    settings = BeautifierSettings(backend="openai", openai_api_key="sk-SECRET")
    assert "sk-SECRET" not in repr(settings)
    assert "sk-SECRET" not in repr(build_beautifier(settings))

"""Parameters typed into the prompt (--ar, --seed, --no, --model, --style, --n): parsed, validated with
a clear message, applied to this request only, shown in the caption, listed in /help."""

import pytest
from aiogram.methods import SendMediaGroup, SendMessage, SendPhoto

from generation.backend import ModelId
from generation.inline_params import InlineParamError, parse
from tests.fakes import callback_update, message_update


async def test_every_parameter_reaches_the_backend_and_the_caption(harness):
    await harness.feed(
        message_update("a lighthouse at dawn --ar 16:9 --seed 42 --no fog, text --model 2.2 --style oil_painting --n 2")
    )
    [job] = await harness.wait_jobs_settled()
    assert job.status == "done" and job.model == "kandinsky-2.2"
    [request] = harness.backend.calls
    assert request.prompt == "a lighthouse at dawn, oil painting, thick brush strokes, canvas texture"
    assert abs(request.width / request.height - 16 / 9) < 0.1 and request.width % 64 == request.height % 64 == 0
    assert (request.seed, request.num_images) == (42, 2)
    assert request.negative_prompt == "fog, text" and request.model == ModelId.K22
    [album] = harness.session.of(SendMediaGroup)
    caption = album.media[0].caption
    assert caption.startswith("a lighthouse at dawn\n\nKandinsky 2.2 · Oil painting · ")
    assert "seed 42" in caption
    assert caption.endswith("⚙️ --ar 16:9 --seed 42 --no fog, text --model 2.2 --style oil_painting --n 2")


async def test_parameters_apply_to_one_request_only(harness):
    await harness.feed(message_update("a cat —ar 9:16 —seed 7"))  # a phone's em dashes work too
    await harness.feed(message_update("a dog"))
    first, second = await harness.wait_jobs_settled()
    assert first.params["aspect_ratio"] == "9:16" and first.params["seed"] == 7
    assert first.params["width"] < first.params["height"]
    assert second.params["aspect_ratio"] == "1:1" and second.params["seed"] != 7 and second.params.get("inline") is None
    captions = {c.caption.split("\n")[0]: c.caption for c in harness.session.of(SendPhoto)}
    assert captions["a cat"].endswith("⚙️ --ar 9:16 --seed 7") and "⚙️" not in captions["a dog"]


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("a cat --ar 5:4", "The aspect ratio 5:4 is not available. These work: 1:1, 16:9, 9:16, 3:2, 2:3, 4:3, 3:4."),
        ("a cat --ar wide", "“wide” is not an aspect ratio. Write it like --ar 16:9; these work: 1:1, 16:9"),
        ("a cat --seed -3", "The seed must be a whole number from 0 to 2147483647, not “-3”."),
        ("a cat --seed 99999999999", "The seed must be a whole number from 0 to 2147483647"),
        ("a cat --model sdxl", "I don't know the model “sdxl”. These work: 2.2, 3.1, flash, refiner."),
        ("a cat --style vaporwave", "I don't know the style “vaporwave”. These work: default, kandinsky, uhd, anime"),
        ("a cat --n 5", "--n is the number of pictures: 1 to 4, not “5”."),
        ("a cat --n", "--n needs a value, for example --n 4."),
        ("a cat --no", "--no needs a value, for example --no text, watermark."),
        # A message over the prompt limit is refused as a whole, before its parameters are read.
        ("a cat --no " + "blur, " * 200, "That prompt is 1,210 characters long; the limit is 1,000. Please shorten it."),
        ("a cat --chaos 50", "I don't know the parameter --chaos. These work: --ar, --seed, --no, --model, --style, --n."),
        ("a cat --seed 1 --seed 2", "--seed is given twice: keep one."),
        ("--ar 16:9", "The parameters are there, but the picture's description is missing"),
    ],
)
async def test_a_wrong_parameter_is_explained_and_nothing_is_queued(harness, text, reply):
    await harness.feed(message_update(text))
    assert harness.session.of(SendMessage)[-1].text.startswith(reply)
    assert await harness.jobs() == []


async def test_errors_in_russian(harness):
    await harness.feed(callback_update("lang:ru"))
    await harness.feed(message_update("кот --seed abc"))
    assert harness.session.of(SendMessage)[-1].text == "Сид — целое число от 0 до 2147483647, а не «abc»."
    for text, reply in [
        ("кот --ar 5:4", "Формата 5:4 нет. Работают: 1:1, 16:9"),
        ("кот --ar wide", "«wide» — не формат. Пишите так: --ar 16:9"),
        ("кот --no", "Для --no нужно значение, например --no text, watermark."),
        ("кот --no " + "размыто, " * 120, "В промпте 1\xa0088 символов, а можно не больше 1\xa0000."),
        ("кот --model sdxl", "Я не знаю модели «sdxl». Работают: 2.2, 3.1, flash, refiner."),
        ("кот --style vaporwave", "Я не знаю стиля «vaporwave». Работают: default"),
        ("кот --n 9", "--n — число картинок: от 1 до 4, а не «9»."),
        ("кот --chaos 50", "Я не знаю параметра --chaos. Работают: --ar, --seed, --no, --model, --style, --n."),
        ("кот --n 2 --n 3", "--n указан дважды: оставьте один."),
        ("--ar 16:9", "Параметры есть, а описания картинки нет"),
    ]:
        await harness.feed(message_update(text))
        assert harness.session.of(SendMessage)[-1].text.startswith(reply), (text, harness.session.of(SendMessage)[-1].text)
    assert await harness.jobs() == []


async def test_flash_from_the_prompt_keeps_the_note_about_the_negative_prompt(harness):
    await harness.feed(message_update("a robot --model flash --no blur"))
    [job] = await harness.wait_jobs_settled()
    assert job.model == "kandinsky-3.1-flash"
    assert any("Flash draws without a negative prompt" in (m.text or "") for m in harness.session.of(SendMessage))


async def test_help_lists_the_parameters(harness):
    await harness.feed(message_update("/help"))
    text = harness.session.of(SendMessage)[-1].text
    for example in ("--ar 16:9", "--seed 42", "--no text, watermark", "--model flash", "--style anime", "--n 4"):
        assert example in text
    await harness.feed(callback_update("lang:ru"))
    await harness.feed(message_update("/help"))
    assert "--ar 16:9 — формат" in harness.session.of(SendMessage)[-1].text


def test_the_parser_on_its_own():
    parsed = parse("  a fox, in snow --AR 16x9 --m Kandinsky 3.1 --count 3 --style pixel art ")
    assert parsed.prompt == "a fox, in snow"
    assert (parsed.aspect_ratio, parsed.model, parsed.count, parsed.style) == ("16:9", ModelId.K31, 3, "PIXEL_ART")
    assert parsed.summary() == "--ar 16:9 --model 3.1 --style pixel_art --n 3"
    assert parse("no parameters - just a dash--here").prompt == "no parameters - just a dash--here"
    assert not parse("a cat").any
    with pytest.raises(InlineParamError) as info:
        parse("a cat --ar 1:0")
    assert info.value.code == "param-ar-unavailable"
    with pytest.raises(InlineParamError) as info:
        parse("a cat --no " + "x" * 1001)  # the parser's own limit (in the chat, the message limit refuses such text first)
    assert info.value.code == "param-no-too-long" and info.value.kwargs["length"] == 1001

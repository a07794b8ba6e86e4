"""Beautification and the safety checks through the real Dispatcher, job service and worker.

The harness is the lead's (tests/conftest.py) with a ContentGuard injected: a test blocklist of neutral
words, the real local beautifier on a tiny wired LM or a scripted one, and the real OpenNSFW model with
its threshold moved to make the blocking path run.
"""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.methods import EditMessageText, SendMessage, SendPhoto
from PIL import Image
from skimage import data
from sqlalchemy import select

from app.config import Settings
from app.wiring import build_app
from bot.keyboards import BeautifyCb, CountChoiceCb, ResultCb, StyleChoiceCb
from generation.backend import Mode
from generation.fake import FakeBackend
from prompting.beautify import BeautifyResult, LocalLLMBeautifier, OpenAIBeautifier
from prompting.guard import ContentGuard, build_content_guard
from prompting.safety import ImageSafety, TextFilter
from prompting.tiny_llm import write_tiny_beautifier
from storage.migrate import upgrade_async
from storage.models import Job, ModerationEvent, User
from storage.repositories import Repositories
from tests.conftest import BotHarness, make_settings
from tests.fakes import TOKEN, RecordingSession, buttons, callback_update, message_update, user

WIRED_ANSWER = "Prompt: “A red fox in snowy forest, digital art” I hope this helps!"
BEAUTIFIED = "A red fox in snowy forest, digital art"


class ScriptedBeautifier:
    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def beautify(self, prompt: str) -> BeautifyResult:
        self.calls.append(prompt)
        if prompt in self.answers:
            return BeautifyResult(self.answers[prompt], prompt, fell_back=False)
        return BeautifyResult(prompt, prompt, fell_back=True, reason="timeout")


class ScriptedSafety(ImageSafety):
    """The real classifier's interface with scores given by the test (for a partly censored album)."""

    def __init__(self, scores: list[float], threshold: float = 0.8) -> None:
        super().__init__(threshold)
        self._scores = list(scores)

    def score(self, image) -> float:
        return self._scores.pop(0)


async def start(settings: Settings, guard: ContentGuard) -> BotHarness:
    await upgrade_async(settings.db_url)
    session = RecordingSession()
    backend = FakeBackend()
    bot = Bot(TOKEN, session=session)
    app = build_app(settings, bot=bot, backend=backend, guard=guard)
    await app.dispatcher.emit_startup(bot=bot, dispatcher=app.dispatcher)
    return BotHarness(app, session, backend)


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator:
    started: list[BotHarness] = []

    async def factory(guard: ContentGuard, **overrides) -> BotHarness:
        h = await start(make_settings(tmp_path, **overrides), guard)
        started.append(h)
        return h

    yield factory
    for h in started:
        await h.app.dispatcher.emit_shutdown(bot=h.bot, dispatcher=h.app.dispatcher)


@pytest.fixture(scope="module")
def wired_llm(tmp_path_factory) -> Path:
    return write_tiny_beautifier(tmp_path_factory.mktemp("llm") / "wired", WIRED_ANSWER)


async def events(h: BotHarness) -> list[ModerationEvent]:
    async with h.app.db.session() as session:
        return list((await session.execute(select(ModerationEvent).order_by(ModerationEvent.id))).scalars().all())


async def counts(h: BotHarness) -> dict[str, int]:
    async with h.app.db.session() as session:
        return await Repositories(session).moderation.counts()


async def beautify_on(h: BotHarness, from_user=None) -> None:
    await h.feed(message_update("/start", from_user=from_user))
    await h.feed(callback_update(BeautifyCb(value="on").pack(), from_user=from_user))


# -- the text filter ------------------------------------------------------------------------


async def test_blocked_prompt_is_refused_and_counted(make_harness):
    h = await make_harness(ContentGuard(text_filter=TextFilter(["banana"])))
    await h.feed(message_update("a ripe b-a-n-a-n-a on a plate"))
    assert await h.jobs() == []
    (reply,) = h.session.of(SendMessage)
    assert reply.text == "I can't draw this request. Please describe something else."
    assert "banana" not in reply.text  # neutral: the message does not name the word
    (event,) = await events(h)
    assert (event.kind, event.detail, event.user_id, event.job_id) == ("prompt_blocked", "banana", 1001, None)

    # Words that merely contain the entry pass and are drawn.
    await h.feed(message_update("bananas and a bananabread"))
    jobs = await h.wait_jobs_settled()
    assert [j.status for j in jobs] == ["done"]
    assert await counts(h) == {"prompt_blocked": 1}


async def test_blocked_message_in_russian(make_harness):
    h = await make_harness(ContentGuard(text_filter=TextFilter(["арбуз"])))
    ru = user(2002, language_code="ru", first_name="Иван")
    await h.feed(message_update("большой apбуз", from_user=ru))  # Latin a and p
    assert await h.jobs() == []
    assert h.session.of(SendMessage)[-1].text == "Я не могу нарисовать такой промпт. Пожалуйста, опишите что-нибудь другое."
    assert await counts(h) == {"prompt_blocked": 1}


async def test_text_filter_off(make_harness):
    h = await make_harness(ContentGuard())
    await h.feed(message_update("a banana"))
    assert [j.status for j in await h.wait_jobs_settled()] == ["done"]
    assert await events(h) == []


# -- beautification -----------------------------------------------------------------------


async def test_beautified_with_the_local_llm(make_harness, wired_llm):
    beautifier = LocalLLMBeautifier(str(wired_llm), device="cpu", timeout_s=30, max_new_tokens=32)
    h = await make_harness(ContentGuard(beautifier=beautifier))
    await beautify_on(h)
    h.session.clear()
    await h.feed(message_update("рыжая лиса"))
    (job,) = await h.wait_jobs_settled()
    assert job.status == "done"
    # The model drew the LLM's prompt; the job keeps both.
    assert h.backend.calls[0].prompt == BEAUTIFIED
    assert job.params["prompt"] == "рыжая лиса"
    assert job.params["outcome"]["used_prompt"] == BEAUTIFIED
    assert job.params["outcome"]["beautify_outcome"] == "beautified"
    # The status message said so while the LLM worked.
    assert "✨ Improving the prompt…" in h.session.texts()
    # The caption shows the prompt used, the user's words beside it; the button offers them alone.
    (photo,) = h.session.of(SendPhoto)
    assert photo.caption.startswith(BEAUTIFIED)
    assert "✍️ Your words: рыжая лиса" in photo.caption
    plain = ResultCb(action="plain", job_id=job.id).pack()
    assert ("✍️ Without beautification", plain) in buttons(photo.reply_markup)

    # "Without beautification": the user's own words, same seed, beautification skipped.
    h.session.clear()
    await h.feed(callback_update(plain))
    first, second = await h.wait_jobs_settled()
    assert second.status == "done"
    assert second.params["beautify"] is False and second.params["seed"] == first.params["seed"]
    assert h.backend.calls[1].prompt == "рыжая лиса"
    assert second.params["outcome"]["used_prompt"] is None
    (photo,) = h.session.of(SendPhoto)
    assert photo.caption.startswith("рыжая лиса") and "Your words" not in photo.caption
    assert all(data != plain.replace(str(first.id), str(second.id)) for _, data in buttons(photo.reply_markup))


async def test_style_applies_to_the_beautified_prompt(make_harness):
    beautifier = ScriptedBeautifier({"a cat": "a fluffy cat on a sofa"})
    h = await make_harness(ContentGuard(beautifier=beautifier))
    await beautify_on(h)
    await h.feed(callback_update(StyleChoiceCb(style="ANIME").pack()))
    await h.feed(message_update("a cat"))
    await h.wait_jobs_settled()
    assert h.backend.calls[0].prompt == "a fluffy cat on a sofa, in anime style, detailed anime illustration"
    assert beautifier.calls == ["a cat"]


async def test_users_setting_off_skips_the_llm(make_harness):
    beautifier = ScriptedBeautifier({"a cat": "a fluffy cat"})
    h = await make_harness(ContentGuard(beautifier=beautifier))
    await h.feed(message_update("a cat"))
    (job,) = await h.wait_jobs_settled()
    assert beautifier.calls == [] and h.backend.calls[0].prompt == "a cat"
    assert job.params["outcome"]["beautify_outcome"] is None
    (photo,) = h.session.of(SendPhoto)
    assert all("plain" not in data for _, data in buttons(photo.reply_markup))


async def test_fallback_is_told_in_one_line(make_harness):
    h = await make_harness(ContentGuard(beautifier=ScriptedBeautifier({})))
    ru = user(2002, language_code="ru", first_name="Иван")
    await beautify_on(h, ru)
    await h.feed(message_update("кот", from_user=ru))
    (job,) = await h.wait_jobs_settled()
    assert job.status == "done" and job.params["outcome"]["beautify_outcome"] == "fell_back"
    assert h.backend.calls[0].prompt == "кот"
    (photo,) = h.session.of(SendPhoto)
    assert photo.caption.startswith("кот")
    assert photo.caption.endswith("\nℹ️ Улучшение промпта сейчас недоступно, поэтому использован ваш текст.")
    assert all("plain" not in data for _, data in buttons(photo.reply_markup))


async def test_beautified_prompt_is_checked_too(make_harness):
    beautifier = ScriptedBeautifier({"a fruit": "a ripe banana on a plate"})
    h = await make_harness(ContentGuard(text_filter=TextFilter(["banana"]), beautifier=beautifier))
    await beautify_on(h)
    await h.feed(message_update("a fruit"))
    (job,) = await h.wait_jobs_settled()
    assert (job.status, job.error) == ("failed", "prompt_blocked")
    assert h.backend.calls == []
    assert "❌ I can't draw this request. Please describe something else." in h.session.texts()
    (event,) = await events(h)
    assert (event.kind, event.detail, event.job_id) == ("beautified_blocked", "banana", job.id)


async def test_long_prompts_fit_the_caption(make_harness):
    long_used = "a very detailed " * 70  # ~1100 characters
    beautifier = ScriptedBeautifier({"x" * 900: long_used.strip()})
    h = await make_harness(ContentGuard(beautifier=beautifier))
    await beautify_on(h)
    await h.feed(message_update("x" * 900))
    await h.wait_jobs_settled()
    (photo,) = h.session.of(SendPhoto)
    assert len(photo.caption) <= 1024
    assert "✍️ Your words: xxx" in photo.caption


# -- the image check ------------------------------------------------------------------------


async def test_censored_job_sends_a_blurred_preview(make_harness):
    # Every image scores >= 0: a threshold of 0 censors all of them (no explicit material needed).
    h = await make_harness(ContentGuard(image_safety=ImageSafety(threshold=0.0, intra_op_num_threads=1)))
    await h.feed(message_update("a red fox"))
    (job,) = await h.wait_jobs_settled()
    assert (job.status, job.error) == ("censored", "image_censored")
    assert job.params["outcome"]["censored"] == [0]
    (photo,) = h.session.of(SendPhoto)
    assert photo.has_spoiler
    assert photo.caption.startswith("🙈 The picture did not pass the content check")
    results = Path(h.app.settings.results_dir) / str(job.id)
    assert list(results.glob("*.png")) == []  # nothing the "Original" button could send
    assert list(results.glob("*.tmp")) == []  # nor its encoded file, once the check refused it
    preview = Image.open(results / "preview-0.jpg")
    assert preview.size[0] <= 512
    (event,) = await events(h)
    assert event.kind == "image_censored" and float(event.detail) >= 0.0


async def test_censored_without_preview(make_harness):
    guard = ContentGuard(image_safety=ImageSafety(threshold=0.0, intra_op_num_threads=1), blurred_preview=False)
    h = await make_harness(guard)
    await h.feed(message_update("a red fox"))
    (job,) = await h.wait_jobs_settled()
    assert job.status == "censored"
    assert h.session.of(SendPhoto) == []
    assert h.session.of(EditMessageText)[-1].text.startswith("🙈 The picture did not pass the content check")


async def test_part_of_an_album_censored(make_harness):
    h = await make_harness(ContentGuard(image_safety=ScriptedSafety([0.95, 0.01])))
    await h.feed(message_update("/start"))
    await h.feed(callback_update(CountChoiceCb(count=2).pack()))
    await h.feed(message_update("two foxes"))
    (job,) = await h.wait_jobs_settled()
    assert job.status == "done" and job.params["outcome"]["censored"] == [0]
    results = Path(h.app.settings.results_dir) / str(job.id)
    assert sorted(p.name for p in results.glob("*.png")) == ["1.png"]
    assert list(results.glob("*.tmp")) == []
    (photo,) = h.session.of(SendPhoto)  # the one image left goes as a photo
    seed = job.params["seed"]
    assert f"seed {seed + 1}" in photo.caption  # image 1 keeps its own seed
    assert photo.caption.endswith("\n🙈 One picture did not pass the content check and was not sent.")
    assert await counts(h) == {"image_censored": 1}


class NotingSafety(ImageSafety):
    """Passes every image, noting ``note()`` as each is checked (``note`` runs on the check's thread)."""

    def __init__(self, note: Callable[[], Any]) -> None:
        super().__init__(threshold=0.8)
        self.note = note
        self.seen: list[Any] = []

    def score(self, image) -> float:
        self.seen.append(self.note())
        return 0.0


def png_written_within(results_dir: Path, seconds: float) -> bool:
    """Whether a PNG (staged or stored) appears under ``results_dir`` within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not any(results_dir.glob("*/*.png*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    return any(results_dir.glob("*/*.png*"))


async def test_the_png_is_encoded_while_the_image_is_checked(make_harness, tmp_path):
    results_dir = tmp_path / "data" / "results"
    safety = NotingSafety(lambda: png_written_within(results_dir, 5))
    h = await make_harness(ContentGuard(image_safety=safety))
    assert Path(h.app.settings.results_dir) == results_dir
    await h.feed(message_update("a red fox"))
    (job,) = await h.wait_jobs_settled()
    assert job.status == "done"
    assert safety.seen == [True]
    results = Path(h.app.settings.results_dir) / str(job.id)
    assert [p.name for p in results.iterdir()] == ["0.png"]
    assert h.session.of(SendPhoto)


class FailingSafety(ImageSafety):
    def score(self, image) -> float:
        raise RuntimeError("the classifier broke")


async def test_a_check_that_fails_leaves_no_encoded_file(make_harness):
    h = await make_harness(ContentGuard(image_safety=FailingSafety(threshold=0.8)))
    await h.feed(message_update("a red fox"))
    (job,) = await h.wait_jobs_settled()
    assert (job.status, job.error) == ("failed", "internal")
    results = Path(h.app.settings.results_dir) / str(job.id)
    assert list(results.glob("*")) == []  # the PNG encoded beside the check is gone too
    assert h.session.of(SendPhoto) == []


async def test_real_photos_pass_and_uploads_are_checked(make_harness):
    """Editing jobs: the user's photo is checked before it reaches a model."""
    h = await make_harness(ContentGuard(image_safety=ImageSafety(intra_op_num_threads=1)))
    await h.feed(message_update("/start"))
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")
    h.session.files["upload-1"] = buf.getvalue()

    async def submit() -> Job:
        async with h.app.db.session() as session:
            repos = Repositories(session)
            owner = await session.get(User, 1001)
            params = h.app.jobs.params_from_settings(owner, "in watercolour", Mode.IMG2IMG, input_file_ids=["upload-1"])

            async def announce(job, position):
                message = await h.bot.send_message(job.chat_id, "queued")
                return message.message_id

            return await h.app.jobs.submit(repos, owner, 1001, params, announce, kind=Mode.IMG2IMG)

    await submit()
    (job,) = await h.wait_jobs_settled()
    assert job.status == "done"  # the astronaut scores ~0.03

    h.app.guard.image_safety = ImageSafety(threshold=0.001, intra_op_num_threads=1)
    await submit()
    _, job = await h.wait_jobs_settled()
    assert (job.status, job.error) == ("censored", "upload_censored")
    assert len(h.backend.calls) == 1  # the flagged photo never reached the model
    assert h.session.of(EditMessageText)[-1].text.startswith("🙈 The photo did not pass the content check")
    assert await counts(h) == {"upload_censored": 1}


async def test_counts_for_admins(make_harness):
    h = await make_harness(ContentGuard(text_filter=TextFilter(["banana"])))
    other = user(3003, first_name="Bob")
    for text, who in (("banana", None), ("b a n a n a", None), ("banana!", other)):
        await h.feed(message_update(text, from_user=who))
    async with h.app.db.session() as session:
        repos = Repositories(session)
        assert await repos.moderation.counts() == {"prompt_blocked": 3}
        assert await repos.moderation.counts(user_id=3003) == {"prompt_blocked": 1}
        assert await repos.moderation.top_users() == [(1001, 2), (3003, 1)]


# -- the operator's settings ----------------------------------------------------------------


def test_guard_from_settings(tmp_path):
    settings = make_settings(
        tmp_path,
        beautify_backend="openai",
        beautify_openai_url="http://127.0.0.1:9/v1",
        beautify_openai_api_key="sk-SECRET",
        beautify_timeout=5,
        safety_nsfw_threshold=0.6,
        safety_blurred_preview=False,
    )
    assert "sk-SECRET" not in repr(settings)
    guard = build_content_guard(settings.beautifier_settings(), settings.safety_settings())
    assert isinstance(guard.beautifier, OpenAIBeautifier) and guard.beautifier.timeout_s == 5
    assert "sk-SECRET" not in repr(guard.beautifier)
    assert guard.image_safety.threshold == 0.6
    assert guard.text_filter is not None and len(guard.text_filter) > 50
    assert guard.check_text("p0rn") is not None
    assert not guard.blurred_preview_enabled

    off = make_settings(tmp_path, beautify_backend="off", safety_text_filter=False, safety_image_filter=False)
    guard = build_content_guard(off.beautifier_settings(), off.safety_settings())
    assert guard.text_filter is None and guard.image_safety is None and not guard.beautification_available


def test_blocklist_path_setting(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("cherry\n", encoding="utf-8")
    settings = make_settings(tmp_path, safety_blocklist_path=path)
    guard = build_content_guard(settings.beautifier_settings(), settings.safety_settings())
    assert guard.check_text("a cherry") == "cherry"
    assert guard.check_text("porn") is None


# -- videos: sampled frames ---------------------------------------------------------------------


class CountingSafety(ScriptedSafety):
    def __init__(self, scores: list[float]) -> None:
        super().__init__(scores)
        self.seen: list[tuple[int, int]] = []

    def score(self, image) -> float:
        self.seen.append(image.size)
        return super().score(image)


async def test_a_video_with_one_flagged_frame_is_withheld(make_harness):
    # /video at the fake's 4 fps: 21 frames; sampled: 0, 4, 8, 12, 16, 20 (first, one a second, last).
    safety = CountingSafety([0.01, 0.01, 0.97, 0.01, 0.01, 0.01])
    h = await make_harness(ContentGuard(image_safety=safety))
    await h.feed(message_update("/video a quiet lake"))
    (job,) = await h.wait_jobs_settled()
    assert (job.status, job.error) == ("censored", "image_censored")
    assert len(safety.seen) == 6
    from aiogram.methods import SendVideo

    assert h.session.of(SendVideo) == []
    results = Path(h.app.settings.results_dir) / str(job.id)
    assert not list(results.glob("*.mp4"))  # nothing left to deliver
    (photo,) = h.session.of(SendPhoto)
    assert photo.has_spoiler  # the blurred preview of the flagged frame
    (event,) = await events(h)
    assert event.kind == "image_censored" and event.detail == "0.970"


async def test_a_clean_video_is_sent(make_harness):
    safety = CountingSafety([0.01] * 9)  # /animate, 2 scenes: 32 frames, sampled 0, 4, ..., 28, 31
    h = await make_harness(ContentGuard(image_safety=safety))
    await h.feed(message_update("/animate a lake"))
    await h.feed(callback_update("anim:move:zoom_in"))
    await h.feed(callback_update("anim:add:"))
    await h.feed(message_update("a lake at night"))
    await h.feed(callback_update("anim:move:drift"))
    await h.feed(callback_update("anim:make:"))
    (job,) = await h.wait_jobs_settled()
    assert job.status == "done" and len(safety.seen) == 9
    from aiogram.methods import SendVideo

    assert len(h.session.of(SendVideo)) == 1

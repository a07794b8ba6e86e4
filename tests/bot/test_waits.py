"""No silent waits: the estimated wait from the queue position and the model's recent average, and
status messages of jobs recovered after a restart brought up to date."""

from aiogram.methods import EditMessageText, SendMessage

from bot.i18n import translator
from bot.notifier import queued_line as queued_text
from generation.backend import ModelId
from generation.fake import FakeBackend
from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import callback_update, message_update


async def test_the_queue_message_estimates_the_wait_once_the_model_has_a_history(tmp_path):
    h = await start_harness(make_settings(tmp_path), FakeBackend(step_seconds=0.04))  # 25 steps: about 1 s
    try:
        await h.feed(message_update("a fox"))
        assert h.session.of(SendMessage)[-1].text == "⏳ Queued, position 1."  # nothing to go by yet
        [first] = await h.wait_jobs_settled()
        await h.feed(message_update("a wolf"))
        assert h.session.of(SendMessage)[-1].text == "⏳ Queued, position 1: ready in about 5 seconds."
        await h.wait_jobs_settled()
        await h.feed(callback_update("lang:ru"))
        await h.feed(message_update("лиса"))
        assert h.session.of(SendMessage)[-1].text == "⏳ В очереди, место 1: будет готово примерно через 5 секунд."
        await h.wait_jobs_settled()
    finally:
        await stop_harness(h)


def test_the_estimate_in_words():
    t = translator()
    assert queued_text(t, "en", 3, None) == "⏳ Queued, position 3."
    assert queued_text(t, "en", 3, 61) == "⏳ Queued, position 3: ready in about 60 seconds."
    assert queued_text(t, "en", 3, 100) == "⏳ Queued, position 3: ready in about 2 minutes."
    assert queued_text(t, "en", 1, 75 * 60 // 75) == "⏳ Queued, position 1: ready in about 60 seconds."
    assert queued_text(t, "ru", 2, 21 * 60) == "⏳ В очереди, место 2: будет готово примерно через 21 минуту."
    assert queued_text(t, "ru", 2, 3 * 60) == "⏳ В очереди, место 2: будет готово примерно через 3 минуты."


async def test_after_a_restart_the_status_of_recovered_jobs_is_refreshed(tmp_path):
    settings = make_settings(tmp_path, admin_ids=[1001])  # the test user owns the bot: /pause works
    first = await start_harness(settings, FakeBackend(step_seconds=0.05))
    await first.feed(message_update("a fox"))
    await first.feed(message_update("a wolf"))
    await first.wait_for(lambda: first.backend.steps_done > 3)
    await first.feed(message_update("/pause maintenance"))  # nothing will run after the restart
    await stop_harness(first)  # the running job goes back to the queue; its message shows a step
    jobs = await first.jobs()
    assert [j.status for j in jobs] == ["queued", "queued"]

    second = await start_harness(settings, FakeBackend(step_seconds=0.05))
    try:
        # Nothing runs (paused), yet each status message says where its job is now, instead of the
        # step the previous process showed last.
        refreshed = {e.message_id: e.text for e in second.session.of(EditMessageText)}
        assert refreshed[jobs[0].status_message_id] == "⏳ Queued, position 1."
        assert refreshed[jobs[1].status_message_id] == "⏳ Queued, position 2."
        await second.feed(message_update("/resume"))
        assert [j.status for j in await second.wait_jobs_settled()] == ["done", "done"]
    finally:
        await stop_harness(second)


async def test_a_model_that_is_not_in_memory_says_it_is_loading(tmp_path):
    backend = FakeBackend(step_seconds=0.01)
    backend.resident = set()  # nothing loaded: every job's model loads first
    h = await start_harness(make_settings(tmp_path), backend)
    try:
        await h.feed(message_update("a fox"))
        await h.wait_jobs_settled()
        texts = [e.text for e in h.session.of(EditMessageText)]
        assert "⏳ Loading Kandinsky 3.1 into memory (its first use since the bot started: this can take a few minutes)…" in texts
        # The next time, the estimate is the last load's time.
        await h.feed(message_update("a wolf"))
        await h.wait_jobs_settled()
        texts = [e.text for e in h.session.of(EditMessageText)]
        assert "⏳ Loading Kandinsky 3.1 into memory (about 5 seconds)…" in texts
        # A loaded model starts at once, as before.
        backend.resident = set(ModelId)
        await h.feed(message_update("a bear"))
        await h.wait_jobs_settled()
        assert sum(t.startswith("⏳ Loading") for t in (e.text for e in h.session.of(EditMessageText))) == 2
    finally:
        await stop_harness(h)


async def test_positions_move_up_when_a_queued_job_is_cancelled(tmp_path):
    h = await start_harness(make_settings(tmp_path, max_pending_per_user=5), FakeBackend(step_seconds=0.1))
    try:
        for prompt in ("one", "two", "three"):
            await h.feed(message_update(prompt))
        await h.wait_for(lambda: h.backend.steps_done > 0)  # "one" runs; "two" and "three" wait
        jobs = await h.jobs()
        three = jobs[2]
        await h.feed(callback_update(f"cancel:{jobs[1].id}"))  # "two" is cancelled
        await h.wait_for(
            lambda: any(e.message_id == three.status_message_id and e.text.startswith("⏳ Queued, position 1")
                        for e in h.session.of(EditMessageText))
        )
        await h.feed(message_update("/cancel"))
        await h.wait_jobs_settled()
    finally:
        await stop_harness(h)


class PacedBackend(FakeBackend):
    """The fake backend with a pace for each call in turn (seconds a step)."""

    def __init__(self, paces: list[float]) -> None:
        super().__init__()
        self.paces = paces

    def generate(self, request, progress):  # type: ignore[no-untyped-def]
        self.step_seconds = self.paces[min(len(self.calls), len(self.paces) - 1)]
        return super().generate(request, progress)


async def test_positions_move_up_when_the_job_ahead_starts(tmp_path):
    # Status edits of a chat at most every 30 s: the user's own jobs keep editing this chat (the one
    # that starts says so), which must not hold back the position of the job behind them.
    # One job at a time: "two" and "three" would otherwise run as one batch.
    settings = make_settings(tmp_path, max_pending_per_user=5, progress_edit_interval=30.0, batch_max_jobs=1)
    h = await start_harness(settings, PacedBackend([0.02, 0.05]))  # 50 steps: about 1 s, then 2.5 s
    try:
        for prompt in ("one", "two", "three"):
            await h.feed(message_update(prompt))
        three = (await h.jobs())[2]
        assert h.session.of(SendMessage)[-1].text.startswith("⏳ Queued, position 2")  # "one" already runs
        # "one" ends and "two" starts: while "two" runs, "three" already says it is next (the
        # refresh reads the queue after the start is committed, not before).
        await h.wait_for(lambda: len(h.backend.calls) == 2 and 10 <= h.backend.steps_done < 50)
        shown = [e.text for e in h.session.of(EditMessageText) if e.message_id == three.status_message_id]
        assert shown and shown[-1].startswith("⏳ Queued, position 1"), shown
        await h.feed(message_update("/cancel"))
        await h.wait_jobs_settled()
    finally:
        await stop_harness(h)


def test_a_queue_line_is_formatted_once_per_position_and_rounded_wait(monkeypatch):
    """Every prompt's first answer and every position refresh renders a queue line: Fluent formats
    each (position, rounded wait) once; the texts stay those above."""
    from bot.i18n import MEMO_SIZE, Translator, create_core

    t = Translator(create_core())  # a memo of its own
    formatted: list[str] = []
    get = t.core.get

    def counting_get(key, locale=None, /, **kwargs):
        formatted.append(key)
        return get(key, locale, **kwargs)

    monkeypatch.setattr(t.core, "get", counting_get)
    assert queued_text(t, "en", 3, 100) == "⏳ Queued, position 3: ready in about 2 minutes."
    assert formatted == ["eta-minutes", "job-queued-eta"]
    assert queued_text(t, "en", 3, 110) == "⏳ Queued, position 3: ready in about 2 minutes."  # rounds the same
    assert queued_text(t, "ru", 2, 3 * 60) == "⏳ В очереди, место 2: будет готово примерно через 3 минуты."
    assert queued_text(t, "en", 4, 100) == "⏳ Queued, position 4: ready in about 2 minutes."
    assert formatted == ["eta-minutes", "job-queued-eta", "eta-minutes", "job-queued-eta", "job-queued-eta"]
    assert t.memo.cache_info().maxsize == MEMO_SIZE  # bounded

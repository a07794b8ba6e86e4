"""The notes of a status message (Flash ignores the negative prompt, a model fallback, the
remembered strength) stay under every later status, instead of being overwritten by the progress."""

from aiogram.methods import EditMessageText, SendMessage

from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import callback_update, message_update

NOTE = "Note: Flash draws without a negative prompt, so yours is not used."


async def test_the_flash_note_stays_readable_through_the_progress(tmp_path):
    h = await start_harness(make_settings(tmp_path, fake_step_seconds=0.02))
    try:
        await h.feed(callback_update("set:model:kandinsky-3.1-flash"))
        await h.feed(message_update("a robot --no blur"))
        [job] = await h.wait_jobs_settled()
        status = [m for m in h.session.of(SendMessage) if m.text.startswith("⏳")][-1]
        assert status.text.endswith(NOTE)
        edits = [e.text for e in h.session.of(EditMessageText) if e.text.startswith(("🎨", "⏳"))]
        assert any(t.startswith("🎨 Generating: step") for t in edits)
        assert edits and all(t.endswith(NOTE) for t in edits), edits  # 4 of 4 steps, not overwritten
    finally:
        await stop_harness(h)

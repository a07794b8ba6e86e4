"""The notifier is the only writer of a job's status message: its notes survive queue refreshes."""

from aiogram.methods import EditMessageText, SendMessage

from app.wiring import refresh_queue_positions
from storage.models import Job, User
from storage.repositories import Repositories
from tests.fakes import callback_update, message_update, user

NOTE = "Flash draws without a negative prompt"


async def test_the_flash_note_stays_readable_when_the_queue_moves(harness):
    await harness.app.queue.stop()  # no worker: the jobs stay queued
    other = user(user_id=2002, first_name="Bo", username="bo")
    await harness.feed(message_update("a queue filler", from_user=other))
    # The Flash user with a negative prompt.
    await harness.feed(callback_update("set:model:kandinsky-3.1-flash"))
    async with harness.app.db.session() as session:
        (await session.get(User, 1001)).settings.negative_prompt = "blurry"
        await session.commit()
    harness.session.clear()
    await harness.feed(message_update("a lighthouse"))
    [status] = [m for m in harness.session.of(SendMessage) if "Queued" in m.text]
    assert "position 2" in status.text and NOTE in status.text

    # The job ahead is cancelled; the queue refresh moves ours up and keeps the note.
    async with harness.app.db.session() as session:
        first = await session.get(Job, 1)
        assert await harness.app.jobs.cancel_one(Repositories(session), first)
    await refresh_queue_positions(harness.app.db, harness.app.notifier)
    ours = (await harness.jobs())[-1]
    edits = [e for e in harness.session.of(EditMessageText) if e.message_id == ours.status_message_id]
    assert edits and "position 1" in edits[-1].text and NOTE in edits[-1].text, [e.text for e in edits]


async def test_a_late_queue_refresh_does_not_write_over_a_cancelled_status(harness):
    """A refresh that read the queue before a cancel edits after it: "Cancelled" must stay."""
    await harness.app.queue.stop()  # no worker: the job stays queued
    await harness.feed(message_update("a lighthouse"))
    [job] = await harness.jobs()
    async with harness.app.db.session() as session:
        stale = await session.get(Job, job.id)  # what the refresh read: still queued
        assert await harness.app.jobs.cancel_one(Repositories(session), stale)
    await harness.app.notifier.withdrawn(stale, "en")  # what the cancel handler says
    [cancelled] = harness.session.of(EditMessageText)
    assert "Cancelled" in cancelled.text
    harness.session.clear()
    await harness.app.notifier.queued(stale, "en", position=1)  # the refresh's late edit
    assert not harness.session.of(EditMessageText)

"""What one prompt costs the bot (issue #16), counted, never timed: SQL statements and transactions on a
real SQLite file (SQLAlchemy's engine events), Bot API calls in between, batched admission under a
burst, coalesced queue-position refreshes, and the worker's calls yielding to updates being handled."""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram.methods import GetUpdates, SendMessage, SendPhoto
from sqlalchemy import event

from bot.priority import AnswersFirst, UpdatesInFlight
from generation.backend import Mode
from jobs.service import AdmissionError
from storage.repositories import Repositories
from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import message_update, user


class Trace:
    """Statements and commits of the bot's engines, and the Bot API calls, in the order they happened."""

    def __init__(self, harness: Any) -> None:
        self.events: list[tuple[str, str]] = []
        engines = [harness.app.db.sessionmaker.kw["bind"].sync_engine]
        storage = harness.app.dispatcher.storage
        engines.append(storage.engine.sync_engine)
        self.engines = engines
        for engine in engines:
            event.listen(engine, "before_cursor_execute", self._statement)
            event.listen(engine, "commit", self._commit)
        # Commits of the bot's sessions, those that reached the database and those that did not.
        self.session_class = harness.app.db.sessionmaker.kw["sync_session_class"]
        self.session_commits = 0
        event.listen(self.session_class, "after_commit", self._session_commit)
        session = harness.session
        original = session.make_request

        async def make_request(bot: Any, method: Any, timeout: int | None = None) -> Any:
            self.events.append(("telegram", type(method).__name__))
            return await original(bot, method, timeout)

        session.make_request = make_request  # type: ignore[method-assign]

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.events.append(("sql", " ".join(statement.split()[:3])))

    def _commit(self, conn: Any) -> None:
        self.events.append(("commit", ""))

    def _session_commit(self, session: Any) -> None:
        self.session_commits += 1

    def statements(self) -> list[str]:
        return [text for kind, text in self.events if kind == "sql"]

    def close(self) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._statement)
            event.remove(engine, "commit", self._commit)
        event.remove(self.session_class, "after_commit", self._session_commit)


async def test_a_prompt_is_a_few_statements_and_no_transaction_spans_a_telegram_call(tmp_path):
    h = await start_harness(make_settings(tmp_path))
    try:
        await h.app.queue.stop()  # no worker: only the update's own work is counted
        await h.feed(message_update("a first prompt"))  # first contact: the user row is created
        trace = Trace(h)
        try:
            await h.feed(message_update("a lighthouse at dawn"))
        finally:
            trace.close()
        statements = trace.statements()
        # The pause and limits, the counts, the job, its status message id; and the model's recent
        # run time for the estimate (none yet: read). The user and their settings are kept from
        # their first update (storage.user_cache); a prompt does not reach the admin gate's role
        # read; the FSM state of a chat with no flow under way is known without a read.
        assert len(statements) <= 5, statements
        assert not any("FROM users" in s or "users." in s for s in statements), statements
        assert [s for s in statements if s.startswith(("INSERT", "UPDATE", "DELETE"))] == [
            "INSERT INTO jobs", "UPDATE jobs SET",
        ]
        kinds = [kind if kind != "sql" else text for kind, text in trace.events]
        insert, update = kinds.index("INSERT INTO jobs"), kinds.index("UPDATE jobs SET")
        send = kinds.index("telegram")
        # The job row is committed before the status message goes out; its id is written after.
        assert insert < kinds.index("commit", insert) < send < update < kinds.index("commit", update)
        assert [text for kind, text in trace.events if kind == "telegram"] == ["SendMessage"]
        # The admission, the estimate's read (ended before the status message goes out) and the
        # status id: three commits. The update's session, holding the user's row and nothing more to
        # write, is not committed again at the end (storage.db.has_work_to_commit).
        assert trace.session_commits == 3
    finally:
        await stop_harness(h)


async def test_a_burst_of_prompts_keeps_true_positions_and_the_total_limit(tmp_path):
    h = await start_harness(make_settings(tmp_path, max_pending_total=15))
    try:
        await h.app.queue.stop()
        await asyncio.gather(
            *(h.feed(message_update(f"prompt {i}", from_user=user(5000 + i, first_name=f"U{i}"))) for i in range(20))
        )
        texts = [m.text for m in h.session.of(SendMessage)]
        queued = sorted(int(t.split("position ")[1].split(".")[0]) for t in texts if "Queued" in t)
        assert queued == list(range(1, 16))  # the total limit holds across a batch; positions are true
        assert sum("The queue is full" in t for t in texts) == 5
        jobs = await h.jobs()
        assert len(jobs) == 15 and len({j.user_id for j in jobs}) == 15
        assert all(j.status_message_id is not None for j in jobs)
    finally:
        await stop_harness(h)


async def test_a_burst_of_first_contacts_shares_its_writes(tmp_path):
    """40 new users at once: their rows are one batch, their status message ids a few UPDATEs."""
    h = await start_harness(make_settings(tmp_path))
    try:
        await h.app.queue.stop()
        await h.feed(message_update("warm up"))
        status_sent: dict[int, int] = {}  # chat -> id of the "Queued" message sent there
        original = h.session.make_request

        async def make_request(bot: Any, method: Any, timeout: int | None = None) -> Any:
            result = await original(bot, method, timeout)
            if isinstance(method, SendMessage) and "Queued" in method.text:
                status_sent[int(method.chat_id)] = result.message_id
            return result

        h.session.make_request = make_request  # type: ignore[method-assign]
        trace = Trace(h)
        try:
            await asyncio.gather(
                *(h.feed(message_update(f"prompt {i}", from_user=user(7000 + i, first_name=f"U{i}"))) for i in range(40))
            )
        finally:
            trace.close()
        statements = trace.statements()
        assert statements.count("INSERT INTO users") <= 2, statements
        assert statements.count("UPDATE jobs SET") <= 8, statements  # executemany: one per batch
        jobs = [j for j in await h.jobs() if j.user_id >= 7000]
        assert len(jobs) == 40 and len(status_sent) == 40
        # Each job's recorded status message is the one sent to its own chat.
        assert {j.chat_id: j.status_message_id for j in jobs} == status_sent
    finally:
        await stop_harness(h)


async def test_queue_position_refreshes_are_coalesced_and_read_the_queue_once(tmp_path):
    h = await start_harness(make_settings(tmp_path, max_pending_per_user=5))
    try:
        await h.app.queue.stop()
        for i in range(3):
            await h.feed(message_update(f"prompt {i}"))
        positions = h.app.positions
        assert positions is not None
        trace = Trace(h)
        try:
            for _ in range(30):  # thirty jobs started at once
                positions.request()
            await positions.idle()
        finally:
            trace.close()
        assert positions.refreshes == 1
        # The queue with its owners' languages in one read (the estimate: none yet, read once).
        assert len([s for s in trace.statements() if s.startswith("SELECT jobs.id")]) == 1, trace.statements()
        assert len(trace.statements()) <= 2
    finally:
        await stop_harness(h)


async def test_calls_outside_the_handlers_wait_for_the_updates_in_flight():
    updates = UpdatesInFlight()
    gate = AnswersFirst(updates, max_wait=30.0)
    order: list[str] = []
    release = asyncio.Event()

    async def make_request(bot: Any, method: Any) -> str:
        order.append(type(method).__name__ if not isinstance(method, str) else method)
        return "ok"

    async def handler(event: Any, data: dict[str, Any]) -> None:
        await gate(make_request, None, "answer")  # a handler's own call: never held
        await release.wait()
        order.append("handled")

    update = asyncio.create_task(updates(handler, None, {}))
    await asyncio.sleep(0)
    assert updates.count == 1 and order == ["answer"]
    background = asyncio.create_task(gate(make_request, None, "edit"))
    polling = asyncio.create_task(gate(make_request, None, GetUpdates()))
    await polling  # the next updates are fetched at once
    await asyncio.sleep(0.01)
    assert order == ["answer", "GetUpdates"]  # the worker's edit waits for the answer
    release.set()
    await update
    await background
    assert order == ["answer", "GetUpdates", "handled", "edit"]
    assert updates.count == 0


async def test_requests_that_arrive_during_an_admission_are_admitted_together(tmp_path):
    """Group commit: while one admission transaction runs, the requests that arrive wait and are then
    admitted in one transaction, each checked as if alone (the per-user limit counts the batch)."""
    h = await start_harness(make_settings(tmp_path, max_pending_per_user=2))
    try:
        await h.app.queue.stop()
        users = [user(6000 + i, first_name=f"U{i}") for i in range(10)]
        for u in users:  # the users exist: only admissions are counted below
            await h.feed(message_update("/start", from_user=u))
        engine = h.app.db.sessionmaker.kw["bind"].sync_engine
        commits: list[int] = []
        listener = lambda conn: commits.append(1)  # noqa: E731
        sessions = []
        try:
            requests = []
            for u in [*users, users[0], users[0]]:  # ten users at once, and the first one twice more
                session = h.app.db.session()
                sessions.append(session)
                repos = Repositories(session)
                row = await repos.users.get(u.id)
                requests.append((repos, row, h.app.jobs.params_from_settings(row, f"a prompt of {u.id}")))

            async def announce(job: Any, position: int) -> int:
                return 100 + position

            async def submit(repos: Any, row: Any, params: Any) -> Any:
                try:
                    return await h.app.jobs.submit(repos, row, row.id, params, announce)
                except AdmissionError as exc:
                    return exc.code

            # The rows are read: from here on, only admissions and status messages.
            event.listen(engine, "commit", listener)
            outcomes = await asyncio.gather(*(submit(*r) for r in requests))
        finally:
            event.remove(engine, "commit", listener)
            for session in sessions:
                await session.close()
        jobs = [o for o in outcomes if not isinstance(o, str)]
        assert [o for o in outcomes if isinstance(o, str)] == ["limit-user"]
        assert sorted(j.status_message_id - 100 for j in jobs) == list(range(1, 12))  # positions 1..11
        # One transaction per batch plus one per status message id: the ten users made two batches
        # (the first request alone, the nine that came meanwhile together) and the first user's
        # later two one each (one user's requests wait for each other), where one transaction per
        # request would make 2 x 11 commits and more.
        assert len(commits) <= len(jobs) + 4, len(commits)
    finally:
        await stop_harness(h)


async def test_admission_goes_on_after_a_failed_batch_and_a_cancelled_waiter():
    """The batch lock is never left taken: a transaction that fails fails its batch only, and a
    request cancelled while it waits is skipped."""
    from jobs.service import JobService, _Request
    from storage.models import Job

    service = JobService(queue=None, max_image_side=64, max_pending_per_user=5, max_pending_total=50)  # type: ignore[arg-type]
    running = asyncio.Event()
    release = asyncio.Event()
    batches: list[list[int]] = []

    async def admit_batch(repos: Any, batch: list[_Request]) -> None:
        batches.append([r.job.user_id for r in batch])
        running.set()
        await release.wait()
        if batch[0].job.user_id == 1:
            raise RuntimeError("the database went away")
        for position, request in enumerate(batch, start=1):
            request.outcome.set_result((request.job, position))

    service._admit_batch = admit_batch  # type: ignore[method-assign]

    def request(user_id: int) -> Any:
        return service._admit(_Request(None, Job(user_id=user_id), Mode.TEXT2IMG, asyncio.get_running_loop().create_future()))  # type: ignore[arg-type]

    first = asyncio.create_task(request(1))
    await running.wait()
    waiting = [asyncio.create_task(request(u)) for u in (2, 3, 4)]
    await asyncio.sleep(0)
    waiting[0].cancel()  # user 2 gives up while the first batch runs
    release.set()
    try:
        await first
    except RuntimeError as exc:
        assert "went away" in str(exc)
    else:
        raise AssertionError("the failed batch's request did not fail")
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert [(job.user_id, position) for job, position in outcomes[1:]] == [(3, 1), (4, 2)]
    assert batches == [[1], [3, 4]]
    assert service._admitting is False and service._waiting == []


async def test_status_ids_are_written_in_batches_and_the_turn_is_never_lost():
    """Ids that arrive while a batch is written are the next batch; a failed write fails its batch
    only; a writer cancelled before its batch leaves the turn to the others."""
    from jobs.service import JobService

    service = JobService(queue=None, max_image_side=64, max_pending_per_user=5, max_pending_total=50)  # type: ignore[arg-type]
    written: list[dict[int, int]] = []
    release = asyncio.Event()

    class Jobs:
        async def set_status_message_ids(self, ids: dict[int, int]) -> None:
            await release.wait()
            if 13 in ids:
                raise RuntimeError("the database went away")
            written.append(dict(ids))

    class Repos:
        jobs = Jobs()

        async def commit(self) -> None:
            pass

    def record(job_id: int) -> Any:
        return asyncio.create_task(service._record_status_message(Repos(), job_id, 1000 + job_id))  # type: ignore[arg-type]

    first = [record(j) for j in (1, 2, 3)]  # one moment: one batch
    await asyncio.sleep(0.01)
    later = [record(j) for j in (4, 5)]  # while the first batch is written
    release.set()
    await asyncio.gather(*first, *later)
    assert written == [{1: 1001, 2: 1002, 3: 1003}, {4: 1004, 5: 1005}]

    failing = [record(13), record(14)]
    outcomes = await asyncio.gather(*failing, return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    release.clear()
    leader = record(20)
    await asyncio.sleep(0)  # the leader waits for its batch to gather
    leader.cancel()
    others = [record(21), record(22)]
    await asyncio.sleep(0.01)
    release.set()
    async with asyncio.timeout(5):  # a turn left with the cancelled leader would wait for ever
        await asyncio.gather(*others)
    assert written[-1] == {21: 1021, 22: 1022}
    assert service._writing_status_ids is False and service._status_ids == []


async def test_results_are_finished_and_sent_after_the_updates_in_flight(tmp_path, monkeypatch):
    """The embedded worker shares the event loop with the handlers: while an update is being handled,
    a generated image waits to be checked, stored and sent, and the GPU goes on with the next job."""
    import app.wiring

    monkeypatch.setattr(app.wiring, "MAX_WAIT_SECONDS", 30.0)  # held for as long as the update is
    h = await start_harness(make_settings(tmp_path))
    try:
        updates = next(m for m in h.app.dispatcher.update.outer_middleware if isinstance(m, UpdatesInFlight))
        release = asyncio.Event()

        async def slow_handler(event: Any, data: dict[str, Any]) -> None:
            await release.wait()

        # In flight before the prompts come (else the first job, drawn at once, may be finished
        # before the slow update is counted).
        in_flight = asyncio.create_task(updates(slow_handler, None, {}))
        await h.wait_for(lambda: updates.count == 1)
        await h.feed(message_update("a lighthouse at dawn", from_user=user(7001)))
        await h.feed(message_update("a lighthouse at dusk", from_user=user(7002)))
        await h.wait_for(lambda: len(h.backend.calls) == 2)  # both generated: the GPU did not wait
        await asyncio.sleep(0.3)
        assert not h.session.of(SendPhoto)
        assert {j.status for j in await h.jobs()} <= {"queued", "running"}
        release.set()
        await in_flight
        jobs = await h.wait_jobs_settled()
        assert [j.status for j in jobs] == ["done", "done"]
        assert len(h.session.of(SendPhoto)) == 2
    finally:
        await stop_harness(h)

"""The GPU never waits, and jobs of different users share a batch (issue #16), through the real
Dispatcher, job service, embedded queue and runner on SQLite.

Overlap is proved by the order of events, never by timing: a stand-in backend records when each
call starts and ends and can be held at its first step (a held call still answers cancels and
shutdowns, as a real pipeline does at every step).
"""

from __future__ import annotations

import asyncio
import threading

from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import EditMessageText, SendPhoto
from PIL import Image, ImageChops

from generation.backend import GenerationError, GenerationRequest, OutOfMemory, ProgressFn
from generation.fake import FakeBackend
from jobs.runner import build_request
from prompting.beautify import BeautifyResult
from prompting.guard import ContentGuard
from prompting.safety import ImageSafety
from storage.models import JobStatus
from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import callback_update, message_update, user
from tests.safety.test_bot_safety import beautify_on


class GatedBackend(FakeBackend):
    """FakeBackend that logs each call's start and end (by prompt) and holds the calls given a gate
    (:meth:`gate`, in call order) at their first step until the gate opens."""

    def __init__(self, log: list[str] | None = None) -> None:
        super().__init__()
        self.log = log if log is not None else []
        self._gates: list[threading.Event] = []
        self.held = 0  # calls that reached their gate
        self.last_step: tuple[int, int] | None = None  # (step, total) of the latest progress call

    def gate(self) -> threading.Event:
        event = threading.Event()
        self._gates.append(event)
        return event

    def _gated(self, progress: ProgressFn) -> ProgressFn:
        gate = self._gates.pop(0) if self._gates else None

        def gated(step: int, total: int) -> None:
            self.last_step = (step, total)
            progress(step, total)
            if gate is not None and step == 1:
                self.held += 1
                while not gate.wait(0.05):
                    progress(step, total)  # raises GenerationCancelled on a cancel or a shutdown

        return gated

    @staticmethod
    def _names(requests: list[GenerationRequest]) -> str:
        return "+".join(r.prompt.split(",")[0] for r in requests)

    def generate(self, request: GenerationRequest, progress: ProgressFn):
        self.log.append(f"start {self._names([request])}")
        try:
            return super().generate(request, self._gated(progress))
        finally:
            self.log.append(f"end {self._names([request])}")

    def generate_batch(self, requests: list[GenerationRequest], progress: ProgressFn):
        self.log.append(f"start {self._names(requests)}")
        try:
            return super().generate_batch(requests, self._gated(progress))
        finally:
            self.log.append(f"end {self._names(requests)}")


def prompts(backend: FakeBackend) -> list[str]:
    return [r.prompt.split(",")[0] for r in backend.calls]


async def jobs_by_prompt(h) -> dict[str, object]:
    from jobs.params import read_params

    return {read_params(job).prompt: job for job in await h.jobs()}


def photo_chats(h) -> list[int]:
    return [int(m.chat_id) for m in h.session.of(SendPhoto)]


async def queue_behind_a_busy_gpu(h, backend: GatedBackend, jobs: list[tuple[int, str]]) -> None:
    """Job "x" of user 10 holds the GPU (at its first gate) while ``jobs`` ((user id, prompt)) queue up."""
    await h.feed(message_update("x", from_user=user(user_id=10)))
    await h.wait_for(lambda: backend.held == 1)
    for uid, prompt in jobs:
        await h.feed(message_update(prompt, from_user=user(user_id=uid)))


# -- batching across users ----------------------------------------------------------------------


async def test_jobs_of_different_users_run_as_one_batch_each_with_its_own_image(tmp_path):
    backend = GatedBackend()
    first = backend.gate()
    h = await start_harness(make_settings(tmp_path, batch_max_jobs=4), backend)
    try:
        await queue_behind_a_busy_gpu(h, backend, [(1, "a"), (2, "b"), (3, "c")])
        first.set()
        jobs = await h.wait_jobs_settled()
        assert [j.status for j in jobs] == ["done"] * 4
        assert [j.attempts for j in jobs] == [1] * 4  # each claimed once
        assert backend.batches == [3]  # x ran alone (nothing else was queued), then one batch
        assert backend.log == ["start x", "end x", "start a+b+c", "end a+b+c"]
        assert sorted(photo_chats(h)) == [1, 2, 3, 10]
        # Each job's stored picture is the one its own request gives alone (its prompt, its seed).
        for job in jobs:
            [path] = h.app.runner.result_paths(job.id)
            alone = FakeBackend().generate(build_request(job), lambda step, total: None)[0]
            with Image.open(path) as stored:
                assert ImageChops.difference(stored.convert("RGB"), alone).getbbox() is None
    finally:
        await stop_harness(h)


async def test_batches_are_filled_in_round_robin_order(tmp_path):
    backend = GatedBackend()
    first = backend.gate()
    h = await start_harness(make_settings(tmp_path, batch_max_jobs=2, max_pending_per_user=5), backend)
    try:
        await queue_behind_a_busy_gpu(h, backend, [(1, "a1"), (1, "a2"), (1, "a3"), (2, "b1"), (3, "c1")])
        first.set()
        await h.wait_jobs_settled()
        # Oldest first, one job per user in turn: a1 b1 | c1 a2 | a3, never a1 a2 | a3 b1 | c1.
        assert prompts(backend) == ["x", "a1", "b1", "c1", "a2", "a3"]
        assert backend.batches == [2, 2]
    finally:
        await stop_harness(h)


async def test_batching_off_runs_one_job_at_a_time(tmp_path):
    backend = GatedBackend()
    first = backend.gate()
    h = await start_harness(make_settings(tmp_path, batch_max_jobs=1), backend)
    try:
        await queue_behind_a_busy_gpu(h, backend, [(1, "a"), (2, "b")])
        first.set()
        await h.wait_jobs_settled()
        assert backend.batches == [] and prompts(backend) == ["x", "a", "b"]
    finally:
        await stop_harness(h)


async def batch_on_the_gpu(tmp_path, jobs: list[tuple[int, str]]):
    """A harness whose GPU holds the batch of ``jobs`` (queued behind "x") at its first step; the
    batch's gate opens it."""
    backend = GatedBackend()
    first, batch = backend.gate(), backend.gate()
    h = await start_harness(make_settings(tmp_path, batch_max_jobs=4), backend)
    await queue_behind_a_busy_gpu(h, backend, jobs)
    first.set()
    await h.wait_for(lambda: backend.held == 2)
    return h, backend, batch


async def test_cancelling_one_member_drops_only_its_images(tmp_path):
    h, backend, batch = await batch_on_the_gpu(tmp_path, [(1, "a"), (2, "b"), (3, "c")])
    try:
        b_job = (await jobs_by_prompt(h))["b"]
        await h.feed(callback_update(f"cancel:{b_job.id}", from_user=user(user_id=2)))
        batch.set()
        await h.wait_jobs_settled()
        by_prompt = await jobs_by_prompt(h)
        assert {p: j.status for p, j in by_prompt.items()} == {"x": "done", "a": "done", "b": "cancelled", "c": "done"}
        assert backend.batches == [3]
        step, total = backend.last_step
        assert step == total  # the batch ran to its end for the others
        assert sorted(photo_chats(h)) == [1, 3, 10]
        assert h.app.runner.result_paths(b_job.id) == []
        b_edits = [m.text for m in h.session.of(EditMessageText) if int(m.chat_id) == 2]
        assert b_edits[-1] == "✖️ Cancelled."
    finally:
        await stop_harness(h)


async def test_a_batch_stops_once_every_member_is_cancelled(tmp_path):
    h, backend, batch = await batch_on_the_gpu(tmp_path, [(1, "a"), (2, "b")])
    try:
        by_prompt = await jobs_by_prompt(h)
        for uid, prompt in [(1, "a"), (2, "b")]:
            await h.feed(callback_update(f"cancel:{by_prompt[prompt].id}", from_user=user(user_id=uid)))
        await h.wait_jobs_settled()
        by_prompt = await jobs_by_prompt(h)
        assert [by_prompt[p].status for p in ("x", "a", "b")] == ["done", "cancelled", "cancelled"]
        assert backend.last_step[0] == 1 < backend.last_step[1]  # stopped at the step it was held on
    finally:
        batch.set()
        await stop_harness(h)


async def test_a_batch_interrupted_by_shutdown_returns_to_the_queue_and_runs_after_restart(tmp_path):
    settings = make_settings(tmp_path, batch_max_jobs=4)
    backend = GatedBackend()
    first_gate, _held_batch = backend.gate(), backend.gate()
    first = await start_harness(settings, backend)
    await queue_behind_a_busy_gpu(first, backend, [(1, "a"), (2, "b")])
    first_gate.set()
    await first.wait_for(lambda: backend.held == 2)
    await stop_harness(first)  # SIGTERM while the batch a+b is on the GPU
    by_prompt = await jobs_by_prompt(first)
    assert [by_prompt[p].status for p in ("a", "b")] == ["queued", "queued"]
    assert by_prompt["x"].status in ("generated", "done")  # finished before: delivered now or after the restart

    second = await start_harness(settings, FakeBackend())
    try:
        jobs = await second.wait_jobs_settled()
        assert [j.status for j in jobs] == ["done"] * 3
        assert [j.attempts for j in jobs] == [1, 2, 2]  # a and b claimed again after the restart
        assert second.backend.batches == [2] and prompts(second.backend) == ["a", "b"]
        # a and b sent once, after the restart; x once, before it or after it.
        assert sorted(photo_chats(first) + photo_chats(second)) == [1, 2, 10]
        assert {1, 2} <= set(photo_chats(second))
    finally:
        await stop_harness(second)


def photo_taken_then_slow_answer(h, answer_seconds: float) -> asyncio.Event:
    """Telegram takes each photo at once and its answer comes back ``answer_seconds`` later; the
    event is set when the first photo is taken."""
    taken = asyncio.Event()
    record = h.session.make_request

    async def slow_photo_answers(bot, method, timeout=None):
        result = await record(bot, method, timeout)
        if isinstance(method, SendPhoto):
            taken.set()
            await asyncio.sleep(answer_seconds)
        return result

    h.session.make_request = slow_photo_answers
    return taken


async def test_a_delivery_under_way_at_shutdown_ends_first_and_is_not_sent_again_after_restart(tmp_path):
    settings = make_settings(tmp_path)
    first = await start_harness(settings)
    taken = photo_taken_then_slow_answer(first, answer_seconds=0.5)
    await first.feed(message_update("x", from_user=user(user_id=10)))
    await asyncio.wait_for(taken.wait(), 10)
    await stop_harness(first)  # SIGTERM while the photo's answer is on its way
    [job] = await first.jobs()
    assert job.status == "done" and job.result_file_ids

    second = await start_harness(settings)
    try:
        await asyncio.sleep(4 * settings.delivery_retry_seconds)  # the retry loop finds nothing to send
        assert photo_chats(first) == [10] and photo_chats(second) == []
    finally:
        await stop_harness(second)


async def test_a_retried_delivery_under_way_at_shutdown_is_not_sent_again_after_restart(tmp_path):
    """The retry loop's deliveries get the same grace: the first try fails (Telegram is down), the
    second is under way when the process stops."""
    settings = make_settings(tmp_path, delivery_retry_seconds=0.1)
    first = await start_harness(settings)
    tries = []
    first.session.failures[SendPhoto] = lambda m: tries.append(m) or (
        TelegramNetworkError(method=m, message="down") if len(tries) == 1 else None
    )
    taken = photo_taken_then_slow_answer(first, answer_seconds=0.5)
    await first.feed(message_update("x", from_user=user(user_id=10)))
    await asyncio.wait_for(taken.wait(), 10)
    await stop_harness(first)
    [job] = await first.jobs()
    assert len(tries) == 2 and job.status == "done"

    second = await start_harness(settings)
    try:
        await asyncio.sleep(4 * settings.delivery_retry_seconds)
        assert photo_chats(second) == []
    finally:
        await stop_harness(second)


async def test_a_delivery_longer_than_the_shutdown_grace_is_sent_again_after_restart(tmp_path):
    settings = make_settings(tmp_path)
    first = await start_harness(settings)
    first.app.queue.shutdown_delivery_grace = 0.1
    taken = photo_taken_then_slow_answer(first, answer_seconds=30)
    await first.feed(message_update("x", from_user=user(user_id=10)))
    await asyncio.wait_for(taken.wait(), 10)
    await stop_harness(first)  # returns after the grace, not after the answer
    [job] = await first.jobs()
    assert job.status == "generated"  # not lost: delivered after the restart (at-least-once)

    second = await start_harness(settings)
    try:
        [job] = await second.wait_jobs_settled()
        assert job.status == "done" and photo_chats(second) == [10]
    finally:
        await stop_harness(second)


async def test_a_failed_batch_runs_its_members_alone_and_fails_only_the_bad_one(tmp_path):
    class OomBatches(GatedBackend):
        def generate_batch(self, requests, progress):
            super().generate_batch(requests, progress)
            raise OutOfMemory("the batch did not fit")

        def generate(self, request, progress):
            if request.prompt.startswith("bad"):
                raise GenerationError("oom", "alone neither")
            return super().generate(request, progress)

    backend = OomBatches()
    first = backend.gate()
    h = await start_harness(make_settings(tmp_path, batch_max_jobs=4), backend)
    try:
        await queue_behind_a_busy_gpu(h, backend, [(1, "good"), (2, "bad")])
        first.set()
        await h.wait_jobs_settled()
        by_prompt = await jobs_by_prompt(h)
        assert by_prompt["good"].status == "done"
        assert (by_prompt["bad"].status, by_prompt["bad"].error) == ("failed", "oom")
        assert backend.batches == [2] and sorted(photo_chats(h)) == [1, 10]
    finally:
        await stop_harness(h)


# -- pipelining ---------------------------------------------------------------------------------


class LoggingBeautifier:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def beautify(self, prompt: str) -> BeautifyResult:
        self.log.append(f"beautify {prompt}")
        return BeautifyResult(f"{prompt} beautified", prompt, fell_back=False)


async def test_the_next_job_is_prepared_while_the_gpu_works_and_claimed_when_it_is_free(tmp_path):
    log: list[str] = []
    backend = GatedBackend(log)
    first = backend.gate()
    h = await start_harness(make_settings(tmp_path, batch_max_jobs=1), backend, guard=ContentGuard(beautifier=LoggingBeautifier(log)))
    try:
        one, two = user(user_id=1), user(user_id=2)
        await beautify_on(h, one)
        await beautify_on(h, two)
        await h.feed(message_update("first", from_user=one))
        await h.wait_for(lambda: backend.held == 1)
        await h.feed(message_update("second", from_user=two))
        await h.wait_for(lambda: "beautify second" in log)
        # The second prompt went to the LLM while the first job held the GPU, and the second job is
        # not claimed yet (the pick is made when the GPU is free).
        assert log == ["beautify first", "start first beautified", "beautify second"]
        assert (await jobs_by_prompt(h))["second"].status == JobStatus.QUEUED
        first.set()
        jobs = await h.wait_jobs_settled()
        assert [j.status for j in jobs] == ["done", "done"]
        assert log == [
            "beautify first", "start first beautified", "beautify second", "end first beautified",
            "start second beautified", "end second beautified",
        ]
    finally:
        await stop_harness(h)


async def test_each_prompt_goes_to_the_llm_once_however_the_look_ahead_and_the_pick_interleave(tmp_path):
    """The look-ahead reads the queue beside the pick: a read made before the pick's claim was
    committed still shows the picked jobs queued, and once built them a second time (a second LLM
    call for the same prompt). A fast stand-in GPU and 40 jobs of 8 users make such reads common
    (the old code beautified some prompt twice in most runs)."""
    log: list[str] = []
    settings = make_settings(tmp_path, batch_max_jobs=2, fake_step_seconds=0.002, max_pending_per_user=10)
    h = await start_harness(settings, FakeBackend(), guard=ContentGuard(beautifier=LoggingBeautifier(log)))
    try:
        users = [user(user_id=i) for i in range(1, 9)]
        for u in users:
            await beautify_on(h, u)
        await asyncio.gather(*(h.feed(message_update(f"p{u.id}-{k}", from_user=u)) for k in range(5) for u in users))
        jobs = await h.wait_jobs_settled()
        assert [j.status for j in jobs] == ["done"] * 40
        assert sorted(log) == sorted(f"beautify p{u.id}-{k}" for k in range(5) for u in users)
    finally:
        await stop_harness(h)


class WaitingSafety(ImageSafety):
    """The output check of the first image waits (in the check's thread) for the GPU to start the
    next job: with one job at a time it would wait in vain."""

    def __init__(self, backend: GatedBackend) -> None:
        super().__init__()
        self.backend = backend
        self.saw_next_start: bool | None = None

    def score(self, image) -> float:
        if self.saw_next_start is None:
            self.saw_next_start = False
            for _ in range(250):  # 5 s at most
                if "start second" in self.backend.log:
                    self.saw_next_start = True
                    break
                threading.Event().wait(0.02)
        return 0.0


async def test_a_jobs_safety_check_and_storing_run_beside_the_next_generation(tmp_path):
    backend = GatedBackend()
    safety = WaitingSafety(backend)
    h = await start_harness(make_settings(tmp_path), backend, guard=ContentGuard(image_safety=safety))
    try:
        await h.feed(message_update("first", from_user=user(user_id=1)))
        await h.wait_for(lambda: "end first" in backend.log)
        await h.feed(message_update("second", from_user=user(user_id=2)))
        jobs = await h.wait_jobs_settled()
        assert [j.status for j in jobs] == ["done", "done"]
        assert safety.saw_next_start is True
        assert sorted(photo_chats(h)) == [1, 2]
    finally:
        await stop_harness(h)


class SlowToStartBackend(GatedBackend):
    """Asking whether the model is loaded (done on a thread before each call) takes a while."""

    def model_status(self):
        threading.Event().wait(0.3)
        return super().model_status()


class LoggingSafety(ImageSafety):
    """Passes every image; logs "check" as each check begins and, when it takes ``seconds``,
    "checked" as it ends."""

    def __init__(self, log: list[str], seconds: float = 0.0) -> None:
        super().__init__()
        self.log = log
        self.seconds = seconds

    def score(self, image) -> float:
        self.log.append("check")
        if self.seconds:
            threading.Event().wait(self.seconds)
            self.log.append("checked")
        return 0.0


async def test_a_finished_jobs_check_and_png_wait_until_the_next_job_is_on_the_gpu(tmp_path, monkeypatch):
    """The CPU work of a finished job would slow the start of the next one: it waits for it. Only
    the signal can end the wait here (its time limit is 30 s), and the last job does not wait at all."""
    monkeypatch.setattr("jobs.finishing.HANDOVER_WAIT_SECONDS", 30.0)
    monkeypatch.setattr("jobs.queue.IDLE_RECHECK_SECONDS", 60.0)  # no other read of the queue ends it
    backend = SlowToStartBackend()
    guard = ContentGuard(image_safety=LoggingSafety(backend.log))
    h = await start_harness(make_settings(tmp_path), backend, guard=guard)
    try:
        gate = backend.gate()
        await h.feed(message_update("first", from_user=user(user_id=1)))
        await h.wait_for(lambda: backend.held == 1)
        await h.feed(message_update("second", from_user=user(user_id=2)))
        await h.wait_for(lambda: len(h.session.of(EditMessageText)) > 0)
        gate.set()
        jobs = await h.wait_jobs_settled(timeout=10)
        assert [j.status for j in jobs] == ["done", "done"]
        log = backend.log
        assert [e for e in log if e != "check"] == ["start first", "end first", "start second", "end second"]
        assert log.count("check") == 2 and log.index("check") > log.index("start second")
        assert sorted(photo_chats(h)) == [1, 2]
    finally:
        gate.set()
        await stop_harness(h)


async def test_a_full_finishing_line_lets_the_waiting_unit_be_checked_beside_the_oldest(tmp_path, monkeypatch):
    """Finishing is the slow part here: with two units on the line the GPU waits for room, so the
    newer unit is checked meanwhile instead of waiting for a GPU start that waits for it."""
    monkeypatch.setattr("jobs.finishing.HANDOVER_WAIT_SECONDS", 30.0)
    log: list[str] = []
    guard = ContentGuard(image_safety=LoggingSafety(log, 0.5))  # each check takes 0.5 s
    h = await start_harness(make_settings(tmp_path), GatedBackend(), guard=guard)
    try:
        for uid in (1, 2, 3):
            await h.feed(message_update(f"fox {uid}", from_user=user(user_id=uid)))
        jobs = await h.wait_jobs_settled(timeout=20)
        assert [j.status for j in jobs] == ["done"] * 3
        assert log[:2] == ["check", "check"]  # the second began before the first ended
    finally:
        await stop_harness(h)


class HeldSafety(ImageSafety):
    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def score(self, image) -> float:
        self.entered.set()
        self.release.wait(10)
        return 0.0


async def test_a_job_cancelled_while_it_is_finished_is_not_sent(tmp_path):
    safety = HeldSafety()
    h = await start_harness(make_settings(tmp_path), GatedBackend(), guard=ContentGuard(image_safety=safety))
    try:
        await h.feed(message_update("a fox", from_user=user(user_id=1)))
        await h.wait_for(safety.entered.is_set)
        [job] = await h.jobs()
        assert job.status == JobStatus.RUNNING
        await h.feed(callback_update(f"cancel:{job.id}", from_user=user(user_id=1)))
        safety.release.set()
        [job] = await h.wait_jobs_settled()
        assert job.status == "cancelled"
        assert h.session.of(SendPhoto) == [] and h.app.runner.result_paths(job.id) == []
    finally:
        safety.release.set()
        await stop_harness(h)


class HeldBeautifier(LoggingBeautifier):
    """Holds the LLM's answer for ``held`` prompts until ``release`` is set."""

    def __init__(self, log: list[str], held: str) -> None:
        super().__init__(log)
        self.held = held
        self.release = asyncio.Event()

    async def beautify(self, prompt: str) -> BeautifyResult:
        if prompt == self.held:
            self.log.append(f"holding {prompt}")
            await self.release.wait()
        return await super().beautify(prompt)


async def test_a_job_whose_prompt_is_still_with_the_llm_when_its_turn_comes_says_so(tmp_path):
    log: list[str] = []
    backend = GatedBackend(log)
    first = backend.gate()
    beautifier = HeldBeautifier(log, held="second")
    h = await start_harness(make_settings(tmp_path, batch_max_jobs=1), backend, guard=ContentGuard(beautifier=beautifier))
    try:
        one, two = user(user_id=1), user(user_id=2)
        await beautify_on(h, one)
        await beautify_on(h, two)
        await h.feed(message_update("first", from_user=one))
        await h.wait_for(lambda: backend.held == 1)
        await h.feed(message_update("second", from_user=two))
        await h.wait_for(lambda: "holding second" in log)
        second = (await jobs_by_prompt(h))["second"]
        first.set()  # the GPU is free while the second prompt is still with the LLM
        await h.wait_for(
            lambda: any(
                e.message_id == second.status_message_id and e.text.startswith("✨ Improving the prompt")
                for e in h.session.of(EditMessageText)
            )
        )
        beautifier.release.set()
        jobs = await h.wait_jobs_settled()
        assert [j.status for j in jobs] == ["done", "done"]
    finally:
        beautifier.release.set()
        await stop_harness(h)

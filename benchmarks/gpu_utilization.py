"""How busy the GPU stays while the embedded worker drains a queue.

    python -m benchmarks.gpu_utilization                 # 20 jobs from 5 users
    python -m benchmarks.gpu_utilization --jobs 40 --users 8 --gpu-seconds 0.3
    python -m benchmarks.gpu_utilization --worker        # through a distributed GPU worker (Redis)

A stand-in backend holds one "GPU" lock for a fixed time per image (the real pipelines would hold the
device); everything around it is the project's own code: job rows in SQLite, the embedded queue and
its round-robin, the job runner, the safety check (a stand-in classifier that takes a fixed time per
image, as OpenNSFW does on the CPU), PNG encoding to the result folder (the stand-in draws a real
photo, scikit-image's astronaut) and delivery (a stand-in upload that takes a fixed time, as sending
a photo to Telegram does). It prints the share of the wall time
(from the queue's start to the last delivery) during which the lock was held: 100% means the GPU
never waited for the rest of the bot.

After a short warm-up that is not counted, the same queue is drained twice in one run: one job at a time (``BATCH_MAX_JOBS=1``, the headline
figure) and in batches (``--batch``, default 4). ``--worker`` drains it through a distributed GPU
worker instead (``jobs.worker.Worker``: the job ids sent to a Redis stream first, ``REDIS_URL`` or
Redis on localhost; the same SQLite rows, runner and stand-ins). A batch holds the lock for ``gpu-seconds`` for its
first image and ``--batch-image-seconds`` for each further one: that cost is the stand-in's
assumption (what a real GPU gives is measured by ``benchmarks.gpu_check``), so the images-per-second
ratio shows how much of the backend's batching gain the queue and the runner turn into throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image
from skimage import data

from generation.backend import GenerationRequest, ModelId, Mode, ProgressFn
from prompting.guard import ContentGuard
from prompting.safety import ImageVerdict


@functools.cache
def _photo(width: int, height: int) -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((width, height), Image.Resampling.LANCZOS)


class LockedBackend:
    """Holds the GPU lock for ``seconds_per_image`` per image and records how long it was held."""

    def __init__(self, seconds_per_image: float, batch_image_seconds: float, steps: int = 4) -> None:
        self.seconds_per_image = seconds_per_image
        self.batch_image_seconds = batch_image_seconds  # each further image of one call
        self.steps = steps
        self.gpu = threading.Lock()
        self.busy_seconds = 0.0
        self.first_start: float | None = None
        self.last_end: float | None = None
        self.images = 0
        self.batches: list[int] = []  # jobs per call

    def _hold(self, images: int, progress: ProgressFn) -> None:
        with self.gpu:
            start = time.perf_counter()
            if self.first_start is None:
                self.first_start = start
            per_step = (self.seconds_per_image + self.batch_image_seconds * (images - 1)) / self.steps
            for step in range(1, self.steps + 1):
                time.sleep(per_step)
                progress(step, self.steps)
            self.last_end = time.perf_counter()
            self.busy_seconds += self.last_end - start
            self.images += images

    @staticmethod
    def _draw(request: GenerationRequest) -> list[Image.Image]:
        # A real photo, not a flat colour: PNG encoding then costs what a picture's does.
        return [_photo(request.width, request.height).copy() for _ in range(request.num_images)]

    def generate(self, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
        self._hold(request.num_images, progress)
        self.batches.append(1)
        return self._draw(request)

    def generate_batch(self, requests: list[GenerationRequest], progress: ProgressFn) -> list[list[Image.Image]]:
        self._hold(sum(r.num_images for r in requests), progress)
        self.batches.append(len(requests))
        return [self._draw(r) for r in requests]

    def model_status(self) -> list[dict[str, Any]]:
        return []

    def load(self, model: ModelId) -> None: ...

    def unload(self, model: ModelId) -> None: ...


class SlowClassifier:
    """The image safety check's cost without its model: a fixed time per image, always safe."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def verdict(self, image: Any) -> ImageVerdict:
        time.sleep(self.seconds)
        return ImageVerdict(score=0.0, threshold=0.5)


class UploadingEvents:
    """The chat side of a job: only delivery costs time (a stand-in for the upload to Telegram)."""

    def __init__(self, upload_seconds: float, expected: int) -> None:
        self.upload_seconds = upload_seconds
        self.delivered = 0
        self.expected = expected
        self.all_delivered = asyncio.Event()
        self.last_delivery: float | None = None

    async def started(self, ctx: Any) -> None: ...

    async def progress(self, ctx: Any, step: int, total: int) -> None: ...

    def working(self, ctx: Any) -> contextlib.AbstractAsyncContextManager[Any]:
        return contextlib.nullcontext()  # type: ignore[return-value]

    async def beautifying(self, ctx: Any) -> None: ...

    async def deliver(self, ctx: Any, paths: list[Path]) -> list[str]:
        data = [p.read_bytes() for p in paths]
        await asyncio.sleep(self.upload_seconds)
        self.delivered += 1
        self.last_delivery = time.perf_counter()
        if self.delivered >= self.expected:
            self.all_delivered.set()
        return [f"file-{len(d)}" for d in data]

    async def failed(self, ctx: Any, code: str) -> None:
        raise RuntimeError(f"job failed: {code}")

    async def cancelled(self, ctx: Any) -> None: ...

    async def censored(self, ctx: Any, previews: list[Path], upload: bool = False) -> None: ...

    async def fetch_file(self, file_id: str) -> bytes:
        raise NotImplementedError


class StreamWorker:
    """A distributed GPU worker draining the jobs from a Redis stream of their own (the messages sent
    before it starts, as a backlog it finds), with the start and stop of :class:`jobs.queue.EmbeddedQueue`."""

    def __init__(self, db: Any, runner: Any, batch: int, job_ids: list[int]) -> None:
        import os
        import secrets

        from redis.asyncio import Redis

        from jobs.distributed import TASK_NAME, JobStreamBroker, stream_name
        from jobs.metrics import Metrics
        from jobs.worker import Worker, WorkerConfig, generate_job

        self.url = os.environ.get("REDIS_URL") or "redis://localhost:6379/0"
        self.prefix = f"gpu-utilisation:{secrets.token_hex(4)}"
        self.stream = stream_name(self.prefix, ModelId.K31_FLASH.value)
        self.broker = JobStreamBroker(self.url, [self.stream], poll_seconds=0.1, consumer_name="bench")
        self.broker.register_task(generate_job, task_name=TASK_NAME)
        self.redis = Redis.from_url(self.url)
        # (Without the keyword when batching is off, so that the script also measures older code.)
        config = WorkerConfig(redis_prefix=self.prefix, **({"batch_max_jobs": batch} if batch > 1 else {}))
        self.worker = Worker(
            config, [ModelId.K31_FLASH], db, runner, self.broker, self.redis, Metrics("worker"), "bench"
        )
        self.job_ids = job_ids
        self.stop_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        from jobs.distributed import DistributedQueue

        await self.broker.startup()  # the consumer group
        sender = DistributedQueue(self.worker.db, self.broker, self.redis, self.prefix)  # the bot's side
        for job_id in self.job_ids:
            await sender.send(job_id, ModelId.K31_FLASH.value)

    async def start(self) -> None:
        self.task = asyncio.create_task(self.worker.run(self.stop_event))

    async def stop(self) -> None:
        self.stop_event.set()
        if self.task is not None:
            await self.task
        keys = [key async for key in self.redis.scan_iter(match=f"{self.prefix}:*")]
        if keys:
            await self.redis.delete(*keys)
        await self.redis.aclose()


async def measure(
    jobs: int,
    users: int,
    gpu_seconds: float,
    safety_seconds: float,
    upload_seconds: float,
    size: int,
    batch: int = 1,
    batch_image_seconds: float | None = None,
    worker: bool = False,
) -> dict:
    from jobs.queue import EmbeddedQueue
    from jobs.runner import JobRunner
    from storage.db import create_engine, create_sessionmaker
    from storage.migrate import upgrade_async
    from storage.models import Job, User
    from storage.repositories import Database

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await upgrade_async(url)
        engine = create_engine(url)
        db = Database(create_sessionmaker(engine))
        async with db.session() as session:
            for user_id in range(1, users + 1):
                session.add(User(id=user_id, first_name=f"user{user_id}", language="en"))
            await session.flush()
            for index in range(jobs):
                user_id = index % users + 1
                session.add(Job(
                    user_id=user_id, chat_id=user_id, kind=Mode.TEXT2IMG.value, model=ModelId.K31_FLASH.value,
                    params={"prompt": f"prompt {index}", "width": size, "height": size, "num_images": 1, "seed": index},
                ))
            await session.commit()

        backend = LockedBackend(gpu_seconds, gpu_seconds if batch_image_seconds is None else batch_image_seconds)
        events = UploadingEvents(upload_seconds, jobs)
        guard = ContentGuard(image_safety=SlowClassifier(safety_seconds))  # type: ignore[arg-type]
        runner = JobRunner(db, backend, events, Path(tmp) / "results", guard=guard)  # type: ignore[arg-type]
        if worker:
            queue: Any = StreamWorker(db, runner, batch, list(range(1, jobs + 1)))
        else:
            # (Without the keyword when batching is off, so that the script also measures older code.)
            queue = EmbeddedQueue(db, runner, **({"batch_max_jobs": batch} if batch > 1 else {}))
        if worker:
            await queue.prepare()  # the backlog in the stream before the worker starts
        start = time.perf_counter()
        await queue.start()
        try:
            await asyncio.wait_for(events.all_delivered.wait(), timeout=jobs * (gpu_seconds + safety_seconds + upload_seconds) * 3 + 30)
        finally:
            await queue.stop()
            await engine.dispose()
    assert events.last_delivery is not None
    assert backend.first_start is not None and backend.last_end is not None
    wall = events.last_delivery - start
    span = backend.last_end - backend.first_start
    return {
        "jobs": jobs, "users": users, "wall_s": wall, "gpu_busy_s": backend.busy_seconds,
        "utilisation": backend.busy_seconds / wall, "images": backend.images,
        "images_per_s": backend.images / wall, "batches": backend.batches,
        # the GPU's waits between its first and its last image (start-up and the last delivery excluded)
        "idle_between_s": span - backend.busy_seconds,
        "lead_s": backend.first_start - start,  # queue start to the first image's start
        "tail_s": events.last_delivery - backend.last_end,  # the last image's check, PNG and upload
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--gpu-seconds", type=float, default=0.5, help="time the GPU lock is held per image")
    parser.add_argument(
        "--batch-image-seconds", type=float, default=0.3,
        help="lock time of each further image of a batch (the stand-in's batching gain)",
    )
    parser.add_argument("--batch", type=int, default=4, help="BATCH_MAX_JOBS of the batched run (1: skip it)")
    parser.add_argument("--safety-seconds", type=float, default=0.1, help="the NSFW check per image")
    parser.add_argument("--upload-seconds", type=float, default=0.3, help="sending one result to Telegram")
    parser.add_argument("--size", type=int, default=512, help="image side (PNG encoding is real)")
    parser.add_argument(
        "--warmup", type=int, default=3,
        help="jobs drained first and not counted (imports, thread pools, SQLAlchemy's caches)",
    )
    parser.add_argument("--worker", action="store_true", help="a distributed GPU worker (Redis) instead of the embedded queue")
    args = parser.parse_args(argv)
    common = (args.jobs, args.users, args.gpu_seconds, args.safety_seconds, args.upload_seconds, args.size)
    where = {"worker": True} if args.worker else {}  # (no keyword without --worker: older code runs this script too)
    if args.warmup:
        asyncio.run(measure(args.warmup, min(args.users, args.warmup), *common[2:], **where))
    print(
        ("a distributed GPU worker: " if args.worker else "the embedded queue: ") +
        f"{args.jobs} jobs from {args.users} users, {args.gpu_seconds} s GPU per image "
        f"(+{args.batch_image_seconds} s per further image of a batch), {args.safety_seconds} s safety check, "
        f"{args.upload_seconds} s upload, {args.size}px PNG"
    )
    runs = [("one at a time", asyncio.run(measure(*common, batch=1, **where)))]
    if args.batch > 1:
        runs.append((f"batches of up to {args.batch}", asyncio.run(measure(*common, args.batch, args.batch_image_seconds, **where))))
    for name, result in runs:
        print(
            f"{name}: wall {result['wall_s']:.2f} s, GPU lock held {result['gpu_busy_s']:.2f} s: "
            f"utilisation {result['utilisation'] * 100:.1f}%; GPU idle: {result['lead_s']:.2f} s before the "
            f"first image, {result['idle_between_s']:.2f} s between images, {result['tail_s']:.2f} s after the "
            f"last (its check, PNG, upload); {result['images_per_s']:.2f} images/s, "
            f"{len(result['batches'])} GPU calls (jobs per call: {max(result['batches'])} at most)"
        )
    if len(runs) == 2:
        print(f"images/s batched vs one at a time: {runs[1][1]['images_per_s'] / runs[0][1]['images_per_s']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How long result files stay on disk: ``RESULTS_RETENTION_DAYS``, with a periodic clean-up.

Results live in ``results_dir/<job id>/`` (``{i}.png``, ``preview-{i}.jpg``). A folder is deleted
once its job has finished (done, failed, cancelled, censored) more than the retention ago, or when
no job row names it any more and it is that old. What a job still needs is never touched: queued and
running jobs (a folder may be being written), and generated jobs, whose images wait for delivery
however long Telegram refuses them. The "Original" button of an older result then says the file is
no longer stored; variations and "Again" work from Telegram's file ids and the job's parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from storage.models import Job, JobStatus, utcnow
from storage.repositories import Database

log = logging.getLogger(__name__)

FINISHED = (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CENSORED)
CLEANUP_INTERVAL_SECONDS = 3600.0


@dataclass
class CleanupReport:
    deleted: list[int]  # job ids whose folders went
    kept: int  # folders left in place
    freed_bytes: int


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


async def clean_results(
    db: Database, results_dir: Path, retention: timedelta, now: datetime | None = None
) -> CleanupReport:
    """Delete the result folders past ``retention`` (see the module's doc)."""
    now = now or utcnow()
    cutoff = now - retention
    if not results_dir.is_dir():
        return CleanupReport([], 0, 0)
    folders = {int(p.name): p for p in results_dir.iterdir() if p.is_dir() and p.name.isascii() and p.name.isdigit()}
    if not folders:
        return CleanupReport([], 0, 0)
    async with db.session() as session:
        rows = (
            await session.execute(
                select(Job.id, Job.status, Job.finished_at, Job.created_at).where(Job.id.in_(list(folders)))
            )
        ).all()
    jobs = {row.id: row for row in rows}
    expired: list[int] = []
    for job_id, folder in folders.items():
        row = jobs.get(job_id)
        if row is None:  # no job names it (deleted user, or a crash before the row): by its age
            modified = datetime.fromtimestamp(folder.stat().st_mtime, timezone.utc)
            if modified < cutoff:
                expired.append(job_id)
        elif row.status in FINISHED:
            ended = _aware(row.finished_at) or _aware(row.created_at)
            if ended is not None and ended < cutoff:
                expired.append(job_id)

    def delete() -> int:
        freed = 0
        for job_id in expired:
            freed += _size(folders[job_id])
            shutil.rmtree(folders[job_id], ignore_errors=True)
        return freed

    freed = await asyncio.to_thread(delete)
    if expired:
        log.info("deleted the results of %d job(s) older than %s (%.1f MB)", len(expired), retention, freed / 2**20)
    return CleanupReport(sorted(expired), len(folders) - len(expired), freed)


class ResultsJanitor:
    """Runs :func:`clean_results` at start and then every hour (none with ``retention`` None)."""

    def __init__(
        self, db: Database, results_dir: Path, retention: timedelta | None, interval: float = CLEANUP_INTERVAL_SECONDS
    ) -> None:
        self.db = db
        self.results_dir = results_dir
        self.retention = retention
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.retention is not None and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="results-janitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        assert self.retention is not None
        while True:
            try:
                await clean_results(self.db, self.results_dir, self.retention)
            except Exception:
                log.exception("the results clean-up failed; it runs again in %.0f s", self.interval)
            await asyncio.sleep(self.interval)

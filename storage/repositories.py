"""Repositories: the only place that builds queries. Handlers get them from a middleware."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import case, func, insert, inspect, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import (
    PENDING_STATUSES,
    UNFINISHED_STATUSES,
    Job,
    JobStatus,
    ModerationEvent,
    User,
    UserFace,
    UserSettings,
    utcnow,
)


# ``users.last_seen`` is written at most this often per user (a write per update would be one
# more write transaction for every message, on SQLite the database's single write lock).
SEEN_WRITE_INTERVAL = timedelta(minutes=5)


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.seen_written = False  # upsert_seen wrote (a first contact or a change): commit it

    async def get(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

    async def get_by_username(self, username: str) -> User | None:
        result = await self.session.execute(
            select(User).where(func.lower(User.username) == username.lstrip("@").lower())
        )
        return result.scalars().first()

    async def upsert_seen(
        self, user_id: int, username: str | None, first_name: str | None, language_code: str | None
    ) -> User:
        """The user row for an incoming update, created on first contact, with its settings.

        Nothing is written for a known user unless :meth:`note_seen` finds a change: most updates
        only read. A first contact is INSERT ... ON CONFLICT DO NOTHING: a user's first updates may
        arrive at once. (The bot itself reads users through :class:`storage.user_cache.UserDirectory`,
        which batches first contacts and keeps rows between updates.)
        """
        user = await self.session.get(User, user_id)
        if user is None:
            await insert_new_users(self.session, [(user_id, username, first_name, language_code)])
            user = await self.session.get(User, user_id)
            assert user is not None
            self.seen_written = True
        if self.note_seen(user, username, first_name):
            await self.session.flush()
        return user

    def note_seen(self, user: User, username: str | None, first_name: str | None) -> bool:
        """Update ``user`` for an update from them, if anything changed: their name, a block they
        have lifted by writing, or ``last_seen`` older than :data:`SEEN_WRITE_INTERVAL`. True when
        the row changed (the caller flushes and commits it)."""
        now = utcnow()
        last_seen = user.last_seen if user.last_seen.tzinfo else user.last_seen.replace(tzinfo=timezone.utc)
        if (
            user.username == username
            and user.first_name == first_name
            and not user.blocked_bot
            and now - last_seen < SEEN_WRITE_INTERVAL
        ):
            return False
        user.username = username
        user.first_name = first_name
        user.last_seen = now
        user.blocked_bot = False  # they write to the bot, so they have not blocked it
        self.seen_written = True
        return True

    async def mark_blocked(self, user_id: int) -> None:
        """A send to the user got 403: they blocked the bot (cleared when they write again);
        broadcasts skip them meanwhile."""
        await self.session.execute(
            update(User).where(User.id == user_id).values(blocked_bot=True).execution_options(synchronize_session=False)
        )


def language_for(language_code: str | None) -> str:
    """The bot's language for a new user: Russian when their Telegram app is, else English."""
    return "ru" if (language_code or "").lower().startswith("ru") else "en"


async def insert_new_users(
    session: AsyncSession, users: Sequence[tuple[int, str | None, str | None, str | None]]
) -> None:
    """Rows for first contacts, ``(id, username, first_name, language_code)`` each, with default
    settings, in two statements; rows that already exist (a race with another update) are kept."""
    now = utcnow()
    insert = _insert_for(session)
    await session.execute(
        insert(User).on_conflict_do_nothing(index_elements=["id"]),
        [
            dict(
                id=user_id,
                username=username,
                first_name=first_name,
                language=language_for(language_code),
                banned=False,
                ban_notified=False,
                created_at=now,
                last_seen=now,
            )
            for user_id, username, first_name, language_code in users
        ],
    )
    await session.execute(
        insert(UserSettings).on_conflict_do_nothing(index_elements=["user_id"]),
        [dict(user_id=user_id) for user_id, *_ in users],
    )


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


def _insert_for(session: AsyncSession) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing`` (SQLite and PostgreSQL)."""
    if _dialect(session) == "postgresql":
        return postgresql.insert
    return sqlite.insert


# pg_advisory_xact_lock key of job admission (any constant no other code of ours uses).
ADMISSION_LOCK_KEY = 0x4B414E44  # "KAND"


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, job_id: int) -> Job | None:
        return await self.session.get(Job, job_id)

    async def add(self, job: Job) -> Job:
        self.session.add(job)
        await self.session.flush()
        return job

    async def insert_new(self, jobs: Sequence[Job]) -> list[Job]:
        """New (transient) job rows in one INSERT ... RETURNING; the rows as stored, in the given order.

        A flush would insert them one statement at a time: the database numbers the rows, and only
        row by row can the ORM tell which number went to which object. For the admission of a burst
        (the whole batch holds the admission lock) that cost ~150 us of the event loop per job
        against ~50 us here. PostgreSQL returns the rows in the parameters' order itself
        (``sort_by_parameter_order``); SQLite numbers the rows of one INSERT in the order of its
        VALUES (each new rowid is the largest so far plus one), so there the rows sorted by id are
        in that order. Checked against each job's user and chat: a mismatch raises, nothing is kept.
        """
        if not jobs:
            return []
        columns = {attr.key for attr in inspect(Job).column_attrs}
        # What the constructor set; the columns' defaults fill in the rest.
        values = [{key: value for key, value in inspect(job).dict.items() if key in columns} for job in jobs]
        in_order = _dialect(self.session) == "postgresql"
        result = await self.session.execute(insert(Job).returning(Job, sort_by_parameter_order=in_order), values)
        rows = list(result.scalars())
        if not in_order:
            rows.sort(key=lambda row: row.id)
        if [(r.user_id, r.chat_id) for r in rows] != [(j.user_id, j.chat_id) for j in jobs]:
            raise RuntimeError("inserted job rows came back out of order")
        return rows

    async def lock_admission(self) -> None:
        """Serialise admissions until this transaction ends (PostgreSQL: a transaction-level advisory
        lock, so replicas cannot both read "1 pending" and both add a job). Admission is a few
        milliseconds; one lock for all users keeps the total limit exact too. SQLite serves one
        process, whose in-process lock (jobs.service) does the same."""
        if _dialect(self.session) == "postgresql":
            await self.session.execute(select(func.pg_advisory_xact_lock(ADMISSION_LOCK_KEY)))

    async def count_pending(
        self,
        user_id: int | None = None,
        statuses: Sequence[str] = PENDING_STATUSES,
        kinds: Collection[str] | None = None,
    ) -> int:
        query = select(func.count(Job.id)).where(Job.status.in_(list(statuses)))
        if user_id is not None:
            query = query.where(Job.user_id == user_id)
        if kinds is not None:
            query = query.where(Job.kind.in_([str(k) for k in kinds]))
        return int((await self.session.execute(query)).scalar_one())

    async def admission_counts(self, user_ids: Collection[int]) -> tuple[dict[int, int], int, int]:
        """What admitting prompts needs, in one read: the unfinished jobs of each of these users (for
        the per-user limit; absent: none), the pending jobs in all (the total limit) and the queued
        jobs in all (a new job's position)."""
        users = sorted(set(user_ids))
        # One group per one of these users, and one (None) for everybody else.
        who = case((Job.user_id.in_(users), Job.user_id), else_=None) if users else literal(None)
        rows = (
            await self.session.execute(
                select(
                    who,
                    func.count(Job.id),
                    func.count(Job.id).filter(Job.status.in_(list(PENDING_STATUSES))),
                    func.count(Job.id).filter(Job.status == JobStatus.QUEUED),
                )
                .where(Job.status.in_(list(UNFINISHED_STATUSES)))
                .group_by(who)
            )
        ).all()
        per_user = {int(user): int(unfinished) for user, unfinished, _, _ in rows if user is not None}
        return per_user, sum(int(row[2]) for row in rows), sum(int(row[3]) for row in rows)

    async def pending_for_user(self, user_id: int) -> Sequence[Job]:
        result = await self.session.execute(
            select(Job).where(Job.user_id == user_id, Job.status.in_(PENDING_STATUSES)).order_by(Job.id)
        )
        return result.scalars().all()

    async def transition(
        self, job_id: int, from_statuses: Iterable[str], to_status: str, **values: Any
    ) -> bool:
        """Move a job between statuses only if it is still in one of ``from_statuses``.

        A conditional update, so two workers (or a worker and a cancel) never both win.
        """
        result = await self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(list(from_statuses)))
            .values(status=to_status, **values)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    async def update_params(self, job_id: int, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Write only ``changes`` into a job's parameters, on the row as it is now.

        A worker must never write back a whole copy of the parameters it read when the job started:
        ``/forgetface`` may have stripped the face from the row meanwhile. Returns the new parameters
        (None: no such job)."""
        return await self.rewrite_params(job_id, lambda row: {**row, **changes})

    async def rewrite_params(self, job_id: int, rewrite: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any] | None:
        """``rewrite`` applied to the job's parameters as they are in the database now (see
        :meth:`update_params`)."""
        job = await self.session.get(Job, job_id, populate_existing=True)
        if job is None:
            return None
        job.params = rewrite(dict(job.params or {}))  # a new dict: JSON columns do not track changes inside
        await self.session.flush()
        return job.params

    async def set_status_message_ids(self, message_ids: dict[int, int]) -> None:
        """Jobs' status message ids, job id -> message id, in one executemany UPDATE."""
        if message_ids:
            await self.session.execute(
                update(Job), [{"id": job_id, "status_message_id": m} for job_id, m in message_ids.items()]
            )

    async def set_values(self, job_id: int, **values: Any) -> None:
        await self.session.execute(
            update(Job).where(Job.id == job_id).values(**values).execution_options(synchronize_session=False)
        )

    async def next_round_robin(self) -> Job | None:
        """The oldest queued job of the user who was served least recently.

        Round-robin across users: one user with many queued jobs cannot starve the others.
        """
        order = await self.round_robin_order()
        return order[0] if order else None

    async def round_robin_order(self) -> list[Job]:
        """Every queued job in the order the worker would take them one by one: the oldest job of
        the user served least recently, that user then counting as served last (jobs.queue picks
        batch partners from this order, so batching keeps the fairness)."""
        queued = (
            (await self.session.execute(select(Job).where(Job.status == JobStatus.QUEUED).order_by(Job.id)))
            .scalars()
            .all()
        )
        if not queued:
            return []
        by_user: dict[int, list[Job]] = {}
        for job in queued:
            by_user.setdefault(job.user_id, []).append(job)
        last_served = dict(
            (
                await self.session.execute(
                    select(Job.user_id, func.max(Job.started_at))
                    .where(Job.user_id.in_(list(by_user)), Job.started_at.is_not(None))
                    .group_by(Job.user_id)
                )
            ).all()
        )
        never = datetime.min

        # (0, served, oldest job id) for the users as the database knows them; (1, n, ...) for a
        # user once the order has served them n-th.
        turns = [
            (0, (last_served[u].replace(tzinfo=None) if last_served.get(u) else never), jobs[0].id, u)
            for u, jobs in by_user.items()
        ]
        heapq.heapify(turns)
        order: list[Job] = []
        served = 0
        while turns:
            *_, user_id = heapq.heappop(turns)
            jobs = by_user[user_id]
            order.append(jobs.pop(0))
            served += 1
            if jobs:
                heapq.heappush(turns, (1, served, jobs[0].id, user_id))  # type: ignore[arg-type]
        return order

    async def queue_position(self, job: Job) -> int:
        """1-based position among queued jobs (jobs created earlier go first)."""
        ahead = await self.session.execute(
            select(func.count(Job.id)).where(Job.status == JobStatus.QUEUED, Job.id < job.id)
        )
        return int(ahead.scalar_one()) + 1

    async def queued(self, limit: int = 200) -> Sequence[Job]:
        result = await self.session.execute(
            select(Job).where(Job.status == JobStatus.QUEUED).order_by(Job.id).limit(limit)
        )
        return result.scalars().all()

    async def queued_with_language(self, limit: int = 200) -> list[tuple[Job, str | None]]:
        """The queued jobs in order, each with its owner's language, in one read."""
        result = await self.session.execute(
            select(Job, User.language)
            .outerjoin(User, User.id == Job.user_id)
            .where(Job.status == JobStatus.QUEUED)
            .order_by(Job.id)
            .limit(limit)
        )
        return [(job, language) for job, language in result.tuples().all()]

    async def fail_crash_looping(self, max_attempts: int) -> list[Job]:
        """After a restart: jobs left running that were started ``max_attempts`` times already fail
        (``error="crashed"``) instead of going back to the queue: a job that kills the process
        must not kill it on every start."""
        jobs = (
            await self.session.execute(
                select(Job).where(Job.status == JobStatus.RUNNING, Job.attempts >= max_attempts)
            )
        ).scalars().all()
        failed = []
        for job in jobs:
            if await self.transition(job.id, [JobStatus.RUNNING], JobStatus.FAILED, error="crashed", finished_at=utcnow()):
                failed.append(job)
        return failed

    async def requeue_running(self) -> int:
        """After a restart: jobs left running go back to the queue."""
        result = await self.session.execute(
            update(Job)
            .where(Job.status == JobStatus.RUNNING)
            .values(status=JobStatus.QUEUED, started_at=None)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0

    async def undelivered_ids(self) -> list[int]:
        result = await self.session.execute(
            select(Job.id).where(Job.status == JobStatus.GENERATED).order_by(Job.id)
        )
        return list(result.scalars().all())

    async def cancel_queued(self, user_id: int) -> list[Job]:
        jobs = (
            (
                await self.session.execute(
                    select(Job).where(Job.user_id == user_id, Job.status == JobStatus.QUEUED)
                )
            )
            .scalars()
            .all()
        )
        cancelled = []
        for job in jobs:
            if await self.transition(job.id, [JobStatus.QUEUED], JobStatus.CANCELLED, finished_at=utcnow()):
                cancelled.append(job)
        return cancelled

    async def request_cancel_running(self, user_id: int) -> list[Job]:
        jobs = (
            (
                await self.session.execute(
                    select(Job).where(Job.user_id == user_id, Job.status == JobStatus.RUNNING)
                )
            )
            .scalars()
            .all()
        )
        for job in jobs:
            await self.set_values(job.id, cancel_requested=True)
        return list(jobs)


class UserFaceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int) -> UserFace | None:
        return await self.session.get(UserFace, user_id)

    async def set(self, user_id: int, file_id: str, file_unique_id: str | None, profile: dict[str, Any]) -> UserFace:
        """Replace the user's face (one per user)."""
        face = await self.get(user_id)
        if face is None:
            face = UserFace(user_id=user_id)
            self.session.add(face)
        face.file_id = file_id
        face.file_unique_id = file_unique_id
        face.profile = profile
        face.created_at = utcnow()
        await self.session.flush()
        return face

    async def delete(self, user_id: int) -> bool:
        face = await self.get(user_id)
        if face is None:
            return False
        await self.session.delete(face)
        await self.session.flush()
        return True

    async def forget(self, user_id: int, kind: str, derived_kinds: Iterable[str] = ()) -> tuple[bool, list[Job]]:
        """/forgetface: delete the face, and strip everything derived from it from the user's jobs.

        The jobs are the user's jobs of ``kind`` (face swap) and, transitively, jobs of
        ``derived_kinds`` (variations) whose input photos are results of those jobs. From each: the
        input photos' file ids, the face profile, and the Telegram file ids of its results (a
        Variations button on an old face picture then finds nothing to vary). Returns whether a face
        was stored, and the jobs (the caller cancels, withdraws and deletes their pictures)."""
        deleted = await self.delete(user_id)
        result = await self.session.execute(select(Job).where(Job.user_id == user_id, Job.kind == kind))
        jobs = list(result.scalars().all())
        derived_kinds = [str(k) for k in derived_kinds]
        if derived_kinds:
            result = await self.session.execute(
                select(Job).where(Job.user_id == user_id, Job.kind.in_(derived_kinds)).order_by(Job.id)
            )
            candidates = list(result.scalars().all())
            made = {file_id for job in jobs for file_id in (job.result_file_ids or [])}
            grew = True
            while grew:  # variations of variations of a face picture show the face too
                grew = False
                for job in candidates:
                    if job not in jobs and made & set((job.params or {}).get("input_file_ids") or []):
                        jobs.append(job)
                        made |= set(job.result_file_ids or [])
                        grew = True
        for job in jobs:
            params = dict(job.params or {})
            params.pop("input_file_ids", None)
            extra = dict(params.get("extra") or {})
            extra.pop("face", None)
            params["extra"] = extra
            job.params = params  # a new dict: JSON columns do not track changes inside
            job.result_file_ids = []
        await self.session.flush()
        return deleted, jobs


class ModerationRepository:
    """Refusals by the safety checks (prompting.guard), counted for admins."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, user_id: int, kind: str, detail: str | None = None, job_id: int | None = None) -> ModerationEvent:
        event = ModerationEvent(user_id=user_id, kind=str(kind), detail=(detail or None) and detail[:200], job_id=job_id)
        self.session.add(event)
        await self.session.flush()
        return event

    async def counts(self, since: datetime | None = None, user_id: int | None = None) -> dict[str, int]:
        """Events per kind (ModerationKind values), optionally since a time and for one user."""
        query = select(ModerationEvent.kind, func.count(ModerationEvent.id)).group_by(ModerationEvent.kind)
        if since is not None:
            query = query.where(ModerationEvent.created_at >= since)
        if user_id is not None:
            query = query.where(ModerationEvent.user_id == user_id)
        return {kind: int(count) for kind, count in (await self.session.execute(query)).all()}

    async def top_users(self, limit: int = 10, since: datetime | None = None) -> list[tuple[int, int]]:
        """(user id, events) of the users refused most often."""
        query = (
            select(ModerationEvent.user_id, func.count(ModerationEvent.id).label("n"))
            .group_by(ModerationEvent.user_id)
            .order_by(func.count(ModerationEvent.id).desc(), ModerationEvent.user_id)
            .limit(limit)
        )
        if since is not None:
            query = query.where(ModerationEvent.created_at >= since)
        return [(int(u), int(n)) for u, n in (await self.session.execute(query)).all()]


@dataclass
class Repositories:
    """A unit of work: one session, the repositories over it, one commit."""

    session: AsyncSession

    def __post_init__(self) -> None:
        self.users = UserRepository(self.session)
        self.jobs = JobRepository(self.session)
        self.faces = UserFaceRepository(self.session)
        self.moderation = ModerationRepository(self.session)

    async def commit(self) -> None:
        await self.session.commit()


class Database:
    """Opens units of work; shared by the dispatcher's middleware and the workers."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    def session(self) -> AsyncSession:
        return self.sessionmaker()

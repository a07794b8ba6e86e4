"""Admission on PostgreSQL is atomic across replicas: simultaneous requests cannot pass a limit (issue 14)."""

from __future__ import annotations

import asyncio
import itertools
import random

from sqlalchemy import func, select

from jobs.params import JobParams
from jobs.service import AdmissionError, JobService
from storage.db import create_engine, create_sessionmaker
from storage.migrate import upgrade_async
from storage.models import Job, PENDING_STATUSES
from storage.repositories import Database, Repositories
from tests.scale.conftest import fresh_pg_database


class NoQueue:
    async def submit(self, job_id: int) -> None:
        return None


_message_ids = itertools.count(1)


async def announce(job: Job, position: int) -> int:
    await asyncio.sleep(random.random() * 0.01)  # the status message on its way to Telegram
    return next(_message_ids)


async def _submit(db: Database, service: JobService, user_id: int) -> bool:
    async with db.session() as session:
        repos = Repositories(session)
        user = await repos.users.upsert_seen(user_id, None, "Racer", "en")
        await repos.commit()
        params = JobParams(prompt="a race", width=64, height=64, seed=1)
        try:
            await service.submit(repos, user, user_id, params, announce)
        except AdmissionError:
            return False
        return True


async def test_two_replicas_cannot_pass_the_per_user_and_total_limits():
    async with fresh_pg_database() as pg:
        await upgrade_async(pg.url)
        engines = [create_engine(pg.url), create_engine(pg.url)]
        dbs = [Database(create_sessionmaker(engine)) for engine in engines]
        # Two replicas: each has its own service (its own in-process locks), one database.
        services = [JobService(NoQueue(), 64, max_pending_per_user=2, max_pending_total=5) for _ in dbs]
        try:
            for db in dbs[:1]:  # the users exist before the race (their first updates were long ago)
                for user_id in range(1, 11):
                    async with db.session() as session:
                        await Repositories(session).users.upsert_seen(user_id, None, "Racer", "en")
                        await session.commit()

            # One user, ten requests at once over both replicas: two are admitted.
            one_user = await asyncio.gather(*(_submit(dbs[i % 2], services[i % 2], 1) for i in range(10)))
            assert sum(one_user) == 2

            # Nine more users, four requests each at once: the total (5 with user 1's two) holds.
            crowd = await asyncio.gather(
                *(_submit(dbs[i % 2], services[(i // 2) % 2], 2 + i % 9) for i in range(36))
            )
            assert sum(crowd) == 3
            async with dbs[0].session() as session:
                pending = (
                    await session.execute(select(func.count(Job.id)).where(Job.status.in_(PENDING_STATUSES)))
                ).scalar_one()
                per_user = (
                    await session.execute(
                        select(Job.user_id, func.count(Job.id)).group_by(Job.user_id).having(func.count(Job.id) > 2)
                    )
                ).all()
            assert pending == 5 and per_user == []
        finally:
            for engine in engines:
                await engine.dispose()

"""Users and their settings kept between updates, so most updates read no row.

Every update needs its sender's row (settings, language, ban). Read per update, that was a query
and an ORM load each time, and under a burst of first contacts one INSERT transaction each, all
queued on SQLite's single write lock. :class:`UserDirectory` instead:

- keeps each user's row and settings as last read, detached from any session, for ``ttl`` seconds;
  an update gets its own attached copy (``Session.merge(load=False)``: no SQL), so handlers read
  and change ``user`` exactly as before;
- forgets a user as soon as any session of the bot's sessionmaker flushes a change to their row or
  settings, and forgets everyone on a bulk UPDATE/DELETE of either table (:meth:`watch`): a
  change made by this process is seen by the next update at once;
- loads the users it does not hold in batches: the first contacts that arrive together are one
  SELECT, one multi-row INSERT of users and one of settings, one commit.

Writers in other processes (webhook replicas, GPU workers) are not seen, so the distributed mode
keeps no rows by default (``USER_CACHE_SECONDS``, 0: every update reads its row; first contacts
are still batched).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from storage.models import User, UserSettings
from storage.repositories import Database, insert_new_users

USER_TABLES = frozenset({User.__tablename__, UserSettings.__tablename__})


class UserDirectory:
    def __init__(self, db: Database, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.ttl = ttl
        self.clock = clock
        self._rows: dict[int, tuple[float, User]] = {}  # id -> (when read, detached row with settings)
        self._pending: dict[int, tuple[Any, asyncio.Future[User]]] = {}  # waiting for the next batch
        self._loader: asyncio.Task[None] | None = None
        self._forgets = 0  # changes seen so far: a batch read while one happened is not kept
        self.batches = 0  # batched loads so far (tests, benchmarks)

    def watch(self) -> None:
        """Forget users whose rows the bot's own sessions change (see the module's docstring)."""
        session_class = self.db.sessionmaker.kw.get("sync_session_class")
        if session_class is None or session_class is Session:
            raise ValueError("the sessionmaker needs a Session class of its own (storage.db.create_sessionmaker)")
        event.listen(session_class, "after_flush", self._after_flush)
        event.listen(session_class, "do_orm_execute", self._on_execute)

    async def attach(self, session: AsyncSession, tg_user: Any) -> User:
        """The row of ``tg_user`` (an aiogram ``User``), created on first contact, in ``session``."""
        kept = self._rows.get(tg_user.id)
        if kept is not None and self.clock() - kept[0] < self.ttl:
            row = kept[1]
        else:
            row = await self._load(tg_user)
        return await session.merge(row, load=False)

    def forget(self, user_ids: Iterable[int]) -> None:
        for user_id in user_ids:
            self._forgets += 1
            self._rows.pop(user_id, None)

    def clear(self) -> None:
        self._forgets += 1
        self._rows.clear()

    def _after_flush(self, session: Session, _context: Any) -> None:
        changed = {
            obj.id if isinstance(obj, User) else obj.user_id
            for obj in (*session.new, *session.dirty, *session.deleted)
            if isinstance(obj, (User, UserSettings))
        }
        self.forget(changed)

    def _on_execute(self, state: ORMExecuteState) -> None:
        if state.is_update or state.is_delete:
            table = getattr(state.statement, "table", None)
            if getattr(table, "name", None) in USER_TABLES:
                self.clear()

    async def _load(self, tg_user: Any) -> User:
        waiting = self._pending.get(tg_user.id)
        if waiting is None:
            waiting = self._pending[tg_user.id] = (tg_user, asyncio.get_running_loop().create_future())
        if self._loader is None:
            self._loader = asyncio.create_task(self._load_pending())
        return await asyncio.shield(waiting[1])

    async def _load_pending(self) -> None:
        try:
            while self._pending:
                # One turn of the event loop: the updates that arrived together join this batch.
                await asyncio.sleep(0)
                batch, self._pending = self._pending, {}
                try:
                    rows = await self._read_or_create([tg_user for tg_user, _ in batch.values()])
                except Exception as exc:
                    for _, future in batch.values():
                        future.set_exception(exc)
                        future.exception()  # retrieved: the updates that asked report it
                    continue
                for user_id, (_, future) in batch.items():
                    future.set_result(rows[user_id])
        finally:
            self._loader = None

    async def _read_or_create(self, tg_users: list[Any]) -> dict[int, User]:
        self.batches += 1
        forgets = self._forgets
        ids = [u.id for u in tg_users]
        async with self.db.session() as session:
            rows = {u.id: u for u in (await session.execute(select(User).where(User.id.in_(ids)))).scalars()}
            new = [u for u in tg_users if u.id not in rows]
            if new:
                await insert_new_users(session, [(u.id, u.username, u.first_name, u.language_code) for u in new])
                created = select(User).where(User.id.in_([u.id for u in new]))
                rows.update({u.id: u for u in (await session.execute(created)).scalars()})
                await session.commit()
        # The session is closed: the rows are detached, with every column and the settings loaded.
        now = self.clock()
        if self.ttl > 0 and forgets == self._forgets:  # else a row may predate a change made meanwhile
            for user_id, row in rows.items():
                self._rows[user_id] = (now, row)
        return rows

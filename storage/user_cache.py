"""Users and their settings kept between updates, so most updates read no row.

Every update needs its sender's row (settings, language, ban). Read per update, that was a query
and an ORM load each time, and under a burst of first contacts one INSERT transaction each, all
queued on SQLite's single write lock. :class:`UserDirectory` instead:

- keeps each user's row and settings as last read, detached from any session, for ``ttl`` seconds;
  an update gets the kept row itself added to its session (no SQL, nothing copied), or, while
  another update's session holds it, its own copy (``Session.merge(load=False)``), so handlers
  read and change ``user`` exactly as before;
- forgets a user as soon as any session of the bot's sessionmaker flushes a change to their row or
  settings, and forgets everyone on a bulk UPDATE/DELETE of either table (:meth:`watch`): a
  change made by this process is seen by the next update at once;
- forgets a row that leaves its session with a change never flushed, and the rows of a session
  that rolls back (which expires them): what is kept is always what the database holds;
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

from sqlalchemy import event, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

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
        self._watched = False  # kept rows are handed out themselves only when changes are seen (watch)
        self.batches = 0  # batched loads so far (tests, benchmarks)

    def watch(self) -> None:
        """Forget users whose rows the bot's own sessions change (see the module's docstring)."""
        session_class = self.db.sessionmaker.kw.get("sync_session_class")
        if session_class is None or session_class is Session:
            raise ValueError("the sessionmaker needs a Session class of its own (storage.db.create_sessionmaker)")
        event.listen(session_class, "after_flush", self._after_flush)
        event.listen(session_class, "do_orm_execute", self._on_execute)
        event.listen(session_class, "persistent_to_detached", self._on_detached)
        event.listen(session_class, "after_soft_rollback", self._after_rollback)
        self._watched = True

    async def attach(self, session: AsyncSession, tg_user: Any) -> User:
        """The row of ``tg_user`` (an aiogram ``User``), created on first contact, in ``session``."""
        kept = self._rows.get(tg_user.id)
        if kept is not None and self.clock() - kept[0] < self.ttl:
            row = kept[1]
        else:
            row = await self._load(tg_user)
        if self._watched and self._free(row, session.sync_session):
            # The kept row itself: merging would copy it and its settings, attribute by attribute,
            # for every update. Whatever the update leaves unflushed makes the row forgotten.
            session.add(row)
            return row
        return await session.merge(row, load=False)

    @staticmethod
    def _free(row: User, session: Session) -> bool:
        """Whether ``row`` (and its settings) can join ``session``: in no session now (another
        update of the same user may hold it), and no other object of that identity there."""
        states = [inspect(row)]
        if "settings" in row.__dict__ and row.settings is not None:
            states.append(inspect(row.settings))
        return all(state.detached and state.key not in session.identity_map for state in states)

    def forget(self, user_ids: Iterable[int]) -> None:
        for user_id in user_ids:
            self._forgets += 1
            self._rows.pop(user_id, None)

    def clear(self) -> None:
        self._forgets += 1
        self._rows.clear()

    def _after_flush(self, session: Session, _context: Any) -> None:
        self.forget(_user_ids((*session.new, *session.dirty, *session.deleted)))

    def _on_detached(self, _session: Session, obj: object) -> None:
        # A session closed with a change on a row that was never flushed (the handler failed, or
        # changed it and wrote nothing): the row no longer says what the database holds.
        if isinstance(obj, (User, UserSettings)) and inspect(obj).modified:
            self.forget(_user_ids([obj]))

    def _after_rollback(self, session: Session, _transaction: SessionTransaction) -> None:
        # A rollback expires every row of the session: none of them can be handed out again.
        self.forget(_user_ids(session.identity_map.values()))

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


def _user_ids(objects: Iterable[Any]) -> set[int]:
    """The users whose row or settings are among ``objects``."""
    return {
        obj.id if isinstance(obj, User) else obj.user_id
        for obj in objects
        if isinstance(obj, (User, UserSettings))
    }

"""aiogram FSM storage in a database: a flow in the middle of its steps (the scenes of an /animate, an
editing flow) is still there after the bot restarts, with no Redis needed.

It has its own engine and, with SQLite, its own file (``fsm.db`` beside the bot's database): the
request middleware keeps a write transaction open on the bot's database while a handler runs, and
SQLite allows one writer per file, so FSM writes from the same handler must go elsewhere. The one
table is created on first use (it holds nothing but in-flight chat state, like Redis would). One row
per FSM key (aiogram's :class:`DefaultKeyBuilder`, destiny included); a flow that ends leaves no row.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, KeyBuilder, StateType, StorageKey
from sqlalchemy import JSON, DateTime, String, make_url, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.db import create_engine, create_sessionmaker, sqlite_file
from storage.models import utcnow


class FsmBase(DeclarativeBase):
    pass


class FsmRecord(FsmBase):
    __tablename__ = "fsm_states"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def fsm_url(db_url: str) -> str:
    """The FSM store's URL for the bot's database URL: a sibling file for SQLite, the same database otherwise."""
    path = sqlite_file(db_url)
    if path is None:
        return db_url
    return make_url(db_url).set(database=str(Path(path).with_name("fsm.db"))).render_as_string(hide_password=False)


def _state_name(state: StateType) -> str | None:
    return state.state if isinstance(state, State) else state


CACHED_KEYS = 10_000


class SqlStorage(BaseStorage):
    """FSM state in a table, with what was read or written remembered in memory.

    aiogram reads the state of every update's chat (its FSM middleware), and almost every chat has
    none. This storage is the only writer of its table (one bot process: replicas share Redis
    instead, :func:`app.wiring.create_fsm_storage`), so what it wrote or read last is what the
    table holds: which keys have a row at all (read once at start: only flows under way do) and the
    rows of the last ``CACHED_KEYS`` keys used are answered from memory.
    """

    def __init__(self, url: str, key_builder: KeyBuilder | None = None) -> None:
        self.engine = create_engine(url)
        self.sessions = create_sessionmaker(self.engine)
        self.key_builder = key_builder or DefaultKeyBuilder(with_destiny=True)
        self._ready = False
        self._ready_lock = asyncio.Lock()
        self._known: OrderedDict[str, tuple[str | None, dict[str, Any]]] = OrderedDict()
        self._rows: set[str] = set()  # keys that have a row (read at start, kept by the writes)

    async def _prepare(self) -> None:
        if self._ready:
            return
        async with self._ready_lock:
            if not self._ready:
                async with self.engine.begin() as connection:
                    await connection.run_sync(FsmBase.metadata.create_all)
                    # The keys that have a row (flows under way: few); any other key has none.
                    self._rows = set((await connection.execute(select(FsmRecord.key))).scalars())
                self._ready = True

    def _remember(self, row_key: str, state: str | None, data: dict[str, Any]) -> None:
        # as the table gives it back (JSON): tuples read as lists, as they would from the row
        self._known[row_key] = (state, json.loads(json.dumps(data)))
        self._known.move_to_end(row_key)
        while len(self._known) > CACHED_KEYS:
            self._known.popitem(last=False)

    async def _write(self, key: StorageKey, **values: Any) -> None:
        await self._prepare()
        row_key = self.key_builder.build(key)
        try:
            async with self.sessions() as session:
                record = await session.get(FsmRecord, row_key)
                state = values.get("state", record.state if record else None)
                data = values.get("data", record.data if record else {})
                if state is None and not data:
                    if record is not None:
                        await session.delete(record)
                elif record is None:
                    session.add(FsmRecord(key=row_key, state=state, data=data, updated_at=utcnow()))
                else:
                    record.state, record.data, record.updated_at = state, data, utcnow()
                await session.commit()
        except BaseException:
            self._known.pop(row_key, None)  # not known what the table holds now: read it next time
            self._rows.add(row_key)
            raise
        if state is None and not data:
            self._rows.discard(row_key)
        else:
            self._rows.add(row_key)
        self._remember(row_key, state, data or {})

    async def _read(self, key: StorageKey) -> tuple[str | None, dict[str, Any]]:
        await self._prepare()
        row_key = self.key_builder.build(key)
        if row_key not in self._rows:
            return None, {}
        known = self._known.get(row_key)
        if known is None:
            async with self.sessions() as session:
                record = await session.get(FsmRecord, row_key)
                known = (record.state, dict(record.data or {})) if record else (None, {})
            self._remember(row_key, *known)
        else:
            self._known.move_to_end(row_key)
        return known

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        await self._write(key, state=_state_name(state))

    async def get_state(self, key: StorageKey) -> str | None:
        return (await self._read(key))[0]

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            raise ValueError(f"data must be a dict, not {type(data).__name__}")
        await self._write(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        return copy.deepcopy((await self._read(key))[1])

    async def count(self) -> int:
        from sqlalchemy import func, select

        await self._prepare()
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(FsmRecord)) or 0)

    async def close(self) -> None:
        await self.engine.dispose()

"""aiogram FSM storage in the bot's own database: a flow in the middle of its steps (the scenes of an
/animate, an editing flow) is still there after the bot restarts, with no Redis needed.

One row per FSM key (aiogram's :class:`DefaultKeyBuilder`, destiny included); the state and the data
are written by a single-row upsert-like unit of work, so a chat's flow is never half-written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, KeyBuilder, StateType, StorageKey

from storage.models import FsmRecord, utcnow
from storage.repositories import Database


def _state_name(state: StateType) -> str | None:
    return state.state if isinstance(state, State) else state


class SqlStorage(BaseStorage):
    def __init__(self, db: Database, key_builder: KeyBuilder | None = None) -> None:
        self.db = db
        self.key_builder = key_builder or DefaultKeyBuilder(with_destiny=True)

    async def _write(self, key: StorageKey, **values: Any) -> None:
        row_key = self.key_builder.build(key)
        async with self.db.session() as session:
            record = await session.get(FsmRecord, row_key)
            if record is None:
                record = FsmRecord(key=row_key, state=None, data={})
                session.add(record)
            for name, value in values.items():
                setattr(record, name, value)
            record.updated_at = utcnow()
            if record.state is None and not record.data:
                await session.delete(record)  # a finished flow leaves no row behind
            await session.commit()

    async def _read(self, key: StorageKey) -> FsmRecord | None:
        async with self.db.session() as session:
            return await session.get(FsmRecord, self.key_builder.build(key))

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        await self._write(key, state=_state_name(state))

    async def get_state(self, key: StorageKey) -> str | None:
        record = await self._read(key)
        return record.state if record else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            raise ValueError(f"data must be a dict, not {type(data).__name__}")
        await self._write(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        record = await self._read(key)
        return dict(record.data) if record and record.data else {}

    async def close(self) -> None:
        pass  # the database is the app's; it closes it

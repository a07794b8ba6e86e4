"""The FSM storage in the database: what a flow stored is there for a new process on the same file."""

from __future__ import annotations

from pathlib import Path

from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import func, select

from storage.db import create_engine, create_sessionmaker
from storage.fsm import SqlStorage
from storage.migrate import upgrade_async
from storage.models import FsmRecord
from storage.repositories import Database


class Flow(StatesGroup):
    scene = State()


async def open_db(url: str) -> tuple[Database, object]:
    engine = create_engine(url)
    return Database(create_sessionmaker(engine)), engine


async def test_state_and_data_survive_a_new_storage_on_the_same_file(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await upgrade_async(url)
    key = StorageKey(bot_id=1, chat_id=10, user_id=10)
    other = StorageKey(bot_id=1, chat_id=11, user_id=11)

    db, engine = await open_db(url)
    storage = SqlStorage(db)
    await storage.set_state(key, Flow.scene)
    await storage.update_data(key, {"scenes": [{"prompt": "a fox", "move": "zoom_in"}]})
    assert await storage.get_state(other) is None and await storage.get_data(other) == {}
    await storage.close()
    await engine.dispose()  # "restart"

    db, engine = await open_db(url)
    storage = SqlStorage(db)
    assert await storage.get_state(key) == "Flow:scene"
    assert await storage.get_data(key) == {"scenes": [{"prompt": "a fox", "move": "zoom_in"}]}
    # Leaving the flow (FSMContext.clear) removes the row.
    await storage.set_state(key, None)
    await storage.set_data(key, {})
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(FsmRecord)) == 0
    await engine.dispose()

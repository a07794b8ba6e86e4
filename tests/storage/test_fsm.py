"""The FSM storage in a database file: what a flow stored is there for a new process on the same file."""

from __future__ import annotations

from pathlib import Path

from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey

from storage.fsm import SqlStorage, fsm_url


class Flow(StatesGroup):
    scene = State()


def test_the_fsm_file_sits_beside_a_sqlite_database():
    assert fsm_url("sqlite+aiosqlite:///data/bot.db") == "sqlite+aiosqlite:///data/fsm.db"
    assert fsm_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"


async def test_state_and_data_survive_a_new_storage_on_the_same_file(tmp_path: Path):
    url = fsm_url(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    key = StorageKey(bot_id=1, chat_id=10, user_id=10)
    other = StorageKey(bot_id=1, chat_id=11, user_id=11)

    storage = SqlStorage(url)
    await storage.set_state(key, Flow.scene)
    await storage.update_data(key, {"scenes": [{"prompt": "a fox", "move": "zoom_in"}]})
    assert await storage.get_state(other) is None and await storage.get_data(other) == {}
    await storage.close()  # "restart"

    storage = SqlStorage(url)
    assert await storage.get_state(key) == "Flow:scene"
    assert await storage.get_data(key) == {"scenes": [{"prompt": "a fox", "move": "zoom_in"}]}
    # Leaving the flow (FSMContext.clear) removes the row.
    await storage.set_state(key, None)
    await storage.set_data(key, {})
    assert await storage.count() == 0
    await storage.close()

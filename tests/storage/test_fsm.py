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


async def test_chats_without_a_flow_cost_no_read(tmp_path: Path):
    """aiogram reads every update's state: a chat with no flow under way (most) is answered from memory,
    and what a flow stores still reads back as the table holds it (JSON: tuples come back as lists)."""
    from sqlalchemy import event

    url = fsm_url(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    key = StorageKey(bot_id=1, chat_id=10, user_id=10)
    storage = SqlStorage(url)
    await storage.set_state(key, Flow.scene)
    await storage.set_data(key, {"size": (512, 768)})
    await storage.close()

    storage = SqlStorage(url)
    statements: list[str] = []
    event.listen(storage.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    await storage.get_state(StorageKey(bot_id=1, chat_id=11, user_id=11))  # start-up reads the keys
    statements.clear()
    for chat in range(12, 40):
        assert await storage.get_state(StorageKey(bot_id=1, chat_id=chat, user_id=chat)) is None
    assert statements == []
    assert await storage.get_state(key) == "Flow:scene"  # a flow under way: read once, then remembered
    assert await storage.get_data(key) == {"size": [512, 768]}
    await storage.update_data(key, {"size": (1024, 1024)})
    assert await storage.get_data(key) == {"size": [1024, 1024]}
    await storage.set_state(key, None)
    await storage.set_data(key, {})
    statements.clear()
    assert await storage.get_state(key) is None and statements == []
    assert await storage.count() == 0
    await storage.close()

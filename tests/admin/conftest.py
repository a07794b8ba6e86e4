"""Admin tests: an owner in ADMIN_IDS, a granted admin, plain users, all on the real Dispatcher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import AnswerCallbackQuery, SendMessage
from sqlalchemy import select

from app.config import Settings
from storage.admin_models import AuditEntry
from storage.models import User
from tests.conftest import BotHarness, make_settings
from tests.fakes import callback_update, message_update, user

OWNER_ID = 7
ADMIN_ID = 8
USER_ID = 1001

OWNER = user(OWNER_ID, first_name="Olga", username="olga")
ADMIN = user(ADMIN_ID, first_name="Adam", username="adam")
USER = user(USER_ID, first_name="Ann", username="ann")
OTHER = user(1002, first_name="Bob", username="bob")

EXPIRED = "This button has expired. /admin opens a fresh panel."  # an admin button that no longer parses


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, admin_ids=[OWNER_ID], broadcast_rate=1000.0)


async def say(h: BotHarness, text: str, who: Any = USER, **fields: Any) -> list[str]:
    """Send a message; return the texts of the messages the bot sent to that chat in answer.

    (Edits are left out: progress edits of running jobs come and go at any time.)
    """
    before = len(h.session.calls)
    update = message_update(text, from_user=who, **fields)
    await h.feed(update)
    chat_id = update.message.chat.id
    return [c.text for c in h.session.calls[before:] if isinstance(c, SendMessage) and c.chat_id == chat_id]


async def press(h: BotHarness, data: str, who: Any = USER) -> list[Any]:
    """Press a button; return the API calls made in answer."""
    before = len(h.session.calls)
    await h.feed(callback_update(data, from_user=who))
    return h.session.calls[before:]


def last_sent(h: BotHarness) -> SendMessage:
    return h.session.of(SendMessage)[-1]


def alerts(calls: list[Any]) -> list[str | None]:
    return [c.text for c in calls if isinstance(c, AnswerCallbackQuery)]


async def get_user(h: BotHarness, user_id: int) -> User | None:
    async with h.app.db.session() as session:
        return await session.get(User, user_id)


async def audit(h: BotHarness) -> list[AuditEntry]:
    async with h.app.db.session() as session:
        return list((await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars().all())


async def make_admin(h: BotHarness) -> None:
    """The owner grants ADMIN admin rights (both have started the bot)."""
    await say(h, "/start", OWNER)
    await say(h, "/start", ADMIN)
    texts = await say(h, f"/grant {ADMIN_ID}", OWNER)
    assert "is an admin now" in texts[-1]

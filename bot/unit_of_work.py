"""No database transaction stays open while the bot talks to Telegram.

On SQLite a write transaction holds the database's only write lock. A handler that wrote a row and
then sent a reply would hold it for as long as the reply took: seconds on a slow link, up to two
minutes when the chat is under flood control (bot.retry waits it out), and every other update
that writes would fail with "database is locked" meanwhile. On PostgreSQL the same transaction would
hold its row locks and sit "idle in transaction".

So the update's session (opened by ``DatabaseMiddleware``) is registered here, and
:class:`CommitBeforeTelegram`, a request middleware on the bot's session, commits it before every
Bot API call made by the handler's own task. What the handler wrote is what it is about to tell
the user anyway; a later failure of the handler leaves the earlier, already announced part in place.
Tasks the handler starts (a chat action sender) do not touch its session: it is not theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods.base import TelegramType
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import has_work_to_commit

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod


@dataclass(frozen=True)
class _Unit:
    session: AsyncSession
    owner: asyncio.Task[Any] | None


_current: ContextVar[_Unit | None] = ContextVar("update_unit_of_work", default=None)


@contextlib.contextmanager
def update_session(session: AsyncSession) -> Iterator[None]:
    """Register ``session`` as the current update's, for the task running the handler."""
    token = _current.set(_Unit(session, asyncio.current_task()))
    try:
        yield
    finally:
        _current.reset(token)


async def commit_current() -> None:
    """Commit the current update's session if this task owns it and it has something to commit."""
    unit = _current.get()
    if unit is None or unit.owner is not asyncio.current_task():
        return
    if has_work_to_commit(unit.session):
        await unit.session.commit()


class CommitBeforeTelegram(BaseRequestMiddleware):
    """Before a Bot API call: commit the calling handler's transaction (see the module's doc)."""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        await commit_current()
        return await make_request(bot, method)

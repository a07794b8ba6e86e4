"""/invite (owners): a one-user invitation link to the private bot (bot.access)."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import Message
from aiogram_i18n import I18nContext

from bot.access import invite_link
from bot.admin_filter import AdminFilter
from storage.access import AccessRepository
from storage.repositories import Repositories


async def invite(message: Message, bot: Bot, i18n: I18nContext, repos: Repositories, private_bot: bool = False) -> None:
    code = await AccessRepository(repos.session).create_invite(message.from_user.id)  # type: ignore[union-attr]
    await repos.commit()
    me = await bot.me()
    text = i18n.get("private-invite-created", link=invite_link(me.username or "", code))
    if not private_bot:
        text += "\n" + i18n.get("private-invite-open-bot")
    await message.answer(text)


def create_router() -> Router:
    router = Router(name="invite")
    router.message.filter(F.text.startswith("/"), AdminFilter(owner_only=True))  # commands only: no role read for prompts
    router.message(Command("invite"))(invite)
    return router

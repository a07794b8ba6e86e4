"""/broadcast: the admin's next message is previewed with Send / Cancel, then sent in the background."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from bot.broadcast import Broadcaster
from handlers.admin.common import AdminStates, BroadcastAction, BroadcastCb, admin_repos
from storage.admin_models import Broadcast
from storage.models import User
from storage.repositories import Repositories


def confirm_keyboard(i18n: I18nContext, broadcast_id: int, recipients: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=i18n.get("admin-btn-broadcast-send", count=recipients),
        callback_data=BroadcastCb(action=BroadcastAction.SEND, broadcast_id=broadcast_id),
    )
    builder.button(
        text=i18n.get("admin-btn-broadcast-cancel"),
        callback_data=BroadcastCb(action=BroadcastAction.CANCEL, broadcast_id=broadcast_id),
    )
    return builder.as_markup()


async def ask_broadcast(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    await state.set_state(AdminStates.broadcast)
    await message.answer(i18n.get("admin-broadcast-ask"))


async def broadcast_command(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    await ask_broadcast(message, i18n, state)


async def broadcast_content(
    message: Message, i18n: I18nContext, user: User, repos: Repositories, state: FSMContext
) -> None:
    """The message to send: stored as a draft and shown back exactly as users will get it."""
    entities = message.caption_entities if message.photo else message.entities
    broadcast = await admin_repos(repos).broadcasts.add(
        Broadcast(
            admin_id=user.id,
            admin_chat_id=message.chat.id,
            text=message.caption if message.photo else message.text,
            entities=[e.model_dump(mode="json", exclude_none=True) for e in entities] if entities else None,
            photo_file_id=message.photo[-1].file_id if message.photo else None,
        )
    )
    await state.clear()
    recipients = await admin_repos(repos).broadcasts.eligible_count()
    markup = confirm_keyboard(i18n, broadcast.id, recipients)
    if message.photo:
        await message.answer_photo(
            broadcast.photo_file_id or "",
            caption=broadcast.text,
            caption_entities=entities,
            parse_mode=None,
            reply_markup=markup,
        )
    else:
        await message.answer(broadcast.text or "", entities=entities, parse_mode=None, reply_markup=markup)


async def broadcast_unsupported(message: Message, i18n: I18nContext) -> None:
    await message.answer(i18n.get("admin-broadcast-unsupported"))


async def broadcast_button(
    query: CallbackQuery,
    callback_data: BroadcastCb,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    broadcaster: Broadcaster,
) -> None:
    broadcast_id = callback_data.broadcast_id
    repo = admin_repos(repos).broadcasts
    if callback_data.action == BroadcastAction.CANCEL:
        if not await repo.cancel_draft(broadcast_id, user.id):  # the author's draft only
            await query.answer(i18n.get("admin-broadcast-not-draft"), show_alert=True)
            return
        await admin_repos(repos).admins.audit(user.id, "broadcast_cancel", broadcast_id)
        await query.answer(i18n.get("admin-broadcast-cancelled"))
    else:
        # Draft -> sending is one conditional update: a second press or a replayed button does nothing.
        recipients = await repo.start(broadcast_id, user.id)  # the author's draft only
        if recipients is None:
            await query.answer(i18n.get("admin-broadcast-not-draft"), show_alert=True)
            return
        await admin_repos(repos).admins.audit(user.id, "broadcast", broadcast_id, f"{recipients} recipients")
        await repos.commit()  # the broadcaster reads the recipients from the database
        broadcaster.wake()
        await query.answer()
        if isinstance(query.message, Message):
            await query.message.answer(i18n.get("admin-broadcast-started", id=broadcast_id, count=recipients))
    if isinstance(query.message, Message):
        try:
            await query.message.edit_reply_markup(reply_markup=None)
        except TelegramAPIError:
            pass


def create_router() -> Router:
    router = Router(name="admin-broadcast")
    router.message(Command("broadcast"))(broadcast_command)
    router.message(StateFilter(AdminStates.broadcast), F.photo | (F.text & ~F.text.startswith("/")))(broadcast_content)
    router.message(StateFilter(AdminStates.broadcast), ~F.text.startswith("/") | ~F.text)(broadcast_unsupported)
    router.callback_query(BroadcastCb.filter())(broadcast_button)
    return router

"""Pictures sent outside any flow, and whatever a flow did not expect.

* A photo or image file with a caption: restyle by that text (the strength buttons come next).
* A photo without a caption: the restyle flow's second step (send the text).
* An album: fusion of its photos.
* Videos and animations: refused with a clear message (stickers are left to the fallback router).
* In a flow, anything its step does not take gets the step repeated (where the user is, how to
  leave); commands other than the flows' own go on to the routers after this one.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from handlers.context import RequestContext
from handlers.editing import fuse, restyle
from handlers.editing.flow import EDIT_STATES, FuseFlow, RestyleFlow, is_edit_button, start_flow, step_text
from handlers.editing.inputs import InputPhoto, PhotosFilter, has_media


def is_album(message: Message, album: list[Message] | None = None) -> bool:
    return len(album or [message]) > 1


async def album_outside_flows(
    message: Message, state: FSMContext, request: RequestContext, photos: list[InputPhoto] | None, caption: str | None
) -> None:
    """An album: the fusion of its photos (its caption, the fusion's text)."""
    if photos is None:
        return  # refused (answered by fuse.FusePhotosFilter): no flow was asked for
    await start_flow(state, FuseFlow.photos, photos=[])
    await fuse.fuse_photos(message, state, request, photos, caption)


async def picture_outside_flows(
    message: Message, state: FSMContext, request: RequestContext, photos: list[InputPhoto] | None, caption: str | None
) -> None:
    """One picture: restyled by its caption, or the restyle's text step."""
    if photos is None:
        return  # refused: answered by PhotosFilter
    await start_flow(state, RestyleFlow.photo, shapes=False)
    await restyle.take_photo(message, state, request, photos[0], caption)


async def unexpected_in_flow(message: Message, state: FSMContext, i18n: I18nContext, raw_state: str | None) -> None:
    """Text where a photo is awaited, a sticker, a voice message...: say where the user is."""
    await message.answer(i18n.get("edit-unexpected", step=step_text(i18n, raw_state, await state.get_data())))


async def stale_button(query: CallbackQuery, i18n: I18nContext) -> None:
    """A flow's button from a step the user has left (or a flow that was cancelled)."""
    await query.answer(i18n.get("edit-button-stale"), show_alert=True)


def create_router() -> Router:
    router = Router(name="editing-entry")
    outside = (StateFilter(None), F.func(has_media), ~F.sticker)
    router.message(*outside, is_album, fuse.FusePhotosFilter())(album_outside_flows)
    router.message(*outside, PhotosFilter())(picture_outside_flows)
    router.message(StateFilter(*EDIT_STATES), ~F.text.startswith("/"))(unexpected_in_flow)
    router.callback_query(F.func(is_edit_button))(stale_button)
    return router

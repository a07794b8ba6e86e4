"""The album collector on its own: concurrent updates of one album become one call."""

import asyncio

from aiogram import Bot, Dispatcher
from aiogram.fsm.storage.memory import SimpleEventIsolation

from bot.albums import AlbumMiddleware, install
from tests.editing.helpers import photo_update
from tests.fakes import TOKEN, RecordingSession, message_update, user


async def _run(middleware, updates, delays=None):
    calls = []

    async def handler(event, data):
        calls.append((event.update_id, [m.message_id for m in data.get("album") or []]))
        return "handled"

    async def one(update, delay):
        await asyncio.sleep(delay)
        return await middleware(handler, update, {})

    delays = delays or [0.0] * len(updates)
    results = await asyncio.gather(*(one(u, d) for u, d in zip(updates, delays)))
    return calls, results


async def test_one_album_becomes_one_call_in_message_order():
    album = [photo_update(f"p{i}", 512, 512, media_group_id="g1") for i in range(4)]
    # Arriving out of order, the last one after a pause shorter than the window.
    calls, results = await _run(AlbumMiddleware(wait=0.2), album[::-1], delays=[0.0, 0.05, 0.1, 0.25])
    assert len(calls) == 1 and results.count("handled") == 1 and results.count(None) == 3
    update_id, message_ids = calls[0]
    assert update_id == album[-1].update_id  # the first to arrive carries the album
    assert message_ids == sorted(u.message.message_id for u in album)


async def test_two_albums_and_plain_messages_stay_apart():
    ann, bob = user(1), user(2)
    a = [photo_update(f"a{i}", 512, 512, media_group_id="same-id", from_user=ann) for i in range(2)]
    b = [photo_update(f"b{i}", 512, 512, media_group_id="same-id", from_user=bob) for i in range(3)]
    plain = message_update("a cat")
    calls, _ = await _run(AlbumMiddleware(wait=0.1), [a[0], b[0], plain, a[1], b[1], b[2]])
    sizes = sorted(len(ids) for _, ids in calls)
    assert sizes == [0, 2, 3]  # the plain message passes through at once, without an album


async def test_a_late_item_after_the_window_is_its_own_request():
    album = [photo_update(f"p{i}", 512, 512, media_group_id="g2") for i in range(2)]
    calls, _ = await _run(AlbumMiddleware(wait=0.05), album, delays=[0.0, 0.3])
    assert sorted(len(ids) for _, ids in calls) == [1, 1]


async def test_albums_are_collected_before_the_fsm_lock():
    """With event isolation (a lock per user and chat, as with Redis) the album still comes whole."""
    dispatcher = Dispatcher(events_isolation=SimpleEventIsolation())
    install(dispatcher, wait=0.1)
    received = []

    @dispatcher.message()
    async def handler(message, album=None):
        received.append(len(album or [message]))

    bot = Bot(TOKEN, session=RecordingSession())
    album = [photo_update(f"p{i}", 512, 512, media_group_id="locked") for i in range(3)]
    await asyncio.wait_for(asyncio.gather(*(dispatcher.feed_update(bot, u) for u in album)), timeout=5)
    assert received == [3]

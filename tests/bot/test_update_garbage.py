"""An update leaves nothing for the cycle collector: once a prompt is handled, its session, its rows
and its contexts are freed by reference counting alone (issue #16: the collector's passes over
every update in flight were about a tenth of the bot's time per prompt)."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from sqlalchemy import event

from bot.middlewares import UserMiddleware
from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import message_update, user


async def test_a_handled_prompt_is_freed_without_the_cycle_collector(tmp_path):
    h = await start_harness(make_settings(tmp_path))
    try:
        await h.app.queue.stop()  # the update's own objects only
        await h.feed(message_update("a first prompt", from_user=user(5)))  # first contact, caches warm
        session_class = h.app.db.sessionmaker.kw["sync_session_class"]
        attached: list[weakref.ref[Any]] = []

        def remember(session: Any, instance: Any) -> None:  # the user's row joining the update's session
            attached.extend([weakref.ref(session), weakref.ref(instance)])

        event.listen(session_class, "after_attach", remember)
        gc.disable()
        try:
            await h.feed(message_update("a lighthouse at dawn", from_user=user(5)))
            assert attached, "the update attached no row"
            # The user's row and settings that the user directory keeps between updates live on, by
            # design; everything else the update attached is gone.
            (directory,) = [m.users for m in h.app.dispatcher.update.outer_middleware if isinstance(m, UserMiddleware)]
            kept = {id(obj) for _, row in directory._rows.values() for obj in (row, row.settings)}
            assert [ref for ref in attached if ref() is not None and id(ref()) not in kept] == []
        finally:
            gc.enable()
            event.remove(session_class, "after_attach", remember)
        assert len(await h.jobs()) == 2  # both prompts became jobs
    finally:
        await stop_harness(h)

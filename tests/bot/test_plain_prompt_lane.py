"""The plain-prompt lane (handlers.generate.create_plain_prompt_router) takes a text before the
feature routers only when they would have passed it on to the prompt handler anyway.

Checked by routing each text twice through the bot's real dispatcher (real middlewares, database,
FSM): with the lane, and with the lane taken out of the root router. An inner middleware on every
router notes which handler was chosen and stops there, so nothing is generated or answered."""

from __future__ import annotations

from typing import Any

from aiogram import Router
from aiogram.fsm.storage.base import StorageKey

from bot.i18n import translator
from handlers.common import MENU_BUTTON_KEYS
from handlers.generate import prompt
from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import message_update, user

TEXTS = [
    "a lighthouse at dawn",
    "🦊🌅✨",
    "рыжая лиса в снегу",
    "a fox --ar 16:9 --seed 5",
    "/start",
    "/nonsense",
    "me and @me on the moon",
    "@ME",
    "email@me.com is not a face",
    "   ",
    "x" * 1200,
]
STATES = [None, "RemixFlow:text", "AnimateFlow:text", "AnimateFlow:ready", "AdminStates:broadcast", "FaceFlow:photo"]


class Oracle:
    """Inner middleware: remembers the chosen handler's function and does not call it."""

    def __init__(self) -> None:
        self.chosen: list[Any] = []

    async def __call__(self, handler: Any, event: Any, data: dict[str, Any]) -> Any:
        self.chosen.append(data["handler"].callback)
        return None


def all_routers(router: Router):
    yield router
    for sub in router.sub_routers:
        yield from all_routers(sub)


async def test_the_lane_takes_exactly_the_texts_the_prompt_handler_would_get(tmp_path):
    h = await start_harness(make_settings(tmp_path, admin_ids=[42]))
    try:
        await h.app.queue.stop()
        root = h.app.dispatcher.sub_routers[0]
        lane = next(r for r in root.sub_routers if r.name == "plain-prompt")
        oracle = Oracle()
        for router in all_routers(root):
            router.message.middleware(oracle)
        menu = sorted({label for key in MENU_BUTTON_KEYS for label in translator().all_locales(key)})
        assert len(menu) >= 6  # cancel, settings, help in English and Russian at least
        storage = h.app.dispatcher.storage
        taken_by_lane = 0
        for user_id in (7, 42):  # a user and an admin
            for state in STATES:
                key = StorageKey(bot_id=h.bot.id, chat_id=user_id, user_id=user_id)
                for text in [*TEXTS, *menu]:
                    chosen = []
                    for with_lane in (True, False):
                        if not with_lane:
                            root.sub_routers.remove(lane)
                        try:
                            await storage.set_state(key, state)
                            oracle.chosen.clear()
                            await h.feed(message_update(text, from_user=user(user_id)))
                            chosen.append(oracle.chosen[-1] if oracle.chosen else None)
                            if with_lane and oracle.chosen and oracle.chosen[-1] is prompt and state is None:
                                taken_by_lane += 1
                        finally:
                            if not with_lane:
                                root.sub_routers.insert(1, lane)
                    assert chosen[0] is chosen[1], (user_id, state, text, chosen)
        assert taken_by_lane >= 2 * 5  # the plain prompts, for both users
    finally:
        await stop_harness(h)

"""The bot with a prompt answered like an echo: the ceiling that benchmarks/bot_overhead.py --floor
measures.

This is the real bot process (``python -m app``: every middleware, the user row, i18n, the FSM
storage, the routers and the prompt filter, the session middlewares of Bot API calls), with one
difference: a plain prompt is answered with its own text, as benchmarks/echo_bot.py does, instead
of becoming a job with a status message. Whatever the job's own work costs, the bot cannot answer a
burst faster than this; the gap between this bot and the echo bot is the cost of the update path
around the handler.

Environment: as for ``python -m app``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiogram.types import Message

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import handlers.generate  # noqa: E402


async def answer_like_an_echo(message: Message, prompt: str | None) -> None:
    if prompt is not None:  # else refused by the prompt filter, which answered
        await message.answer(message.text or "?")


# Both prompt routers look the handler up when the app builds them.
handlers.generate.prompt = answer_like_an_echo  # type: ignore[assignment]

if __name__ == "__main__":
    from app.__main__ import main

    main()

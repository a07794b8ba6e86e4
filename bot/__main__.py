"""``python -m bot`` / ``kandinsky-bot``: migrate the database, then run the bot with long polling."""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import ValidationError

from bot.config import Settings, describe_error


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Request logs would print the bot token inside URLs.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    asyncio.run(run(settings))


async def run(settings: Settings) -> None:
    from bot.app import build_app
    from storage.migrate import upgrade_async

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade_async(settings.db_url)
    app = build_app(settings)
    logging.getLogger(__name__).info("starting long polling")
    # aiogram stops polling on SIGINT/SIGTERM, then runs the shutdown handlers (the queue returns
    # a running job to the queue), then we close the session.
    try:
        await app.dispatcher.start_polling(app.bot, handle_signals=True, close_bot_session=True)
    finally:
        await app.bot.session.close()


if __name__ == "__main__":
    main()

"""``python -m bot`` / ``kandinsky-bot``: migrate the database, then run the bot (long polling, or a
webhook when WEBHOOK_URL is set)."""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError

from app import event_loop
from app.config import Settings, describe_error
from bot.logging_setup import configure_logging


def main() -> None:
    if sys.argv[1:2] == ["fetch"]:  # `kandinsky-bot fetch`: download and convert the models first
        from app.fetch import main as fetch_main

        fetch_main(sys.argv[2:])
        return
    try:
        settings = Settings()
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.secrets())  # the bot token never reaches the log
    event_loop.run(run(settings), settings.event_loop)


async def run(settings: Settings) -> None:
    from app.wiring import build_app
    from storage.migrate import upgrade_async

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade_async(settings.db_url)
    app = build_app(settings)
    from bot.connect import TokenRejected, wait_for_telegram
    from app.web import run_polling, run_webhook

    try:
        me = await wait_for_telegram(app.bot)
    except TokenRejected:
        await app.bot.session.close()
        print(
            "Telegram refused BOT_TOKEN (Unauthorized): the bot was deleted or the token revoked; "
            "@BotFather gives the current token (/mybots -> API Token)",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    logging.getLogger(__name__).info("connected to Telegram as @%s", me.username)
    from app.heap import settle_startup_heap

    settle_startup_heap()  # everything built so far lives as long as the process

    if settings.webhook_url:
        await run_webhook(app)  # several replicas behind a load balancer (README "Scaling out")
    else:
        await run_polling(app)


if __name__ == "__main__":
    main()

"""``python -m bot`` / ``kandinsky-bot``: migrate the database, then run the bot (long polling, or a
webhook when WEBHOOK_URL is set)."""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import ValidationError

from app.config import Settings, describe_error


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
    from app.wiring import build_app
    from storage.migrate import upgrade_async

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade_async(settings.db_url)
    app = build_app(settings)
    from app.web import run_polling, run_webhook

    if settings.webhook_url:
        await run_webhook(app)  # several replicas behind a load balancer (README "Scaling out")
    else:
        await run_polling(app)


if __name__ == "__main__":
    main()

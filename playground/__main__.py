"""``python -m playground`` (``scripts/try.sh``, ``kandinsky-playground``): try the bot without Telegram.

It starts the local Bot API emulator, the real bot process (``python -m app``, the fake generation
backend unless told otherwise) pointed at it, and a web chat page on 127.0.0.1, then prints the
page's address. Everything stays on this machine: no token, no network, no GPU needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import webbrowser
from pathlib import Path

from playground.botproc import PROJECT_ROOT, BotProcess
from playground.chat import ChatPage
from playground.emulator import TelegramEmulator
from playground.users import ScriptedUser

# A token of the right shape for the emulator's bot; it means nothing to Telegram.
PLAYGROUND_TOKEN = "1000000001:PLAYGROUNDplaygroundPLAYGROUNDplayg"
PLAYGROUND_USER_ID = 4242
# Settings of the operator's environment that would send the playground's bot elsewhere.
_NOT_INHERITED = ("REDIS_URL", "WEBHOOK_URL", "WEBHOOK_SECRET", "WEBHOOK_LISTEN", "METRICS_PORT")

log = logging.getLogger("playground")


class Playground:
    """Emulator + bot process + web chat, started and stopped together."""

    def __init__(
        self,
        data_dir: Path,
        *,
        backend: str = "fake",
        host: str = "127.0.0.1",
        port: int = 0,
        language: str = "en",
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.backend = backend
        self.host = host
        self.port = port
        self.language = language
        self.extra_env = env or {}
        self.emulator = TelegramEmulator()
        self.bot_process: BotProcess | None = None
        self.page: ChatPage | None = None
        self.user: ScriptedUser | None = None

    def bot_env(self) -> dict[str, str]:
        """The operator's environment (model folders, device, ...) with the playground's own bot,
        database and Telegram."""
        env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p),
                "PYTHONUNBUFFERED": "1",
                "GENERATION_BACKEND": self.backend,
                "BOT_TOKEN": PLAYGROUND_TOKEN,
                "TELEGRAM_API_URL": self.emulator.base_url,
                "DATA_DIR": str(self.data_dir),
                "DATABASE_URL": f"sqlite+aiosqlite:///{self.data_dir / 'bot.db'}",
                # The person at the page owns this bot: the admin commands can be tried too.
                "ADMIN_IDS": str(PLAYGROUND_USER_ID),
            }
        )
        env.update(self.extra_env)
        return env

    async def start(self, ready_timeout: float = 120.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        await self.emulator.start(self.host, 0)
        bot = self.emulator.add_bot(PLAYGROUND_TOKEN, username="KandinskyPlaygroundBot", first_name="Kandinsky")
        self.user = self.emulator.user(
            PLAYGROUND_TOKEN, user_id=PLAYGROUND_USER_ID, first_name="You", username="playground_user",
            language_code=self.language,
        )
        self.user.record_own = True
        self.bot_process = BotProcess(self.emulator, PLAYGROUND_TOKEN, self.bot_env(), self.data_dir / "bot.log")
        await self.bot_process.start(ready_timeout=ready_timeout)
        self.page = ChatPage(self.emulator, bot, self.user)
        return await self.page.start(self.host, self.port)

    async def stop(self) -> None:
        if self.bot_process is not None:
            with contextlib.suppress(Exception):
                await self.bot_process.stop()
        if self.page is not None:
            await self.page.stop()
        await self.emulator.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m playground", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="where the page listens (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="the page's port (default 8765; 0 picks a free one)")
    parser.add_argument(
        "--backend", choices=("fake", "diffusers"), default=os.environ.get("PLAYGROUND_BACKEND", "fake"),
        help="fake: quick placeholder pictures (default); diffusers: the real models "
        "(set KANDINSKY_MODELS_DIR, e.g. to the tiny checkpoints of `python -m generation.tiny DIR`)",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data/playground"), help="the playground's database and images")
    parser.add_argument("--language", default="en", help="the Telegram language of the playground's user (en, ru)")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass


async def _serve(args: argparse.Namespace) -> None:
    playground = Playground(args.data_dir, backend=args.backend, host=args.host, port=args.port, language=args.language)
    print(f"Starting the bot ({args.backend} backend); its log: {playground.data_dir / 'bot.log'}", flush=True)
    try:
        url = await playground.start()
    except (RuntimeError, TimeoutError, OSError) as exc:
        await playground.stop()
        print(f"The playground could not start: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"\n  Playground: {url}\n  (Ctrl+C stops it)\n", flush=True)
    if args.open:
        webbrowser.open(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    bot_exit = asyncio.create_task(playground.bot_process.process.wait())  # type: ignore[union-attr]
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({bot_exit, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if bot_exit.done():
        print(f"The bot stopped (exit code {bot_exit.result()}); the end of its log:\n{playground.bot_process.log(3000)}", file=sys.stderr)  # type: ignore[union-attr]
    stopping.cancel()
    print("Stopping…", flush=True)
    await playground.stop()


if __name__ == "__main__":
    main()

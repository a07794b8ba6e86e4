"""What the job system says to the chat, as an interface: the runner and the delivery call it,
``bot.notifier.TelegramNotifier`` implements it with aiogram. Nothing here knows Telegram."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from storage.models import Job


@dataclass
class JobContext:
    """What the notifier needs to talk to the job's chat."""

    job: Job
    locale: str


class JobEvents(Protocol):
    """The chat side of a job (implemented with aiogram in bot.notifier)."""

    async def started(self, ctx: JobContext) -> None: ...

    async def progress(self, ctx: JobContext, step: int, total: int) -> None: ...

    async def stage(self, ctx: JobContext, stage: str) -> None:
        """A multi-stage job (face swap) entered ``stage``: describing, drawing, swapping, restoring."""
        ...

    def working(self, ctx: JobContext) -> contextlib.AbstractAsyncContextManager[Any]: ...

    async def deliver(self, ctx: JobContext, paths: list[Path]) -> list[str]:
        """Send the stored images; return their Telegram file ids. Raises if Telegram refused."""
        ...

    async def failed(self, ctx: JobContext, code: str) -> None: ...

    async def cancelled(self, ctx: JobContext) -> None: ...

    async def beautifying(self, ctx: JobContext) -> None:
        """The prompt is with the LLM (status message)."""
        ...

    async def loading(self, ctx: JobContext, seconds: float | None) -> None:
        """The job's model is not in memory: it loads first (``seconds``: how long it took last time)."""
        ...

    async def censored(self, ctx: JobContext, previews: list[Path], upload: bool = False) -> None:
        """Nothing is sent: every image (or the user's photo, ``upload``) failed the NSFW check.
        ``previews``: heavily blurred stand-ins, when the operator allows them."""
        ...

    async def fetch_file(self, file_id: str) -> bytes: ...

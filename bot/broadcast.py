"""The broadcaster: delivers an admin's message to every user in the background.

Each recipient has a row with a status. Rows are claimed (pending -> sending) in small batches and
committed before anything is sent, and the outcome is written after the send. So after a restart
the broadcaster goes on with the pending rows, and a row a crash left in "sending" is never sent
again: nobody gets a broadcast twice (at worst, a recipient of the interrupted batch gets none and
counts as failed). A graceful stop finishes the message in flight and returns the rest of its batch
to pending.

Sends are spaced to ``rate`` a second, under Telegram's ~30 messages a second for a bot; a 429 waits
for its ``retry_after``; a 403 (the user blocked the bot, or deleted the account) marks the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import MessageEntity

from bot.i18n import Translator
from storage.admin_models import Broadcast, RecipientStatus
from storage.admin_repositories import BroadcastReport, BroadcastRepository
from storage.models import User
from storage.repositories import Database

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # per recipient, for flood-control answers (429)


class Broadcaster:
    def __init__(self, db: Database, bot: Bot, translator: Translator, rate: float = 25.0, batch: int = 25) -> None:
        self.db = db
        self.bot = bot
        self.t = translator
        self.interval = 1.0 / rate
        self.batch = batch
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_send = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Resume unfinished broadcasts (after a restart) and wait for new ones."""
        async with self.db.session() as session:
            abandoned = await BroadcastRepository(session).abandon_claimed()
            await session.commit()
        if abandoned:
            log.warning("%d broadcast recipient(s) were interrupted mid-send; they are not sent again", abandoned)
        self._stop.clear()
        self._task = asyncio.create_task(self._loop(), name="broadcaster")
        self._wake.set()

    async def stop(self) -> None:
        """Finish the message in flight, put the rest of the batch back, stop."""
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=10.0)
            except asyncio.TimeoutError:
                log.warning("the broadcaster did not stop in time")
            self._task = None

    def wake(self) -> None:
        """A broadcast was started: go and send it."""
        self._wake.set()

    # -- the work ----------------------------------------------------------------------------
    async def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                async with self.db.session() as session:
                    ids = await BroadcastRepository(session).sending_ids()
                for broadcast_id in ids:
                    if self._stop.is_set():
                        break
                    await self._run(broadcast_id)
            except Exception:
                log.exception("the broadcaster failed; it tries again shortly")
                await self._sleep(5.0)
                continue
            if not self._stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=60.0)

    async def _run(self, broadcast_id: int) -> None:
        async with self.db.session() as session:
            broadcast = await BroadcastRepository(session).get(broadcast_id)
        if broadcast is None:
            return
        while not self._stop.is_set():
            async with self.db.session() as session:
                user_ids = await BroadcastRepository(session).claim(broadcast_id, self.batch)
                await session.commit()
            if not user_ids:
                break
            outcomes: dict[int, tuple[str, str | None]] = {}
            for user_id in user_ids:
                if self._stop.is_set():
                    break
                outcomes[user_id] = await self._send(broadcast, user_id)
            async with self.db.session() as session:
                repo = BroadcastRepository(session)
                for user_id in user_ids:
                    status, error = outcomes.get(user_id, (RecipientStatus.PENDING, None))  # not reached: back
                    await repo.record(broadcast_id, user_id, status, error)
                await session.commit()
        if self._stop.is_set():
            return
        async with self.db.session() as session:
            repo = BroadcastRepository(session)
            report = await repo.report(broadcast_id)
            finished = report.pending == 0 and await repo.finish(broadcast_id)
            admin = await session.get(User, broadcast.admin_id)
            await session.commit()
        if finished:
            log.info("broadcast %s finished: %s", broadcast_id, report)
            await self._report(broadcast, report, admin.language if admin else "en")

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once on stop."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now < self._next_send:
            await self._sleep(self._next_send - now)
        self._next_send = max(now, self._next_send) + self.interval

    async def _send(self, broadcast: Broadcast, user_id: int) -> tuple[str, str | None]:
        entities = [MessageEntity.model_validate(e) for e in broadcast.entities] if broadcast.entities else None
        error = "not sent"
        for _attempt in range(MAX_ATTEMPTS):
            await self._pace()
            if self._stop.is_set():
                return RecipientStatus.PENDING, None  # unsent: the next start sends it
            try:
                if broadcast.photo_file_id:
                    await self.bot.send_photo(
                        user_id,
                        broadcast.photo_file_id,
                        caption=broadcast.text,
                        caption_entities=entities,
                        parse_mode=None,
                    )
                else:
                    await self.bot.send_message(user_id, broadcast.text or "", entities=entities, parse_mode=None)
                return RecipientStatus.SENT, None
            except TelegramForbiddenError as exc:  # blocked by the user, or a deleted account
                return RecipientStatus.BLOCKED, exc.message[:500]
            except TelegramRetryAfter as exc:  # flood control: this message was not sent, so retry it
                error = exc.message
                await self._sleep(exc.retry_after)
                if self._stop.is_set():
                    return RecipientStatus.PENDING, None  # still unsent: the next start sends it
            except TelegramAPIError as exc:
                # Chat not found, bad request, a timeout or a server error: a timed-out message may
                # still have arrived, so it is not sent again.
                return RecipientStatus.FAILED, exc.message[:500]
            except Exception as exc:  # anything else: this recipient fails, the broadcast goes on
                log.exception("broadcast %s to %s failed", broadcast.id, user_id)
                return RecipientStatus.FAILED, repr(exc)[:500]
        return RecipientStatus.FAILED, error[:500]

    async def _report(self, broadcast: Broadcast, report: BroadcastReport, locale: str) -> None:
        text = self.t(
            "admin-broadcast-report",
            locale,
            id=broadcast.id,
            delivered=report.delivered,
            blocked=report.blocked,
            failed=report.failed,
            total=report.total,
        )
        try:
            await self.bot.send_message(broadcast.admin_chat_id, text)
        except TelegramAPIError:
            log.warning("could not send the report of broadcast %s", broadcast.id, exc_info=True)

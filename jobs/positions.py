"""Keeping the waiting jobs' "queued, position N" messages true, coalesced.

Positions change when a job leaves the queue (it starts, it is cancelled) or comes back to it (a
worker stopped or died); the estimated wait changes when a job finishes. Whichever process learns
of such a change calls :meth:`PositionRefresher.request`; the refresh itself (reading the queue and
editing the status messages through the notifier, the only writer of those messages) is the
``refresh`` function the composition root passes in.

Requests are coalesced: one refresh runs at a time in a process, and any number of requests that
arrive meanwhile (or within ``settle_seconds`` before it starts) cause one more refresh, not one each.
After a refresh that edited N messages the next one waits N / ``edits_per_second`` seconds, so the
edits keep to a rate Telegram accepts however fast the queue moves.

In the distributed mode several processes learn of changes (the bot replicas of cancellations, the
GPU workers of starts and ends), so the refreshes are also serialised across processes by a Redis
lock: two refreshes that read the queue at different moments could otherwise write their edits in
the wrong order and leave an old position showing. A process that finds the lock taken bumps a
change counter and leaves the work to the holder, which refreshes again while the counter moves;
after releasing the lock the holder looks at the counter once more, so no change is lost between
the holder's last look and the release.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# A refresh returns how many status messages it edited (None: not counted).
RefreshFn = Callable[[], Awaitable[int | None]]
# Position edits a second, over all chats. Telegram lets a bot send about 30 messages a second
# overall, and answers and results need their share: a queue of hundreds moving fast would
# otherwise edit hundreds of messages a second and draw flood waits on everything else.
EDITS_PER_SECOND = 20.0

# Compare-and-delete: only the holder releases the lock (it may have expired and been taken since).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def changes_key(prefix: str) -> str:
    """Counter bumped by every process that learnt of a change in the queue."""
    return f"{prefix}:positions:changes"


def lock_key(prefix: str) -> str:
    """Held by the one process refreshing the positions right now."""
    return f"{prefix}:positions:lock"


class PositionRefresher:
    """Coalesced, ordered refreshes of the queue positions (see the module's docstring).

    ``redis`` and ``prefix``: the distributed mode (serialised across processes); without them, in
    this process only. ``lock_seconds`` must exceed a refresh (the edits are best effort: never
    flood waits); it also bounds how long the lock of a process that died while refreshing stays
    (changes announced meanwhile are shown by the first refresh after it expired).
    """

    def __init__(
        self,
        refresh: RefreshFn,
        redis: Redis | None = None,
        prefix: str = "kandinsky",
        settle_seconds: float = 0.3,
        lock_seconds: float = 60.0,
        edits_per_second: float | None = EDITS_PER_SECOND,
    ) -> None:
        self.refresh = refresh
        self.redis = redis
        self.prefix = prefix
        self.settle_seconds = settle_seconds
        self.lock_seconds = lock_seconds
        self.edits_per_second = edits_per_second  # None: not paced
        self.refreshes = 0  # refreshes this process ran (tests and benchmarks read it)
        self._pending = False
        self._task: asyncio.Task[None] | None = None

    def request(self) -> None:
        """A change in the queue: refresh soon (returns at once; never raises)."""
        self._pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="queue-positions")

    async def idle(self) -> None:
        """Wait until the requests made so far are served (tests, shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task})
        self._task = None

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.sleep(self.settle_seconds)  # the rest of a burst joins this refresh
            self._pending = False
            try:
                if self.redis is None:
                    await self._refresh()
                else:
                    try:
                        await self._refresh_shared(self.redis)
                    except RedisError as exc:  # Redis is away: an unordered refresh beats a stale one
                        log.warning("queue positions refreshed without the Redis lock (%s)", exc)
                        await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("could not refresh the queue positions", exc_info=True)

    async def _refresh(self) -> None:
        self.refreshes += 1
        edits = await self.refresh()
        if edits and self.edits_per_second:  # the next refresh (here or, holding the lock, anywhere) waits
            await asyncio.sleep(edits / self.edits_per_second)

    async def _refresh_shared(self, redis: Redis) -> None:
        changes, lock = changes_key(self.prefix), lock_key(self.prefix)
        await redis.incr(changes)
        while True:
            token = secrets.token_hex(8)
            if not await redis.set(lock, token, nx=True, px=int(self.lock_seconds * 1000)):
                return  # another process refreshes; it sees this change on the counter
            try:
                while True:
                    seen = await redis.get(changes)
                    await self._refresh()
                    if await redis.get(changes) == seen:
                        break
            finally:
                await redis.eval(_RELEASE, 1, lock, token)  # type: ignore[misc]
            # A change announced after the last look but before the release found the lock taken.
            if await redis.get(changes) == seen:
                return

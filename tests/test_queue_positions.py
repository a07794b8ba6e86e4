"""The queue-position refresher in one process: bursts coalesce, no change is lost, a failure is not
fatal. (tests/scale/test_queue_positions.py: across processes on Redis, and the distributed mode.)"""

from __future__ import annotations

import asyncio

from jobs.positions import PositionRefresher


async def test_a_burst_of_changes_is_one_refresh_and_a_later_change_another():
    seen: list[int] = []
    queue = {"version": 0}
    started = asyncio.Event()
    release = asyncio.Event()

    async def refresh() -> None:
        seen.append(queue["version"])
        started.set()
        await release.wait()

    refresher = PositionRefresher(refresh, settle_seconds=0.01)
    for _ in range(10):  # /cancel of several jobs, workers starting at once
        queue["version"] += 1
        refresher.request()
    await asyncio.wait_for(started.wait(), 2)
    # Changes while a refresh runs: one more refresh afterwards, which reads the newest queue.
    for _ in range(5):
        queue["version"] += 1
        refresher.request()
    release.set()
    await asyncio.wait_for(refresher.idle(), 2)
    assert seen == [10, 15]
    assert refresher.refreshes == 2
    await refresher.close()


async def test_a_failed_refresh_does_not_stop_later_ones(caplog):
    calls = 0

    async def refresh() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database away")

    refresher = PositionRefresher(refresh, settle_seconds=0.0)
    refresher.request()
    await asyncio.wait_for(refresher.idle(), 2)
    assert "could not refresh the queue positions" in caplog.text
    refresher.request()
    await asyncio.wait_for(refresher.idle(), 2)
    assert calls == 2
    await refresher.close()


async def test_refreshes_keep_the_edits_to_a_rate_telegram_accepts():
    """A refresh that edited N messages holds the next one for N / edits_per_second: a queue that moves
    all the time is not edited faster than that, whatever the settle time."""
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def refresh() -> int:
        starts.append(loop.time())
        return 10  # ten status messages edited

    refresher = PositionRefresher(refresh, settle_seconds=0.0, edits_per_second=50.0)
    refresher.request()
    await asyncio.sleep(0.01)
    refresher.request()  # the queue moved again during the first refresh's edits
    await asyncio.wait_for(refresher.idle(), 5)
    assert len(starts) == 2
    assert starts[1] - starts[0] >= 10 / 50.0 - 0.01  # ten edits at 50 a second: 0.2 s
    await refresher.close()


async def test_a_refresh_that_edited_nothing_is_not_held():
    calls = 0

    async def refresh() -> int:
        nonlocal calls
        calls += 1
        return 0

    refresher = PositionRefresher(refresh, settle_seconds=0.0, edits_per_second=0.001)
    for _ in range(3):
        refresher.request()
        await asyncio.wait_for(refresher.idle(), 1)  # 0 edits: no wait (1 edit would be 1000 s)
    assert calls == 3
    await refresher.close()

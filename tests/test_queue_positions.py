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

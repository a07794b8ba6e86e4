"""The per-update costs that issue #16 removed, each checked against the library behaviour it works
around: aiogram's thread hop for synchronous filters, pydantic's weakly kept generic classes, and
one read of the model's run time per burst instead of one per prompt."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest
from aiogram import Dispatcher, F, Router
from aiogram.methods import Response
from aiogram.types import Message
from sqlalchemy import event

import app.wiring
from bot.response_types import keep_response_type
from handlers import build_root_router
from handlers.filters import run_sync_filters_inline
from storage import estimates
from storage.estimates import RunTimeEstimates
from tests.conftest import TOKEN, make_settings, start_harness, stop_harness
from tests.fakes import RecordingSession, message_update, user


def all_filters(router: Router):
    for observer in router.observers.values():
        for handler in (observer._handler, *observer.handlers):
            yield from handler.filters or ()
    for sub in router.sub_routers:
        yield from all_filters(sub)


def test_the_bots_routers_have_no_filter_that_aiogram_would_run_in_a_thread():
    filters = list(all_filters(build_root_router()))
    assert len(filters) > 100
    assert [f.callback for f in filters if not f.awaitable] == []


async def test_inlined_magic_filters_still_decide_and_never_leave_the_event_loop(monkeypatch):
    from aiogram import Bot

    seen: list[str] = []
    router = Router()

    @router.message(F.text == "fox", F.chat.type == "private")
    async def fox(message: Message) -> None:
        seen.append("fox")

    @router.message(F.text.startswith("w"))
    async def wolf(message: Message) -> None:
        seen.append("w")

    run_sync_filters_inline(router)

    async def no_threads(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a filter went to a thread")

    monkeypatch.setattr(asyncio, "to_thread", no_threads)
    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    bot = Bot(TOKEN, session=RecordingSession())
    for text in ("fox", "wolf", "cat"):
        await dispatcher.feed_update(bot, message_update(text))
    assert seen == ["fox", "w"]


def test_a_kept_response_class_survives_garbage_collection():
    class Kept(Message):  # types no other test has made a Response class for
        pass

    class NotKept(Message):
        pass

    kept = weakref.ref(keep_response_type(Kept))
    not_kept = weakref.ref(Response[NotKept])  # what aiogram does on every call
    gc.collect()
    assert not_kept() is None  # pydantic alone lets it go: the next answer would build it again
    assert kept() is not None and Response[Kept] is kept()


async def test_a_burst_reads_the_models_run_time_once(monkeypatch: pytest.MonkeyPatch):
    reads: list[str] = []
    gate = asyncio.Event()

    async def average_run_seconds(session: Any, model: str) -> float | None:
        reads.append(model)
        await gate.wait()
        return 12.0 if model == "k" else None

    monkeypatch.setattr(estimates, "average_run_seconds", average_run_seconds)
    cache = RunTimeEstimates(ttl=5.0)
    waiting = [asyncio.create_task(cache.average(None, "k")) for _ in range(30)]  # type: ignore[arg-type]
    waiting += [asyncio.create_task(cache.average(None, "new")) for _ in range(5)]  # type: ignore[arg-type]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiting)
    assert reads == ["k", "new"]
    assert results == [12.0] * 30 + [None] * 5
    assert await cache.average(None, "k") == 12.0 and reads == ["k", "new"]  # type: ignore[arg-type]
    # "No history yet" is not kept: the next request reads again.
    await cache.average(None, "new")  # type: ignore[arg-type]
    assert reads == ["k", "new", "new"]


async def test_a_burst_and_its_jobs_reuse_the_pools_connections(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A hundred first contacts' prompts, and their jobs run and delivered, on a real SQLite file:
    the connections come from the pool (DB_POOL_SIZE). With SQLAlchemy's default pool of 5, the
    burst opened (and closed again) one or two connections per prompt."""
    opened: list[object] = []
    create_engine = app.wiring.create_engine

    def counting_engine(*args: Any, **kwargs: Any):
        engine = create_engine(*args, **kwargs)
        # (listened to before any connection is made: adding a listener while one runs is an error)
        event.listen(engine.sync_engine.pool, "connect", lambda *_: opened.append(1))
        return engine

    monkeypatch.setattr(app.wiring, "create_engine", counting_engine)
    h = await start_harness(make_settings(tmp_path, max_pending_total=1000))
    try:
        await asyncio.gather(*(h.feed(message_update(f"a fox {i}", from_user=user(user_id=100 + i))) for i in range(100)))
        jobs = await h.wait_jobs_settled()
        assert [j.status for j in jobs].count("done") == 100
        assert len(opened) <= h.app.settings.db_pool_size + 10, len(opened)
    finally:
        await stop_harness(h)

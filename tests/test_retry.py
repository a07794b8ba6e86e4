"""bot.retry: the session middleware that waits out Telegram's flood control and retries transient faults."""

from __future__ import annotations

import random

import pytest
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import EditMessageText, GetUpdates, SendChatAction, SendMessage

from bot.best_effort import best_effort
from bot.retry import DroppedUnderFloodControl, RetryMiddleware


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedTelegram:
    """make_request that answers from a script: an exception to raise, or a result."""

    def __init__(self, clock: FakeTime, *answers: object) -> None:
        self.clock = clock
        self.answers = list(answers)
        self.calls: list[tuple[float, object]] = []

    async def __call__(self, bot: object, method: object) -> object:
        self.calls.append((self.clock.now, method))
        answer = self.answers.pop(0) if self.answers else "ok"
        if isinstance(answer, Exception):
            raise answer
        return answer


SEND = SendMessage(chat_id=7, text="hi")
EDIT = EditMessageText(chat_id=7, message_id=3, text="50%")


def retry_after(seconds: int, method: object = SEND) -> TelegramRetryAfter:
    return TelegramRetryAfter(method=method, message="Too Many Requests", retry_after=seconds)


def middleware(clock: FakeTime, **kwargs: object) -> RetryMiddleware:
    return RetryMiddleware(sleep=clock.sleep, clock=clock.clock, rng=random.Random(0), **kwargs)


async def test_waits_retry_after_then_sends() -> None:
    clock = FakeTime()
    telegram = ScriptedTelegram(clock, retry_after(3), retry_after(2), "sent")
    assert await middleware(clock)(telegram, None, SEND) == "sent"
    times = [t for t, _ in telegram.calls]
    assert times == [1000.0, 1003.0, 1005.0]  # exactly the waits Telegram asked for, no hammering


async def test_other_calls_to_a_throttled_chat_wait_and_best_effort_ones_are_dropped() -> None:
    clock = FakeTime()
    mw = middleware(clock)
    telegram = ScriptedTelegram(clock, retry_after(5), "first")
    assert await mw(telegram, None, SEND) == "first"
    clock.now -= 5  # pretend another task comes in while the chat is still throttled
    with best_effort(), pytest.raises(DroppedUnderFloodControl):
        await mw(telegram, None, EDIT)
    with pytest.raises(DroppedUnderFloodControl):  # chat actions are always cosmetic
        await mw(telegram, None, SendChatAction(chat_id=7, action="typing"))
    assert len(telegram.calls) == 2  # the dropped calls never reached Telegram
    # Another chat is not affected; a normal call to the throttled chat waits its turn.
    assert await mw(telegram, None, SendMessage(chat_id=8, text="x")) == "ok"
    assert await mw(telegram, None, SEND) == "ok"
    assert telegram.calls[-1][0] >= 1005.0


async def test_best_effort_calls_are_not_retried() -> None:
    clock = FakeTime()
    telegram = ScriptedTelegram(clock, retry_after(4))
    with best_effort(), pytest.raises(TelegramRetryAfter):
        await middleware(clock)(telegram, None, EDIT)
    telegram = ScriptedTelegram(clock, TelegramServerError(method=EDIT, message="Internal Server Error"))
    with best_effort(), pytest.raises(TelegramServerError):
        await middleware(clock)(telegram, None, EDIT)
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "error",
    [
        TelegramNetworkError(method=SEND, message="ServerDisconnectedError"),
        TelegramServerError(method=SEND, message="Bad Gateway"),
        ClientDecodeError("Failed to decode object", ValueError(), "<html>502</html>"),
    ],
)
async def test_transient_errors_back_off_exponentially(error: Exception) -> None:
    clock = FakeTime()
    telegram = ScriptedTelegram(clock, error, error, error, "sent")
    assert await middleware(clock, base_delay=1.0)(telegram, None, SEND) == "sent"
    assert len(clock.sleeps) == 3
    for attempt, delay in enumerate(clock.sleeps, start=1):
        assert 0.5 * 2 ** (attempt - 1) <= delay <= 2 ** (attempt - 1)


async def test_retries_are_bounded() -> None:
    clock = FakeTime()
    error = TelegramServerError(method=SEND, message="Internal Server Error")
    telegram = ScriptedTelegram(clock, *[error] * 10)
    with pytest.raises(TelegramServerError):
        await middleware(clock, max_attempts=3)(telegram, None, SEND)
    assert len(telegram.calls) == 3

    page = ClientDecodeError("Failed to decode object", ValueError(), "<html>502 Bad Gateway</html>")
    telegram = ScriptedTelegram(clock, page, page)
    with best_effort(), pytest.raises(TelegramServerError):  # callers catch TelegramAPIError
        await middleware(clock)(telegram, None, EDIT)

    telegram = ScriptedTelegram(clock, retry_after(3600))
    mw = middleware(clock, max_retry_after=60)
    with pytest.raises(TelegramRetryAfter):  # an hour-long ban goes to the caller (delivery retries later)
        await mw(telegram, None, SEND)
    # ... and the next call to that chat fails at once instead of sleeping for an hour.
    sleeps = len(clock.sleeps)
    with pytest.raises(DroppedUnderFloodControl):
        await mw(telegram, None, SEND)
    assert len(telegram.calls) == 1 and len(clock.sleeps) == sleeps


async def test_bad_requests_and_polling_are_left_alone() -> None:
    clock = FakeTime()
    telegram = ScriptedTelegram(clock, TelegramBadRequest(method=SEND, message="Bad Request: chat not found"))
    with pytest.raises(TelegramBadRequest):
        await middleware(clock)(telegram, None, SEND)
    poll = GetUpdates(timeout=10)
    telegram = ScriptedTelegram(clock, TelegramNetworkError(method=poll, message="timeout"))
    with pytest.raises(TelegramNetworkError):
        await middleware(clock)(telegram, None, poll)
    assert len(telegram.calls) == 1 and clock.sleeps == []


async def test_chat_action_sender_outlives_a_dropped_action() -> None:
    import asyncio

    from aiogram import Bot

    from bot.retry import BestEffortChatActionSender
    from tests.fakes import TOKEN, RecordingSession

    session = RecordingSession()
    dropped = []

    def first_dropped(method):
        if not dropped:
            dropped.append(method)
            return DroppedUnderFloodControl(method, "chat under flood control", 1)
        return None

    session.failures[SendChatAction] = first_dropped
    bot = Bot(TOKEN, session=session)
    async with BestEffortChatActionSender(bot=bot, chat_id=7, action="upload_photo", interval=0.02, initial_sleep=0):
        await asyncio.sleep(0.15)
    assert dropped and len(session.of(SendChatAction)) >= 3  # it went on after the dropped one

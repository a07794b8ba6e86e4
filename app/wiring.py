"""Wiring of the bot process (polling or webhook) and the parts a GPU worker shares with it:
settings -> database, backend, guard, runner, queue, job service, Bot, Dispatcher, routers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.types import BotCommand, BotCommandScopeDefault

from app.config import Settings
from bot import albums
from bot.admin_menu import show_admin_menus
from bot.broadcast import Broadcaster
from bot.i18n import LOCALES, create_middleware, translator
from bot.response_types import KeepResponseTypes
from bot.middlewares import ChatScopeMiddleware, DatabaseMiddleware, UserMiddleware
from bot.access import PrivateAccessMiddleware
from bot.notifier import TelegramNotifier
from bot.retry import RetryMiddleware
from bot.unit_of_work import CommitBeforeTelegram
from faceswap.backend import FaceSwapBackend
from faceswap.service import FaceService
from generation.backend import Backend
from handlers import build_root_router
from handlers.context import RequestContextMiddleware
from jobs.metrics import Metrics, MetricsRequestMiddleware, TimedBackend
from jobs.positions import PositionRefresher
from jobs.queue import EmbeddedQueue, JobQueue
from jobs.retention import ResultsJanitor
from jobs.delivery import DeliveryRetry
from jobs.runner import JobRunner
from jobs.service import JobService
from prompting.beautify import share_gpu_budget
from prompting.guard import ContentGuard, build_content_guard
from storage.db import create_engine, create_sessionmaker
from bot.positions import refresh_queue_positions
from bot.priority import MAX_WAIT_SECONDS, AnswersFirst, UpdatesInFlight
from storage.estimates import RunTimeEstimates
from storage.user_cache import UserDirectory
from storage.repositories import Database

log = logging.getLogger(__name__)

COMMANDS = (
    "start", "help", "settings", "language", "cancel",
    "restyle", "restyle_shapes", "style", "fuse", "mix", "variations",  # handlers.editing
    "face", "forgetface",  # handlers.faceswap
    "history",  # handlers.history
    "inpaint",  # handlers.canvas_edit
    "animate", "video",  # handlers.animate, handlers.video
)


def create_bot(settings: Settings) -> Bot:
    session = None
    if settings.telegram_api_url:
        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url.rstrip("/")))
    bot = Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )
    # aiogram's per-method response classes stay built between garbage collections (bot/response_types.py).
    bot.session.middleware(KeepResponseTypes())
    # Wait out Telegram's flood control and retry transient faults (bot/retry.py).
    bot.session.middleware(RetryMiddleware())
    return bot


def create_backend(settings: Settings) -> Backend:
    if settings.generation_backend == "fake":
        from generation.fake import FakeBackend

        return FakeBackend(step_seconds=settings.fake_step_seconds)
    # Imported here: the diffusers backend pulls in torch, which the bot process only needs
    # when it runs the embedded GPU worker.
    from generation.diffusers_backend import DiffusersBackend

    return DiffusersBackend(settings.generation_config())


def create_guard(settings: Settings) -> ContentGuard:
    return build_content_guard(settings.beautifier_settings(), settings.safety_settings(), settings.generation_config())


def create_runner(
    settings: Settings,
    db: Database,
    backend: Backend,
    notifier: TelegramNotifier,
    guard: ContentGuard,
    metrics: Metrics | None = None,
    **kwargs: Any,
) -> JobRunner:
    """The job runner, the same in the embedded worker and in GPU worker processes.

    FACESWAP jobs run the face-swap pipeline, which draws through the same backend; with
    ``metrics``, every generation is timed.
    """
    # A local beautifier LLM shares the image models' GPU budget (one manager owns the GPU).
    share_gpu_budget(guard.beautifier, backend)
    backend = FaceSwapBackend(backend, settings.faceswap_config())
    return JobRunner(
        db,
        TimedBackend(backend, metrics) if metrics is not None else backend,
        notifier,
        settings.results_dir,
        guard=guard,
        delivery_retry=DeliveryRetry(
            settings.delivery_retry_seconds, settings.delivery_retry_max_seconds, settings.delivery_max_attempts
        ),
        **kwargs,
    )


def create_fsm_storage(settings: Settings) -> tuple[BaseStorage, BaseEventIsolation | None]:
    """FSM state in the bot's database (flows survive a restart), or in Redis when REDIS_URL is set,
    so that any replica serves any user.

    Event isolation (a Redis lock per user and chat) keeps one user's updates in order when
    replicas handle them at the same time.
    """
    if not settings.redis_url:
        from storage.fsm import SqlStorage, fsm_url

        return SqlStorage(fsm_url(settings.db_url)), None
    from aiogram.fsm.storage.base import DefaultKeyBuilder
    from aiogram.fsm.storage.redis import RedisStorage

    storage = RedisStorage.from_url(
        settings.redis_url,
        key_builder=DefaultKeyBuilder(prefix=f"{settings.redis_prefix}:fsm", with_destiny=True),
    )
    return storage, storage.create_isolation()


@dataclass
class App:
    settings: Settings
    bot: Bot
    dispatcher: Dispatcher
    db: Database
    queue: JobQueue
    runner: JobRunner
    notifier: TelegramNotifier
    jobs: JobService
    guard: ContentGuard
    broadcaster: Broadcaster | None = None
    metrics: Metrics | None = None
    positions: PositionRefresher | None = None  # the embedded mode's queue-position refresher


def build_app(
    settings: Settings,
    bot: Bot | None = None,
    backend: Backend | None = None,
    storage: BaseStorage | None = None,
    guard: ContentGuard | None = None,
) -> App:
    bot = bot or create_bot(settings)
    metrics = Metrics("bot")
    bot.session.middleware(MetricsRequestMiddleware(metrics))
    # Before any call, the calling handler's transaction is committed (bot/unit_of_work.py).
    bot.session.middleware(CommitBeforeTelegram())
    engine = create_engine(settings.db_url, pool_size=settings.db_pool_size)
    db = Database(create_sessionmaker(engine))
    notifier = TelegramNotifier(bot, translator(), edit_interval=settings.progress_edit_interval)
    # Beautification and the safety checks, switched by the operator's settings.
    guard = guard or create_guard(settings)
    # Updates being handled: Bot API calls of the worker and of background refreshes let them be
    # answered first (bot/priority.py).
    updates_in_flight = UpdatesInFlight()
    bot.session.middleware(AnswersFirst(updates_in_flight))
    estimates = RunTimeEstimates()
    positions: PositionRefresher | None = None  # the embedded mode's (the distributed queue owns its own)
    queue: JobQueue
    if settings.redis_url:
        # The distributed mode: GPU worker processes generate and deliver (jobs.worker).
        from redis.asyncio import Redis

        from jobs.distributed import DistributedQueue, RemoteBackend, create_kicker_broker

        runner = create_runner(settings, db, backend or RemoteBackend(), notifier, guard)
        redis = Redis.from_url(settings.redis_url)
        queue = DistributedQueue(
            db,
            create_kicker_broker(settings.redis_url, settings.redis_prefix),
            redis,
            settings.redis_prefix,
            positions=position_refresher(settings, db, notifier, redis, estimates, updates_in_flight),
        )
    else:
        runner = create_runner(settings, db, backend or create_backend(settings), notifier, guard, metrics)

        positions = position_refresher(settings, db, notifier, None, estimates, updates_in_flight)

        async def refresh_positions() -> None:
            assert positions is not None
            positions.request()  # the refresh runs in the background, coalesced

        queue = EmbeddedQueue(
            db,
            runner,
            delivery_retry_seconds=settings.delivery_retry_seconds,
            on_queue_moved=refresh_positions,
            max_attempts=settings.max_job_attempts,
            batch_max_jobs=settings.batch_max_jobs,
            answers_first=lambda: updates_in_flight.quiet(MAX_WAIT_SECONDS),
        )
    jobs = JobService(
        queue,
        settings.max_image_side,
        settings.max_pending_per_user,
        settings.max_pending_total,
        daily_quota=settings.daily_quota,
        guard=guard,
        max_pending_videos_per_user=settings.max_pending_videos_per_user,
        estimates=estimates,
    )
    broadcaster = Broadcaster(db, bot, translator(), rate=settings.broadcast_rate)
    janitor = ResultsJanitor(db, settings.results_dir, settings.results_retention)  # RESULTS_RETENTION_DAYS

    events_isolation: BaseEventIsolation | None = None
    if storage is None:
        storage, events_isolation = create_fsm_storage(settings)
    dispatcher = Dispatcher(
        storage=storage,
        events_isolation=events_isolation,
        jobs=jobs,
        max_image_side=settings.max_image_side,
        results=runner.results,  # the stored images ("Original", /forgetface)
        admin_ids=frozenset(settings.admin_ids),
        faces=FaceService(),
        notifier=notifier,  # the only writer of jobs' status messages (handlers: cancellations)
        guard=guard,  # upload handlers: ``await guard.check_upload(photo)`` for an early answer
        broadcaster=broadcaster,  # admin: /broadcast
        # admin: /models (in the distributed mode the workers hold the models: --models per worker)
        generation_backend=None if settings.redis_url else runner.backend,
        private_bot=settings.private,  # /invite says when invitations do not matter
        user_commands=COMMANDS,  # admin: the command menu of admin chats adds to these
        webapp_url=settings.webapp_url,  # /inpaint: the Mini App's base URL (None: not set up)
    )
    notifier.webapp_url = settings.webapp_url  # the Inpaint button under results
    # Albums first: an album's later photos join its first update before any lock or database work.
    albums.install(dispatcher, settings.album_wait_seconds)
    # Group messages not addressed to the bot are dropped before any database work.
    dispatcher.update.outer_middleware(updates_in_flight)
    dispatcher.update.outer_middleware(ChatScopeMiddleware())
    dispatcher.update.outer_middleware(DatabaseMiddleware(db))
    users = UserDirectory(db, settings.user_cache_ttl)
    users.watch()  # a change this process makes to a user is seen by their next update
    dispatcher.update.outer_middleware(UserMiddleware(users))
    if settings.private:  # only allowed and invited users (bot.access)
        dispatcher.update.outer_middleware(PrivateAccessMiddleware(settings.allowed_users, frozenset(settings.admin_ids)))
    create_middleware().setup(dispatcher)
    # ``request`` (handlers.context.RequestContext) for every handler, after user and i18n are known.
    # Outer: the filters that add context (the admin context, the job a button points at) read it too.
    request_context = RequestContextMiddleware(notifier, settings.max_image_side)
    dispatcher.message.outer_middleware(request_context)
    dispatcher.callback_query.outer_middleware(request_context)
    dispatcher.include_router(build_root_router())

    app = App(
        settings, bot, dispatcher, db, queue, runner, notifier, jobs, guard, broadcaster=broadcaster, metrics=metrics,
        positions=positions,
    )

    async def on_startup() -> None:
        await set_commands(bot)
        await show_admin_menus(bot, db, frozenset(settings.admin_ids), COMMANDS)
        await queue.start()
        # Jobs recovered from before a restart: their status messages say where they are now,
        # instead of showing the last step of the previous process.
        await refresh_queue_positions(db, notifier, estimates)
        await broadcaster.start()  # resumes a broadcast a restart interrupted
        await janitor.start()

    async def on_shutdown() -> None:
        await janitor.stop()
        await broadcaster.stop()
        await queue.stop()
        if positions is not None:
            await positions.close()
        await guard.close()
        await engine.dispose()  # the FSM storage is closed by the dispatcher itself

    dispatcher.startup.register(on_startup)
    dispatcher.shutdown.register(on_shutdown)
    return app


def position_refresher(
    settings: Settings,
    db: Database,
    notifier: TelegramNotifier,
    redis: Any | None,
    estimates: RunTimeEstimates | None = None,
    updates: UpdatesInFlight | None = None,
) -> PositionRefresher:
    """The queue-position refresher of one process (the bot or a GPU worker): coalesced, and in the
    distributed mode serialised across processes by a lock in ``redis`` (jobs.positions). A refresh
    lets the updates this process is handling be answered first (``updates``, bot/priority.py)."""

    async def refresh() -> int:
        return await refresh_queue_positions(db, notifier, estimates, updates)

    return PositionRefresher(refresh, redis, settings.redis_prefix)


async def set_commands(bot: Bot) -> None:
    t = translator()
    for locale in LOCALES:
        commands = [BotCommand(command=c, description=t(f"cmd-{c}", locale)) for c in COMMANDS]
        await bot.set_my_commands(
            commands, scope=BotCommandScopeDefault(), language_code=None if locale == "en" else locale
        )

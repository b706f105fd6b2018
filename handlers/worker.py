"""Building and running the arq worker: functions, crons, start-up and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import health_check_key_suffix
from arq.cron import cron
from arq.typing import WorkerCoroutine
from arq.worker import Function, Worker, async_check_health, func

# Importing these registers the built-in handlers in the default registry.
from handlers import builtin_status, builtin_users  # noqa: F401
from handlers import metrics as worker_metrics
from handlers.builtin_portability import DOWNLOAD_DATA, download_data_job
from handlers.builtin_posts import (
    FETCH_PUBLISH_STATUS,
    FETCH_VIDEO,
    fetch_publish_status_job,
    fetch_video_job,
)
from handlers.builtin_tokens import (
    refresh_due_tokens,
    refresh_token,
    sweep_profiles,
    update_token_health,
)
from handlers.builtin_users import fetch_profile
from handlers.context import HandlerOutcome, WorkerState
from handlers.deadletter import DeadLetterStore
from handlers.dispatch import process_event
from handlers.forwarding.dispatcher import Dispatchers
from handlers.forwarding.forwarder import Forwarder, with_forwarding
from handlers.forwarding.sender import proxy_problems
from handlers.giveup import DeadLetteringWorker
from handlers.ratelimit import RateLimiter
from handlers.registry import ANY, UNKNOWN, HandlerRegistry, registry
from receiver.ingest.jobs import (
    FETCH_PROFILE,
    PROCESS_EVENT,
    REFRESH_TOKEN,
    job_deserializer,
    job_serializer,
)
from receiver.redis_conn import ClosesSentinels, check_hostname, sentinel_primary
from receiver.settings import ConfigError, Settings
from receiver.tiktok.client import TikTokClient
from receiver.vault.crypto import TokenCipher
from receiver.vault.vault import TokenVault

logger = logging.getLogger("tiktok_webhooks.worker")

HEALTH_CHECK_INTERVAL_SECONDS: Final = 10
QUEUE_STATS_INTERVAL_SECONDS: Final = 5.0


_TLS_PARAMS: Final = ("ssl_ca_certs", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile")


def redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings from REDIS_URL, including the TLS options in its query
    (arq's own parser drops them, and the receiver honours them)."""
    url = settings.redis_url.reveal()
    rs = RedisSettings.from_dsn(url)
    rs.conn_timeout = max(1, int(settings.redis_timeout_seconds))
    query = parse_qs(urlsplit(url).query)
    for name in _TLS_PARAMS:
        if name in query:
            setattr(rs, name, query[name][-1])
    # arq leaves the host name unchecked unless told; rediss:// here checks it by default.
    rs.ssl_check_hostname = rs.ssl and check_hostname(url)
    if settings.redis_sentinels:
        rs.sentinel = True
        rs.host = settings.sentinel_addresses
        rs.sentinel_master = settings.redis_sentinel_master
    return rs


class _SentinelArqRedis(ClosesSentinels, ArqRedis):  # type: ignore[misc]
    """arq's client of the Sentinel primary; closing it closes the sentinel links too."""


def _sentinel_pool(settings: Settings) -> ArqRedis:
    # arq's own Sentinel pool never closes its connections to the sentinels.
    pool = sentinel_primary(settings, _SentinelArqRedis)
    pool.job_serializer = job_serializer
    pool.job_deserializer = job_deserializer
    pool.default_queue_name = settings.queue_name
    return pool


async def arq_pool(settings: Settings, *, retries: int | None = None) -> ArqRedis:
    """An arq client of the queue's Redis (through the sentinels, with TLS, when set);
    `retries` overrides arq's connection retries (0: fail at once)."""
    if settings.redis_sentinels:
        return _sentinel_pool(settings)
    connection = redis_settings(settings)
    if retries is not None:
        connection.conn_retries = retries
    return await create_pool(
        connection,
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        default_queue_name=settings.queue_name,
    )


def import_handler_modules(names: Sequence[str]) -> None:
    """Import the company's handler modules so their @registry.on handlers register."""
    problems = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            problems.append(f"WORKER_HANDLER_MODULES: cannot import {name!r}: {exc}")
    if problems:
        raise ConfigError(problems)


def job_functions() -> list[Function]:
    return [
        func(process_event, name=PROCESS_EVENT),
        func(fetch_profile, name=FETCH_PROFILE),
        func(refresh_token, name=REFRESH_TOKEN),
        func(fetch_publish_status_job, name=FETCH_PUBLISH_STATUS),
        func(fetch_video_job, name=FETCH_VIDEO),
        func(download_data_job, name=DOWNLOAD_DATA),
    ]


def without_disabled(base: HandlerRegistry, disabled: Sequence[str]) -> HandlerRegistry:
    """`base` minus the handlers named in WORKER_DISABLED_HANDLERS (a copy if any)."""
    if not disabled:
        return base
    unknown = sorted(set(disabled) - base.names())
    if unknown:
        raise ConfigError(
            [
                f"WORKER_DISABLED_HANDLERS: no handler named {name!r} (see docs/handlers.md)"
                for name in unknown
            ]
        )
    trimmed = base.copy()
    for name in disabled:
        trimmed.remove(name)
    return trimmed


def create_worker(
    settings: Settings,
    *,
    handler_registry: HandlerRegistry | None = None,
    burst: bool = False,
    handle_signals: bool = True,
    recorder: list[HandlerOutcome] | None = None,
    log_outcomes: bool = False,
    with_crons: bool = True,
    extra_functions: Sequence[Function | WorkerCoroutine] = (),
) -> Worker:
    """An arq Worker consuming what the receiver and the OAuth routes enqueue."""
    settings.require_worker()
    import_handler_modules(settings.worker_handler_modules)
    problems = proxy_problems([(d.name, d.url) for d in settings.forward_destinations])
    if problems:
        raise ConfigError(problems)
    every = settings.token_refresh_every_minutes
    cron_jobs = []
    if with_crons:
        cron_jobs = [
            cron(
                refresh_due_tokens,
                minute=set(range(0, 60, every)) if every < 60 else {0},
                second={0},
                run_at_startup=True,
                unique=True,
            ),
            cron(
                update_token_health, minute=set(range(0, 60, 5)), second={30}, run_at_startup=True
            ),
        ]
        sweep = settings.profile_sweep_interval_minutes
        if sweep > 0:
            cron_jobs.append(
                cron(sweep_profiles, minute=set(range(0, 60, min(sweep, 60))), second={15})
            )
    # arq's own give-up paths (too many tries, expired, undecodable) dead-letter too.
    worker = DeadLetteringWorker(
        functions=[*job_functions(), *extra_functions],
        cron_jobs=cron_jobs,
        redis_settings=redis_settings(settings),
        redis_pool=_sentinel_pool(settings) if settings.redis_sentinels else None,
        queue_name=settings.queue_name,
        burst=burst,
        poll_delay=settings.worker_poll_delay_seconds,
        max_jobs=settings.worker_max_jobs,
        # A job times out in `guarded` first (and is retried); arq's limit is the backstop.
        job_timeout=settings.worker_job_timeout_seconds + 5,
        # Our own retry logic dead-letters at WORKER_MAX_TRIES; arq's limit is only the
        # backstop for a job that kills its worker over and over.
        max_tries=settings.worker_max_tries + 3,
        keep_result=0,
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        health_check_interval=HEALTH_CHECK_INTERVAL_SECONDS,
        job_completion_wait=settings.worker_shutdown_wait_seconds,
        handle_signals=handle_signals,
        on_startup=_on_startup,
        on_shutdown=_on_shutdown,
        ctx={
            "settings": settings,
            "registry": without_disabled(
                (
                    with_forwarding(handler_registry or registry)
                    if settings.forward_destinations
                    else handler_registry or registry
                ),
                settings.worker_disabled_handlers,
            ),
            "recorder": recorder,
            "log_outcomes": log_outcomes,
            "burst": burst,
        },
    )
    return worker


async def _on_startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    arq_redis = ctx["redis"]
    cipher = TokenCipher(settings.token_encryption_keys)
    limiter = RateLimiter(arq_redis, per_minute=settings.tiktok_rate_limit_per_minute)
    clients: dict[str, TikTokClient] = {}
    vaults: dict[str, TokenVault] = {}
    for app in settings.apps:
        client = TikTokClient(settings, app=app, before_request=limiter.acquire)
        clients[app.client_key] = client
        vaults[app.client_key] = TokenVault(arq_redis, cipher, client, app.client_key)
    state = WorkerState(
        settings=settings,
        redis=arq_redis,
        registry=ctx["registry"],
        vaults=vaults,
        clients=clients,
        limiter=limiter,
        dead_letters=DeadLetterStore(
            arq_redis,
            max_entries=settings.dead_letter_max_entries,
            max_age_seconds=settings.dead_letter_max_age_seconds,
        ),
        recorder=ctx.get("recorder"),
        log_outcomes=bool(ctx.get("log_outcomes")),
        forwarder=Forwarder(settings, arq_redis),
    )
    ctx["state"] = state
    ctx["stats_task"] = asyncio.ensure_future(_queue_stats_loop(state))
    if settings.forward_destinations and state.forwarder is not None:
        dispatchers = Dispatchers(
            state.forwarder,
            poll_delay=settings.worker_poll_delay_seconds,
            main_queue=settings.queue_name,
        )
        dispatchers.start()
        ctx["forward_dispatchers"] = dispatchers


async def _on_shutdown(ctx: dict[str, Any]) -> None:
    dispatchers: Dispatchers | None = ctx.get("forward_dispatchers")
    try:
        if dispatchers is not None:
            try:
                if ctx.get("burst"):
                    await dispatchers.drain()
            finally:
                await dispatchers.stop(wait_seconds=ctx["settings"].worker_shutdown_wait_seconds)
    finally:
        task: asyncio.Task[None] | None = ctx.get("stats_task")
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        state: WorkerState | None = ctx.get("state")
        if state is not None:
            for client in state.clients.values():
                await client.aclose()
            if state.forwarder is not None:
                await state.forwarder.aclose()


async def update_queue_stats(state: WorkerState) -> None:
    redis = state.redis
    queue = state.settings.queue_name
    now_ms = time.time() * 1000
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(queue)
        pipe.zrangebyscore(queue, "-inf", now_ms, start=0, num=1, withscores=True)
        depth, oldest = await pipe.execute()
    worker_metrics.QUEUE_DEPTH.set(depth)
    worker_metrics.QUEUE_OLDEST_AGE.set(max(0.0, (now_ms - oldest[0][1]) / 1000) if oldest else 0.0)
    worker_metrics.DEAD_LETTER_SIZE.set(await state.dead_letters.size())


async def _queue_stats_loop(state: WorkerState) -> None:
    while True:
        try:
            await update_queue_stats(state)
            if state.forwarder is not None:
                await state.forwarder.update_stats()
        except Exception as exc:  # Redis hiccup: the next round will do
            logger.warning("queue stats not updated: %s", type(exc).__name__)
        await asyncio.sleep(QUEUE_STATS_INTERVAL_SECONDS)


async def check_health(settings: Settings) -> int:
    """0 when a worker on this queue reported in within the health-check interval."""
    if not settings.redis_sentinels:
        connection = redis_settings(settings)
        connection.conn_retries = 0  # a probe answers at once; the orchestrator asks again
        return await async_check_health(connection, queue_name=settings.queue_name)
    # arq's own Sentinel pool drops REDIS_URL's TLS options: read the key with ours.
    pool = await arq_pool(settings)
    try:
        return 0 if await pool.get(settings.queue_name + health_check_key_suffix) else 1
    finally:
        await pool.aclose()


def describe_handlers(handler_registry: HandlerRegistry | None = None) -> list[str]:
    """One line per module: the handlers it registered and their events (start-up log)."""
    by_module: dict[str, list[str]] = {}
    for handler, events in (handler_registry or registry).entries():
        shown = ", ".join(_event_label(e) for e in events)
        by_module.setdefault(handler.func.__module__, []).append(f"{handler.name} ({shown})")
    return [f"{module}: {'; '.join(names)}" for module, names in by_module.items()]


def _event_label(event: str) -> str:
    return {UNKNOWN: "unknown events", ANY: "every event"}.get(event, event)

"""Saying where Redis is (without its password), and watching that it answers.

The receiver keeps answering while Redis is away (503, so TikTok retries): the watch
logs the Redis it cannot reach at start-up and again every `warn_every` seconds while it
cannot, so an operator reading the log sees which URL to check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from receiver.settings import Settings

logger = logging.getLogger("tiktok_webhooks.redis")

PROBE_EVERY_SECONDS: Final = 5.0
WARN_EVERY_SECONDS: Final = 30.0


def redacted_url(url: str) -> str:
    """The URL with any password replaced by `***` (safe to print and log)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(an unparsable URL)"
    if not password:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def redis_location(settings: Settings) -> str:
    """Where the settings point the service at Redis, without the password."""
    if settings.redis_sentinels:
        return (
            f"Redis Sentinel {','.join(settings.redis_sentinels)} "
            f"(master {settings.redis_sentinel_master})"
        )
    return redacted_url(settings.redis_url.reveal())


async def watch_redis(
    redis: aioredis.Redis,
    where: str,
    stop: asyncio.Event,
    *,
    probe_every: float = PROBE_EVERY_SECONDS,
    warn_every: float = WARN_EVERY_SECONDS,
) -> None:
    """Ping until `stop` is set; log when Redis cannot be reached, and when it answers
    again. (A stop event, not only cancellation: redis-py's timeouts can swallow a
    cancellation that arrives during a command.)"""
    reachable: bool | None = None
    warned_at = 0.0
    while not stop.is_set():
        try:
            await redis.ping()
            problem = None
        except (RedisError, OSError) as exc:
            problem = type(exc).__name__
        now = time.monotonic()
        if problem is not None:
            if reachable is not False or now - warned_at >= warn_every:
                logger.warning(
                    "Redis at %s unreachable (%s): deliveries are answered 503 until it "
                    "answers; check REDIS_URL and that Redis is running",
                    where,
                    problem,
                )
                warned_at = now
            reachable = False
        else:
            if reachable is False:
                logger.info("Redis at %s answers again", where)
            reachable = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), probe_every)

"""An outbound rate limiter shared by every worker process, kept in Redis.

A sliding one-minute window per TikTok endpoint (TikTok's own limit is 600 requests per
endpoint per sliding minute), and for endpoints TikTok limits per user access token
(`PER_TOKEN_PER_MINUTE`) a window per user as well. A call takes a slot or learns how long
until the oldest slot leaves the window; Redis' clock is the only clock, so workers on
several hosts agree.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Final

import redis.asyncio as aioredis

from handlers import metrics
from receiver import keys

WINDOW_MS: Final = 60_000
# TikTok's documented per-token limits (Content Posting API reference).
PER_TOKEN_PER_MINUTE: Final[dict[str, int]] = {"publish_status": 30}
_ACQUIRE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class RateLimitWaitTooLong(Exception):
    """The budget is used up for longer than a job should sleep; run the job later."""

    def __init__(self, endpoint: str, wait_seconds: float) -> None:
        super().__init__(f"outbound budget for {endpoint} is used up for {wait_seconds:.1f}s")
        self.wait_seconds = wait_seconds


class RateLimiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        per_minute: int,
        max_sleep_seconds: float = 5.0,
        window_ms: int = WINDOW_MS,
    ) -> None:
        self._per_minute = per_minute
        self._window_ms = window_ms
        self._max_sleep = max_sleep_seconds
        self._script = redis.register_script(_ACQUIRE)

    async def acquire(self, endpoint: str) -> None:
        """Wait for a slot for `endpoint`; raise RateLimitWaitTooLong past `max_sleep`."""
        await self._take(endpoint, endpoint, self._per_minute, self._max_sleep, self._window_ms)

    async def acquire_for_token(
        self, endpoint: str, owner: str, *, max_sleep_seconds: float | None = None
    ) -> None:
        """Take a slot of the per-token window of `endpoint` for `owner` (app and user),
        if TikTok limits that endpoint per token; raise RateLimitWaitTooLong past the
        sleep limit, so the caller can run later instead of holding a worker slot."""
        limit = PER_TOKEN_PER_MINUTE.get(endpoint)
        if limit is None:
            return
        sleep = self._max_sleep if max_sleep_seconds is None else max_sleep_seconds
        await self._take(endpoint, f"{endpoint}:token:{owner}", limit, sleep, WINDOW_MS)

    async def _take(
        self, endpoint: str, key: str, per_minute: int, max_sleep: float, window_ms: int
    ) -> None:
        started: float | None = None
        while True:
            wait_ms = int(
                await self._script(
                    keys=[keys.RATE_LIMIT_PREFIX + key],
                    args=[window_ms, per_minute, secrets.token_hex(8)],
                )
            )
            if wait_ms == 0:
                if started is not None:
                    metrics.RATE_LIMITER_WAIT_SECONDS.labels(endpoint).observe(
                        time.monotonic() - started
                    )
                return
            if started is None:
                started = time.monotonic()
                metrics.RATE_LIMITER_WAITS.labels(endpoint).inc()
            waited = time.monotonic() - started
            if waited + wait_ms / 1000 > max_sleep:
                raise RateLimitWaitTooLong(endpoint, wait_ms / 1000)
            await asyncio.sleep(wait_ms / 1000)

"""An outbound rate limiter shared by every worker process, kept in Redis.

A sliding one-minute window per TikTok endpoint (TikTok's own limit is 600 requests per
endpoint per sliding minute). A call takes a slot or learns how long until the oldest
slot leaves the window; Redis' clock is the only clock, so workers on several hosts agree.
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
        started: float | None = None
        while True:
            wait_ms = int(
                await self._script(
                    keys=[keys.RATE_LIMIT_PREFIX + endpoint],
                    args=[self._window_ms, self._per_minute, secrets.token_hex(8)],
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
            if waited + wait_ms / 1000 > self._max_sleep:
                raise RateLimitWaitTooLong(endpoint, wait_ms / 1000)
            await asyncio.sleep(wait_ms / 1000)

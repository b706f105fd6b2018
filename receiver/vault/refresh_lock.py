"""A per-key Redis lock that expires on its own, for single-flight work across processes.

``SET key <random> NX PX ttl`` takes it; a Lua compare-and-delete releases it only for
the holder, so a holder whose lock already lapsed cannot free someone else's. The expiry
means a crashed holder blocks the others for at most one TTL.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Final

import redis.asyncio as aioredis

_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLock:
    def __init__(
        self, redis: aioredis.Redis, *, ttl_seconds: float, poll_seconds: float = 0.05
    ) -> None:
        self._redis = redis
        self.ttl_seconds = ttl_seconds
        self._poll = poll_seconds
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, key: str) -> str | None:
        """The holder's token if we got the lock, else None (someone else holds it)."""
        token = secrets.token_hex(16)
        acquired = await self._redis.set(key, token, nx=True, px=int(self.ttl_seconds * 1000))
        return token if acquired else None

    async def release(self, key: str, token: str) -> bool:
        """False if the lock had lapsed (and may now be someone else's)."""
        return bool(await self._release(keys=[key], args=[token]))

    async def wait_released(self, key: str, *, deadline: float) -> bool:
        """Poll until nobody holds `key`; False if `deadline` (monotonic) came first.

        Polling rather than pub/sub: a holder that crashes publishes nothing, and the
        wait is short (one TikTok round trip).
        """
        while await self._redis.exists(key):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(self._poll)
        return True

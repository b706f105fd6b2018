"""Creating the Redis client the way every process of the service needs it."""

from __future__ import annotations

import redis.asyncio as aioredis

from receiver.settings import Settings


def create_redis(settings: Settings) -> aioredis.Redis:
    """A pooled client with timeouts, so a hung Redis becomes a fast 503, not a hang."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        settings.redis_url.reveal(),
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        health_check_interval=30,
    )
    return client

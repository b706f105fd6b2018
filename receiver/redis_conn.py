"""Creating the Redis client the way every process of the service needs it."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

from receiver.settings import Settings

R = TypeVar("R", bound=aioredis.Redis)


class ClosesSentinels(aioredis.Redis):
    """A primary's client that also closes its connections to the sentinels."""

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel_manager is not None:
            for client in self.sentinel_manager.sentinels:
                await client.aclose()


def sentinel_primary(settings: Settings, redis_class: type[R]) -> R:
    """A client of the current primary of REDIS_SENTINEL_MASTER (found again after a
    failover); REDIS_URL only gives the database, user name and password."""
    timeout = settings.redis_timeout_seconds
    url = urlsplit(settings.redis_url.reveal())
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "db": int(url.path.strip("/") or 0),
    }
    if url.password:
        options["password"] = unquote(url.password)
    if url.username:
        options["username"] = unquote(url.username)
    manager = Sentinel(  # type: ignore[no-untyped-call]
        settings.sentinel_addresses, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    primary: R = manager.master_for(
        settings.redis_sentinel_master, redis_class=redis_class, **options
    )
    if isinstance(primary, ClosesSentinels):
        primary.sentinel_manager = manager
    return primary


def create_redis(settings: Settings) -> aioredis.Redis:
    """A pooled client with timeouts, so a hung Redis becomes a fast 503, not a hang."""
    if settings.redis_sentinels:
        return sentinel_primary(settings, ClosesSentinels)
    client: aioredis.Redis = aioredis.Redis.from_url(
        settings.redis_url.reveal(),
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        health_check_interval=30,
    )
    return client

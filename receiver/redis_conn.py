"""Creating the Redis client the way every process of the service needs it."""

from __future__ import annotations

from typing import Any, Final, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

from receiver.settings import Settings

R = TypeVar("R", bound=aioredis.Redis)

# The TLS options REDIS_URL may carry in its query (redis-py's names).
TLS_QUERY_OPTIONS: Final = ("ssl_ca_certs", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile")
_FALSE: Final = ("0", "false", "no", "off", "n", "f")


def _query(redis_url: str) -> dict[str, str]:
    return {name: values[-1] for name, values in parse_qs(urlsplit(redis_url).query).items()}


def check_hostname(redis_url: str) -> bool:
    """Whether a `rediss://` connection checks the server certificate's host name.

    On unless the URL says `ssl_check_hostname=false` (or turns verification off
    entirely with `ssl_cert_reqs=none`, where there is no certificate check at all);
    redis-py and arq default it to off.
    """
    query = _query(redis_url)
    if "ssl_check_hostname" in query:
        return query["ssl_check_hostname"].strip().lower() not in _FALSE
    return query.get("ssl_cert_reqs", "required").strip().lower() != "none"


def tls_options(redis_url: str) -> dict[str, Any]:
    """Keyword arguments for redis-py's connections: TLS as REDIS_URL asks ({} for redis://)."""
    if urlsplit(redis_url).scheme != "rediss":
        return {}
    query = _query(redis_url)
    options: dict[str, Any] = {"ssl": True, "ssl_check_hostname": check_hostname(redis_url)}
    for name in TLS_QUERY_OPTIONS:
        if name in query:
            options[name] = query[name]
    return options


def tls_warnings(settings: Settings) -> list[str]:
    """What an operator should hear at start-up about how Redis is reached."""
    url = settings.redis_url.reveal()
    if urlsplit(url).scheme != "rediss":
        return []
    query = _query(url)
    if query.get("ssl_cert_reqs", "").strip().lower() == "none":
        return [
            "REDIS_URL has ssl_cert_reqs=none: the Redis server's certificate is not "
            "verified; anyone on the path can read the password and the data"
        ]
    if not check_hostname(url):
        return [
            "REDIS_URL has ssl_check_hostname=false: the Redis server's certificate is "
            "not checked against its host name; remove it once the certificate names the host"
        ]
    return []


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
        # rediss:// in REDIS_URL: the primary's connections use TLS with its options.
        **tls_options(settings.redis_url.reveal()),
    }
    if url.password:
        options["password"] = unquote(url.password)
    if url.username:
        options["username"] = unquote(url.username)
    sentinel_options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }
    if settings.redis_sentinel_tls:
        sentinel_options |= tls_options(settings.redis_url.reveal())
    manager = Sentinel(  # type: ignore[no-untyped-call]
        settings.sentinel_addresses, sentinel_kwargs=sentinel_options
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
    url = settings.redis_url.reveal()
    extra: dict[str, Any] = {}
    if urlsplit(url).scheme == "rediss":
        # Options in the URL's query win over these keyword arguments.
        extra["ssl_check_hostname"] = check_hostname(url)
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        health_check_interval=30,
        **extra,
    )
    return client

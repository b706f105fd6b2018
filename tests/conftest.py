from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from receiver.testing.redis_server import RedisServer


# The private Redis comes from the project's own pytest plugin (receiver.testing.plugin).
@pytest.fixture(scope="session")
def redis_server(tiktok_redis_server: RedisServer) -> RedisServer:
    """One private redis-server for the whole session (never the machine's own)."""
    return tiktok_redis_server


@pytest.fixture
def redis_url(tiktok_redis_url: str) -> str:
    """The session server's URL, flushed before each test so tests stay independent."""
    return tiktok_redis_url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def stoppable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may stop and start again."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()

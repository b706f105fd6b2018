"""Status records live STATUS_TTL_SECONDS (a setting, part of the Redis sizing), not a
hard-coded 90 days."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from receiver.settings import ConfigError
from tests.factories import delivery, make_settings
from tests.worker_support import deliver, drain, worker_settings


async def status_ttls(client: aioredis.Redis) -> list[int]:
    return [int(await client.ttl(key)) async for key in client.scan_iter("tiktok:status:*")]


async def test_a_status_record_expires_after_status_ttl_seconds(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    settings = worker_settings(redis_url, STATUS_TTL_SECONDS="7200")
    await deliver(settings, [delivery("video.publish.completed", {"share_id": "video.9.a"})])
    await drain(settings)
    ttls = await status_ttls(redis_client)
    assert len(ttls) == 1
    assert 3600 < ttls[0] <= 7200


async def test_the_default_is_90_days(redis_url: str, redis_client: aioredis.Redis) -> None:
    settings = worker_settings(redis_url)
    assert settings.status_ttl_seconds == 90 * 24 * 3600
    await deliver(settings, [delivery("video.publish.completed", {"share_id": "video.9.b"})])
    await drain(settings)
    [ttl] = await status_ttls(redis_client)
    assert 89 * 24 * 3600 < ttl <= 90 * 24 * 3600


def test_a_status_ttl_below_an_hour_is_refused(redis_url: str) -> None:
    with pytest.raises(ConfigError, match="STATUS_TTL_SECONDS"):
        make_settings(redis_url, STATUS_TTL_SECONDS="60")

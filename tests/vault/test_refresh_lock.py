"""RedisLock: one holder at a time, only the holder releases, a dead holder's lock lapses."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from receiver.vault.refresh_lock import RedisLock


async def test_one_holder_at_a_time_and_only_the_holder_releases(
    redis_client: aioredis.Redis,
) -> None:
    lock = RedisLock(redis_client, ttl_seconds=5)
    token = await lock.acquire("k")
    assert token is not None
    assert await lock.acquire("k") is None
    assert 0 < await redis_client.pttl("k") <= 5000

    assert await lock.release("k", "someone-else") is False
    assert await redis_client.exists("k") == 1
    assert await lock.release("k", token) is True
    assert await lock.acquire("k") is not None


async def test_a_lapsed_lock_can_be_taken_and_its_old_holder_cannot_free_it(
    redis_client: aioredis.Redis,
) -> None:
    lock = RedisLock(redis_client, ttl_seconds=0.1, poll_seconds=0.01)
    old = await lock.acquire("k")
    assert old is not None
    assert await lock.wait_released("k", deadline=time.monotonic() + 2)
    new = await lock.acquire("k")
    assert new is not None
    assert await lock.release("k", old) is False
    assert await redis_client.get("k") == new.encode()


async def test_waiting_gives_up_at_the_deadline(redis_client: aioredis.Redis) -> None:
    lock = RedisLock(redis_client, ttl_seconds=10, poll_seconds=0.01)
    assert await lock.acquire("k") is not None
    started = time.monotonic()
    assert await lock.wait_released("k", deadline=started + 0.1) is False
    assert time.monotonic() - started < 1

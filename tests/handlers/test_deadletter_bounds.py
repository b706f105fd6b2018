"""The dead-letter list has a cap and a maximum age; what they drop is counted."""

from __future__ import annotations

import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from handlers.deadletter import DeadLetterStore
from receiver import keys


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("tiktok_dead_letters_dropped_total", {"reason": reason}) or 0


async def fail(store: DeadLetterStore, n: int) -> str:
    letter = await store.add(
        function="process_event",
        args=[f"body-{n}"],
        kwargs={},
        job_id=f"job-{n}",
        event="video.publish.failed",
        error=RuntimeError(f"failure {n}"),
        tries=5,
    )
    return letter.id


async def test_the_oldest_letters_beyond_the_cap_are_dropped(
    redis_client: aioredis.Redis,
) -> None:
    clock = Clock()
    store = DeadLetterStore(redis_client, max_entries=3, clock=clock)
    before = dropped("cap")
    ids = []
    for n in range(5):
        clock.now += 1
        ids.append(await fail(store, n))
    assert await store.size() == 3
    assert [letter.id for letter in await store.list()] == ids[2:]
    assert await redis_client.hlen(keys.DEAD_LETTER_HASH) == 3  # type: ignore[misc]
    assert dropped("cap") == before + 2


async def test_letters_older_than_the_maximum_age_are_dropped(
    redis_client: aioredis.Redis,
) -> None:
    clock = Clock()
    store = DeadLetterStore(redis_client, max_age_seconds=3600, clock=clock)
    before = dropped("age")
    old = await fail(store, 1)
    clock.now += 1800
    kept = await fail(store, 2)
    clock.now += 1801  # the first is now older than an hour, the second is not
    newest = await fail(store, 3)
    assert [letter.id for letter in await store.list()] == [kept, newest]
    assert await store.get(old) is None
    assert dropped("age") == before + 1

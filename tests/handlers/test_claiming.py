"""The batched claim starts each queued job once, only when due, within the worker's slots."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix
from arq.worker import func
from redis.exceptions import RedisError

from handlers.claiming import BatchClaimingWorker

QUEUE = "claiming:queue"


async def count_run(ctx: dict[str, Any], tag: str) -> None:
    await ctx["redis"].hincrby("claiming:runs", tag, 1)
    await ctx["redis"].rpush("claiming:workers", ctx["worker_name"])


def make_worker(
    redis_url: str, name: str, *, redis_pool: ArqRedis | None = None, **options: Any
) -> BatchClaimingWorker:
    defaults: dict[str, Any] = {
        "queue_name": QUEUE,
        "redis_settings": RedisSettings.from_dsn(redis_url),
        "poll_delay": 0.01,
        "handle_signals": False,
        "keep_result": 0,
        "ctx": {"worker_name": name, "redis": redis_pool},
    }
    return BatchClaimingWorker(
        [func(count_run, name="count_run")], redis_pool=redis_pool, **{**defaults, **options}
    )


async def polling_worker(redis_url: str, name: str, **options: Any) -> BatchClaimingWorker:
    """A worker whose `start_jobs` a test calls itself, as arq's poll loop would."""
    redis = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=QUEUE)
    return make_worker(redis_url, name, redis_pool=redis, **options)


@asynccontextmanager
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=QUEUE)
    try:
        yield redis
    finally:
        await redis.aclose()


async def runs(redis: ArqRedis) -> dict[str, int]:
    raw = await redis.hgetall("claiming:runs")  # type: ignore[misc]
    return {key.decode(): int(value) for key, value in raw.items()}


async def test_two_workers_start_every_job_exactly_once(redis_url: str) -> None:
    async with pool(redis_url) as redis:
        for i in range(400):
            await redis.enqueue_job("count_run", f"job-{i}")
        workers = [
            make_worker(redis_url, name, burst=True, max_jobs=7, queue_read_limit=20)
            for name in ("a", "b")
        ]
        await asyncio.gather(*(worker.main() for worker in workers))
        for worker in workers:
            await worker.close()
        counted = await runs(redis)
        assert counted == {f"job-{i}": 1 for i in range(400)}
        listed = await redis.lrange("claiming:workers", 0, -1)  # type: ignore[misc]
        by_worker = [w.decode() for w in listed]
        assert set(by_worker) == {"a", "b"}, "both workers took part"
        assert await redis.zcard(QUEUE) == 0


async def test_a_job_held_by_another_worker_is_left_alone(redis_url: str) -> None:
    async with pool(redis_url) as redis:
        job = await redis.enqueue_job("count_run", "held")
        assert job is not None
        await redis.set(in_progress_key_prefix + job.job_id, b"1", px=60_000)
        worker = await polling_worker(redis_url, "a")
        slots = worker.sem._value
        await worker.start_jobs([job.job_id.encode()])
        assert worker.tasks == {}
        assert (worker.job_counter, worker.sem._value) == (0, slots)
        assert await redis.zscore(QUEUE, job.job_id) is not None, "still queued"
        # Once the other worker lets go, this one runs it.
        await redis.delete(in_progress_key_prefix + job.job_id)
        await worker.start_jobs([job.job_id.encode()])
        await asyncio.gather(*worker.tasks.values())
        assert await runs(redis) == {"held": 1}
        await worker.close()


async def test_a_deferred_or_finished_job_is_not_started(redis_url: str) -> None:
    async with pool(redis_url) as redis:
        later = await redis.enqueue_job("count_run", "later", _defer_by=60)
        assert later is not None
        worker = await polling_worker(redis_url, "a")
        slots = worker.sem._value
        await worker.start_jobs([later.job_id.encode(), b"no-such-job"])
        assert worker.tasks == {}
        assert (worker.job_counter, worker.sem._value) == (0, slots)
        assert await redis.exists(in_progress_key_prefix + later.job_id) == 0
        assert await redis.exists(in_progress_key_prefix + "no-such-job") == 0
        await worker.close()


async def test_claimed_jobs_get_arqs_in_progress_timeout(redis_url: str) -> None:
    async with pool(redis_url) as redis:
        job = await redis.enqueue_job("count_run", "timed")
        assert job is not None
        worker = await polling_worker(redis_url, "a", job_timeout=30)
        await worker.start_jobs([job.job_id.encode()])
        ttl_ms = await redis.pttl(in_progress_key_prefix + job.job_id)
        # arq's in-progress timeout is the job timeout + 10 s.
        assert 39_000 < ttl_ms <= 40_000
        await asyncio.gather(*worker.tasks.values())
        await worker.close()


async def test_a_poll_starts_no_more_jobs_than_free_slots(redis_url: str) -> None:
    running = 0
    most = 0
    gate = asyncio.Event()

    async def wait(ctx: dict[str, Any], tag: str) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        running -= 1

    async with pool(redis_url) as redis:
        ids = []
        for i in range(6):
            job = await redis.enqueue_job("wait", f"w{i}")
            assert job is not None
            ids.append(job.job_id.encode())
        worker = BatchClaimingWorker(
            [func(wait, name="wait")],
            queue_name=QUEUE,
            redis_pool=await create_pool(RedisSettings.from_dsn(redis_url)),
            handle_signals=False,
            keep_result=0,
            max_jobs=2,
        )
        # As arq's own loop: the poll takes what the free slots allow and leaves the
        # rest queued, unclaimed, for the next poll.
        await asyncio.wait_for(worker.start_jobs(ids), 10)
        assert len(worker.tasks) == 2
        claimed = [await redis.exists(in_progress_key_prefix + i.decode()) for i in ids]
        assert sum(claimed) == 2
        gate.set()
        polls = 1
        while await redis.zcard(QUEUE):
            await asyncio.gather(*worker.tasks.values())
            worker.tasks.clear()
            left = await redis.zrange(QUEUE, 0, -1)
            await asyncio.wait_for(worker.start_jobs(left), 10)
            polls += 1
            assert polls < 10
        await asyncio.gather(*worker.tasks.values())
        assert worker.jobs_complete == 6
        assert most <= 2
        await worker.close()


async def test_a_failed_claim_gives_its_slots_back() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    unreachable = ArqRedis(host="127.0.0.1", port=port)
    worker = BatchClaimingWorker(
        [func(count_run, name="count_run")],
        queue_name=QUEUE,
        redis_pool=unreachable,
        handle_signals=False,
        max_jobs=5,
    )
    slots = worker.sem._value
    try:
        with pytest.raises((RedisError, OSError)):
            await worker.start_jobs([b"a", b"b", b"c"])
        assert (worker.job_counter, worker.sem._value) == (0, slots)
        assert worker.tasks == {}
    finally:
        await unreachable.aclose()

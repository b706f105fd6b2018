"""Group commits: every caller gets its own result, or the call's exception."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from handlers.forwarding.batching import Batcher


async def test_calls_queued_together_share_one_run() -> None:
    runs: list[list[int]] = []

    async def run(items: Sequence[int]) -> list[int]:
        runs.append(list(items))
        return [item * 10 for item in items]

    batcher: Batcher[int, int] = Batcher(run, max_batch=3, linger=0.01)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert runs == [[0, 1, 2], [3, 4]]  # full batches go at once, the rest after the linger


async def test_a_failed_run_fails_each_of_its_callers() -> None:
    async def run(items: Sequence[int]) -> list[int]:
        raise ConnectionError("redis went away")

    batcher: Batcher[int, int] = Batcher(run, max_batch=10)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(3)), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError] * 3


async def test_a_short_answer_fails_the_callers_instead_of_leaving_them_waiting() -> None:
    async def run(items: Sequence[int]) -> list[int]:
        return [1]

    batcher: Batcher[int, int] = Batcher(run, max_batch=10)
    with pytest.raises(RuntimeError, match="1 results for 2 calls"):
        await asyncio.wait_for(asyncio.gather(batcher.submit(1), batcher.submit(2)), 5)


async def test_aclose_sends_what_is_queued() -> None:
    seen: list[int] = []

    async def run(items: Sequence[int]) -> list[str]:
        seen.extend(items)
        return ["written"] * len(items)

    batcher: Batcher[int, str] = Batcher(run, max_batch=10, linger=60)
    waiting = asyncio.ensure_future(batcher.submit(7))
    await asyncio.sleep(0)
    await batcher.aclose()
    assert seen == [7]
    assert await waiting == "written"

"""Durable, deduplicated enqueue of verified deliveries, batched per event-loop turn.

Each delivery is one Lua call that, atomically, sets the dedupe key (NX, with a TTL
of at least TikTok's 72 h retry horizon) and only if that was new writes the arq job
and adds it to the queue. Calls from requests that arrive together are sent in one
pipeline: one Redis round trip per batch instead of several per request, which is
what lets one process keep up with TikTok's bursts.

`enqueue` returns only once Redis confirmed the write; any Redis failure raises
`QueueUnavailable` and nothing was written, so the caller answers 503 and TikTok's
retry goes through later.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from receiver import keys, metrics
from receiver.jobs import PROCESS_EVENT, encode_job

logger = logging.getLogger("tiktok_webhooks.enqueue")

ENQUEUE_SCRIPT: Final = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('PSETEX', KEYS[2], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
  return 1
end
return 0
"""
_SCRIPT_SHA: Final = hashlib.sha1(ENQUEUE_SCRIPT.encode(), usedforsecurity=False).hexdigest()


class QueueUnavailable(Exception):
    """Redis did not confirm the write; the delivery was not accepted."""


Call = tuple[Any, ...]


class EventQueue:
    """Writes deliveries as arq jobs; coalesces concurrent calls into one pipeline."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        queue_name: str,
        dedupe_ttl_seconds: int,
        job_expires_seconds: int,
        function: str = PROCESS_EVENT,
    ) -> None:
        self._redis = redis
        self._queue_name = queue_name
        self._dedupe_ttl = dedupe_ttl_seconds
        self._job_expires_ms = job_expires_seconds * 1000
        self._function = function
        self._pending: list[tuple[Call, asyncio.Future[bool]]] = []
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def load_script(self) -> None:
        """Load the Lua script ahead of the first request (best effort)."""
        try:
            await self._redis.script_load(ENQUEUE_SCRIPT)
        except (RedisError, OSError) as exc:
            logger.warning("could not load the enqueue script yet: %s", type(exc).__name__)

    async def enqueue(self, dedupe_key: str, body: bytes) -> bool:
        """Enqueue one delivery; True if new, False if it was a duplicate."""
        now_ms = int(time.time() * 1000)
        job = encode_job(self._function, (body,), {}, enqueue_time_ms=now_ms)
        call: Call = (
            _SCRIPT_SHA,
            3,
            keys.DEDUPE_PREFIX + dedupe_key,
            keys.ARQ_JOB_PREFIX + dedupe_key,
            self._queue_name,
            self._dedupe_ttl,
            self._job_expires_ms,
            job,
            now_ms,
            dedupe_key,
        )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._pending.append((call, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # Runs after every request that is already runnable had its turn, so
            # requests that arrived together share one round trip.
            loop.call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        task = asyncio.ensure_future(self._flush(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[tuple[Call, asyncio.Future[bool]]]) -> None:
        metrics.ENQUEUE_BATCH_SIZE.observe(len(batch))
        try:
            results = await self._execute([call for call, _ in batch])
        except (RedisError, OSError, TimeoutError) as exc:
            error = QueueUnavailable(f"Redis did not confirm the write ({type(exc).__name__})")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the request went away; the write stands either way
                continue
            if isinstance(result, BaseException):
                future.set_exception(QueueUnavailable(f"Redis refused the write: {result}"))
            else:
                future.set_result(result == 1)

    async def _execute(self, calls: list[Call]) -> list[Any]:
        results = await self._pipeline(calls)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            # Redis restarted or its script cache was flushed: those calls did not run.
            await self._redis.script_load(ENQUEUE_SCRIPT)
            retried = await self._pipeline([calls[i] for i in missing])
            for index, result in zip(missing, retried, strict=True):
                results[index] = result
        return results

    async def _pipeline(self, calls: list[Call]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.execute_command("EVALSHA", *call)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    async def aclose(self) -> None:
        """Send what is pending and wait for it, so shutdown drops no confirmed write."""
        self._start_flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

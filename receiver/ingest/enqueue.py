"""Durable, deduplicated enqueue of verified deliveries, batched per event-loop turn.

Deliveries that arrive together are written by one Lua script call: for each one it
sets the dedupe key (NX, with a TTL of at least TikTok's 72 h retry horizon) and only
if that was new writes the arq job and adds it to the queue. One Redis round trip per
batch instead of several per request is what lets one process keep up with TikTok's
bursts; the command is packed here directly, as redis-py's generic packing costs more
than the rest of the request.

`enqueue` returns only once Redis confirmed the write; any Redis failure, or no
confirmation within REDIS_TIMEOUT_SECONDS (connecting included), raises
`QueueUnavailable`, and the caller answers 503 so TikTok's retry goes through later.
A batch that failed half-way can have written some of its events: their retries are
then answered "duplicate" (acknowledged, and enqueued exactly once).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from receiver import keys, metrics
from receiver.ingest.jobs import PROCESS_EVENT, encode_job

logger = logging.getLogger("tiktok_webhooks.enqueue")

# KEYS[1] queue; then per event KEYS[2i] dedupe key, KEYS[2i+1] job key.
# ARGV[1] dedupe TTL (s), ARGV[2] job TTL (ms), ARGV[3] score (ms); then per event
# ARGV[2+2i] job id, ARGV[3+2i] job payload.
ENQUEUE_SCRIPT: Final = """
local out = {}
for i = 1, (#KEYS - 1) / 2 do
  if redis.call('SET', KEYS[2 * i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('SET', KEYS[2 * i + 1], ARGV[3 + 2 * i], 'PX', ARGV[2])
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2 + 2 * i])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""
SCRIPT_SHA: Final = hashlib.sha1(ENQUEUE_SCRIPT.encode(), usedforsecurity=False).hexdigest()
# Keeps one script call short, so Redis never blocks other clients for long.
MAX_EVENTS_PER_CALL: Final = 256
_DRAIN_ABOVE: Final = 256 * 1024


class QueueUnavailable(Exception):
    """Redis did not confirm the write; the delivery was not accepted."""


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class EventQueue:
    """Writes deliveries as arq jobs; coalesces concurrent calls into one script call."""

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
        self._pool = redis.connection_pool
        self._idle: list[Any] = []
        self._timeout = redis.connection_pool.connection_kwargs.get("socket_timeout") or 5.0
        self._function = function
        self._queue_key = _bulk(queue_name.encode())
        self._fixed_args = _bulk(str(dedupe_ttl_seconds).encode()) + _bulk(
            str(job_expires_seconds * 1000).encode()
        )
        self._pending: list[tuple[bytes, bytes, asyncio.Future[bool]]] = []
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
        job = encode_job(self._function, (body,), {}, enqueue_time_ms=int(time.time() * 1000))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._pending.append((dedupe_key.encode(), job, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # Runs after every request that is already runnable had its turn, so
            # requests that arrived together share one round trip.
            loop.call_soon(self._start_flush)
        # The whole wait is bounded, not each step: getting a connection (redis-py makes
        # new ones one at a time under its pool lock), loading the script, a second try.
        # A write that lands after the bound is answered "duplicate" on TikTok's retry.
        try:
            async with asyncio.timeout(self._timeout):
                return await future
        except TimeoutError:
            raise QueueUnavailable("Redis did not confirm the write in time") from None

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        for start in range(0, len(batch), MAX_EVENTS_PER_CALL):
            task = asyncio.ensure_future(self._flush(batch[start : start + MAX_EVENTS_PER_CALL]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[tuple[bytes, bytes, asyncio.Future[bool]]]) -> None:
        metrics.ENQUEUE_BATCH_SIZE.observe(len(batch))
        try:
            async with asyncio.timeout(self._timeout):
                results = await self._call(self._pack(batch))
        except Exception as exc:
            if not isinstance(exc, RedisError | OSError | TimeoutError):
                logger.exception("unexpected error while writing to Redis")
            error = QueueUnavailable(f"Redis did not confirm the write ({type(exc).__name__})")
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        if not isinstance(results, list) or len(results) != len(batch):
            error = QueueUnavailable("unexpected reply from Redis")
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if not future.done():  # a request that went away: its write stands
                future.set_result(result == 1)

    def _pack(self, batch: list[tuple[bytes, bytes, asyncio.Future[bool]]]) -> bytes:
        count = len(batch)
        numkeys = 1 + 2 * count
        parts = [
            b"*%d\r\n$7\r\nEVALSHA\r\n" % (3 + numkeys + 3 + 2 * count),
            _bulk(SCRIPT_SHA.encode()),
            _bulk(str(numkeys).encode()),
            self._queue_key,
        ]
        dedupe_prefix, job_prefix = keys.DEDUPE_PREFIX.encode(), keys.ARQ_JOB_PREFIX.encode()
        for key, _, _ in batch:
            parts.append(_bulk(dedupe_prefix + key))
            parts.append(_bulk(job_prefix + key))
        parts.append(self._fixed_args)
        parts.append(_bulk(str(int(time.time() * 1000)).encode()))
        for key, job, _ in batch:
            parts.append(_bulk(key))
            parts.append(_bulk(job))
        return b"".join(parts)

    async def _call(self, command: bytes) -> Any:
        try:
            return await self._roundtrip(command)
        except NoScriptError:
            # Redis restarted or its script cache was flushed: nothing ran; load, redo.
            await self._redis.script_load(ENQUEUE_SCRIPT)
            return await self._roundtrip(command)
        except RedisConnectionError:
            # A pooled connection that died with a Redis restart fails once; a write
            # that did reach Redis is answered "duplicate" on the second try, not lost.
            return await self._roundtrip(command)

    async def _roundtrip(self, command: bytes) -> Any:
        # Connections are kept here between batches instead of going back to the pool:
        # the pool's checks on every checkout, and redis-py's per-call timeout wrappers,
        # each cost an event-loop turn, which under load is a millisecond per batch.
        connection = self._idle.pop() if self._idle else await self._pool.get_connection()
        try:
            async with asyncio.timeout(self._timeout):
                writer = connection._writer
                if writer is None:
                    await connection.connect()
                    writer = connection._writer
                assert writer is not None
                writer.write(command)
                if writer.transport.get_write_buffer_size() > _DRAIN_ABOVE:
                    await writer.drain()
                reply = await connection._parser.read_response()
        except BaseException as exc:
            await connection.disconnect(nowait=True)
            await self._pool.release(connection)
            if isinstance(exc, TimeoutError):
                raise RedisTimeoutError("Redis did not answer in time") from None
            if isinstance(exc, OSError):
                raise RedisConnectionError(f"lost the connection to Redis: {exc}") from None
            raise
        if isinstance(reply, ResponseError):
            # E.g. READONLY from a primary demoted by a failover: start afresh next time.
            await connection.disconnect(nowait=True)
            await self._pool.release(connection)
            raise reply
        self._idle.append(connection)
        return reply

    async def aclose(self) -> None:
        """Send what is pending and wait for it, so shutdown drops no confirmed write."""
        self._start_flush()
        waited: set[asyncio.Task[None]] = set()
        while pending := self._tasks - waited:
            await asyncio.gather(*pending, return_exceptions=True)
            waited |= pending
        while self._idle:
            await self._pool.release(self._idle.pop())

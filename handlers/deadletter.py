"""The dead-letter list: jobs that failed for good, kept with why, until replayed or dropped.

A record holds the job's function and arguments (for events: the original body, which
TikTok signed and sent — no tokens), the error class and message, and the try count.

The list is bounded: every addition also drops letters older than `max_age_seconds` and
the oldest beyond `max_entries` (DEAD_LETTER_MAX_AGE_SECONDS, DEAD_LETTER_MAX_ENTRIES),
counted in `tiktok_dead_letters_dropped_total{reason}`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, cast

import msgspec
import redis.asyncio as aioredis
from arq.connections import ArqRedis

from handlers import metrics
from receiver import keys

_MAX_MESSAGE: Final = 500

# Add a letter, then drop what is too old and the oldest beyond the cap, in one step.
# Returns {dropped for age, dropped for the cap}.
_ADD_BOUNDED: Final = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local aged = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
for _, id in ipairs(aged) do redis.call('HDEL', KEYS[1], id) end
if #aged > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4]) end
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
local capped = {}
if extra > 0 then
  capped = redis.call('ZRANGE', KEYS[2], 0, extra - 1)
  for _, id in ipairs(capped) do redis.call('HDEL', KEYS[1], id) end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1)
end
return {#aged, #capped}
"""


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    function: str
    args: list[Any]
    kwargs: dict[str, Any]
    job_id: str | None
    event: str
    error_type: str
    error_message: str
    tries: int
    failed_at: float


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(DeadLetter)


class DeadLetterStore:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_entries: int = 10_000,
        max_age_seconds: float = 30 * 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self.max_entries = max_entries
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._add = redis.register_script(_ADD_BOUNDED)

    async def add(
        self,
        *,
        function: str,
        args: list[Any],
        kwargs: dict[str, Any],
        job_id: str | None,
        event: str,
        error: BaseException,
        tries: int,
    ) -> DeadLetter:
        now = self._clock()
        letter = DeadLetter(
            id=f"{int(now)}-{secrets.token_hex(4)}",
            function=function,
            args=list(args),
            kwargs=dict(kwargs),
            job_id=job_id,
            event=event,
            error_type=type(error).__qualname__,
            error_message=str(error)[:_MAX_MESSAGE],
            tries=tries,
            failed_at=now,
        )
        aged, capped = await self._add(
            keys=[keys.DEAD_LETTER_HASH, keys.DEAD_LETTER_INDEX],
            args=[
                letter.id,
                _encoder.encode(letter),
                repr(letter.failed_at),
                repr(now - self.max_age_seconds),
                self.max_entries,
            ],
        )
        if aged:
            metrics.DEAD_LETTERS_DROPPED.labels("age").inc(aged)
        if capped:
            metrics.DEAD_LETTERS_DROPPED.labels("cap").inc(capped)
        return letter

    async def size(self) -> int:
        return int(await self._redis.zcard(keys.DEAD_LETTER_INDEX))

    async def list(self, limit: int = 100) -> list[DeadLetter]:
        ids = await self._redis.zrange(keys.DEAD_LETTER_INDEX, 0, limit - 1)
        if not ids:
            return []
        raws = await cast(
            Awaitable[list[bytes | None]], self._redis.hmget(keys.DEAD_LETTER_HASH, ids)
        )
        return [_decoder.decode(raw) for raw in raws if raw is not None]

    async def get(self, letter_id: str) -> DeadLetter | None:
        raw = await cast(
            Awaitable[bytes | None], self._redis.hget(keys.DEAD_LETTER_HASH, letter_id)
        )
        return None if raw is None else _decoder.decode(raw)

    async def drop(self, letter_id: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.DEAD_LETTER_HASH, letter_id)
            pipe.zrem(keys.DEAD_LETTER_INDEX, letter_id)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def replay(self, letter_id: str, arq: ArqRedis, *, queue_name: str) -> str | None:
        """Put the job back on the queue with a fresh try count; returns the new job id."""
        letter = await self.get(letter_id)
        if letter is None:
            return None
        job_id = f"replay-{letter.id}-{secrets.token_hex(3)}"
        job = await arq.enqueue_job(
            letter.function, *letter.args, _job_id=job_id, _queue_name=queue_name, **letter.kwargs
        )
        if job is None:  # pragma: no cover - ids are random
            return None
        await self.drop(letter_id)
        return job_id

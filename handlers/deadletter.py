"""The dead-letter list: jobs that failed for good, kept with why, until replayed or dropped.

A record holds the job's function and arguments (for events: the original body, which
TikTok signed and sent — no tokens), the error class and message, and the try count.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable
from typing import Any, Final, cast

import msgspec
import redis.asyncio as aioredis
from arq.connections import ArqRedis

from receiver import keys

_MAX_MESSAGE: Final = 500


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
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

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
        letter = DeadLetter(
            id=f"{int(time.time())}-{secrets.token_hex(4)}",
            function=function,
            args=list(args),
            kwargs=dict(kwargs),
            job_id=job_id,
            event=event,
            error_type=type(error).__qualname__,
            error_message=str(error)[:_MAX_MESSAGE],
            tries=tries,
            failed_at=time.time(),
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.DEAD_LETTER_HASH, mapping={letter.id: _encoder.encode(letter)})
            pipe.zadd(keys.DEAD_LETTER_INDEX, {letter.id: letter.failed_at})
            await pipe.execute()
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

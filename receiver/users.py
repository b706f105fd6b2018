"""A connected user's data besides tokens: profile snapshots, connection and removal marks.

Shared by the OAuth routes (connect), the internal API (read) and the worker (fetch,
purge). Writes that add user data are conditional on the user still being connected,
so a job that finishes after `authorization.removed` cannot bring data back.
"""

from __future__ import annotations

import time
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from arq.connections import ArqRedis

from receiver import keys
from receiver.ingest.jobs import FETCH_PROFILE

REMOVAL_MARK_TTL_SECONDS: Final = 30 * 24 * 3600


class Profile(msgspec.Struct, frozen=True):
    """The user-info fields TikTok returned, and when."""

    fields: dict[str, Any]
    fetched_at: float


class Removal(msgspec.Struct, frozen=True):
    reason: int | str | None
    event_time: int
    removed_at: float


class Connection(msgspec.Struct, frozen=True):
    connected_at: float


_profile_decoder: Final = msgspec.json.Decoder(Profile)
_removal_decoder: Final = msgspec.json.Decoder(Removal)

# Write the profile only while the user's token record exists.
_SAVE_IF_CONNECTED: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
return 1
"""


def _name(client_key: str, open_id: str) -> str:
    return f"{client_key}:{open_id}"


async def save_profile(
    redis: aioredis.Redis, client_key: str, open_id: str, fields: dict[str, Any]
) -> Profile | None:
    """Store a snapshot; None (nothing written) if the user is no longer connected."""
    name = _name(client_key, open_id)
    profile = Profile(fields=fields, fetched_at=time.time())
    script = redis.register_script(_SAVE_IF_CONNECTED)
    written = await script(
        keys=[keys.TOKEN_PREFIX + name, keys.PROFILE_PREFIX + name],
        args=[msgspec.json.encode(profile)],
    )
    return profile if written == 1 else None


async def get_profile(redis: aioredis.Redis, client_key: str, open_id: str) -> Profile | None:
    raw = await redis.get(keys.PROFILE_PREFIX + _name(client_key, open_id))
    return None if raw is None else _profile_decoder.decode(raw)


async def record_connected(redis: aioredis.Redis, client_key: str, open_id: str) -> None:
    """Called after a successful OAuth connect: a removal sent before now is stale."""
    name = _name(client_key, open_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.CONNECTED_PREFIX + name, msgspec.json.encode(Connection(time.time())))
        pipe.delete(keys.REMOVED_PREFIX + name)
        await pipe.execute()


async def connected_at(redis: aioredis.Redis, client_key: str, open_id: str) -> float | None:
    raw = await redis.get(keys.CONNECTED_PREFIX + _name(client_key, open_id))
    return None if raw is None else msgspec.json.decode(raw, type=Connection).connected_at


async def record_removal(
    redis: aioredis.Redis,
    client_key: str,
    open_id: str,
    *,
    reason: int | str | None,
    event_time: int,
) -> Removal:
    name = _name(client_key, open_id)
    removal = Removal(reason=reason, event_time=event_time, removed_at=time.time())
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(
            keys.REMOVED_PREFIX + name, msgspec.json.encode(removal), ex=REMOVAL_MARK_TTL_SECONDS
        )
        pipe.delete(keys.CONNECTED_PREFIX + name)
        await pipe.execute()
    return removal


async def get_removal(redis: aioredis.Redis, client_key: str, open_id: str) -> Removal | None:
    raw = await redis.get(keys.REMOVED_PREFIX + _name(client_key, open_id))
    return None if raw is None else _removal_decoder.decode(raw)


async def take_debounce(redis: aioredis.Redis, client_key: str, open_id: str, seconds: int) -> bool:
    """True at most once per `seconds` per user (always True when `seconds` is 0)."""
    if seconds <= 0:
        return True
    fresh = await redis.set(
        keys.PROFILE_DEBOUNCE_PREFIX + _name(client_key, open_id), b"1", nx=True, ex=seconds
    )
    return bool(fresh)


async def enqueue_profile_fetch(
    redis: ArqRedis,
    client_key: str,
    open_id: str,
    *,
    reason: str,
    queue_name: str,
    debounce_seconds: int = 0,
) -> bool:
    """Ask the worker to re-fetch the profile; at most once per `debounce_seconds`."""
    name = _name(client_key, open_id)
    if not await take_debounce(redis, client_key, open_id, debounce_seconds):
        return False
    job = await redis.enqueue_job(
        FETCH_PROFILE,
        client_key,
        open_id,
        reason,
        _job_id=f"profile:{name}:{time.time_ns()}",
        _queue_name=queue_name,
    )
    return job is not None

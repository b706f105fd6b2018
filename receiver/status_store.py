"""Latest status of the things TikTok reports on: shares, publishes, data downloads.

The worker writes one record per share_id / publish_id / request_id; the company's
backend reads it through the internal API or `tiktok-webhooks status`. Deliveries can
arrive out of order (retries), so a record is only replaced by an event at least as new.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Final, Literal, cast

import msgspec
import redis.asyncio as aioredis

from receiver import keys

Kind = Literal["share", "publish", "portability"]
KINDS: Final[tuple[Kind, ...]] = ("share", "publish", "portability")
STATUS_TTL_SECONDS: Final = 90 * 24 * 3600

# From the Content Posting API reference: which failure reasons are worth retrying.
RETRYABLE_REASONS: Final = frozenset({"internal"})
NOT_RETRYABLE_REASONS: Final = frozenset(
    {
        "auth_removed",
        "spam_risk_user_banned_from_posting",
        "spam_risk_text",
        "spam_risk",
        "file_format_check_failed",
        "duration_check_failed",
        "frame_rate_check_failed",
        "picture_size_check_failed",
        "publish_cancelled",
    }
)


def is_retryable(reason: str | None) -> bool | None:
    """True/False where TikTok's docs say so; None for reasons they leave open."""
    if reason in RETRYABLE_REASONS:
        return True
    if reason in NOT_RETRYABLE_REASONS:
        return False
    return None


class StatusRecord(msgspec.Struct, frozen=True, kw_only=True):
    kind: Kind
    id: str
    status: str
    event: str
    create_time: int
    client_key: str
    user_openid: str | None = None
    reason: str | None = None
    retryable: bool | None = None
    post_id: str | None = None
    publish_type: str | None = None
    updated_at: float = 0.0


_decoder: Final = msgspec.json.Decoder(StatusRecord)
# Replace only if the stored record is not newer (by TikTok's create_time).
_SAVE_IF_NEWER: Final = """
local stored = redis.call('HGET', KEYS[1], 'create_time')
if stored and tonumber(stored) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'create_time', ARGV[1], 'record', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


def status_key(kind: Kind, object_id: str) -> str:
    return f"{keys.STATUS_PREFIX}{kind}:{object_id}"


async def save_status(
    redis: aioredis.Redis, record: StatusRecord, *, ttl_seconds: int = STATUS_TTL_SECONDS
) -> bool:
    """Store `record` unless a newer one is there; True if written. Kept `ttl_seconds`
    (STATUS_TTL_SECONDS) after its latest update."""
    record = msgspec.structs.replace(record, updated_at=time.time())
    script = redis.register_script(_SAVE_IF_NEWER)
    written = await script(
        keys=[status_key(record.kind, record.id)],
        args=[record.create_time, msgspec.json.encode(record), ttl_seconds],
    )
    return bool(written)


async def get_status(redis: aioredis.Redis, kind: Kind, object_id: str) -> StatusRecord | None:
    raw = await cast(Awaitable[bytes | None], redis.hget(status_key(kind, object_id), "record"))
    return None if raw is None else _decoder.decode(raw)

"""Latest status of the things TikTok reports on: shares, publishes, data downloads.

The worker writes one record per app and share_id / publish_id / request_id (ids are
only unique within an app); the company's backend reads it through the internal API or
`tiktok-webhooks status`. Deliveries can arrive out of order (retries), so a record is
only replaced by an event at least as new.
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

# From the Content Posting API reference: which failure reasons are worth retrying
# (the pull failures when the URL is known to be good; too_many_posts after a while).
RETRYABLE_REASONS: Final = frozenset(
    {"internal", "video_pull_failed", "photo_pull_failed", "spam_risk_too_many_posts"}
)
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
        "app_version_check_failed",
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


def status_key(kind: Kind, client_key: str, object_id: str) -> str:
    return f"{keys.STATUS_PREFIX}{kind}:{client_key}:{object_id}"


def _legacy_status_key(kind: Kind, object_id: str) -> str:
    """Where records were kept before they were keyed by app as well (read only)."""
    return f"{keys.STATUS_PREFIX}{kind}:{object_id}"


async def save_status(
    redis: aioredis.Redis, record: StatusRecord, *, ttl_seconds: int = STATUS_TTL_SECONDS
) -> bool:
    """Store `record` unless a newer one is there; True if written. Kept `ttl_seconds`
    (STATUS_TTL_SECONDS) after its latest update."""
    record = msgspec.structs.replace(record, updated_at=time.time())
    script = redis.register_script(_SAVE_IF_NEWER)
    written = await script(
        keys=[status_key(record.kind, record.client_key, record.id)],
        args=[record.create_time, msgspec.json.encode(record), ttl_seconds],
    )
    return bool(written)


async def get_status(
    redis: aioredis.Redis, kind: Kind, client_key: str, object_id: str
) -> StatusRecord | None:
    """The latest record of `object_id` of the app `client_key`, or None."""
    raw = await cast(
        Awaitable[bytes | None], redis.hget(status_key(kind, client_key, object_id), "record")
    )
    if raw is not None:
        return _decoder.decode(raw)
    legacy = await cast(
        Awaitable[bytes | None], redis.hget(_legacy_status_key(kind, object_id), "record")
    )
    if legacy is None:
        return None
    record = _decoder.decode(legacy)
    return record if record.client_key == client_key else None

"""What the built-in handlers fetched from TikTok after an event, per app and id.

- the latest `status/fetch` answer of each publish (`PublishFetch`);
- the details of each public video, and whether it is public (`VideoRecord`);
- each data request this service started, and its archive on disk (`DataRequest`).

The worker writes, the internal API, the CLI and other handlers (e.g. a forwarder) read
through the functions here. Ids are decimal strings throughout, never floats.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, Final, cast

import msgspec
import redis.asyncio as aioredis

from receiver import keys
from receiver.status_store import get_status

RECORD_TTL_SECONDS: Final = 90 * 24 * 3600
MAX_LISTED: Final = 1000


class PublishFetch(msgspec.Struct, frozen=True, kw_only=True):
    """The latest answer of `/v2/post/publish/status/fetch/` for one publish.

    `state`: fetched, not_permitted (no video.upload/video.publish scope), not_connected
    (no token for the user), or rejected (TikTok refused the publish_id).
    """

    client_key: str
    publish_id: str
    open_id: str | None
    state: str
    status: str | None = None
    fail_reason: str | None = None
    retryable: bool | None = None
    post_ids: list[str] = []
    uploaded_bytes: int | None = None
    downloaded_bytes: int | None = None
    error: str | None = None
    fetched_at: float = 0.0


class VideoRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A post the user made public, and what `/v2/video/query/` said about it.

    `public` follows the publicly_available / no_longer_publicaly_available events (the
    newest event wins). `visible` is False when TikTok's last answer had no such video:
    `details` then keeps what an earlier answer said, never zero counts.
    """

    client_key: str
    post_id: str
    open_id: str | None = None
    publish_id: str | None = None
    public: bool | None = None
    public_since: int | None = None
    state: str = "pending"
    visible: bool | None = None
    details: dict[str, Any] | None = None
    fetched_at: float | None = None


class DataRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A Data Portability request this service started, and where its archive went.

    `status`: requested, then TikTok's pending / downloading, then downloaded (path, size
    and sha256 set), expired or cancelled; too_large or failed when it cannot be kept.
    """

    client_key: str
    request_id: str
    open_id: str
    categories: list[str]
    data_format: str
    status: str
    requested_at: float
    updated_at: float = 0.0
    apply_time: int | None = None
    collect_time: int | None = None
    path: str | None = None
    size: int | None = None
    sha256: str | None = None
    error: str | None = None


_publish_decoder: Final = msgspec.json.Decoder(PublishFetch)
_request_decoder: Final = msgspec.json.Decoder(DataRequest)
_details_decoder: Final = msgspec.json.Decoder(dict[str, Any])

# The newest publicly_available / no_longer_publicaly_available event sets `public`.
_SET_PUBLIC: Final = """
local stored = redis.call('HGET', KEYS[1], 'public_since')
if stored and tonumber(stored) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'public_since', ARGV[1], 'public', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


def publish_key(client_key: str, publish_id: str) -> str:
    return f"{keys.FETCHED_PUBLISH_PREFIX}{client_key}:{publish_id}"


def video_key(client_key: str, post_id: str) -> str:
    return f"{keys.VIDEO_PREFIX}{client_key}:{post_id}"


def _user_videos_key(client_key: str, open_id: str) -> str:
    return f"{keys.USER_VIDEOS_PREFIX}{client_key}:{open_id}"


def _request_key(client_key: str, request_id: str) -> str:
    return f"{keys.DATA_REQUEST_PREFIX}{client_key}:{request_id}"


def _user_requests_key(client_key: str, open_id: str) -> str:
    return f"{keys.USER_DATA_REQUESTS_PREFIX}{client_key}:{open_id}"


# -- publishes -------------------------------------------------------------------------


async def save_publish_fetch(redis: aioredis.Redis, fetch: PublishFetch) -> None:
    fetch = msgspec.structs.replace(fetch, fetched_at=time.time())
    await redis.set(
        publish_key(fetch.client_key, fetch.publish_id),
        msgspec.json.encode(fetch),
        ex=RECORD_TTL_SECONDS,
    )


async def get_publish_fetch(
    redis: aioredis.Redis, client_key: str, publish_id: str
) -> PublishFetch | None:
    raw = await redis.get(publish_key(client_key, publish_id))
    return None if raw is None else _publish_decoder.decode(raw)


async def publish_view(
    redis: aioredis.Redis, client_key: str, publish_id: str
) -> dict[str, Any] | None:
    """What the internal API and `status publish` show of a publish: the status its latest
    event carried and the latest status fetched from TikTok; None when neither exists."""
    event = await get_status(redis, "publish", client_key, publish_id)
    fetch = await get_publish_fetch(redis, client_key, publish_id)
    if event is None and fetch is None:
        return None
    return {"client_key": client_key, "publish_id": publish_id, "event": event, "fetched": fetch}


# -- videos ----------------------------------------------------------------------------


async def note_video(
    redis: aioredis.Redis,
    client_key: str,
    post_id: str,
    *,
    open_id: str | None,
    publish_id: str | None,
    public: bool | None = None,
    event_time: int | None = None,
) -> None:
    """Remember a post (and who made it); with `public`, its visibility as of `event_time`."""
    key = video_key(client_key, post_id)
    mapping = {"post_id": post_id}
    if open_id:
        mapping["open_id"] = open_id
    if publish_id:
        mapping["publish_id"] = publish_id
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, RECORD_TTL_SECONDS)
        if open_id:
            index = _user_videos_key(client_key, open_id)
            pipe.zadd(index, {post_id: time.time()}, nx=True)
            pipe.expire(index, RECORD_TTL_SECONDS)
        await pipe.execute()
    if public is not None:
        script = redis.register_script(_SET_PUBLIC)
        await script(keys=[key], args=[event_time or 0, "1" if public else "0", RECORD_TTL_SECONDS])


async def save_video_details(
    redis: aioredis.Redis,
    client_key: str,
    post_id: str,
    *,
    state: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Record a query's outcome. `details` None keeps what was stored before (an empty
    answer means "not visible now", not "no views")."""
    key = video_key(client_key, post_id)
    mapping: dict[str, str | bytes] = {
        "post_id": post_id,
        "state": state,
        "fetched_at": repr(time.time()),
    }
    if state == "fetched":
        mapping["visible"] = "1"
    elif state == "not_visible":
        mapping["visible"] = "0"
    if details is not None:
        mapping["details"] = msgspec.json.encode(details)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, RECORD_TTL_SECONDS)
        await pipe.execute()


def _flag(value: bytes | None) -> bool | None:
    return None if value is None else value == b"1"


def _video_from(client_key: str, fields: dict[bytes, bytes]) -> VideoRecord:
    def text(name: str) -> str | None:
        value = fields.get(name.encode())
        return None if value is None else value.decode()

    since = text("public_since")
    fetched_at = text("fetched_at")
    details = fields.get(b"details")
    return VideoRecord(
        client_key=client_key,
        post_id=text("post_id") or "",
        open_id=text("open_id"),
        publish_id=text("publish_id"),
        public=_flag(fields.get(b"public")),
        public_since=int(since) if since else None,
        state=text("state") or "pending",
        visible=_flag(fields.get(b"visible")),
        details=None if details is None else _details_decoder.decode(details),
        fetched_at=float(fetched_at) if fetched_at else None,
    )


async def get_video(redis: aioredis.Redis, client_key: str, post_id: str) -> VideoRecord | None:
    fields = await cast(
        Awaitable[dict[bytes, bytes]], redis.hgetall(video_key(client_key, post_id))
    )
    return _video_from(client_key, fields) if fields else None


async def list_videos(redis: aioredis.Redis, client_key: str, open_id: str) -> list[VideoRecord]:
    """The user's known public posts, newest first."""
    post_ids = await redis.zrevrange(_user_videos_key(client_key, open_id), 0, MAX_LISTED - 1)
    videos = []
    for raw in post_ids:
        video = await get_video(redis, client_key, raw.decode())
        if video is not None:
            videos.append(video)
    return videos


# -- data requests ----------------------------------------------------------------------


async def save_data_request(redis: aioredis.Redis, request: DataRequest) -> DataRequest:
    request = msgspec.structs.replace(request, updated_at=time.time())
    index = _user_requests_key(request.client_key, request.open_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(
            _request_key(request.client_key, request.request_id),
            msgspec.json.encode(request),
            ex=RECORD_TTL_SECONDS,
        )
        pipe.zadd(index, {request.request_id: request.requested_at}, nx=True)
        pipe.expire(index, RECORD_TTL_SECONDS)
        await pipe.execute()
    return request


async def get_data_request(
    redis: aioredis.Redis, client_key: str, request_id: str
) -> DataRequest | None:
    raw = await redis.get(_request_key(client_key, request_id))
    return None if raw is None else _request_decoder.decode(raw)


async def list_data_requests(
    redis: aioredis.Redis, client_key: str, open_id: str
) -> list[DataRequest]:
    """The user's data requests, newest first."""
    ids = await redis.zrevrange(_user_requests_key(client_key, open_id), 0, MAX_LISTED - 1)
    requests = []
    for raw in ids:
        request = await get_data_request(redis, client_key, raw.decode())
        if request is not None:
            requests.append(request)
    return requests

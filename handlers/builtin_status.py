"""Built-in handlers that record the latest status of shares, publishes and downloads."""

from __future__ import annotations

from typing import Final

import msgspec

from handlers.context import HandlerContext
from handlers.registry import registry
from receiver import keys
from receiver.ingest.events import (
    PortabilityDownloadReady,
    PostPublishComplete,
    PostPublishFailed,
    PostPublishInboxDelivered,
    PostPublishNoLongerPubliclyAvailable,
    PostPublishPubliclyAvailable,
    VideoPublishCompleted,
    VideoUploadFailed,
    WebhookEvent,
)
from receiver.status_store import Kind, StatusRecord, is_retryable, save_status

_STATUS_BY_EVENT: Final = {
    "video.upload.failed": "upload_failed",
    "video.publish.completed": "publish_completed",
    "portability.download.ready": "download_ready",
    "post.publish.failed": "failed",
    "post.publish.complete": "complete",
    "post.publish.inbox_delivered": "inbox_delivered",
    "post.publish.publicly_available": "publicly_available",
    "post.publish.publicaly_available": "publicly_available",
    "post.publish.no_longer_publicaly_available": "no_longer_publicly_available",
    "post.publish.no_longer_publicly_available": "no_longer_publicly_available",
}
UNKNOWN_EVENTS_KEPT: Final = 1000


def _record(
    event: WebhookEvent,
    kind: Kind,
    object_id: str,
    *,
    reason: str | None = None,
    publish_type: str | None = None,
    post_id: str | int | None = None,
) -> StatusRecord:
    envelope = event.envelope
    return StatusRecord(
        kind=kind,
        id=object_id,
        status=_STATUS_BY_EVENT[envelope.event],
        event=envelope.event,
        create_time=envelope.create_time,
        client_key=envelope.client_key,
        user_openid=envelope.user_openid,
        reason=reason,
        retryable=is_retryable(reason) if kind == "publish" and reason is not None else None,
        post_id=None if post_id is None else str(post_id),
        publish_type=publish_type,
    )


@registry.on(*_STATUS_BY_EVENT, name="builtin.record_status")
async def record_status(event: WebhookEvent, ctx: HandlerContext) -> dict[str, object]:
    match event.content:
        case VideoUploadFailed(share_id=share_id) | VideoPublishCompleted(share_id=share_id):
            record = _record(event, "share", share_id)
        case PortabilityDownloadReady(request_id=request_id):
            record = _record(event, "portability", str(request_id))
        case PostPublishFailed() as failed:
            record = _record(
                event,
                "publish",
                failed.publish_id,
                reason=failed.failure_reason,
                publish_type=failed.publish_type,
            )
        case PostPublishPubliclyAvailable() | PostPublishNoLongerPubliclyAvailable() as public:
            record = _record(
                event,
                "publish",
                public.publish_id,
                post_id=public.post_id,
                publish_type=public.publish_type,
            )
        case PostPublishComplete() | PostPublishInboxDelivered() as post:
            record = _record(event, "publish", post.publish_id, publish_type=post.publish_type)
        case _:
            return {"skipped": "unexpected content"}
    written = await save_status(ctx.redis, record, ttl_seconds=ctx.settings.status_ttl_seconds)
    return {"kind": record.kind, "id": record.id, "status": record.status, "written": written}


@registry.on_unknown(name="builtin.record_unknown")
@registry.on("tiktok.ping", name="builtin.record_ping")
async def record_unknown(event: WebhookEvent, ctx: HandlerContext) -> dict[str, object]:
    """Keep a short list of unknown events (and pings): name, app and time, no content."""
    entry = msgspec.json.encode(
        {
            "event": event.envelope.event[:100],
            "client_key": event.envelope.client_key[:100],
            "create_time": event.envelope.create_time,
        }
    )
    async with ctx.redis.pipeline(transaction=True) as pipe:
        pipe.lpush(keys.UNKNOWN_EVENTS_LIST, entry)
        pipe.ltrim(keys.UNKNOWN_EVENTS_LIST, 0, UNKNOWN_EVENTS_KEPT - 1)
        await pipe.execute()
    return {"recorded": event.envelope.event[:100]}

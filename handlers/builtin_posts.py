"""Built-in handlers for the Content Posting events: fetch the publish status and the
details of the public video, and keep them (receiver/fetched.py).

An event only enqueues a job; the job calls TikTok. `/v2/post/publish/status/fetch/`
allows 30 calls per minute per user token, so a job over that budget re-queues itself
(handlers/deferral.py) rather than sleeping or failing. A token without the scope a call
needs is recorded as "not permitted" and not retried.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from handlers.context import HandlerContext, WorkerState
from handlers.deferral import defer
from handlers.dispatch import NO_EVENT, guarded
from handlers.ratelimit import RateLimitWaitTooLong
from handlers.registry import registry
from handlers.user_calls import app_of, with_user_token
from receiver import fetched
from receiver.ingest.events import (
    PostPublishComplete,
    PostPublishFailed,
    PostPublishInboxDelivered,
    PostPublishNoLongerPubliclyAvailable,
    PostPublishPubliclyAvailable,
    WebhookEvent,
)
from receiver.secrets import Secret
from receiver.status_store import is_retryable
from receiver.tiktok.errors import (
    RateLimited,
    RequestRejected,
    ScopeNotAuthorized,
)
from receiver.tiktok.ids import decimal_id
from receiver.tiktok.posting import PUBLISH_SCOPES, PublishStatus, fetch_publish_status
from receiver.tiktok.videos import VIDEO_SCOPE, query_videos

logger = logging.getLogger("tiktok_webhooks.posts")

FETCH_PUBLISH_STATUS: Final = "fetch_publish_status"
FETCH_VIDEO: Final = "fetch_video"
PUBLISH_EVENTS: Final = (
    "post.publish.failed",
    "post.publish.complete",
    "post.publish.inbox_delivered",
    "post.publish.publicly_available",
    "post.publish.publicaly_available",
    "post.publish.no_longer_publicaly_available",
    "post.publish.no_longer_publicly_available",
)
PUBLIC_EVENTS: Final = PUBLISH_EVENTS[3:]

_PublishContent = (
    PostPublishFailed
    | PostPublishComplete
    | PostPublishInboxDelivered
    | PostPublishPubliclyAvailable
    | PostPublishNoLongerPubliclyAvailable
)


@registry.on(*PUBLISH_EVENTS, name="builtin.fetch_publish_status")
async def on_publish_event(event: WebhookEvent, ctx: HandlerContext) -> dict[str, Any]:
    """Queue a status fetch for the event's publish (with the user's token)."""
    envelope = event.envelope
    content = event.content
    if not isinstance(content, _PublishContent):
        return {"skipped": "unexpected content"}
    if not envelope.user_openid:
        return {"skipped": "no user_openid"}
    if ctx.vault(envelope.client_key) is None:
        return {"skipped": "app not configured in this worker"}
    job = await ctx.redis.enqueue_job(
        FETCH_PUBLISH_STATUS,
        envelope.client_key,
        envelope.user_openid,
        content.publish_id,
        _job_id=f"{FETCH_PUBLISH_STATUS}:{event.dedupe_key}",
        _queue_name=ctx.settings.queue_name,
    )
    return {"enqueued": job is not None}


@registry.on(*PUBLIC_EVENTS, name="builtin.fetch_video")
async def on_public_event(event: WebhookEvent, ctx: HandlerContext) -> dict[str, Any]:
    """Remember the post and whether it is public; fetch its details when it became so."""
    envelope = event.envelope
    content = event.content
    if not isinstance(content, PostPublishPubliclyAvailable | PostPublishNoLongerPubliclyAvailable):
        return {"skipped": "unexpected content"}
    post_id = decimal_id(content.post_id)
    if post_id is None:
        return {"skipped": "no usable post_id"}
    public = isinstance(content, PostPublishPubliclyAvailable)
    await fetched.note_video(
        ctx.redis,
        envelope.client_key,
        post_id,
        open_id=envelope.user_openid,
        publish_id=content.publish_id,
        public=public,
        event_time=envelope.create_time,
    )
    if not public or not envelope.user_openid or ctx.vault(envelope.client_key) is None:
        return {"post_id": post_id, "public": public, "enqueued": False}
    job = await ctx.redis.enqueue_job(
        FETCH_VIDEO,
        envelope.client_key,
        envelope.user_openid,
        post_id,
        _job_id=f"{FETCH_VIDEO}:{event.dedupe_key}",
        _queue_name=ctx.settings.queue_name,
    )
    return {"post_id": post_id, "public": public, "enqueued": job is not None}


async def fetch_publish_status_job(
    ctx: dict[str, Any], client_key: str, open_id: str, publish_id: str, deferrals: int = 0
) -> Any:
    """arq job: `/v2/post/publish/status/fetch/` for one publish, kept per app."""
    state: WorkerState = ctx["state"]
    args = [client_key, open_id, publish_id]
    return await guarded(
        ctx,
        FETCH_PUBLISH_STATUS,
        NO_EVENT,
        lambda: _fetch_publish_status(state, args, deferrals),
        args=[*args, deferrals],
    )


async def _fetch_publish_status(
    state: WorkerState, args: list[str], deferrals: int
) -> dict[str, Any]:
    client_key, open_id, publish_id = args
    vault, client = app_of(state, client_key)

    async def keep(state_name: str, **fields: Any) -> dict[str, Any]:
        record = fetched.PublishFetch(
            client_key=client_key,
            publish_id=publish_id,
            open_id=open_id,
            state=state_name,
            **fields,
        )
        await fetched.save_publish_fetch(state.redis, record)
        return {"publish_id": publish_id, "state": state_name, "status": record.status}

    token_record = await vault.get(open_id)
    if token_record is None:
        return await keep("not_connected")
    if not PUBLISH_SCOPES.intersection(token_record.scopes):
        return await keep(
            "not_permitted", error="the token has neither video.upload nor video.publish"
        )

    async def limited_fetch(token: Secret) -> PublishStatus:
        # TikTok limits this endpoint per user token: every call takes a slot.
        await state.limiter.acquire_for_token("publish_status", f"{client_key}:{open_id}")
        return await fetch_publish_status(client, token, publish_id)

    try:
        answer = await with_user_token(vault, open_id, limited_fetch)
    except RateLimitWaitTooLong as exc:
        return await defer(
            state, FETCH_PUBLISH_STATUS, args, wait_seconds=exc.wait_seconds,
            deferrals=deferrals, limit="ours",
        )  # fmt: skip
    except RateLimited as exc:
        return await defer(
            state, FETCH_PUBLISH_STATUS, args, wait_seconds=exc.retry_after,
            deferrals=deferrals, limit="tiktok",
        )  # fmt: skip
    except ScopeNotAuthorized as exc:
        return await keep("not_permitted", error=exc.code)
    except RequestRejected as exc:
        # invalid_publish_id, token_not_authorized_for_specified_publish_id: asking again
        # will not change TikTok's mind.
        return await keep("rejected", error=exc.code)
    if answer.fail_reason is not None and is_retryable(answer.fail_reason) is None:
        logger.warning(
            "publish failed with a reason TikTok does not document: %s", answer.fail_reason
        )
    return await keep(
        "fetched",
        status=answer.status,
        fail_reason=answer.fail_reason,
        retryable=None if answer.fail_reason is None else bool(is_retryable(answer.fail_reason)),
        post_ids=list(answer.post_ids),
        uploaded_bytes=answer.uploaded_bytes,
        downloaded_bytes=answer.downloaded_bytes,
    )


async def fetch_video_job(
    ctx: dict[str, Any], client_key: str, open_id: str, post_id: str, deferrals: int = 0
) -> Any:
    """arq job: `/v2/video/query/` for one post, kept per app."""
    state: WorkerState = ctx["state"]
    args = [client_key, open_id, post_id]
    return await guarded(
        ctx,
        FETCH_VIDEO,
        NO_EVENT,
        lambda: _fetch_video(state, args, deferrals),
        args=[*args, deferrals],
    )


async def _fetch_video(state: WorkerState, args: list[str], deferrals: int) -> dict[str, Any]:
    client_key, open_id, post_id = args
    vault, client = app_of(state, client_key)

    async def keep(state_name: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        await fetched.save_video_details(
            state.redis, client_key, post_id, state=state_name, details=details
        )
        return {"post_id": post_id, "state": state_name}

    token_record = await vault.get(open_id)
    if token_record is None:
        return await keep("not_connected")
    if VIDEO_SCOPE not in token_record.scopes:
        return await keep("not_permitted")
    try:
        videos = await with_user_token(
            vault, open_id, lambda token: query_videos(client, token, [post_id])
        )
    except RateLimitWaitTooLong as exc:
        return await defer(
            state, FETCH_VIDEO, args, wait_seconds=exc.wait_seconds,
            deferrals=deferrals, limit="ours",
        )  # fmt: skip
    except RateLimited as exc:
        return await defer(
            state, FETCH_VIDEO, args, wait_seconds=exc.retry_after,
            deferrals=deferrals, limit="tiktok",
        )  # fmt: skip
    except ScopeNotAuthorized:
        return await keep("not_permitted")
    match = next((v for v in videos if v["id"] == post_id), None)
    if match is None:
        # Unknown, private or removed: say so, and keep any details fetched before.
        return await keep("not_visible")
    return await keep("fetched", match)

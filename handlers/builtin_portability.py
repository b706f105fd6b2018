"""Built-in handler for `portability.download.ready`: download the user's data archive.

The event names only a `request_id` (TikTok's example has no `user_openid`), so only
requests this service started (`POST /internal/users/{open_id}/data-requests`, or
`tiktok-webhooks data-request start`) can be fetched: their record says whose token to use.
The job checks the request, then streams the archive into PORTABILITY_DIR
(receiver/tiktok/portability.py). Expired and cancelled requests are states, not errors.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Final

import msgspec

from handlers.context import HandlerContext, WorkerState
from handlers.deferral import defer
from handlers.dispatch import NO_EVENT, guarded
from handlers.errors import RetryLater
from handlers.ratelimit import RateLimitWaitTooLong
from handlers.registry import registry
from handlers.user_calls import MARGIN_SECONDS, app_of
from receiver import fetched
from receiver.ingest.events import PortabilityDownloadReady, WebhookEvent
from receiver.tiktok.errors import (
    AccessTokenInvalid,
    RateLimited,
    RequestRejected,
    ScopeNotAuthorized,
)
from receiver.tiktok.ids import decimal_id
from receiver.tiktok.portability import (
    ArchiveTooLarge,
    check_data_request,
    download_archive,
)

logger = logging.getLogger("tiktok_webhooks.portability")

DOWNLOAD_DATA: Final = "download_data"
# TikTok says "pending" while it still collects; look again after this long.
PENDING_RECHECK_SECONDS: Final = 60.0
DONE_STATES: Final = frozenset({"downloaded", "expired", "cancelled", "too_large"})


@registry.on("portability.download.ready", name="builtin.download_data")
async def on_download_ready(event: WebhookEvent, ctx: HandlerContext) -> dict[str, Any]:
    content = event.content
    if not isinstance(content, PortabilityDownloadReady):
        return {"skipped": "unexpected content"}
    request_id = decimal_id(content.request_id) or str(content.request_id)[:64]
    client_key = event.envelope.client_key
    request = await fetched.get_data_request(ctx.redis, client_key, request_id)
    if request is None:
        logger.warning(
            "portability.download.ready for a request this service did not start "
            "(request_id %s): nothing to download it with",
            request_id,
        )
        return {"skipped": "unknown request_id"}
    job = await ctx.redis.enqueue_job(
        DOWNLOAD_DATA,
        client_key,
        request_id,
        _job_id=f"{DOWNLOAD_DATA}:{event.dedupe_key}",
        _queue_name=ctx.settings.queue_name,
    )
    return {"request_id": request_id, "enqueued": job is not None}


async def download_data_job(
    ctx: dict[str, Any], client_key: str, request_id: str, deferrals: int = 0
) -> Any:
    """arq job: check the data request, then download its archive."""
    state: WorkerState = ctx["state"]
    return await guarded(
        ctx,
        DOWNLOAD_DATA,
        NO_EVENT,
        lambda: _download(state, client_key, request_id, deferrals),
        args=[client_key, request_id, deferrals],
    )


async def _download(
    state: WorkerState, client_key: str, request_id: str, deferrals: int
) -> dict[str, Any]:
    request = await fetched.get_data_request(state.redis, client_key, request_id)
    if request is None:
        return {"skipped": "unknown request_id"}
    if (
        request.status == "downloaded"
        and request.path
        and await asyncio.to_thread(os.path.exists, request.path)
    ):
        return {"request_id": request_id, "status": request.status}  # a redelivery

    async def keep(status: str, **fields: Any) -> dict[str, Any]:
        assert request is not None
        updated = msgspec.structs.replace(request, status=status, **fields)
        await fetched.save_data_request(state.redis, updated)
        return {"request_id": request_id, "status": status}

    directory = state.settings.portability_dir
    if not directory:
        logger.warning("a data archive is ready but PORTABILITY_DIR is not set")
        return await keep("failed", error="PORTABILITY_DIR is not set")
    vault, client = app_of(state, client_key)
    if await vault.get(request.open_id) is None:
        return await keep("failed", error="the user is not connected")
    try:
        # The token is kept for the download too, so not through with_user_token.
        token = await vault.get_valid_access_token(request.open_id, margin_seconds=MARGIN_SECONDS)
        try:
            check = await check_data_request(client, token, request_id)
        except AccessTokenInvalid:
            await vault.refresh(request.open_id)
            token = await vault.get_valid_access_token(
                request.open_id, margin_seconds=MARGIN_SECONDS
            )
            check = await check_data_request(client, token, request_id)
        times = {"apply_time": check.apply_time, "collect_time": check.collect_time}
        if check.status in ("expired", "cancelled"):
            return await keep(check.status, **times)
        if check.status == "pending":
            await keep("pending", **times)
            raise RetryLater(
                "the data is still being collected", defer_seconds=PENDING_RECHECK_SECONDS
            )
        archive = await download_archive(
            client,
            token,
            request_id,
            directory=directory,
            name=f"{client_key}-{request_id}",
            max_bytes=state.settings.portability_max_bytes,
        )
    except RateLimitWaitTooLong as exc:
        return await defer(
            state, DOWNLOAD_DATA, [client_key, request_id], wait_seconds=exc.wait_seconds,
            deferrals=deferrals, limit="ours",
        )  # fmt: skip
    except RateLimited as exc:
        return await defer(
            state, DOWNLOAD_DATA, [client_key, request_id], wait_seconds=exc.retry_after,
            deferrals=deferrals, limit="tiktok",
        )  # fmt: skip
    except (ScopeNotAuthorized, RequestRejected) as exc:
        # No such request for this token, or no portability scope: asking again won't help.
        return await keep("failed", error=exc.code)
    except ArchiveTooLarge as exc:
        return await keep("too_large", error=exc.description)
    logger.info("data archive of request %s kept (%d bytes)", request_id, archive.size)
    return await keep(
        "downloaded",
        path=archive.path,
        size=archive.size,
        sha256=archive.sha256,
        error=None,
        **times,
    )

"""Built-in handlers for users: purge on `authorization.removed`, keep profiles current."""

from __future__ import annotations

import logging
from typing import Any

from handlers.context import HandlerContext, WorkerState
from handlers.dispatch import NO_EVENT, guarded
from handlers.registry import registry
from handlers.user_calls import app_of, with_user_token
from receiver import keys, users
from receiver.ingest.events import AuthorizationRemoved, WebhookEvent
from receiver.ingest.jobs import FETCH_PROFILE
from receiver.tiktok.client import fields_for_scopes
from receiver.vault.vault import TokenNotFound, TokenStatus

logger = logging.getLogger("tiktok_webhooks.users")


@registry.on("authorization.removed", name="builtin.purge_user")
async def purge_user(event: WebhookEvent, ctx: HandlerContext) -> dict[str, Any]:
    """TikTok already revoked the tokens: delete tokens and profile, remember why.

    Idempotent. A removal older than the user's latest connect (a late retry of an
    old event) is ignored, so it cannot wipe a fresh authorization.
    """
    envelope = event.envelope
    open_id = envelope.user_openid
    if not open_id:
        return {"skipped": "no user_openid"}
    connected = await users.connected_at(ctx.redis, envelope.client_key, open_id)
    # TikTok times events in whole seconds: only a removal from an earlier second is stale.
    if connected is not None and envelope.create_time < int(connected):
        return {"skipped": "removal predates the current connection"}
    vault = ctx.vault(envelope.client_key)
    if vault is not None:
        await vault.delete(open_id)
    else:
        name = f"{envelope.client_key}:{open_id}"
        async with ctx.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.TOKEN_PREFIX + name, keys.PROFILE_PREFIX + name)
            pipe.zrem(keys.TOKEN_EXPIRY_INDEX, name)
            await pipe.execute()
    reason = event.content.reason if isinstance(event.content, AuthorizationRemoved) else None
    await users.record_removal(
        ctx.redis, envelope.client_key, open_id, reason=reason, event_time=envelope.create_time
    )
    logger.info("purged user data after authorization.removed (reason %s)", reason)
    return {"purged": True, "reason": reason}


@registry.on_any(name="builtin.refresh_profile_on_event")
async def refresh_profile_on_event(event: WebhookEvent, ctx: HandlerContext) -> bool:
    """An event that names a connected user re-fetches their profile (debounced).

    The debounce mark is taken first: for the many events of a busy user that is the
    only Redis call. It is taken for users who are not connected too, which only means
    they are looked up at most once per interval.
    """
    envelope = event.envelope
    if envelope.event == "authorization.removed" or not envelope.user_openid:
        return False
    vault = ctx.vault(envelope.client_key)
    if vault is None:
        return False
    if not await users.take_debounce(
        ctx.redis,
        envelope.client_key,
        envelope.user_openid,
        ctx.settings.profile_fetch_debounce_seconds,
    ):
        return False
    record = await vault.get(envelope.user_openid)
    if record is None or record.status != TokenStatus.ACTIVE:
        return False
    return await users.enqueue_profile_fetch(
        ctx.redis,
        envelope.client_key,
        envelope.user_openid,
        reason=f"event:{envelope.event}"[:80],
        queue_name=ctx.settings.queue_name,
    )


async def fetch_profile(
    ctx: dict[str, Any], client_key: str, open_id: str, reason: str = "on_demand"
) -> Any:
    """arq job: fetch `/v2/user/info/` with exactly the fields the granted scopes allow."""
    state: WorkerState = ctx["state"]
    return await guarded(
        ctx,
        FETCH_PROFILE,
        NO_EVENT,
        lambda: _fetch_profile(state, client_key, open_id),
        args=[client_key, open_id, reason],
    )


async def _fetch_profile(state: WorkerState, client_key: str, open_id: str) -> dict[str, Any]:
    vault, client = app_of(state, client_key)
    record = await vault.get(open_id)
    if record is None:
        raise TokenNotFound("user is not connected")
    fields = fields_for_scopes(record.scopes)
    user = await with_user_token(vault, open_id, lambda token: client.user_info(token, fields))
    profile = await users.save_profile(state.redis, client_key, open_id, user)
    if profile is None:
        return {"saved": False, "why": "user disconnected meanwhile"}
    return {"saved": True, "fields": sorted(user)}

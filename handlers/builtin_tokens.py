"""Keeping tokens fresh: a cron finds tokens near expiry and spreads their refreshes."""

from __future__ import annotations

import logging
import time
from typing import Any

from handlers import metrics
from handlers.context import WorkerState
from handlers.dispatch import NO_EVENT, guarded
from receiver import users
from receiver.ingest.jobs import REFRESH_TOKEN
from receiver.tiktok.errors import InvalidGrant, TikTokError
from receiver.vault.vault import ReauthorizationRequired, TokenNotFound, TokenStatus

logger = logging.getLogger("tiktok_webhooks.tokens")


async def refresh_token(ctx: dict[str, Any], client_key: str, open_id: str) -> Any:
    """arq job: refresh one user's tokens unless someone already did."""
    state: WorkerState = ctx["state"]
    return await guarded(
        ctx,
        REFRESH_TOKEN,
        NO_EVENT,
        lambda: _refresh(state, client_key, open_id),
        args=[client_key, open_id],
    )


async def _refresh(state: WorkerState, client_key: str, open_id: str) -> dict[str, Any]:
    vault = state.vaults.get(client_key)
    if vault is None:
        raise TokenNotFound(f"app {client_key!r} is not configured in this worker")
    record = await vault.get(open_id)
    if record is None:
        metrics.TOKEN_REFRESHES.labels("not_found").inc()
        raise TokenNotFound("user is not connected")
    margin = state.settings.token_refresh_margin_seconds
    if record.status == TokenStatus.ACTIVE and record.expires_at - time.time() > margin:
        return {"refreshed": False, "why": "already fresh"}
    try:
        fresh = await vault.refresh(open_id)
    except (InvalidGrant, ReauthorizationRequired):
        metrics.TOKEN_REFRESHES.labels("invalid_grant").inc()
        raise
    except TikTokError as exc:
        metrics.TOKEN_REFRESHES.labels("transient" if exc.is_retryable else "error").inc()
        raise
    metrics.TOKEN_REFRESHES.labels("ok").inc()
    return {"refreshed": True, "expires_at": fresh.expires_at}


async def refresh_due_tokens(ctx: dict[str, Any]) -> dict[str, int]:
    """cron: enqueue a refresh for every token expiring within the margin, spread out.

    The refreshes are spread over the cron interval instead of all at once, so a
    thousand tokens issued together do not become a thousand calls in one second.
    """
    state: WorkerState = ctx["state"]
    settings = state.settings
    spread = settings.token_refresh_every_minutes * 60 * 0.8
    enqueued = due_total = 0
    for client_key, vault in state.vaults.items():
        due = await vault.due_for_refresh(settings.token_refresh_margin_seconds)
        due_total += len(due)
        for index, open_id in enumerate(due):
            job = await state.redis.enqueue_job(
                REFRESH_TOKEN,
                client_key,
                open_id,
                # One pending refresh per user: arq refuses a second job with this id.
                _job_id=f"refresh:{client_key}:{open_id}",
                _defer_by=spread * index / max(1, len(due)),
                _queue_name=settings.queue_name,
            )
            enqueued += job is not None
    metrics.TOKENS_EXPIRING.set(due_total)
    return {"due": due_total, "enqueued": enqueued}


async def update_token_health(ctx: dict[str, Any]) -> dict[str, int]:
    """cron: users needing re-authorization, and refresh tokens about to run out."""
    state: WorkerState = ctx["state"]
    warn_before = state.settings.refresh_token_warning_days * 86400
    now = time.time()
    needs_reauth = expiring = corrupt = 0
    for vault in state.vaults.values():
        for record in await vault.list_records():
            if record.status == TokenStatus.NEEDS_REAUTH:
                needs_reauth += 1
            elif record.status == TokenStatus.CORRUPT:
                corrupt += 1
            elif (
                record.status == TokenStatus.ACTIVE
                and record.refresh_expires_at - now < warn_before
            ):
                expiring += 1
    metrics.USERS_NEEDING_REAUTH.set(needs_reauth)
    metrics.TOKEN_RECORDS_CORRUPT.set(corrupt)
    metrics.REFRESH_TOKENS_EXPIRING.set(expiring)
    if expiring:
        logger.warning(
            "%d users' refresh tokens expire within %d days; they must connect again",
            expiring,
            state.settings.refresh_token_warning_days,
        )
    return {"needs_reauth": needs_reauth, "refresh_expiring": expiring, "corrupt": corrupt}


async def sweep_profiles(ctx: dict[str, Any]) -> int:
    """cron (off unless PROFILE_SWEEP_INTERVAL_MINUTES > 0): re-fetch every active profile."""
    state: WorkerState = ctx["state"]
    count = 0
    for client_key, vault in state.vaults.items():
        for record in await vault.list_records():
            if record.status != TokenStatus.ACTIVE:
                continue
            count += await users.enqueue_profile_fetch(
                state.redis,
                client_key,
                record.open_id,
                reason="sweep",
                queue_name=state.settings.queue_name,
                debounce_seconds=state.settings.profile_fetch_debounce_seconds,
            )
    return count

"""What an operator can do from the console; each action is logged with who and what.

Logged twice: a line on the ``tiktok_webhooks.console`` logger, and an entry in the capped
list ``tiktok:console:actions`` (`keys.CONSOLE_ACTIONS_LIST`, the last `KEEP_ACTIONS`)
that the console shows. Neither ever holds a token value.
"""

from __future__ import annotations

import logging
import time
from typing import Final

import msgspec
import redis.asyncio as aioredis
from arq.connections import ArqRedis

from handlers.deadletter import DeadLetterStore
from handlers.forwarding import admin as forward_admin
from handlers.forwarding.store import DeliveryStore
from receiver import keys
from receiver.console.queries import ActionRecord, LetterFilter, dead_letters
from receiver.tiktok.errors import InvalidGrant, TikTokError
from receiver.vault.vault import ReauthorizationRequired, TokenNotFound, TokenVault, VaultError

logger = logging.getLogger("tiktok_webhooks.console")

KEEP_ACTIONS: Final = 200
REPLAY_ALL_LIMIT: Final = 1000
_encoder: Final = msgspec.json.Encoder()


async def record_action(redis: aioredis.Redis, action: ActionRecord) -> None:
    logger.info(
        "console action by %s: %s %s -> %s", action.who, action.what, action.target, action.result
    )
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lpush(keys.CONSOLE_ACTIONS_LIST, _encoder.encode(action))
        pipe.ltrim(keys.CONSOLE_ACTIONS_LIST, 0, KEEP_ACTIONS - 1)
        await pipe.execute()


async def replay_letters(
    redis: aioredis.Redis, queue: ArqRedis, letter_ids: list[str], *, queue_name: str, who: str
) -> ActionRecord:
    """Put dead letters back on the queue (fresh try count); the new job ids."""
    store = DeadLetterStore(redis)
    job_ids = []
    missing = 0
    for letter_id in letter_ids[:REPLAY_ALL_LIMIT]:
        job_id = await store.replay(letter_id, queue, queue_name=queue_name)
        if job_id is None:
            missing += 1
        else:
            job_ids.append(job_id)
    result = f"{len(job_ids)} replayed"
    if missing:
        result += f", {missing} already gone"
    target = letter_ids[0] if len(letter_ids) == 1 else f"{len(letter_ids)} dead letters"
    action = ActionRecord(
        at=time.time(),
        who=who,
        what="replay dead letter" if len(letter_ids) == 1 else "replay dead letters",
        target=target,
        result=result,
        job_ids=job_ids,
    )
    await record_action(redis, action)
    return action


async def matching_letter_ids(redis: aioredis.Redis, filters: LetterFilter) -> list[str]:
    letters, _ = await dead_letters(redis, filters, window=REPLAY_ALL_LIMIT)
    return [letter.id for letter in letters]


async def refresh_user(
    redis: aioredis.Redis, vault: TokenVault, open_id: str, *, who: str
) -> ActionRecord:
    """Refresh the user's tokens now (single-flight with the worker's refreshes)."""
    try:
        record = await vault.refresh(open_id)
        result = f"refreshed; access token good until {int(record.expires_at)}"
    except TokenNotFound:
        result = "no tokens stored for this user"
    except (ReauthorizationRequired, InvalidGrant):
        result = "TikTok refused: the user must connect again (marked needs_reauth)"
    except TikTokError as exc:
        result = f"TikTok error {exc.code}: {exc.hint}"
    except VaultError as exc:
        result = f"not refreshed: {type(exc).__name__}"
    action = ActionRecord(
        at=time.time(),
        who=who,
        what="refresh token",
        target=f"{vault.client_key}:{open_id}",
        result=result,
    )
    await record_action(redis, action)
    return action


async def require_reauth(
    redis: aioredis.Redis, vault: TokenVault, open_id: str, *, who: str
) -> ActionRecord:
    """Mark the user needs_reauth: their tokens stay stored but are no longer used."""
    done = await vault.mark_needs_reauth(open_id)
    action = ActionRecord(
        at=time.time(),
        who=who,
        what="mark for re-authorization",
        target=f"{vault.client_key}:{open_id}",
        result="marked needs_reauth" if done else "no tokens stored for this user",
    )
    await record_action(redis, action)
    return action


async def retry_forward_delivery(
    redis: aioredis.Redis, store: DeliveryStore, delivery_id: str, *, who: str
) -> ActionRecord:
    """Send a forward delivery again now (as `tiktok-webhooks forward retry`)."""
    requeued = await store.requeue(delivery_id, only_unfinished=False)
    action = ActionRecord(
        at=time.time(),
        who=who,
        what="retry forward delivery",
        target=delivery_id,
        result="sending again now" if requeued else "no such delivery",
    )
    await record_action(redis, action)
    return action


async def set_destination_enabled(
    redis: aioredis.Redis, store: DeliveryStore, destination: str, *, enabled: bool, who: str
) -> ActionRecord:
    """Enable or disable a forward destination (as `tiktok-webhooks forward enable|disable`).

    Disabled, new events for it are held; enabling sends the held ones now."""
    if enabled:
        changed, released = await forward_admin.enable(store, destination)
        result = "enabled" if changed else "was not disabled"
        if released:
            result += f"; {released} held deliveries are sent now"
    else:
        changed = await store.disable(destination, "disabled by hand")
        result = "disabled; new events are held" if changed else "was already disabled"
    action = ActionRecord(
        at=time.time(),
        who=who,
        what="enable forward destination" if enabled else "disable forward destination",
        target=destination,
        result=result,
    )
    await record_action(redis, action)
    return action

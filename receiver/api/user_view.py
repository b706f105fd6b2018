"""One connected user as the company's backend and the CLI see them: never a token value."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from receiver import users
from receiver.vault.vault import TokenVault


async def describe_user(
    redis: aioredis.Redis, vault: TokenVault, open_id: str
) -> dict[str, Any] | None:
    """Status, scopes, expiry times, last profile, removal info; None if never seen.

    Times are Unix seconds. A user whose authorization was removed (and whose tokens the
    worker purged) has status ``removed`` until the removal mark expires.
    """
    client_key = vault.client_key
    record = await vault.get(open_id)
    removal = await users.get_removal(redis, client_key, open_id)
    if record is None and removal is None:
        return None
    profile = await users.get_profile(redis, client_key, open_id)
    view: dict[str, Any] = {
        "open_id": open_id,
        "client_key": client_key,
        "status": record.status.value if record is not None else "removed",
        "scopes": list(record.scopes) if record is not None else [],
        "access_token_expires_at": record.expires_at if record is not None else None,
        "refresh_token_expires_at": record.refresh_expires_at if record is not None else None,
        "updated_at": record.updated_at if record is not None else None,
        "connected_at": await users.connected_at(redis, client_key, open_id),
        "profile": (
            None
            if profile is None
            else {"fields": profile.fields, "fetched_at": profile.fetched_at}
        ),
        "removal": (
            None
            if removal is None
            else {
                "reason": removal.reason,
                "event_time": removal.event_time,
                "removed_at": removal.removed_at,
            }
        ),
    }
    return view

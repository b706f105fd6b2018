"""authorization.removed: the user's tokens and profile are deleted, for good."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from receiver import users
from receiver.secrets import Secret
from receiver.settings import Settings
from receiver.tiktok.client import TikTokClient, TokenGrant
from receiver.vault.crypto import TokenCipher
from receiver.vault.vault import TokenVault
from tests.factories import CLIENT_KEY, delivery
from tests.store import Store
from tests.worker_support import deliver, drain, worker_settings


async def seed_user(settings: Settings, redis: aioredis.Redis, open_id: str) -> TokenVault:
    client = TikTokClient(settings)
    vault = TokenVault(redis, TokenCipher(settings.token_encryption_keys), client, CLIENT_KEY)
    await vault.save_grant(
        TokenGrant(
            open_id=open_id,
            scope=("user.info.basic",),
            access_token=Secret("act.seeded-access"),
            refresh_token=Secret("rft.seeded-refresh"),
            expires_in=7200,
            refresh_expires_in=86400 * 180,
        )
    )
    await users.save_profile(redis, CLIENT_KEY, open_id, {"display_name": "Seeded"})
    await client.aclose()
    return vault


async def test_removal_purges_tokens_and_profile_idempotently(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    settings = worker_settings(redis_url)
    vault = await seed_user(settings, redis_client, "gone-user")
    assert await vault.get("gone-user") is not None
    removal = delivery("authorization.removed", {"reason": 1}, open_id="gone-user")
    await deliver(settings, [removal])
    outcomes = await drain(settings)
    assert [o.result for o in outcomes if o.handler == "builtin.purge_user"] == [
        {"purged": True, "reason": 1}
    ]
    assert await vault.get("gone-user") is None
    assert await users.get_profile(redis_client, CLIENT_KEY, "gone-user") is None
    recorded = await users.get_removal(redis_client, CLIENT_KEY, "gone-user")
    assert recorded is not None
    assert recorded.reason == 1

    # A profile write racing the purge (a fetch that finishes late) writes nothing.
    assert await users.save_profile(redis_client, CLIENT_KEY, "gone-user", {"x": 1}) is None

    # The same removal again (another event time, so not a duplicate): still nothing back.
    again = delivery("authorization.removed", {"reason": 1}, open_id="gone-user", create_time=2)
    await deliver(settings, [again])
    await drain(settings)
    assert await vault.get("gone-user") is None
    store = Store(redis_url)
    try:
        leftovers = [k for k in store.keys("tiktok:*gone-user*") if b"removed" not in k]
        assert [k for k in leftovers if not k.startswith(b"tiktok:handled:")] == []
    finally:
        store.close()


async def test_a_late_removal_does_not_wipe_a_newer_connection(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    settings = worker_settings(redis_url)
    vault = await seed_user(settings, redis_client, "back-again")
    await users.record_connected(redis_client, CLIENT_KEY, "back-again")
    stale = delivery(
        "authorization.removed",
        {"reason": 1},
        open_id="back-again",
        create_time=int(time.time()) - 3600,
    )
    await deliver(settings, [stale])
    outcomes = await drain(settings)
    purge = [o for o in outcomes if o.handler == "builtin.purge_user"]
    assert purge[0].result == {"skipped": "removal predates the current connection"}
    assert await vault.get("back-again") is not None

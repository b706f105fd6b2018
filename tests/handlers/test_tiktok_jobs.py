"""Worker jobs that talk to TikTok, against the sandbox over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis
from arq.connections import ArqRedis, create_pool
from arq.worker import func

from handlers.builtin_tokens import refresh_due_tokens
from handlers.worker import create_worker, redis_settings
from receiver import users
from receiver.ingest.jobs import job_deserializer, job_serializer
from receiver.settings import Settings
from receiver.tiktok.client import fields_for_scopes
from tests.factories import CLIENT_KEY, delivery
from tests.handlers.conftest import Tiktok
from tests.worker_support import deliver, drain, worker_settings


def settings_for(redis_url: str, sandbox_url: str, **env: str) -> Settings:
    return worker_settings(
        redis_url,
        TIKTOK_WEBHOOKS_ENV="development",
        TIKTOK_API_BASE_URL=sandbox_url,
        TIKTOK_AUTH_URL=f"{sandbox_url}/v2/auth/authorize/",
        **env,
    )


async def arq_pool(settings: Settings) -> ArqRedis:
    return await create_pool(
        redis_settings(settings),
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        default_queue_name=settings.queue_name,
    )


async def fetch(settings: Settings, open_id: str) -> None:
    pool = await arq_pool(settings)
    try:
        assert await users.enqueue_profile_fetch(
            pool, CLIENT_KEY, open_id, reason="test", queue_name=settings.queue_name
        )
    finally:
        await pool.aclose()


async def test_profile_is_fetched_with_only_the_allowed_fields(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = settings_for(redis_url, tiktok.base_url)
    await tiktok.add_user("ada", display_name="Ada", follower_count=42, bio_description="hi")
    vault = tiktok.vault(settings, redis_client)
    await tiktok.connect(settings, vault, "ada", "user.info.basic")
    await fetch(settings, "ada")
    await drain(settings)
    profile = await users.get_profile(redis_client, CLIENT_KEY, "ada")
    assert profile is not None
    assert set(profile.fields) == set(fields_for_scopes(["user.info.basic"]))
    assert profile.fields["display_name"] == "Ada"
    assert "follower_count" not in profile.fields
    assert time.time() - profile.fetched_at < 60
    assert len(await tiktok.calls("user_info")) == 1


async def test_an_event_naming_a_connected_user_refetches_debounced(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = settings_for(redis_url, tiktok.base_url)
    await tiktok.add_user("bea", display_name="Bea")
    await tiktok.connect(settings, tiktok.vault(settings, redis_client), "bea", "user.info.basic")
    await deliver(
        settings,
        [
            delivery("video.publish.completed", {"share_id": "video.1.q"}, open_id="bea"),
            delivery("video.publish.completed", {"share_id": "video.2.q"}, open_id="bea"),
        ],
    )
    await drain(settings)
    assert len(await tiktok.calls("user_info")) == 1  # two events, one fetch
    assert await users.get_profile(redis_client, CLIENT_KEY, "bea") is not None


async def test_cron_refreshes_expiring_tokens_and_saves_the_rotation(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = settings_for(redis_url, tiktok.base_url, TOKEN_REFRESH_MARGIN_SECONDS="1800")
    await tiktok.call("PUT", "/sandbox/settings", json={"access_token_ttl": 600})
    await tiktok.add_user("cy")
    await tiktok.add_user("dee")
    vault = tiktok.vault(settings, redis_client)
    await tiktok.connect(settings, vault, "cy", "user.info.basic")
    await tiktok.call("PUT", "/sandbox/settings", json={"access_token_ttl": 7200})
    await tiktok.connect(settings, vault, "dee", "user.info.basic")
    before = await vault.get("cy")
    assert before is not None

    pool = await arq_pool(settings)
    try:
        await pool.enqueue_job("refresh_due_tokens", _queue_name=settings.queue_name)
    finally:
        await pool.aclose()
    worker = create_worker(
        settings,
        burst=True,
        handle_signals=False,
        with_crons=False,
        extra_functions=[func(refresh_due_tokens, name="refresh_due_tokens")],
    )
    try:
        await worker.main()
    finally:
        await worker.close()

    refreshes = await tiktok.calls("token", grant_type="refresh_token")
    assert [c["open_id"] for c in refreshes] == ["cy"]  # dee's token is not near expiry
    assert refreshes[0]["status"] == 200
    after = await vault.get("cy")
    assert after is not None
    assert after.expires_at > before.expires_at + 3000
    assert after.version > before.version
    # The rotated refresh token was saved: refreshing again works (the old one would not).
    await vault.refresh("cy")
    assert (await tiktok.calls("token", grant_type="refresh_token"))[-1]["status"] == 200


async def test_access_token_invalid_means_one_refresh_and_one_retry(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = settings_for(redis_url, tiktok.base_url)
    await tiktok.add_user("eve", display_name="Eve")
    await tiktok.connect(settings, tiktok.vault(settings, redis_client), "eve", "user.info.basic")
    await tiktok.fault(endpoint="user_info", count=1, status=401, error="access_token_invalid")
    await fetch(settings, "eve")
    await drain(settings)
    info_calls = await tiktok.calls("user_info")
    assert [c["status"] for c in info_calls] == [401, 200]
    assert len(await tiktok.calls("token", grant_type="refresh_token")) == 1
    assert await users.get_profile(redis_client, CLIENT_KEY, "eve") is not None


async def test_429s_are_retried_within_the_outbound_budget(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = settings_for(redis_url, tiktok.base_url, TIKTOK_RATE_LIMIT_PER_MINUTE="3")
    await tiktok.add_user("fay")
    await tiktok.connect(settings, tiktok.vault(settings, redis_client), "fay", "user.info.basic")
    await tiktok.fault(endpoint="user_info", count=2, status=429, error="rate_limit_exceeded")
    await fetch(settings, "fay")
    await drain(settings)
    statuses = [c["status"] for c in await tiktok.calls("user_info")]
    assert statuses == [429, 429, 200]
    assert await users.get_profile(redis_client, CLIENT_KEY, "fay") is not None
    window: Any = await redis_client.zcard("tiktok:ratelimit:user_info")
    assert window == 3  # every attempt took a slot of the shared budget, none more


async def test_invalid_grant_marks_the_user_and_stops(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = settings_for(redis_url, tiktok.base_url)
    await tiktok.add_user("gus")
    vault = tiktok.vault(settings, redis_client)
    await tiktok.connect(settings, vault, "gus", "user.info.basic")
    await tiktok.fault(
        endpoint="token", count=5, status=400, error="invalid_grant", grant_type="refresh_token"
    )
    pool = await arq_pool(settings)
    try:
        await pool.enqueue_job("refresh_token", CLIENT_KEY, "gus", _queue_name=settings.queue_name)
    finally:
        await pool.aclose()
    # A refresh job refreshes only near expiry: make it due.
    due: Any = redis_client.hset(
        f"tiktok:token:{CLIENT_KEY}:gus", "expires_at", repr(time.time() + 5)
    )
    await due
    await drain(settings)
    record = await vault.get("gus")
    assert record is not None
    assert record.status == "needs_reauth"
    assert len(await tiktok.calls("token", grant_type="refresh_token")) == 1  # no blind retries
    dead: Any = await redis_client.zcard("tiktok:dlq:index")
    assert dead == 0

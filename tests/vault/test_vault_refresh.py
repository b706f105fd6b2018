"""Refreshing through the vault against the project's TikTok sandbox, over real HTTP.

Refresh calls are counted where they land: the sandbox's call log (`GET /sandbox/calls`).
"Another process" is a second TokenVault with its own Redis connection and HTTP client,
and in one test also its own thread and event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from receiver.keys import REFRESH_LOCK_PREFIX, TOKEN_PREFIX
from receiver.secrets import Secret
from receiver.tiktok.client import TikTokClient, TokenGrant, fields_for_scopes
from receiver.tiktok.errors import InvalidGrant, TransientError
from receiver.vault.crypto import TokenCipher
from receiver.vault.vault import (
    ReauthorizationRequired,
    RefreshTimeout,
    TokenRecord,
    TokenStatus,
    TokenVault,
    record_name,
)
from tests.vault.conftest import CLIENT_KEY, CLIENT_SECRET, FakeClock, dump_redis, make_settings
from tests.vault.sandbox_harness import SandboxAdmin, running_sandbox

LOCK_KEY = REFRESH_LOCK_PREFIX + record_name(CLIENT_KEY, "alice")


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with running_sandbox() as url:
        yield url


@pytest.fixture
async def admin(sandbox_url: str) -> AsyncIterator[SandboxAdmin]:
    admin = SandboxAdmin(sandbox_url)
    await admin.reset()
    yield admin
    await admin.aclose()


@pytest.fixture
async def api(sandbox_url: str) -> AsyncIterator[TikTokClient]:
    async with TikTokClient(make_settings(sandbox_url)) as client:
        yield client


@pytest.fixture
def live_vault(
    redis_client: aioredis.Redis, cipher: TokenCipher, api: TikTokClient, clock: FakeClock
) -> TokenVault:
    return TokenVault(redis_client, cipher, api, CLIENT_KEY, clock)


@pytest.fixture
async def other_process(
    redis_url: str, encryption_key: Secret, sandbox_url: str, clock: FakeClock
) -> AsyncIterator[TokenVault]:
    """A second vault sharing nothing in memory with `live_vault` but the clock."""
    redis = aioredis.Redis.from_url(redis_url)
    async with TikTokClient(make_settings(sandbox_url)) as client:
        yield TokenVault(redis, TokenCipher([encryption_key]), client, CLIENT_KEY, clock)
    await redis.aclose()


async def connected(admin: SandboxAdmin, api: TikTokClient, vault: TokenVault) -> Secret:
    """Connect alice through the sandbox's OAuth flow; return her first refresh token."""
    grant = await admin.connect(api, "alice")
    await vault.save_grant(grant)
    return grant.refresh_token


async def test_refresh_rotates_and_persists_the_newest_refresh_token(
    admin: SandboxAdmin, api: TikTokClient, live_vault: TokenVault
) -> None:
    first_refresh_token = await connected(admin, api, live_vault)
    first_access = await live_vault.get_valid_access_token("alice")

    record = await live_vault.refresh("alice")
    assert record.version == 2
    assert record.status is TokenStatus.ACTIVE
    second_access = await live_vault.get_valid_access_token("alice")
    assert second_access != first_access
    # Only works if the vault stored the rotated refresh token from the first refresh.
    assert (await live_vault.refresh("alice")).version == 3

    calls = await admin.refresh_calls()
    assert [c["status"] for c in calls] == [200, 200]
    with pytest.raises(InvalidGrant, match="rotated"):
        await api.refresh(first_refresh_token)
    user = await api.user_info(
        await live_vault.get_valid_access_token("alice"), fields_for_scopes(record.scopes)
    )
    assert user["open_id"] == "alice"


async def test_expiring_token_is_refreshed_on_demand(
    admin: SandboxAdmin, api: TikTokClient, live_vault: TokenVault, clock: FakeClock
) -> None:
    await connected(admin, api, live_vault)
    first = await live_vault.get_valid_access_token("alice")
    clock.advance(7200 - 100)  # sandbox tokens live 7200 s; 100 s left < margin

    fresh = await live_vault.get_valid_access_token("alice", margin_seconds=300)
    assert fresh != first
    assert await live_vault.get_valid_access_token("alice", margin_seconds=300) == fresh
    assert len(await admin.refresh_calls()) == 1
    record = await live_vault.get("alice")
    assert record is not None
    assert record.expires_at == clock.now + 7200
    assert await live_vault.due_for_refresh(600) == []


@pytest.mark.parametrize("how", ["rotated-elsewhere", "expired-at-tiktok"])
async def test_invalid_grant_marks_needs_reauth(
    admin: SandboxAdmin, api: TikTokClient, live_vault: TokenVault, how: str
) -> None:
    refresh_token = await connected(admin, api, live_vault)
    if how == "rotated-elsewhere":
        await api.refresh(refresh_token)  # someone used the token behind the vault's back
    else:
        await admin.http.post("/sandbox/users/alice/expire-refresh-token")

    with pytest.raises(InvalidGrant):
        await live_vault.refresh("alice")
    record = await live_vault.get("alice")
    assert record is not None
    assert record.status is TokenStatus.NEEDS_REAUTH
    assert await live_vault.due_for_refresh(10**9) == []
    calls_so_far = len(await admin.refresh_calls())
    with pytest.raises(ReauthorizationRequired, match="needs_reauth"):
        await live_vault.get_valid_access_token("alice", margin_seconds=10**9)
    with pytest.raises(ReauthorizationRequired):
        await live_vault.refresh("alice")
    assert len(await admin.refresh_calls()) == calls_so_far  # no further attempts


async def test_transient_failure_leaves_the_record_as_it_was(
    admin: SandboxAdmin,
    api: TikTokClient,
    live_vault: TokenVault,
    redis_client: aioredis.Redis,
) -> None:
    await connected(admin, api, live_vault)
    before = await live_vault.get("alice")
    await admin.add_fault(endpoint="token", grant_type="refresh_token", status=503)

    with pytest.raises(TransientError):
        await live_vault.refresh("alice")
    assert await live_vault.get("alice") == before
    assert await redis_client.exists(LOCK_KEY) == 0
    assert (await live_vault.refresh("alice")).version == 2


async def test_two_processes_refreshing_at_once_make_one_call(
    admin: SandboxAdmin,
    api: TikTokClient,
    live_vault: TokenVault,
    other_process: TokenVault,
) -> None:
    await connected(admin, api, live_vault)
    # A slow TikTok keeps the first refresh in flight while the second arrives.
    await admin.add_fault(endpoint="token", grant_type="refresh_token", delay_seconds=0.3)

    ours, theirs = await asyncio.gather(live_vault.refresh("alice"), other_process.refresh("alice"))

    assert ours == theirs
    assert ours.version == 2
    assert len(await admin.refresh_calls()) == 1
    token = await other_process.get_valid_access_token("alice")
    assert token == await live_vault.get_valid_access_token("alice")
    assert (await api.user_info(token, ["open_id"]))["open_id"] == "alice"


async def test_many_callers_needing_a_fresh_token_share_one_refresh(
    admin: SandboxAdmin,
    api: TikTokClient,
    live_vault: TokenVault,
    other_process: TokenVault,
    clock: FakeClock,
) -> None:
    await connected(admin, api, live_vault)
    clock.advance(7200)  # expired

    tokens = await asyncio.gather(
        *(v.get_valid_access_token("alice") for _ in range(10) for v in (live_vault, other_process))
    )
    assert len({t.reveal() for t in tokens}) == 1
    assert len(await admin.refresh_calls()) == 1


async def test_a_vault_on_another_thread_and_event_loop_waits_for_ours(
    admin: SandboxAdmin,
    api: TikTokClient,
    live_vault: TokenVault,
    redis_url: str,
    encryption_key: Secret,
    sandbox_url: str,
    clock: FakeClock,
) -> None:
    await connected(admin, api, live_vault)
    await admin.add_fault(endpoint="token", grant_type="refresh_token", delay_seconds=0.3)

    async def elsewhere() -> TokenRecord:
        redis = aioredis.Redis.from_url(redis_url)
        try:
            async with TikTokClient(make_settings(sandbox_url)) as client:
                vault = TokenVault(redis, TokenCipher([encryption_key]), client, CLIENT_KEY, clock)
                return await vault.refresh("alice")
        finally:
            await redis.aclose()

    ours, theirs = await asyncio.gather(
        live_vault.refresh("alice"), asyncio.to_thread(asyncio.run, elsewhere())
    )
    assert ours == theirs
    assert len(await admin.refresh_calls()) == 1


async def test_a_waiter_refreshes_itself_when_the_holder_failed(
    admin: SandboxAdmin,
    api: TikTokClient,
    live_vault: TokenVault,
    other_process: TokenVault,
) -> None:
    await connected(admin, api, live_vault)
    await admin.add_fault(
        endpoint="token", grant_type="refresh_token", status=503, delay_seconds=0.3
    )

    results = await asyncio.gather(
        live_vault.refresh("alice"), other_process.refresh("alice"), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["TokenRecord", "TransientError"]
    assert [c["status"] for c in await admin.refresh_calls()] == [503, 200]
    record = await live_vault.get("alice")
    assert record is not None
    assert record.version == 2


async def test_a_crashed_holders_lock_expires(
    admin: SandboxAdmin,
    api: TikTokClient,
    live_vault: TokenVault,
    redis_client: aioredis.Redis,
) -> None:
    await connected(admin, api, live_vault)
    await redis_client.set(LOCK_KEY, "a-process-that-died", px=300)

    record = await live_vault.refresh("alice")
    assert record.version == 2
    assert len(await admin.refresh_calls()) == 1
    assert await redis_client.exists(LOCK_KEY) == 0


async def test_a_lock_held_too_long_is_a_retryable_timeout(
    admin: SandboxAdmin,
    api: TikTokClient,
    redis_client: aioredis.Redis,
    cipher: TokenCipher,
    clock: FakeClock,
) -> None:
    vault = TokenVault(redis_client, cipher, api, CLIENT_KEY, clock, lock_ttl_seconds=0.2)
    await connected(admin, api, vault)
    await redis_client.set(LOCK_KEY, "stuck", px=10_000)

    with pytest.raises(RefreshTimeout) as excinfo:
        await vault.refresh("alice")
    assert excinfo.value.is_retryable
    assert await redis_client.get(LOCK_KEY) == b"stuck"  # never released by someone else
    assert await admin.refresh_calls() == []


async def test_the_lock_expires_on_its_own_and_is_released_after_use(
    admin: SandboxAdmin,
    api: TikTokClient,
    live_vault: TokenVault,
    redis_client: aioredis.Redis,
) -> None:
    await connected(admin, api, live_vault)
    await admin.add_fault(endpoint="token", grant_type="refresh_token", delay_seconds=0.3)
    task = asyncio.create_task(live_vault.refresh("alice"))
    for _ in range(500):
        if await redis_client.exists(LOCK_KEY):
            break
        await asyncio.sleep(0.01)
    assert 0 < await redis_client.pttl(LOCK_KEY) <= 30_000
    await task
    assert await redis_client.exists(LOCK_KEY) == 0


async def test_no_token_in_redis_or_logs_after_refreshes(
    admin: SandboxAdmin,
    api: TikTokClient,
    live_vault: TokenVault,
    redis_client: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    grant = await admin.connect(api, "alice")
    await live_vault.save_grant(grant)
    await live_vault.refresh("alice")
    access = await live_vault.get_valid_access_token("alice")
    await admin.http.post("/sandbox/users/alice/expire-refresh-token")
    with pytest.raises(InvalidGrant):
        await live_vault.refresh("alice")

    secrets = [grant.access_token.reveal(), grant.refresh_token.reveal(), access.reveal()]
    stored = await dump_redis(redis_client)
    ours = [
        r.getMessage()
        for r in caplog.records
        if not r.name.startswith(("sandbox", "uvicorn"))  # the fake TikTok's own logs
    ]
    assert any("needs_reauth" in line for line in ours)
    for secret in [*secrets, CLIENT_SECRET]:
        assert secret.encode() not in stored
        assert not any(secret in line for line in ours)
    assert stored.count(TOKEN_PREFIX.encode()) == 1


async def test_a_caller_who_gets_the_lock_late_uses_the_refresh_it_missed(
    admin: SandboxAdmin, api: TikTokClient, live_vault: TokenVault, other_process: TokenVault
) -> None:
    """The race where B read version 1, A refreshed and released, then B got the lock."""
    await connected(admin, api, live_vault)
    await live_vault.refresh("alice")

    late = await other_process._refresh_once(1, "alice")  # B's view: it saw version 1
    assert late.record.version == 2
    assert len(await admin.refresh_calls()) == 1


async def test_a_failed_save_after_rotation_is_retried(
    admin: SandboxAdmin,
    api: TikTokClient,
    live_vault: TokenVault,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TikTok already retired the old refresh token: losing this write would log the user out."""
    await connected(admin, api, live_vault)
    real_save = live_vault._save_if_version
    attempts: list[str] = []

    async def flaky_save(grant: TokenGrant, version: int) -> TokenRecord | None:
        attempts.append(grant.open_id)
        if len(attempts) == 1:
            raise RedisConnectionError("Redis failed over")
        return await real_save(grant, version)

    monkeypatch.setattr(live_vault, "_save_if_version", flaky_save)
    record = await live_vault.refresh("alice")
    assert record.version == 2
    assert attempts == ["alice", "alice"]
    assert len(await admin.refresh_calls()) == 1
    monkeypatch.undo()
    assert (await live_vault.refresh("alice")).version == 3  # the rotated token was kept


# -- a slow or lost refresh answer (the sandbox's delay fault on the refresh grant) --------


async def holder_is_waiting_for_tiktok(redis_client: aioredis.Redis) -> None:
    """Until the refresh lock is taken, then a moment for the holder to send its request."""
    while not await redis_client.exists(LOCK_KEY):  # noqa: ASYNC110 - state lives in Redis
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)


async def test_a_slow_refresh_does_not_overwrite_newer_tokens(
    admin: SandboxAdmin, api: TikTokClient, live_vault: TokenVault, redis_client: aioredis.Redis
) -> None:
    await connected(admin, api, live_vault)
    await admin.add_fault(endpoint="token", grant_type="refresh_token", delay_seconds=1.5)
    slow = asyncio.create_task(live_vault.refresh("alice"))
    await holder_is_waiting_for_tiktok(redis_client)
    newer = await admin.connect(api, "alice")  # the user connects again meanwhile
    stored = await live_vault.save_grant(newer)
    result = await slow
    assert result.version == stored.version
    assert await live_vault.get_valid_access_token("alice", margin_seconds=0) == (
        newer.access_token
    )


async def test_a_refused_slow_refresh_does_not_disconnect_a_reconnected_user(
    admin: SandboxAdmin, api: TikTokClient, live_vault: TokenVault, redis_client: aioredis.Redis
) -> None:
    await connected(admin, api, live_vault)
    await admin.add_fault(
        endpoint="token",
        grant_type="refresh_token",
        delay_seconds=1.5,
        status=400,
        error="invalid_grant",
    )
    slow = asyncio.create_task(live_vault.refresh("alice"))
    await holder_is_waiting_for_tiktok(redis_client)
    newer = await admin.connect(api, "alice")
    await live_vault.save_grant(newer)
    await slow  # the refusal concerned the old tokens: no exception, no needs_reauth
    record = await live_vault.get("alice")
    assert record is not None
    assert record.status is TokenStatus.ACTIVE
    assert await live_vault.get_valid_access_token("alice", margin_seconds=0) == (
        newer.access_token
    )


async def test_a_refresh_without_an_answer_is_uncertain_then_retried_once(
    admin: SandboxAdmin,
    sandbox_url: str,
    redis_client: aioredis.Redis,
    cipher: TokenCipher,
    clock: FakeClock,
) -> None:
    async with TikTokClient(make_settings(sandbox_url, timeout=0.5)) as impatient:
        vault = TokenVault(
            redis_client, cipher, impatient, CLIENT_KEY, clock, uncertain_backoff_seconds=0.3
        )
        await connected(admin, impatient, vault)
        await admin.add_fault(endpoint="token", grant_type="refresh_token", delay_seconds=3)
        with pytest.raises(TransientError):
            await vault.refresh("alice")
        key = TOKEN_PREFIX + record_name(CLIENT_KEY, "alice")
        fields = await redis_client.hgetall(key)  # type: ignore[misc]
        assert b"refresh_uncertain_at" in fields
        assert fields[b"status"] == b"active"

        before = await vault.get("alice")
        record = await vault.refresh("alice")  # waits out the backoff, then tries once more
    assert before is not None
    assert record.status is TokenStatus.ACTIVE
    assert record.version == before.version + 1  # the retry's rotated tokens are stored
    fields = await redis_client.hgetall(key)  # type: ignore[misc]
    assert b"refresh_uncertain_at" not in fields

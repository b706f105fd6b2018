"""TokenVault storage: records, encryption at rest, the expiry index, status changes.

No TikTok is reachable here; any refresh attempt would fail with TransientError.
"""

from __future__ import annotations

import base64

import pytest
import redis.asyncio as aioredis

from receiver.keys import PROFILE_PREFIX, TOKEN_EXPIRY_INDEX, TOKEN_PREFIX
from receiver.secrets import Secret
from receiver.tiktok.client import TikTokClient
from receiver.vault.crypto import TokenCipher, generate_key
from receiver.vault.rotation import reencrypt_records
from receiver.vault.vault import (
    CorruptRecord,
    ReauthorizationRequired,
    TokenNotFound,
    TokenStatus,
    TokenVault,
    profile_key,
    token_key,
)
from tests.vault.conftest import (
    CLIENT_KEY,
    CLIENT_SECRET,
    START,
    FakeClock,
    dump_redis,
    make_grant,
)


async def test_save_and_get_record(vault: TokenVault, clock: FakeClock) -> None:
    saved = await vault.save_grant(make_grant("user-1", expires_in=86400))
    record = await vault.get("user-1")

    assert record == saved
    assert record is not None
    assert record.client_key == CLIENT_KEY
    assert record.status is TokenStatus.ACTIVE
    assert record.scopes == ("user.info.basic", "user.info.profile")
    assert record.expires_at == START + 86400
    assert record.refresh_expires_at == START + 15_552_000
    assert record.updated_at == START
    assert record.version == 1
    assert await vault.get("someone-else") is None


async def test_expiry_times_come_from_each_response(vault: TokenVault, clock: FakeClock) -> None:
    await vault.save_grant(make_grant(expires_in=86400, refresh_expires_in=31_536_000))
    clock.advance(20)
    record = await vault.save_grant(make_grant(n=2, expires_in=7200, refresh_expires_in=31_535_980))
    assert record.expires_at == START + 20 + 7200
    assert record.refresh_expires_at == START + 31_536_000  # not reset by refreshing
    assert record.version == 2


async def test_no_plaintext_token_anywhere_in_redis(
    vault: TokenVault, redis_client: aioredis.Redis
) -> None:
    grants = [make_grant(f"user-{i}", n=i) for i in range(3)]
    for grant in grants:
        await vault.save_grant(grant)
    await redis_client.set(PROFILE_PREFIX + "x", "unrelated")

    everything = await dump_redis(redis_client)
    assert b"user-2" in everything  # the dump does see the records
    for grant in grants:
        for token in (grant.access_token.reveal(), grant.refresh_token.reveal()):
            assert token.encode() not in everything
            assert base64.b64encode(token.encode()) not in everything
    for fragment in (b"ACCESS", b"REFRESH", CLIENT_SECRET.encode()):
        assert fragment not in everything


async def test_valid_token_is_returned_without_a_call(vault: TokenVault, clock: FakeClock) -> None:
    grant = make_grant(expires_in=7200)
    await vault.save_grant(grant)
    clock.advance(7200 - 301)
    token = await vault.get_valid_access_token("user-1", margin_seconds=300)
    assert token == grant.access_token
    assert isinstance(token, Secret)


async def test_unknown_user_is_token_not_found(vault: TokenVault) -> None:
    with pytest.raises(TokenNotFound):
        await vault.get_valid_access_token("nobody")
    with pytest.raises(TokenNotFound):
        await vault.refresh("nobody")


async def test_expiry_index_tracks_active_records(
    vault: TokenVault, redis_client: aioredis.Redis, clock: FakeClock
) -> None:
    await vault.save_grant(make_grant("soon", expires_in=600))
    await vault.save_grant(make_grant("later", expires_in=7200))
    assert await redis_client.zscore(TOKEN_EXPIRY_INDEX, f"{CLIENT_KEY}:soon") == (
        (START + 600) * 1000
    )
    assert await vault.due_for_refresh(900) == ["soon"]
    assert await vault.due_for_refresh(8000) == ["soon", "later"]

    # A refresh moves the entry; a revoked user leaves the index.
    await vault.save_grant(make_grant("soon", n=2, expires_in=7200))
    clock.advance(1)
    await vault.save_grant(make_grant("later", n=2, expires_in=7200))
    assert await vault.due_for_refresh(900) == []
    assert await vault.due_for_refresh(7200) == ["soon", "later"]
    await vault.mark_revoked("soon")
    assert await vault.due_for_refresh(8000) == ["later"]


async def test_other_apps_records_are_not_listed(
    vault: TokenVault,
    redis_client: aioredis.Redis,
    cipher: TokenCipher,
    offline_client: TikTokClient,
    clock: FakeClock,
) -> None:
    other = TokenVault(redis_client, cipher, offline_client, "otherclientkey", clock)
    await other.save_grant(make_grant("theirs", expires_in=60))
    await vault.save_grant(make_grant("b-user", expires_in=60))
    await vault.save_grant(make_grant("a-user", expires_in=60))

    assert sorted(await vault.due_for_refresh(120)) == ["a-user", "b-user"]
    assert [r.open_id for r in await vault.list_records()] == ["a-user", "b-user"]
    assert [r.open_id for r in await other.list_records()] == ["theirs"]


async def test_mark_revoked_drops_tokens(vault: TokenVault, redis_client: aioredis.Redis) -> None:
    await vault.save_grant(make_grant())
    assert await vault.mark_revoked("user-1") is True

    record = await vault.get("user-1")
    assert record is not None
    assert record.status is TokenStatus.REVOKED
    assert record.version == 2
    assert await redis_client.hexists(token_key(CLIENT_KEY, "user-1"), "tokens") is False  # type: ignore[misc]
    with pytest.raises(ReauthorizationRequired, match="revoked"):
        await vault.get_valid_access_token("user-1")
    with pytest.raises(ReauthorizationRequired):
        await vault.refresh("user-1")


async def test_marking_a_missing_user_creates_nothing(
    vault: TokenVault, redis_client: aioredis.Redis
) -> None:
    assert await vault.mark_revoked("ghost") is False
    assert await vault.mark_needs_reauth("ghost") is False
    assert await redis_client.dbsize() == 0


async def test_a_new_grant_reactivates_a_revoked_user(vault: TokenVault) -> None:
    await vault.save_grant(make_grant())
    await vault.mark_revoked("user-1")
    grant = make_grant(n=2)
    await vault.save_grant(grant)
    assert await vault.get_valid_access_token("user-1") == grant.access_token


async def test_delete_removes_tokens_index_and_profile(
    vault: TokenVault, redis_client: aioredis.Redis
) -> None:
    await vault.save_grant(make_grant())
    await vault.save_grant(make_grant("keeper"))
    await redis_client.set(profile_key(CLIENT_KEY, "user-1"), b"{}")

    await vault.delete("user-1")
    assert await vault.get("user-1") is None
    assert await redis_client.exists(profile_key(CLIENT_KEY, "user-1")) == 0
    assert await redis_client.zscore(TOKEN_EXPIRY_INDEX, f"{CLIENT_KEY}:user-1") is None
    assert await vault.get("keeper") is not None


async def test_expired_refresh_token_needs_reauth_without_calling_tiktok(
    vault: TokenVault, clock: FakeClock
) -> None:
    await vault.save_grant(make_grant(expires_in=7200, refresh_expires_in=86400))
    clock.advance(86400)
    with pytest.raises(ReauthorizationRequired, match="expired"):
        await vault.get_valid_access_token("user-1")
    record = await vault.get("user-1")
    assert record is not None
    assert record.status is TokenStatus.NEEDS_REAUTH


async def test_reencrypt_all_moves_records_to_the_new_key(
    redis_client: aioredis.Redis, offline_client: TikTokClient, clock: FakeClock
) -> None:
    old_key, new_key = Secret(generate_key()), Secret(generate_key())
    old_vault = TokenVault(redis_client, TokenCipher([old_key]), offline_client, CLIENT_KEY, clock)
    other_app = TokenVault(redis_client, TokenCipher([old_key]), offline_client, "app2", clock)
    grants = [make_grant(f"user-{i}", n=i) for i in range(5)]
    for grant in grants:
        await old_vault.save_grant(grant)
    await other_app.save_grant(make_grant("elsewhere"))
    await old_vault.save_grant(make_grant("gone"))
    await old_vault.mark_revoked("gone")  # a record without tokens is skipped

    rotating = TokenVault(
        redis_client, TokenCipher([new_key, old_key]), offline_client, CLIENT_KEY, clock
    )
    assert await rotating.get_valid_access_token("user-3") == grants[3].access_token
    assert (await rotating.reencrypt_all()).reencrypted == 6  # every app's records
    assert (await rotating.reencrypt_all()).reencrypted == 0

    new_only = TokenVault(redis_client, TokenCipher([new_key]), offline_client, CLIENT_KEY, clock)
    for grant in grants:
        assert await new_only.get_valid_access_token(grant.open_id) == grant.access_token
    with pytest.raises(CorruptRecord, match="not in TOKEN_ENCRYPTION_KEYS"):
        await old_vault.get_valid_access_token("user-0")


async def test_wrong_key_is_a_clean_error_and_metadata_stays_readable(
    vault: TokenVault,
    redis_client: aioredis.Redis,
    offline_client: TikTokClient,
    clock: FakeClock,
) -> None:
    await vault.save_grant(make_grant())
    stranger = TokenVault(
        redis_client, TokenCipher([Secret(generate_key())]), offline_client, CLIENT_KEY, clock
    )
    assert await stranger.get("user-1") is not None
    with pytest.raises(CorruptRecord) as excinfo:
        await stranger.get_valid_access_token("user-1")
    assert "ACCESS" not in str(excinfo.value)


async def test_blob_copied_to_another_user_does_not_decrypt(
    vault: TokenVault, redis_client: aioredis.Redis
) -> None:
    await vault.save_grant(make_grant("victim"))
    await vault.save_grant(make_grant("attacker"))
    stolen = await redis_client.hget(token_key(CLIENT_KEY, "victim"), "tokens")  # type: ignore[misc]
    await redis_client.hset(token_key(CLIENT_KEY, "attacker"), "tokens", stolen)  # type: ignore[misc]
    with pytest.raises(CorruptRecord, match="another record"):
        await vault.get_valid_access_token("attacker")


@pytest.mark.parametrize("field", ["tokens", "expires_at", "status"])
async def test_damaged_record_is_corrupt_record(
    vault: TokenVault, redis_client: aioredis.Redis, field: str
) -> None:
    await vault.save_grant(make_grant())
    await redis_client.hset(token_key(CLIENT_KEY, "user-1"), field, "###")  # type: ignore[misc]
    with pytest.raises(CorruptRecord):
        await vault.get_valid_access_token("user-1")


async def test_works_with_a_decoding_redis_client(
    redis_url: str, cipher: TokenCipher, offline_client: TikTokClient, clock: FakeClock
) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        text_vault = TokenVault(client, cipher, offline_client, CLIENT_KEY, clock)
        grant = make_grant()
        await text_vault.save_grant(grant)
        assert await text_vault.get_valid_access_token("user-1") == grant.access_token
        assert [r.open_id for r in await text_vault.list_records()] == ["user-1"]
        assert await text_vault.due_for_refresh(10_000) == ["user-1"]
    finally:
        await client.aclose()


async def test_reprs_show_no_tokens(vault: TokenVault) -> None:
    grant = make_grant()
    record = await vault.save_grant(grant)
    texts = [repr(grant), str(grant), repr(record), str(record), repr(vault), str(vault)]
    for text in texts:
        assert "ACCESS" not in text
        assert "REFRESH" not in text
        assert CLIENT_SECRET not in text
    assert "Secret(********)" in repr(grant)


def test_keys_live_under_the_shared_prefixes() -> None:
    assert token_key("ck", "u").startswith(TOKEN_PREFIX)
    assert profile_key("ck", "u").startswith(PROFILE_PREFIX)


async def test_key_rotation_needs_no_tiktok_client(
    vault: TokenVault, redis_client: aioredis.Redis, encryption_key: Secret
) -> None:
    await vault.save_grant(make_grant())
    new_key = Secret(generate_key())
    first = await reencrypt_records(redis_client, TokenCipher([new_key, encryption_key]))
    assert (first.reencrypted, first.complete) == (1, True)
    again = await reencrypt_records(redis_client, TokenCipher([new_key]))
    assert (again.reencrypted, again.complete) == (0, True)

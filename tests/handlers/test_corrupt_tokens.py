"""One corrupt token record neither blocks key rotation nor fills the dead-letter list."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from typing import Any, cast

import redis.asyncio as aioredis
from arq.connections import create_pool
from prometheus_client import REGISTRY

from handlers.deadletter import DeadLetterStore
from handlers.worker import redis_settings
from receiver import keys
from receiver.ingest.jobs import REFRESH_TOKEN, job_deserializer, job_serializer
from receiver.secrets import Secret
from receiver.settings import ENV_NAMES
from receiver.tiktok.client import TikTokClient, TokenGrant
from receiver.vault.crypto import TokenCipher, generate_key
from receiver.vault.vault import TokenStatus, TokenVault, record_name, token_key
from tests.factories import CLIENT_KEY, CLIENT_SECRET
from tests.worker_support import TEST_ENCRYPTION_KEY, drain, worker_settings

OLD_KEY = TEST_ENCRYPTION_KEY


def grant(open_id: str, expires_in: int = 86400) -> TokenGrant:
    return TokenGrant(
        open_id=open_id,
        scope=("user.info.basic",),
        access_token=Secret(f"act.{open_id}.{os.urandom(6).hex()}"),
        refresh_token=Secret(f"rft.{open_id}.{os.urandom(6).hex()}"),
        expires_in=expires_in,
        refresh_expires_in=365 * 86400,
        token_type="Bearer",
    )


async def store_users(redis_url: str, open_ids: list[str], expires_in: int = 86400) -> None:
    settings = worker_settings(redis_url)
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with TikTokClient(settings) as api:
            vault = TokenVault(client, TokenCipher([Secret(OLD_KEY)]), api, CLIENT_KEY)
            for open_id in open_ids:
                await vault.save_grant(grant(open_id, expires_in))
    finally:
        await client.aclose()


async def tamper(redis_client: aioredis.Redis, open_id: str) -> None:
    key = token_key(CLIENT_KEY, open_id)
    blob = bytearray(base64.b64decode(await cast(Any, redis_client).hget(key, "tokens")))
    blob[-1] ^= 0x01  # one flipped bit: the GCM tag no longer matches
    await cast(Any, redis_client).hset(key, "tokens", base64.b64encode(bytes(blob)))


async def status_of(redis_client: aioredis.Redis, open_id: str) -> str:
    raw = await cast(Any, redis_client).hget(token_key(CLIENT_KEY, open_id), "status")
    return str(raw.decode())


async def test_reencrypt_skips_and_reports_a_corrupt_record(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    await store_users(redis_url, ["ann", "bea", "cid"])
    await tamper(redis_client, "bea")
    new_key = generate_key()
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env |= {
        "TIKTOK_CLIENT_KEY": CLIENT_KEY,
        "TIKTOK_CLIENT_SECRET": CLIENT_SECRET,
        "REDIS_URL": redis_url,
        "TOKEN_ENCRYPTION_KEYS": f"{new_key},{OLD_KEY}",
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "receiver.cli", "tokens", "reencrypt"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "re-encrypted 2 token record(s)" in result.stdout
    assert f"corrupt (marked corrupt, the user must connect again): {CLIENT_KEY}:bea" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert await status_of(redis_client, "bea") == TokenStatus.CORRUPT.value
    assert await status_of(redis_client, "ann") == TokenStatus.ACTIVE.value
    index = {m.decode() for m in await redis_client.zrange(keys.TOKEN_EXPIRY_INDEX, 0, -1)}
    assert index == {record_name(CLIENT_KEY, "ann"), record_name(CLIENT_KEY, "cid")}
    # The good records now open with the new key alone.
    new_only = TokenCipher([Secret(new_key)])
    for open_id in ("ann", "cid"):
        blob = await cast(Any, redis_client).hget(token_key(CLIENT_KEY, open_id), "tokens")
        new_only.decrypt(base64.b64decode(blob), context=record_name(CLIENT_KEY, open_id))


async def test_a_corrupt_record_is_dead_lettered_once_then_left_out_of_the_sweep(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    # Due for refresh (expires in a minute, well within the margin).
    await store_users(redis_url, ["dan"], expires_in=60)
    await tamper(redis_client, "dan")
    settings = worker_settings(redis_url)
    pool = await create_pool(
        redis_settings(settings), job_serializer=job_serializer, job_deserializer=job_deserializer
    )
    try:
        await pool.enqueue_job(REFRESH_TOKEN, CLIENT_KEY, "dan", _job_id="refresh:dan")
        await drain(settings)
        assert await DeadLetterStore(pool).size() <= 1
        assert await status_of(redis_client, "dan") == TokenStatus.CORRUPT.value
        # The refresh cron finds nothing to enqueue any more.
        async with TikTokClient(settings) as api:
            vault = TokenVault(redis_client, TokenCipher([Secret(OLD_KEY)]), api, CLIENT_KEY)
            assert await vault.due_for_refresh(3600) == []
            [record] = await vault.list_records()
            assert record.status is TokenStatus.CORRUPT
    finally:
        await pool.aclose()
    assert REGISTRY.get_sample_value("tiktok_token_records_corrupt") is not None

"""Fixtures for vault tests: a cipher, settings for one app, a controllable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from receiver.secrets import Secret
from receiver.settings import AppCredentials, Settings
from receiver.testing.redis_server import free_port
from receiver.tiktok.client import TikTokClient, TokenGrant
from receiver.vault.crypto import TokenCipher, generate_key
from receiver.vault.vault import TokenVault

CLIENT_KEY = "awvaulttestkey01"
CLIENT_SECRET = "vault-test-client-secret-7f3a"
START = 1_800_000_000.0


class FakeClock:
    """Wall clock for the vault; tests move it with `advance`."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_settings(api_base_url: str | None = None, *, timeout: float = 2.0) -> Settings:
    # Default: a loopback port nobody listens on, so an unexpected call fails loudly.
    base_url = api_base_url or f"http://127.0.0.1:{free_port()}"
    return Settings(
        apps=(AppCredentials(CLIENT_KEY, (Secret(CLIENT_SECRET),)),),
        tiktok_api_base_url=base_url,
        tiktok_auth_url=base_url + "/v2/auth/authorize/",
        http_timeout_seconds=timeout,
    )


def make_grant(open_id: str = "user-1", n: int = 1, **overrides: object) -> TokenGrant:
    fields: dict[str, object] = {
        "open_id": open_id,
        "scope": ("user.info.basic", "user.info.profile"),
        "access_token": Secret(f"act.ACCESS{n}-{open_id}-0123456789abcdef"),
        "refresh_token": Secret(f"rft.REFRESH{n}-{open_id}-0123456789abcdef"),
        "expires_in": 7200,
        "refresh_expires_in": 15_552_000,
    }
    fields.update(overrides)
    return TokenGrant(**fields)  # type: ignore[arg-type]


async def dump_redis(client: aioredis.Redis) -> bytes:
    """Every key and value in Redis, concatenated, to search for plaintext."""
    parts: list[bytes] = []
    async for key in client.scan_iter(match="*"):
        parts.append(key)
        kind = (await client.type(key)).decode()
        if kind == "string":
            parts.append(await client.get(key) or b"")
        elif kind == "hash":
            for field, value in (await client.hgetall(key)).items():  # type: ignore[misc]
                parts += [field, value]
        elif kind == "zset":
            parts += [m for m, _ in await client.zrange(key, 0, -1, withscores=True)]
        elif kind == "list":
            parts += await client.lrange(key, 0, -1)  # type: ignore[misc]
        elif kind == "set":
            parts += list(await client.smembers(key))  # type: ignore[misc]
        else:
            raise AssertionError(f"unexpected Redis type {kind}")
    return b"\n".join(parts)


@pytest.fixture
def encryption_key() -> Secret:
    return Secret(generate_key())


@pytest.fixture
def cipher(encryption_key: Secret) -> TokenCipher:
    return TokenCipher([encryption_key])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def offline_client() -> AsyncIterator[TikTokClient]:
    """A client whose TikTok is unreachable: storage tests must make no calls."""
    async with TikTokClient(make_settings()) as client:
        yield client


@pytest.fixture
def vault(
    redis_client: aioredis.Redis,
    cipher: TokenCipher,
    offline_client: TikTokClient,
    clock: FakeClock,
) -> TokenVault:
    return TokenVault(redis_client, cipher, offline_client, CLIENT_KEY, clock)

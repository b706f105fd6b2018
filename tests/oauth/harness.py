"""A browser for the OAuth tests: the receiver in-process, TikTok (the sandbox) over HTTP.

`Browser` is one httpx client with one cookie jar. Requests to https://receiver.example go
to the receiver app in-process (its lifespan is run), everything else over real HTTP, so
redirects between the two are followed exactly as a browser would.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, Final, cast
from urllib.parse import urlencode

import httpx
import msgspec
import redis.asyncio as aioredis

from receiver.app import ReceiverApp, create_app
from receiver.secrets import Secret
from receiver.settings import Settings
from receiver.vault.crypto import TokenCipher, generate_key
from receiver.vault.vault import token_key
from tests.factories import CLIENT_KEY, CLIENT_SECRET, make_settings

RECEIVER: Final = "https://receiver.example"
REDIRECT_URI: Final = f"{RECEIVER}/oauth/tiktok/callback"
# Registered in the sandbox too: a second deployment with another redirect URI.
OTHER_REDIRECT_URI: Final = f"{RECEIVER}/other/oauth/tiktok/callback"
START: Final = f"{RECEIVER}/oauth/tiktok/start"
ENCRYPTION_KEY: Final = generate_key()
ADMIN_TOKEN: Final = "admin-" + generate_key()
USERS: Final = ("alice", "bob")


def oauth_settings(redis_url: str, sandbox_url: str, **env: str) -> Settings:
    base = {
        # The sandbox speaks http on loopback, which only development allows.
        "TIKTOK_WEBHOOKS_ENV": "development",
        "TIKTOK_API_BASE_URL": sandbox_url,
        "TIKTOK_AUTH_URL": f"{sandbox_url}/v2/auth/authorize/",
        "TIKTOK_REDIRECT_URI": REDIRECT_URI,
        "TOKEN_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "ADMIN_TOKEN": ADMIN_TOKEN,
    }
    return make_settings(redis_url, **{**base, **env})


class Browser:
    def __init__(self, app: ReceiverApp) -> None:
        self.app = app
        self.http = httpx.AsyncClient(
            mounts={
                RECEIVER: httpx.ASGITransport(app=app),
                "all://": httpx.AsyncHTTPTransport(),
            },
            timeout=10,
        )

    async def start(self) -> str:
        """GET /oauth/tiktok/start; the authorize URL it redirects to."""
        response = await self.http.get(START)
        assert response.status_code == 302, response.text
        return response.headers["location"]

    async def authorize(self, url: str, user: str = "alice", decision: str = "approve") -> str:
        """TikTok's authorize page (the sandbox); the callback URL it redirects to."""
        hints = urlencode({"sandbox_user": user, "sandbox_decision": decision})
        response = await self.http.get(f"{url}&{hints}")
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(RECEIVER), location
        return location

    async def connect(self, user: str = "alice") -> httpx.Response:
        """The whole flow; the page the callback redirects to."""
        callback = await self.authorize(await self.start(), user)
        return await self.finish(callback)

    async def finish(self, callback: str) -> httpx.Response:
        """GET the callback URL; on success, the page it redirects to (a URL without the
        code, so a reload is harmless)."""
        response = await self.http.get(callback)
        if response.status_code == 303 and not response.headers["location"].startswith("http"):
            return await self.http.get(response.url.join(response.headers["location"]))
        return response

    async def admin(self, method: str, path: str, token: str = ADMIN_TOKEN) -> httpx.Response:
        """A call to the internal API with the admin token."""
        return await self.http.request(
            method, f"{RECEIVER}{path}", headers={"Authorization": f"Bearer {token}"}
        )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Browser]:
    """The receiver app with its lifespan, and a browser pointed at it."""
    app = create_app(settings)
    async with app.lifespan(app.starlette):
        browser = Browser(app)
        try:
            yield browser
        finally:
            await browser.http.aclose()


async def stored_tokens(redis: aioredis.Redis, open_id: str) -> tuple[str, str]:
    """(access token, refresh token) decrypted from the vault's record, for leak checks."""
    key = token_key(CLIENT_KEY, open_id)
    blob = await cast(Any, redis.hget(key, "tokens"))
    assert blob is not None, f"no tokens stored for {open_id}"
    cipher = TokenCipher([Secret(ENCRYPTION_KEY)])
    plain = cipher.decrypt(base64.b64decode(blob), context=f"{CLIENT_KEY}:{open_id}")
    access, refresh = msgspec.msgpack.decode(plain)
    return str(access), str(refresh)


async def redis_dump(redis: aioredis.Redis) -> bytes:
    """Every key and every value in Redis, concatenated (for "is X stored in clear?")."""
    parts: list[bytes] = []
    async for key in redis.scan_iter(count=1000):
        parts.append(key)
        kind = (await redis.type(key)).decode()
        client = cast(Any, redis)
        if kind == "string":
            parts.append(await client.get(key) or b"")
        elif kind == "hash":
            for field, value in (await client.hgetall(key)).items():
                parts += [field, value]
        elif kind == "zset":
            parts += await client.zrange(key, 0, -1)
        elif kind == "list":
            parts += await client.lrange(key, 0, -1)
        elif kind == "set":
            parts += list(await client.smembers(key))
        elif kind == "stream":
            for _, fields in await client.xrange(key):
                for field, value in fields.items():
                    parts += [field, value]
        else:
            raise AssertionError(f"unexpected Redis type {kind} for {key!r}")
    return b"\n".join(parts)


def assert_absent(haystack: str | bytes, needles: Iterable[str], where: str) -> None:
    text = haystack.decode("utf-8", "replace") if isinstance(haystack, bytes) else haystack
    for needle in needles:
        assert needle, "empty needle"
        assert needle not in text, f"{where} contains a secret ({needle[:6]}...)"


def secrets_of_config() -> list[str]:
    return [CLIENT_SECRET, ENCRYPTION_KEY, ADMIN_TOKEN]

"""The state check: present, known, unused, and from the browser that started the flow."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlencode, urlsplit

import redis.asyncio as aioredis

from receiver import keys
from receiver.app import create_app
from receiver.vault.vault import token_key
from tests.factories import CLIENT_KEY
from tests.oauth.conftest import Tiktok
from tests.oauth.harness import RECEIVER, Browser, oauth_settings, running


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return parts._replace(query=urlencode(query)).geturl()


async def nothing_connected(redis: aioredis.Redis, tiktok: Tiktok) -> None:
    assert await redis.exists(token_key(CLIENT_KEY, "alice")) == 0
    assert await redis.zcard("arq:queue") == 0
    # The code was never sent to TikTok.
    assert await tiktok.calls("token") == []


async def test_missing_state(redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        callback = await browser.authorize(await browser.start())
        response = await browser.http.get(with_query(callback, state=None))
    assert response.status_code == 400
    assert "has no state parameter" in response.text
    assert 'href="start"' in response.text
    await nothing_connected(redis_client, tiktok)


async def test_unknown_or_malformed_state(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        callback = await browser.authorize(await browser.start())
        for state in ("A" * 43, "not a state", "x" * 5000):
            response = await browser.http.get(with_query(callback, state=state))
            assert response.status_code == 400
            assert "unknown or has expired" in response.text or "too long" in response.text
    await nothing_connected(redis_client, tiktok)


async def test_reused_state(redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        callback = await browser.authorize(await browser.start())
        assert (await browser.finish(callback)).status_code == 200
        again = await browser.http.get(callback)
    assert again.status_code == 400
    assert "already used" in again.text
    assert len(await tiktok.calls("token")) == 1


async def test_state_expires_with_its_ttl(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = oauth_settings(redis_url, tiktok.url, OAUTH_STATE_TTL_SECONDS="1")
    async with running(settings) as browser:
        callback = await browser.authorize(await browser.start())
        await asyncio.sleep(1.2)
        response = await browser.http.get(callback)
    assert response.status_code == 400
    assert "unknown or has expired" in response.text
    await nothing_connected(redis_client, tiktok)


async def test_a_used_marker_is_all_redis_holds_and_refuses_a_replay(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        callback = await browser.authorize(await browser.start())
        assert await redis_client.dbsize() == 0  # a started flow stores nothing
        assert (await browser.finish(callback)).status_code == 200
        [marker] = [k async for k in redis_client.scan_iter(keys.OAUTH_USED_PREFIX + "*")]
        assert 0 < await redis_client.ttl(marker) <= 601
        assert len(await redis_client.get(marker) or b"") < 8
        # The same callback again, in this browser and in a fresh one: both refused.
        assert "already used" in (await browser.http.get(callback)).text
        other = Browser(browser.app)
        try:
            again = await other.http.get(callback)
        finally:
            await other.http.aclose()
    assert again.status_code == 400
    assert "already used" in again.text
    assert len(await tiktok.calls("token")) == 1


async def test_callback_in_another_browser_is_refused(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    """Login CSRF: an attacker's callback URL opened in the victim's browser."""
    settings = oauth_settings(redis_url, tiktok.url)
    async with running(settings) as attacker:
        callback = await attacker.authorize(await attacker.start(), "bob")
        victim = Browser(attacker.app)
        try:
            await victim.start()  # the victim has a sign-in cookie of their own
            response = await victim.http.get(callback)
            assert response.status_code == 400
            assert "started in another browser" in response.text
            no_cookie = Browser(attacker.app)
            try:
                callback2 = await attacker.authorize(await attacker.start(), "bob")
                refused = await no_cookie.http.get(callback2)
                assert refused.status_code == 400
                assert "started in another browser" in refused.text
            finally:
                await no_cookie.http.aclose()
        finally:
            await victim.http.aclose()
    assert await redis_client.exists(token_key(CLIENT_KEY, "bob")) == 0
    assert await tiktok.calls("token") == []


async def test_a_forged_cookie_does_not_match(redis_url: str, tiktok: Tiktok) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        callback = await browser.authorize(await browser.start())
        genuine = browser.http.cookies["__Host-tiktok_oauth"]
        forged = [
            "B" * 43,
            genuine[:-4] + ("AAAA" if not genuine.endswith("AAAA") else "BBBB"),
            genuine[:20],
        ]
        for value in forged:
            browser.http.cookies.set("__Host-tiktok_oauth", value, domain="receiver.example")
            response = await browser.http.get(callback)
            assert response.status_code == 400
            assert "started in another browser" in response.text


async def test_repeated_parameters_are_refused(redis_url: str, tiktok: Tiktok) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        callback = await browser.authorize(await browser.start())
        response = await browser.http.get(callback + "&code=other")
    assert response.status_code == 400
    assert "repeated" in response.text


async def test_http_loopback_in_development_uses_a_plain_cookie(
    redis_url: str, tiktok: Tiktok
) -> None:
    settings = oauth_settings(
        redis_url,
        tiktok.url,
        TIKTOK_REDIRECT_URI="http://127.0.0.1:8000/oauth/tiktok/callback",
        TIKTOK_WEBHOOKS_ENV="development",
    )
    app = create_app(settings)
    async with app.lifespan(app.starlette):
        browser = Browser(app)
        try:
            response = await browser.http.get(f"{RECEIVER}/oauth/tiktok/start")
        finally:
            await browser.http.aclose()
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("tiktok_oauth=")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert "secure" not in attributes
    assert {"httponly", "samesite=lax"} <= attributes

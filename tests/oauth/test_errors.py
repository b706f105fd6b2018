"""What the user and the operator see when TikTok or Redis says no: clear pages, never a 500."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import redis.asyncio as aioredis

from receiver.testing.redis_server import RedisServer
from receiver.vault.vault import token_key
from tests.factories import CLIENT_KEY
from tests.oauth.conftest import Tiktok
from tests.oauth.harness import (
    OTHER_REDIRECT_URI,
    RECEIVER,
    Browser,
    assert_absent,
    oauth_settings,
    running,
    secrets_of_config,
)

LOG_ID = re.compile(r"<dt>log_id</dt><dd>(\d{14}[0-9A-F]{20})</dd>")


def assert_clear_page(response: httpx.Response, status: int, *phrases: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    for phrase in phrases:
        assert phrase in response.text, phrase
    assert_absent(response.text, secrets_of_config(), "the error page")


async def test_user_denied(redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        callback = await browser.authorize(await browser.start(), decision="deny")
        assert "error=access_denied" in callback
        response = await browser.http.get(callback)
    assert_clear_page(response, 403, "Access was not allowed on TikTok", 'href="start"')
    assert await redis_client.exists(token_key(CLIENT_KEY, "alice")) == 0
    assert await tiktok.calls("token") == []


async def test_other_authorize_error_shows_tiktoks_reason_and_hint(
    redis_url: str, tiktok: Tiktok
) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        authorize = await browser.start()
        state = parse_qs(urlsplit(authorize).query)["state"][0]
        query = urlencode(
            {"error": "invalid_scope", "error_description": "<b>scope</b>", "state": state}
        )
        response = await browser.http.get(f"{RECEIVER}/oauth/tiktok/callback?{query}")
    assert_clear_page(response, 400, "invalid_scope", "&lt;b&gt;scope&lt;/b&gt;", "Request only")
    assert "<b>scope</b>" not in response.text


async def test_unregistered_redirect_uri_fails_on_tiktoks_page(
    redis_url: str, tiktok: Tiktok
) -> None:
    """TikTok never redirects to an unregistered URI: the operator sees it at the start."""
    settings = oauth_settings(
        redis_url, tiktok.url, TIKTOK_REDIRECT_URI=f"{RECEIVER}/oauth/tiktok/callback/"
    )
    async with running(settings) as browser:
        authorize = await browser.start()
        assert "callback%2F&" in authorize
        response = await browser.http.get(authorize)
    assert response.status_code == 400
    assert "redirect_uri does not match" in response.text


async def test_redirect_uri_mismatch_at_the_exchange(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    """Two deployments that disagree: the code was issued for the other redirect URI."""
    other = oauth_settings(redis_url, tiktok.url, TIKTOK_REDIRECT_URI=OTHER_REDIRECT_URI)
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        async with running(other) as other_browser:
            authorize = await other_browser.start()
            callback_on_other = await other_browser.authorize(authorize)
        # The browser comes back to the first deployment, with the other's cookie.
        for cookie in other_browser.http.cookies.jar:
            browser.http.cookies.jar.set_cookie(cookie)
        path = urlsplit(callback_on_other)
        response = await browser.http.get(f"{RECEIVER}/oauth/tiktok/callback?{path.query}")
    assert_clear_page(
        response, 502, "Redirect_uri is not matched", "Set TIKTOK_REDIRECT_URI to exactly"
    )
    calls = await tiktok.calls("token")
    assert LOG_ID.search(response.text).group(1) == calls[-1]["log_id"]  # type: ignore[union-attr]
    assert await redis_client.exists(token_key(CLIENT_KEY, "alice")) == 0


async def test_code_reused(redis_url: str, tiktok: Tiktok) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        callback = await browser.authorize(await browser.start())
        assert (await browser.finish(callback)).status_code == 200
        code = parse_qs(urlsplit(callback).query)["code"][0]
        fresh_state = parse_qs(urlsplit(await browser.start()).query)["state"][0]
        query = urlencode({"code": code, "scopes": "user.info.basic", "state": fresh_state})
        response = await browser.http.get(f"{RECEIVER}/oauth/tiktok/callback?{query}")
    assert_clear_page(response, 400, "already used or took too long", "invalid_grant")
    assert code not in response.text
    assert LOG_ID.search(response.text)


async def test_invalid_client_answered_with_http_200(redis_url: str, tiktok: Tiktok) -> None:
    settings = oauth_settings(redis_url, tiktok.url, TIKTOK_CLIENT_SECRET="not-the-secret")
    async with running(settings) as browser:
        response = await browser.connect()
    assert_clear_page(
        response, 502, "invalid_client", "Check TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET"
    )
    assert "not-the-secret" not in response.text
    calls = await tiktok.calls("token")
    assert [(c["status"], c["error"]) for c in calls] == [(200, "invalid_client")]
    assert LOG_ID.search(response.text).group(1) == calls[0]["log_id"]  # type: ignore[union-attr]


async def test_tiktok_transient_failure_is_a_503_page(redis_url: str, tiktok: Tiktok) -> None:
    await tiktok.fault(endpoint="token", status=503)
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        response = await browser.connect()
    assert_clear_page(response, 503, "try again", "temporarily_unavailable")
    assert int(response.headers["retry-after"]) > 0


async def test_tiktok_unreachable_is_a_503_page(redis_url: str, tiktok: Tiktok) -> None:
    await tiktok.fault(endpoint="token", drop_connection=True)
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        response = await browser.connect()
    assert_clear_page(response, 503, "try again")


async def test_redis_outage_is_a_503_page(stoppable_redis: RedisServer, tiktok: Tiktok) -> None:
    settings = oauth_settings(stoppable_redis.url, tiktok.url, REDIS_TIMEOUT_SECONDS="0.5")
    async with running(settings) as browser:
        callback = await browser.authorize(await browser.start())
        stoppable_redis.stop()
        assert_clear_page(await browser.http.get(callback), 503, "try again shortly")
        callback_page = await browser.http.get(callback)
        assert callback_page.headers["retry-after"] == "5"
        # Starting needs no Redis (the pending flow lives in the cookie).
        start = await browser.http.get(f"{RECEIVER}/oauth/tiktok/start")
        assert start.status_code == 302
        stoppable_redis.start()
        # The interrupted flow completes once Redis is back: it was never marked used.
        assert (await browser.finish(callback)).status_code == 200


async def test_no_lifespan_no_crash(redis_url: str, tiktok: Tiktok) -> None:
    """Requests that race start-up or shutdown get 503, not an AttributeError."""
    from receiver.app import create_app

    browser = Browser(create_app(oauth_settings(redis_url, tiktok.url)))
    try:
        response = await browser.http.get(f"{RECEIVER}/oauth/tiktok/start")
    finally:
        await browser.http.aclose()
    assert response.status_code == 503

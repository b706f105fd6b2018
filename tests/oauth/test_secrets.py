"""Secrets never leave: not in logs, not in Redis in clear, not in pages or the user view."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
import redis.asyncio as aioredis

from tests.oauth.conftest import Tiktok
from tests.oauth.harness import (
    RECEIVER,
    assert_absent,
    oauth_settings,
    redis_dump,
    running,
    secrets_of_config,
    stored_tokens,
)


async def test_no_token_or_secret_in_logs_redis_pages_or_the_user_view(
    redis_url: str,
    redis_client: aioredis.Redis,
    tiktok: Tiktok,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = oauth_settings(redis_url, tiktok.url, TIKTOK_USE_PKCE="1")
    pages: list[str] = []
    async with running(settings) as browser:
        callback = await browser.authorize(await browser.start())
        code = parse_qs(urlsplit(callback).query)["code"][0]
        connected = await browser.finish(callback)
        assert connected.status_code == 200
        pages.append(connected.text)
        first_access, first_refresh = await stored_tokens(redis_client, "alice")

        # Error pages after tokens exist: a replayed callback, a reused code.
        pages.append((await browser.http.get(callback)).text)
        state = parse_qs(urlsplit(await browser.start()).query)["state"][0]
        query = urlencode({"code": code, "state": state})
        pages.append((await browser.http.get(f"{RECEIVER}/oauth/tiktok/callback?{query}")).text)

        view = await browser.admin("GET", "/internal/users/alice")
        assert view.status_code == 200

        # The one place a token leaves: the authenticated access-token route (here after
        # TikTok expired it, so the service refreshes and rotates both tokens first).
        await tiktok.call("POST", "/sandbox/users/alice/expire-access-token")
        await redis_client.hset("tiktok:token:test_client_key:alice", "expires_at", "1")  # type: ignore[misc]
        handed_out = (await browser.admin("POST", "/internal/users/alice/access-token")).json()
        access, refresh = await stored_tokens(redis_client, "alice")
        assert handed_out["access_token"] == access != first_access
        assert refresh != first_refresh

        # Failures with tokens in play: a revoked grant, a refresh TikTok refuses.
        await tiktok.call("POST", "/sandbox/users/alice/expire-refresh-token")
        await redis_client.hset("tiktok:token:test_client_key:alice", "expires_at", "1")  # type: ignore[misc]
        refused = await browser.admin("POST", "/internal/users/alice/access-token")
        assert refused.status_code == 409
        pages.append(refused.text)

    tokens = [first_access, first_refresh, access, refresh]
    # Raw and URL-encoded (the sandbox's tokens and codes hold `*` and `!`).
    everything_secret = [
        form for s in (*tokens, *secrets_of_config()) for form in {s, quote(s, safe="")}
    ]
    assert_absent(caplog.text, everything_secret, "the log")
    # The test's browser (httpx, httpcore) logs the URLs holding the code; nothing else may.
    service_log = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    assert_absent(service_log, [code, quote(code, safe="")], "the service's log")
    assert_absent(await redis_dump(redis_client), [*everything_secret, code], "Redis")
    assert_absent(view.text, everything_secret, "the internal user view")
    for page in pages:
        assert_absent(page, everything_secret, "a page")
    # The log says what happened, by open_id.
    assert "user alice connected" in caplog.text
    assert "handed out the access token of user alice" in caplog.text

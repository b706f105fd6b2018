"""Login Kit end to end: start -> TikTok (the sandbox) -> callback -> vault, user, job."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from receiver import keys, users
from receiver.ingest.jobs import FETCH_PROFILE, job_deserializer
from receiver.oauth.state import FlowCookies
from receiver.secrets import Secret
from receiver.vault.vault import TokenStatus, token_key
from tests.factories import CLIENT_KEY
from tests.oauth.conftest import Tiktok
from tests.oauth.harness import (
    ENCRYPTION_KEY,
    REDIRECT_URI,
    oauth_settings,
    redis_dump,
    running,
    stored_tokens,
)
from tests.worker_support import drain


async def queued_jobs(redis: aioredis.Redis) -> list[dict[str, Any]]:
    ids = await redis.zrange("arq:queue", 0, -1)
    jobs = []
    for job_id in ids:
        raw = await redis.get(keys.ARQ_JOB_PREFIX + job_id.decode())
        assert raw is not None
        jobs.append(job_deserializer(raw))
    return jobs


def outcome_count(route: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "tiktok_oauth_requests_total", {"route": route, "outcome": outcome}
    )
    return value or 0.0


async def test_start_redirects_to_the_authorize_url_with_a_bound_state(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = oauth_settings(redis_url, tiktok.url, TIKTOK_SCOPES="user.info.basic,video.list")
    async with running(settings) as browser:
        response = await browser.http.get("https://receiver.example/oauth/tiktok/start")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        f"{tiktok.url}/v2/auth/authorize/"
    )
    query = parse_qs(location.query, keep_blank_values=True)
    pkce = ("state", "code_challenge", "code_challenge_method")
    assert {name: values[0] for name, values in query.items() if name not in pkce} == {
        "client_key": CLIENT_KEY,
        "scope": "user.info.basic,video.list",
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
    }
    assert query["code_challenge_method"] == ["S256"]  # PKCE is on by default
    state = query["state"][0]
    assert len(state) >= 43
    # The pending flow lives in the browser's cookie: nothing is stored for a start.
    assert await redis_client.dbsize() == 0
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-tiktok_oauth=")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=lax", "path=/", "max-age=600"} <= attributes
    assert response.headers["cache-control"] == "no-store"


async def test_the_whole_flow_stores_encrypted_tokens_and_enqueues_a_fetch(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = oauth_settings(redis_url, tiktok.url)
    before = outcome_count("callback", "connected")
    async with running(settings) as browser:
        response = await browser.connect("alice")
        assert response.status_code == 200
        assert "TikTok account connected" in response.text
        assert response.headers["referrer-policy"] == "no-referrer"

    record = await redis_client.hgetall(token_key(CLIENT_KEY, "alice"))  # type: ignore[misc]
    assert record[b"status"] == TokenStatus.ACTIVE.value.encode()
    assert record[b"scopes"] == b"user.info.basic"
    access, refresh = await stored_tokens(redis_client, "alice")
    assert access.startswith("act.")
    assert refresh.startswith("rft.")
    dump = await redis_dump(redis_client)
    assert access.encode() not in dump
    assert refresh.encode() not in dump

    assert await users.connected_at(redis_client, CLIENT_KEY, "alice") is not None
    jobs = await queued_jobs(redis_client)
    assert [(job["f"], job["a"]) for job in jobs] == [
        (FETCH_PROFILE, [CLIENT_KEY, "alice", "connect"])
    ]
    exchanges = await tiktok.calls("token", grant_type="authorization_code")
    assert [(c["status"], c["open_id"]) for c in exchanges] == [(200, "alice")]
    assert outcome_count("callback", "connected") == before + 1


async def test_the_worker_then_fetches_the_profile(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = oauth_settings(redis_url, tiktok.url, WORKER_POLL_DELAY_SECONDS="0.01")
    async with running(settings) as browser:
        assert (await browser.connect("bob")).status_code == 200
        await drain(settings)
        view = (await browser.admin("GET", "/internal/users/bob")).json()
    assert view["profile"]["fields"]["display_name"] == "Bob"
    assert view["profile"]["fetched_at"] > 0
    assert [c["status"] for c in await tiktok.calls("user_info")] == [200]


async def test_success_url_redirect(redis_url: str, tiktok: Tiktok) -> None:
    settings = oauth_settings(
        redis_url, tiktok.url, OAUTH_SUCCESS_URL="https://app.example/welcome"
    )
    async with running(settings) as browser:
        callback = await browser.authorize(await browser.start())
        response = await browser.http.get(callback)
    assert response.status_code == 303
    assert response.headers["location"] == "https://app.example/welcome"


async def test_pkce_sends_an_s256_challenge_and_the_verifier_kept_with_the_state(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = oauth_settings(redis_url, tiktok.url, TIKTOK_USE_PKCE="true")
    async with running(settings) as browser:
        authorize = await browser.start()
        query = parse_qs(urlsplit(authorize).query)
        assert query["code_challenge_method"] == ["S256"]
        cookies = FlowCookies(
            [Secret(ENCRYPTION_KEY)],
            ttl_seconds=600,
            binding="__Host-tiktok_oauth",
        )
        [flow] = cookies.open(browser.http.cookies["__Host-tiktok_oauth"], time.time())
        assert flow.state == query["state"][0]
        verifier = cast(str, flow.code_verifier)
        # The sandbox checks the verifier against the challenge, as TikTok does.
        response = await browser.finish(await browser.authorize(authorize, "bob"))
        assert response.status_code == 200, response.text
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert query["code_challenge"] == [challenge]
    assert verifier not in authorize
    # The verifier travelled only in the encrypted cookie: never stored in Redis.
    assert verifier.encode() not in await redis_dump(redis_client)
    assert (await redis_client.hget(token_key(CLIENT_KEY, "bob"), "status")) == b"active"  # type: ignore[misc]


async def test_two_tabs_in_one_browser_both_connect(redis_url: str, tiktok: Tiktok) -> None:
    settings = oauth_settings(redis_url, tiktok.url)
    async with running(settings) as browser:
        first = await browser.authorize(await browser.start(), "alice")
        second = await browser.authorize(await browser.start(), "bob")
        assert (await browser.finish(second)).status_code == 200
        assert (await browser.finish(first)).status_code == 200


async def test_reconnect_after_removal_clears_the_removal_mark(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = oauth_settings(redis_url, tiktok.url)
    await users.record_removal(redis_client, CLIENT_KEY, "alice", reason=1, event_time=1)
    async with running(settings) as browser:
        assert (await browser.connect("alice")).status_code == 200
        view = (await browser.admin("GET", "/internal/users/alice")).json()
    assert view["status"] == "active"
    assert view["removal"] is None

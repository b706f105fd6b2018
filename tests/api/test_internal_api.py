"""The internal API: admin token in constant time, the user view, tokens, jobs, statuses."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from receiver import users
from receiver.ingest.jobs import FETCH_PROFILE, job_deserializer
from receiver.status_store import StatusRecord, save_status
from receiver.testing.redis_server import RedisServer
from receiver.vault.crypto import generate_key
from receiver.vault.vault import token_key
from tests.factories import CLIENT_KEY
from tests.oauth.conftest import Tiktok
from tests.oauth.harness import (
    ADMIN_TOKEN,
    ENCRYPTION_KEY,
    RECEIVER,
    oauth_settings,
    running,
    stored_tokens,
)

USER = "/internal/users/alice"


async def expire_locally(redis: aioredis.Redis, open_id: str) -> None:
    """Make the vault think the access token is about to expire (forces a refresh)."""
    await redis.hset(token_key(CLIENT_KEY, open_id), "expires_at", "1")  # type: ignore[misc]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        b"Bearer wrong-token",
        f"Bearer {ADMIN_TOKEN}x".encode(),
        f"Basic {ADMIN_TOKEN}".encode(),
        ADMIN_TOKEN.encode(),
        b"Bearer ",
        "Bearer \u00e9\u00e9".encode("latin-1"),
    ],
)
async def test_missing_or_wrong_admin_token_is_401(
    redis_url: str, tiktok: Tiktok, authorization: bytes | None
) -> None:
    headers = [] if authorization is None else [(b"Authorization", authorization)]
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        assert (await browser.connect()).status_code == 200
        for method, path in (
            ("GET", USER),
            ("POST", f"{USER}/access-token"),
            ("POST", f"{USER}/refresh-profile"),
            ("GET", "/internal/status/share/s1"),
        ):
            response = await browser.http.request(method, f"{RECEIVER}{path}", headers=headers)
            assert response.status_code == 401, (method, path)
            assert response.json()["error"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert "act." not in response.text


async def test_disabled_without_admin_token(redis_url: str, tiktok: Tiktok) -> None:
    async with running(oauth_settings(redis_url, tiktok.url, ADMIN_TOKEN="")) as browser:
        response = await browser.admin("GET", USER)
    assert response.status_code == 404


async def test_user_view(redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        assert (await browser.admin("GET", USER)).status_code == 404
        assert (await browser.connect()).status_code == 200
        await users.save_profile(redis_client, CLIENT_KEY, "alice", {"display_name": "Alice"})
        response = await browser.admin("GET", USER)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    view = response.json()
    assert view["status"] == "active"
    assert view["scopes"] == ["user.info.basic"]
    assert view["open_id"] == "alice"
    assert view["client_key"] == CLIENT_KEY
    assert view["access_token_expires_at"] > view["updated_at"] > 0
    assert view["refresh_token_expires_at"] > view["access_token_expires_at"]
    assert view["connected_at"] > 0
    assert view["profile"]["fields"] == {"display_name": "Alice"}
    assert view["removal"] is None
    access, refresh = await stored_tokens(redis_client, "alice")
    assert access not in response.text
    assert refresh not in response.text
    assert "token" not in {k for k in view if not k.endswith("_expires_at")}


async def test_removed_user_view(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    await users.record_removal(redis_client, CLIENT_KEY, "alice", reason=1, event_time=1700)
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        view = (await browser.admin("GET", USER)).json()
        other_app = await browser.admin("GET", f"{USER}?client_key=nope")
    assert view["status"] == "removed"
    assert view["removal"]["reason"] == 1
    assert view["removal"]["event_time"] == 1700
    assert view["access_token_expires_at"] is None
    assert other_app.status_code == 404
    assert other_app.json()["error"] == "unknown_app"


async def test_access_token_valid_and_refreshed(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        assert (await browser.admin("POST", "/internal/users/nobody/access-token")).json()[
            "error"
        ] == "not_connected"
        assert (await browser.connect()).status_code == 200
        access, _ = await stored_tokens(redis_client, "alice")
        response = await browser.admin("POST", f"{USER}/access-token")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["access_token"] == access
        assert body["token_type"] == "Bearer"
        assert body["scopes"] == ["user.info.basic"]
        assert await tiktok.calls("token", grant_type="refresh_token") == []

        await expire_locally(redis_client, "alice")
        refreshed = (await browser.admin("POST", f"{USER}/access-token")).json()
        new_access, _ = await stored_tokens(redis_client, "alice")
        assert refreshed["access_token"] == new_access != access
        assert len(await tiktok.calls("token", grant_type="refresh_token")) == 1


async def test_access_token_error_mapping(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        assert (await browser.connect()).status_code == 200
        await expire_locally(redis_client, "alice")

        await tiktok.fault(endpoint="token", grant_type="refresh_token", status=503)
        transient = await browser.admin("POST", f"{USER}/access-token")
        assert transient.status_code == 503
        assert transient.json()["error"] == "tiktok_unavailable"
        assert int(transient.headers["retry-after"]) > 0

        await tiktok.fault(endpoint="token", grant_type="refresh_token", status=200,
                           error="invalid_client")  # fmt: skip
        config = await browser.admin("POST", f"{USER}/access-token")
        assert config.status_code == 502
        assert config.json()["tiktok_error"] == "invalid_client"
        assert config.json()["log_id"]
        assert "TIKTOK_CLIENT_SECRET" in config.json()["hint"]

        await tiktok.call("POST", "/sandbox/users/alice/expire-refresh-token")
        gone = await browser.admin("POST", f"{USER}/access-token")
        assert gone.status_code == 409
        assert gone.json()["error"] == "needs_reauth"
        # Marked: the next call does not even ask TikTok.
        calls = len(await tiktok.calls("token"))
        assert (await browser.admin("POST", f"{USER}/access-token")).status_code == 409
        assert len(await tiktok.calls("token")) == calls
        assert (await browser.admin("GET", USER)).json()["status"] == "needs_reauth"
        assert (await browser.admin("POST", f"{USER}/refresh-profile")).status_code == 409


async def test_undecryptable_record_is_a_500_that_names_the_setting(
    redis_url: str, tiktok: Tiktok
) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        assert (await browser.connect()).status_code == 200
    other_key = generate_key()
    settings = oauth_settings(redis_url, tiktok.url, TOKEN_ENCRYPTION_KEYS=other_key)
    async with running(settings) as browser:
        response = await browser.admin("POST", f"{USER}/access-token")
    assert response.status_code == 500
    assert response.json()["error"] == "corrupt_record"
    assert "TOKEN_ENCRYPTION_KEYS" in response.json()["message"]
    assert other_key not in response.text
    assert ENCRYPTION_KEY not in response.text


async def test_refresh_profile_enqueues_a_fetch(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        assert (await browser.admin("POST", f"{USER}/refresh-profile")).status_code == 404
        assert (await browser.connect()).status_code == 200
        response = await browser.admin("POST", f"{USER}/refresh-profile")
    assert response.status_code == 202
    assert response.json() == {"enqueued": True}
    jobs = []
    for job_id in await redis_client.zrange("arq:queue", 0, -1):
        raw = await redis_client.get(b"arq:job:" + job_id)
        assert raw is not None
        jobs.append(job_deserializer(raw))
    assert sorted(job["a"][2] for job in jobs if job["f"] == FETCH_PROFILE) == ["api", "connect"]


async def test_status_lookup(redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok) -> None:
    record = StatusRecord(
        kind="publish",
        id="v_pub_1",
        status="complete",
        event="post.publish.complete",
        create_time=1700,
        client_key=CLIENT_KEY,
    )
    assert await save_status(redis_client, record)
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        found = await browser.admin("GET", "/internal/status/publish/v_pub_1")
        missing = await browser.admin("GET", "/internal/status/share/v_pub_1")
        bad_kind = await browser.admin("GET", "/internal/status/video/v_pub_1")
    assert found.status_code == 200
    assert found.json()["status"] == "complete"
    assert found.json()["event"] == "post.publish.complete"
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert bad_kind.status_code == 404
    assert bad_kind.json()["error"] == "unknown_kind"


async def test_redis_outage_is_a_json_503(stoppable_redis: RedisServer, tiktok: Tiktok) -> None:
    settings = oauth_settings(stoppable_redis.url, tiktok.url, REDIS_TIMEOUT_SECONDS="0.5")
    async with running(settings) as browser:
        stoppable_redis.stop()
        for method, path in (("GET", USER), ("POST", f"{USER}/access-token")):
            response = await browser.admin(method, path)
            assert response.status_code == 503
            assert response.json()["error"] == "unavailable"
        stoppable_redis.start()
        assert (await browser.admin("GET", USER)).status_code == 404

"""Refresh with rotation, the refresh token's fixed lifetime, revoke, and racing refreshes."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.tiktok_sandbox.harness import (
    ALICE,
    CLIENT_KEY,
    CLIENT_SECRET,
    DAY,
    OTHER_APP_REDIRECT,
    OTHER_KEY,
    OTHER_SECRET,
    SandboxClient,
)
from tests.tiktok_sandbox.test_token import assert_oauth_error


def test_refresh_rotates_the_refresh_token(sandbox: SandboxClient) -> None:
    first = sandbox.login(scope="user.info.basic,user.info.profile")
    response = sandbox.refresh(first["refresh_token"])
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["open_id"] == ALICE
    assert second["scope"] == "user.info.basic,user.info.profile"
    assert second["token_type"] == "Bearer"

    # The old refresh token stopped working the moment the new one was issued ...
    assert_oauth_error(sandbox.refresh(first["refresh_token"]), "invalid_grant")
    # ... and the new one works, once.
    third = sandbox.refresh(second["refresh_token"])
    assert third.status_code == 200
    assert_oauth_error(sandbox.refresh(second["refresh_token"]), "invalid_grant")
    assert sandbox.user_info(third.json()["access_token"]).status_code == 200


def test_refresh_expires_in_counts_from_the_first_issuance(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    assert tokens["refresh_expires_in"] == 365 * DAY
    sandbox.advance(1000)
    refreshed = sandbox.refresh(tokens["refresh_token"]).json()
    assert refreshed["refresh_expires_in"] == 365 * DAY - 1000
    assert refreshed["expires_in"] == 86400  # the access token's clock does restart
    sandbox.advance(DAY)
    again = sandbox.refresh(refreshed["refresh_token"]).json()
    assert again["refresh_expires_in"] == 364 * DAY - 1000


def test_a_refresh_token_dies_at_its_original_expiry(sandbox: SandboxClient) -> None:
    sandbox.settings(refresh_token_ttl=3600)
    tokens = sandbox.login()
    sandbox.advance(3000)
    refreshed = sandbox.refresh(tokens["refresh_token"]).json()
    assert refreshed["refresh_expires_in"] == 600
    sandbox.advance(600)
    assert_oauth_error(
        sandbox.refresh(refreshed["refresh_token"]),
        "invalid_grant",
        description="Refresh token is expired.",
    )


def test_refresh_token_is_bound_to_its_app(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    other = sandbox.refresh(
        tokens["refresh_token"], client_key=OTHER_KEY, client_secret=OTHER_SECRET
    )
    assert_oauth_error(other, "invalid_grant")
    assert sandbox.refresh(tokens["refresh_token"]).status_code == 200


def test_refresh_needs_the_client_secret_and_the_token(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    assert_oauth_error(
        sandbox.refresh(tokens["refresh_token"], client_secret=None), "invalid_request"
    )
    assert_oauth_error(
        sandbox.refresh(tokens["refresh_token"], client_secret="bad"), "invalid_client", 200
    )
    assert_oauth_error(sandbox.refresh(""), "invalid_request")
    assert_oauth_error(sandbox.refresh("rft.unknown"), "invalid_grant")
    # None of that spent the token.
    assert sandbox.refresh(tokens["refresh_token"]).status_code == 200


def test_expire_access_token_then_refresh(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    assert sandbox.user_info(tokens["access_token"]).status_code == 200
    expired = sandbox.admin("POST", f"users/{ALICE}/expire-access-token")
    assert expired.json() == {"expired": 1}
    response = sandbox.user_info(tokens["access_token"])
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "access_token_invalid"
    refreshed = sandbox.refresh(tokens["refresh_token"]).json()
    assert sandbox.user_info(refreshed["access_token"]).status_code == 200


def test_expire_refresh_token_forces_reauthorization(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    assert sandbox.admin("POST", f"users/{ALICE}/expire-refresh-token").json() == {"expired": 1}
    assert_oauth_error(sandbox.refresh(tokens["refresh_token"]), "invalid_grant")
    assert sandbox.login()["refresh_token"] != tokens["refresh_token"]


def test_the_access_token_expires_after_its_ttl(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    sandbox.advance(86399)
    assert sandbox.user_info(tokens["access_token"]).status_code == 200
    sandbox.advance(1)
    assert sandbox.user_info(tokens["access_token"]).status_code == 401


def test_an_earlier_access_token_lives_on_after_a_refresh(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    assert sandbox.refresh(tokens["refresh_token"]).status_code == 200
    assert sandbox.user_info(tokens["access_token"]).status_code == 200


async def test_racing_refreshes_with_one_token_exactly_one_wins(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    form = {
        "client_key": CLIENT_KEY,
        "client_secret": CLIENT_SECRET,
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
    }
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=5) as client:
        responses = await asyncio.gather(
            *(client.post("/v2/oauth/token/", data=form) for _ in range(12))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * 11
    assert {r.json().get("error") for r in responses if r.status_code == 400} == {"invalid_grant"}
    refreshes = sandbox.calls(endpoint="token", grant_type="refresh_token")
    assert len(refreshes) == 12
    assert sum(c["status"] == 200 for c in refreshes) == 1


def test_revoke_kills_both_tokens_and_queues_the_webhook(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    response = sandbox.revoke(tokens["access_token"])
    assert response.status_code == 200
    assert response.content == b""
    info = sandbox.user_info(tokens["access_token"])
    assert info.status_code == 401
    assert info.json()["error"]["code"] == "access_token_invalid"
    assert_oauth_error(
        sandbox.refresh(tokens["refresh_token"]),
        "invalid_grant",
        description="Refresh token has been revoked.",
    )
    [event] = sandbox.events()
    assert event["event"] == "authorization.removed"
    assert event["client_key"] == CLIENT_KEY
    assert event["user_openid"] == ALICE
    assert json.loads(event["content"]) == {"reason": 5}
    # Revoking again changes nothing and queues nothing more.
    assert sandbox.revoke(tokens["access_token"]).status_code == 200
    assert len(sandbox.events()) == 1


def test_revoke_with_the_refresh_token(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    assert sandbox.revoke(tokens["refresh_token"]).status_code == 200
    assert sandbox.user_info(tokens["access_token"]).status_code == 401


def test_revoke_covers_every_grant_of_that_user_for_that_app_only(sandbox: SandboxClient) -> None:
    first, second = sandbox.login(), sandbox.login()
    elsewhere = sandbox.login(
        client_key=OTHER_KEY, client_secret=OTHER_SECRET, redirect_uri=OTHER_APP_REDIRECT
    )
    assert sandbox.revoke(second["access_token"]).status_code == 200
    assert sandbox.user_info(first["access_token"]).status_code == 401
    assert sandbox.user_info(elsewhere["access_token"]).status_code == 200


def test_revoke_errors(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    assert_oauth_error(
        sandbox.revoke(tokens["access_token"], client_secret="bad"), "invalid_client", 200
    )
    assert_oauth_error(sandbox.revoke(""), "invalid_request")
    other_app = sandbox.revoke(
        tokens["access_token"], client_key=OTHER_KEY, client_secret=OTHER_SECRET
    )
    assert_oauth_error(other_app, "invalid_request")
    # An unknown token is a no-op (RFC 7009), not an error.
    assert sandbox.revoke("act.unknown").status_code == 200
    assert sandbox.user_info(tokens["access_token"]).status_code == 200
    assert sandbox.events() == []


def test_admin_deauthorize_is_the_user_disconnecting(sandbox: SandboxClient) -> None:
    ours = sandbox.login()
    theirs = sandbox.login(
        client_key=OTHER_KEY, client_secret=OTHER_SECRET, redirect_uri=OTHER_APP_REDIRECT
    )
    response = sandbox.admin("POST", f"users/{ALICE}/deauthorize", {"client_key": CLIENT_KEY})
    assert response.status_code == 200
    assert response.json()["revoked"] == [CLIENT_KEY]
    assert sandbox.user_info(ours["access_token"]).status_code == 401
    assert sandbox.user_info(theirs["access_token"]).status_code == 200

    everything = sandbox.admin("POST", f"users/{ALICE}/deauthorize", {"reason": 2}).json()
    assert everything["revoked"] == [OTHER_KEY]
    assert sandbox.user_info(theirs["access_token"]).status_code == 401
    events = sandbox.events()
    assert [(e["client_key"], json.loads(e["content"])) for e in events] == [
        (CLIENT_KEY, {"reason": 1}),
        (OTHER_KEY, {"reason": 2}),
    ]

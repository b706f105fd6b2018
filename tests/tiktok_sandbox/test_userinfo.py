"""GET /v2/user/info/: envelope, fields by scope, token checks, rate limit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.tiktok_sandbox.harness import (
    ALICE,
    OTHER_APP_REDIRECT,
    OTHER_KEY,
    OTHER_SECRET,
    SandboxClient,
)
from tests.tiktok_sandbox.test_token import LOG_ID, assert_oauth_error

ALL_SCOPES = "user.info.basic,user.info.profile,user.info.stats"
ALL_FIELDS = (
    "open_id,union_id,avatar_url,avatar_url_100,avatar_large_url,display_name,"
    "bio_description,profile_deep_link,profile_web_link,is_verified,username,"
    "follower_count,following_count,likes_count,video_count"
)


def assert_api_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"data", "error"}
    assert body["data"] == {}
    assert set(body["error"]) == {"code", "message", "log_id"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert LOG_ID.match(body["error"]["log_id"])
    return body


def test_success_envelope_with_only_the_requested_fields(sandbox: SandboxClient) -> None:
    token = sandbox.login()["access_token"]
    response = sandbox.user_info(token, "open_id,union_id,display_name")
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {
        "user": {"open_id": ALICE, "union_id": "union-alice", "display_name": "Alice"}
    }
    assert list(body["data"]["user"]) == ["open_id", "union_id", "display_name"]
    assert body["error"]["code"] == "ok"
    assert body["error"]["message"] == ""
    assert body["error"]["log_id"] == response.headers["x-tt-logid"]
    assert LOG_ID.match(body["error"]["log_id"])


def test_every_field_with_every_scope(sandbox: SandboxClient) -> None:
    token = sandbox.login(scope=ALL_SCOPES)["access_token"]
    user = sandbox.user_info(token, ALL_FIELDS).json()["data"]["user"]
    assert list(user) == ALL_FIELDS.split(",")
    assert user["is_verified"] is True
    assert user["follower_count"] == 42
    assert user["likes_count"] == 1000
    assert user["username"] == "alice"
    assert user["bio_description"] == "hi"
    assert user["avatar_url"].startswith("https://")
    assert user["profile_web_link"] == "https://www.tiktok.com/@alice"


@pytest.mark.parametrize(
    ("scope", "fields"),
    [
        ("user.info.basic", "open_id,bio_description"),
        ("user.info.basic", "follower_count"),
        ("user.info.basic,user.info.profile", "display_name,video_count"),
        ("user.info.stats", "open_id"),
        ("video.list", "display_name"),
    ],
)
def test_a_field_whose_scope_was_not_granted_is_refused(
    sandbox: SandboxClient, scope: str, fields: str
) -> None:
    token = sandbox.login(scope=scope)["access_token"]
    assert_api_error(sandbox.user_info(token, fields), 401, "scope_not_authorized")


def test_scopes_the_user_declined_are_not_granted(sandbox: SandboxClient) -> None:
    tokens = sandbox.login(scope=ALL_SCOPES, sandbox_grant_scopes="user.info.basic")
    assert_api_error(
        sandbox.user_info(tokens["access_token"], "likes_count"), 401, "scope_not_authorized"
    )
    assert sandbox.user_info(tokens["access_token"], "display_name").status_code == 200


@pytest.mark.parametrize("fields", [None, "", " , "])
def test_fields_is_required(sandbox: SandboxClient, fields: str | None) -> None:
    token = sandbox.login()["access_token"]
    assert_api_error(sandbox.user_info(token, fields), 400, "invalid_params")


def test_unknown_fields_are_invalid_params(sandbox: SandboxClient) -> None:
    token = sandbox.login()["access_token"]
    body = assert_api_error(sandbox.user_info(token, "open_id,email"), 400, "invalid_params")
    assert "email" in body["error"]["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer act.made-up"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
def test_missing_or_unknown_tokens_are_access_token_invalid(
    sandbox: SandboxClient, headers: dict[str, str]
) -> None:
    response = sandbox.http.get("/v2/user/info/", params={"fields": "open_id"}, headers=headers)
    assert_api_error(response, 401, "access_token_invalid")


def test_a_refresh_token_is_not_an_access_token(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    assert_api_error(sandbox.user_info(tokens["refresh_token"]), 401, "access_token_invalid")


def test_profile_changes_show_up(sandbox: SandboxClient) -> None:
    token = sandbox.login()["access_token"]
    patched = sandbox.admin("PATCH", f"users/{ALICE}", {"display_name": "Alice B."})
    assert patched.status_code == 200
    user = sandbox.user_info(token, "display_name").json()["data"]["user"]
    assert user == {"display_name": "Alice B."}


def test_unknown_v2_paths_answer_in_the_api_envelope(sandbox: SandboxClient) -> None:
    assert_api_error(sandbox.http.get("/v2/research/video/query/"), 404, "invalid_params")
    assert_api_error(sandbox.http.get("/v2/video/list/"), 405, "invalid_params")
    assert_api_error(sandbox.http.post("/v2/user/info/"), 405, "invalid_params")


def test_user_info_rate_limit_is_a_sliding_minute(sandbox: SandboxClient) -> None:
    sandbox.settings(rate_limit_per_minute=3)
    token = sandbox.login()["access_token"]
    for _ in range(2):
        assert sandbox.user_info(token).status_code == 200
    sandbox.advance(30)
    assert sandbox.user_info(token).status_code == 200
    limited = sandbox.user_info(token)
    assert_api_error(limited, 429, "rate_limit_exceeded")
    # 31 s later the first two calls have left the window, the third has not.
    sandbox.advance(31)
    assert sandbox.user_info(token).status_code == 200
    assert sandbox.user_info(token).status_code == 200
    assert_api_error(sandbox.user_info(token), 429, "rate_limit_exceeded")
    statuses = [c["status"] for c in sandbox.calls(endpoint="user_info")]
    assert statuses == [200, 200, 200, 429, 200, 200, 429]


def test_the_rate_limit_is_per_app(sandbox: SandboxClient) -> None:
    sandbox.settings(rate_limit_per_minute=1)
    ours = sandbox.login()["access_token"]
    theirs = sandbox.login(
        client_key=OTHER_KEY, client_secret=OTHER_SECRET, redirect_uri=OTHER_APP_REDIRECT
    )["access_token"]
    assert sandbox.user_info(ours).status_code == 200
    assert sandbox.user_info(ours).status_code == 429
    assert sandbox.user_info(theirs).status_code == 200


def test_rate_limit_can_be_switched_off(sandbox: SandboxClient) -> None:
    sandbox.settings(rate_limit_per_minute=1)
    token = sandbox.login()["access_token"]
    assert sandbox.user_info(token).status_code == 200
    assert sandbox.user_info(token).status_code == 429
    sandbox.settings(rate_limit_per_minute=None)
    assert all(sandbox.user_info(token).status_code == 200 for _ in range(5))


def test_token_endpoint_is_rate_limited_in_the_oauth_shape(sandbox: SandboxClient) -> None:
    sandbox.settings(rate_limit_per_minute=2)
    tokens = sandbox.login()  # the first token call
    assert sandbox.refresh(tokens["refresh_token"]).status_code == 200
    limited = sandbox.refresh("rft.anything")
    assert_oauth_error(limited, "rate_limit_exceeded", 429)
    sandbox.advance(60)
    assert sandbox.refresh("rft.anything").json()["error"] == "invalid_grant"

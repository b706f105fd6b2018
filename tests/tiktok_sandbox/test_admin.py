"""The /sandbox/ admin API: users, apps, settings, clock, the call log, reset."""

from __future__ import annotations

import pytest

from tests.tiktok_sandbox.harness import ALICE, CLIENT_KEY, START, SandboxClient, query_of


def test_create_user_fills_in_blank_fields(sandbox: SandboxClient) -> None:
    response = sandbox.admin("POST", "users", {"display_name": "Bob", "follower_count": 5})
    assert response.status_code == 201
    bob = response.json()
    assert bob["display_name"] == "Bob"
    assert bob["follower_count"] == 5
    assert bob["open_id"] != bob["union_id"]
    assert bob["username"] == "bob"
    assert bob["avatar_url"].startswith("https://")
    assert sandbox.admin("GET", f"users/{bob['open_id']}").json() == bob
    listed = sandbox.admin("GET", "users").json()["users"]
    assert [u["open_id"] for u in listed] == [ALICE, bob["open_id"]]


def test_create_user_with_no_body(sandbox: SandboxClient) -> None:
    response = sandbox.http.post("/sandbox/users")
    assert response.status_code == 201
    assert response.json()["display_name"] == "Sandbox User 2"
    assert response.json()["username"] == "sandbox_user_2"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"open_id": ALICE}, 409, "conflict"),
        ({"follower_count": "many"}, 400, "invalid_params"),
        ({"email": "x@example.com"}, 400, "invalid_params"),
        ([1, 2], 400, "invalid_params"),
    ],
)
def test_create_user_errors(sandbox: SandboxClient, body: object, status: int, code: str) -> None:
    response = sandbox.admin("POST", "users", body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_admin_rejects_broken_json(sandbox: SandboxClient) -> None:
    response = sandbox.http.post(
        "/sandbox/users", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_params",
        "message": "The body is not valid JSON.",
    }


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        # What a web page of another site can send without asking (a "simple" request).
        ({"Content-Type": "text/plain", "Origin": "https://evil.example"}, 403),
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Content-Type": "application/json", "Origin": "https://evil.example"}, 403),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403),
    ],
)
def test_admin_refuses_what_a_web_page_could_send(
    sandbox: SandboxClient, headers: dict[str, str], status: int
) -> None:
    body = b'{"client_key": null}'
    grants = sandbox.http.get(f"/sandbox/users/{ALICE}/grants").json()
    response = sandbox.http.post(
        f"/sandbox/users/{ALICE}/deauthorize", content=body, headers=headers
    )
    assert response.status_code == status
    # Alice still has her grants: nothing was purged.
    assert sandbox.http.get(f"/sandbox/users/{ALICE}/grants").json() == grants
    empty = sandbox.http.post("/sandbox/reset", headers={"Origin": "https://evil.example"})
    assert empty.status_code == 403


def test_admin_accepts_same_origin_json(sandbox: SandboxClient) -> None:
    origin = str(sandbox.http.base_url).rstrip("/")
    response = sandbox.http.post(
        "/sandbox/clock/advance",
        content=b'{"seconds": 1}',
        headers={"Content-Type": "application/json", "Origin": origin},
    )
    assert response.status_code == 200, response.text


def test_update_user(sandbox: SandboxClient) -> None:
    response = sandbox.admin("PATCH", f"users/{ALICE}", {"follower_count": 43})
    assert response.json()["follower_count"] == 43
    assert response.json()["display_name"] == "Alice"
    refused = sandbox.admin("PATCH", f"users/{ALICE}", {"open_id": "someone-else"})
    assert refused.status_code == 400
    wrong_type = sandbox.admin("PATCH", f"users/{ALICE}", {"is_verified": "yes"})
    assert wrong_type.status_code == 400
    assert sandbox.admin("GET", f"users/{ALICE}").json()["follower_count"] == 43


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "users/nobody"),
        ("PATCH", "users/nobody"),
        ("GET", "users/nobody/grants"),
        ("POST", "users/nobody/expire-access-token"),
        ("POST", "users/nobody/deauthorize"),
        ("GET", "no-such-thing"),
    ],
)
def test_unknown_things_are_404_json(sandbox: SandboxClient, method: str, path: str) -> None:
    response = sandbox.admin(method, path, {} if method != "GET" else None)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_grants_show_no_tokens(sandbox: SandboxClient) -> None:
    tokens = sandbox.login(scope="user.info.basic,video.list")
    response = sandbox.admin("GET", f"users/{ALICE}/grants")
    [grant] = response.json()["grants"]
    assert grant["client_key"] == CLIENT_KEY
    assert grant["scopes"] == ["user.info.basic", "video.list"]
    assert grant["live_access_tokens"] == 1
    assert grant["revoked_at"] is None
    assert tokens["access_token"] not in response.text
    assert tokens["refresh_token"] not in response.text


def test_register_an_app_and_use_it(sandbox: SandboxClient) -> None:
    app = {
        "client_key": "new_key",
        "client_secret": "new_secret",
        "redirect_uris": ["https://new.example.com/cb"],
    }
    assert sandbox.admin("POST", "apps", app).status_code == 201
    assert sandbox.admin("POST", "apps", app).status_code == 409
    keys = [a["client_key"] for a in sandbox.admin("GET", "apps").json()["apps"]]
    assert "new_key" in keys
    tokens = sandbox.login(
        client_key="new_key", client_secret="new_secret", redirect_uri="https://new.example.com/cb"
    )
    assert tokens["open_id"] == ALICE


def test_an_app_needs_a_redirect_uri(sandbox: SandboxClient) -> None:
    app = {"client_key": "k", "client_secret": "s", "redirect_uris": []}
    response = sandbox.admin("POST", "apps", app)
    assert response.status_code == 400
    assert "redirect URI" in response.json()["error"]["message"]


def test_settings_round_trip_and_validation(sandbox: SandboxClient) -> None:
    defaults = sandbox.admin("GET", "settings").json()
    assert defaults == {
        # What captured TikTok token answers say: expires_in 86400, refresh_expires_in 31536000.
        "access_token_ttl": 86400,
        "refresh_token_ttl": 365 * 24 * 3600,
        "code_ttl": 300,
        "rate_limit_per_minute": 600,
        "auto_approve": True,
        "invalid_client_http_status": 200,
        "webhooks": {
            "retry_base_seconds": 60.0,
            "retry_factor": 2.0,
            "horizon_seconds": 72 * 3600.0,
            "time_scale": 1.0,
            "max_attempts": None,
            "timeout_seconds": 10.0,
            "concurrency": 8,
            "clock_skew_seconds": 0.0,
            "revoke_sends_event": True,
        },
        "publish_step_seconds": 1.0,
        "data_ready_seconds": 1.0,
        "data_archive_padding_bytes": 0,
    }
    changed = sandbox.admin("PUT", "settings", {"access_token_ttl": 60}).json()
    assert changed == {**defaults, "access_token_ttl": 60}
    assert sandbox.login()["expires_in"] == 60
    for bad in ({"access_token_ttl": 0}, {"rate_limit_per_minute": -1}, {"unknown": 1}):
        assert sandbox.admin("PUT", "settings", bad).status_code == 400
    assert sandbox.admin("GET", "settings").json() == changed


def test_clock(sandbox: SandboxClient) -> None:
    assert sandbox.admin("GET", "clock").json() == {"now": START, "offset": 0.0}
    moved = sandbox.admin("POST", "clock/advance", {"seconds": 90}).json()
    assert moved == {"now": START + 90, "offset": 90.0}
    assert sandbox.admin("POST", "clock/advance", {"seconds": -5}).status_code == 400


def test_the_call_log(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    sandbox.user_info(tokens["access_token"])
    refreshed = sandbox.refresh(tokens["refresh_token"]).json()
    sandbox.refresh(tokens["refresh_token"])  # rotated out: fails
    sandbox.admin("GET", "users")  # admin calls are not logged

    response = sandbox.http.get("/sandbox/calls")
    calls = response.json()["calls"]
    summary = [(c["endpoint"], c["grant_type"], c["status"], c["error"]) for c in calls]
    assert summary == [
        ("authorize", None, 302, None),
        ("token", "authorization_code", 200, None),
        ("user_info", None, 200, None),
        ("token", "refresh_token", 200, None),
        ("token", "refresh_token", 400, "invalid_grant"),
    ]
    assert all(c["client_key"] == CLIENT_KEY and c["open_id"] == ALICE for c in calls[:4])
    assert [c["method"] for c in calls] == ["GET", "POST", "GET", "POST", "POST"]
    assert all(c["time"] == START for c in calls)
    assert [c["seq"] for c in calls] == sorted(c["seq"] for c in calls)
    for secret in (tokens["access_token"], tokens["refresh_token"], refreshed["refresh_token"]):
        assert secret not in response.text

    ok_refreshes = [c for c in sandbox.calls(grant_type="refresh_token") if c["status"] == 200]
    assert len(ok_refreshes) == 1
    since = calls[2]["seq"]
    assert len(sandbox.calls(since=str(since))) == 2
    assert sandbox.http.get("/sandbox/calls", params={"since": "x"}).status_code == 400
    assert sandbox.admin("DELETE", "calls").status_code == 200
    assert sandbox.calls() == []


def test_the_log_id_header_matches_the_call_log(sandbox: SandboxClient) -> None:
    response = sandbox.token(grant_type="refresh_token", refresh_token="rft.x")
    assert sandbox.calls()[-1]["log_id"] == response.headers["x-tt-logid"]
    assert response.json()["log_id"] == response.headers["x-tt-logid"]


def test_reset_returns_to_the_configuration(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    sandbox.admin("POST", "users", {"open_id": "open-zed"})
    sandbox.admin("POST", "apps", {"client_key": "k", "client_secret": "s", "redirect_uris": ["u"]})
    sandbox.settings(auto_approve=False, rate_limit_per_minute=1)
    sandbox.fault(endpoint="user_info", status=500)
    sandbox.advance(100)

    assert sandbox.admin("POST", "reset").json() == {"reset": True}
    assert [u["open_id"] for u in sandbox.admin("GET", "users").json()["users"]] == [ALICE]
    assert [a["client_key"] for a in sandbox.admin("GET", "apps").json()["apps"]] == [
        CLIENT_KEY,
        "other_client_key",
    ]
    assert sandbox.admin("GET", "settings").json()["auto_approve"] is True
    assert sandbox.admin("GET", "faults").json() == {"faults": []}
    assert sandbox.admin("GET", "clock").json()["offset"] == 0.0
    assert sandbox.calls() == []
    assert sandbox.user_info(tokens["access_token"]).status_code == 401
    assert "code" in query_of(sandbox.authorize())


def test_index_tells_where_to_point_the_service(sandbox: SandboxClient) -> None:
    body = sandbox.http.get("/").json()
    assert body["tiktok_auth_url"] == sandbox.base_url + "/v2/auth/authorize/"
    assert body["tiktok_api_base_url"] == sandbox.base_url
    assert CLIENT_KEY in body["apps"]

"""Fault injection: errors in each endpoint's shape, delays, dropped connections."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.tiktok_sandbox.harness import SandboxClient
from tests.tiktok_sandbox.test_authorize import assert_error_page
from tests.tiktok_sandbox.test_token import assert_oauth_error
from tests.tiktok_sandbox.test_userinfo import assert_api_error


def test_the_next_n_token_calls_fail_then_it_recovers(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    sandbox.fault(endpoint="token", count=2, status=500)
    for _ in range(2):
        assert_oauth_error(sandbox.refresh(tokens["refresh_token"]), "server_error", 500)
    # The failed calls did not rotate the token: it still works.
    assert sandbox.refresh(tokens["refresh_token"]).status_code == 200
    assert sandbox.admin("GET", "faults").json() == {"faults": []}
    faulted = [c for c in sandbox.calls(endpoint="token") if c["fault"]]
    assert [(c["fault"], c["status"], c["error"]) for c in faulted] == [
        ("error", 500, "server_error")
    ] * 2


def test_custom_status_code_and_message(sandbox: SandboxClient) -> None:
    sandbox.fault(
        endpoint="token", status=200, error="invalid_client", message="Client key is banned."
    )
    response = sandbox.exchange(sandbox.code())
    assert_oauth_error(response, "invalid_client", 200, "Client key is banned.")


def test_a_fault_can_target_only_refreshes(sandbox: SandboxClient) -> None:
    sandbox.fault(endpoint="token", grant_type="refresh_token", status=503)
    tokens = sandbox.login()  # the code exchange is not hit
    assert_oauth_error(sandbox.refresh(tokens["refresh_token"]), "temporarily_unavailable", 503)
    assert sandbox.refresh(tokens["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "internal_error"), (429, "rate_limit_exceeded"), (401, "access_token_invalid")],
)
def test_user_info_faults_use_the_api_envelope(
    sandbox: SandboxClient, status: int, code: str
) -> None:
    token = sandbox.login()["access_token"]
    sandbox.fault(endpoint="user_info", status=status)
    assert_api_error(sandbox.user_info(token), status, code)
    assert sandbox.user_info(token).status_code == 200


def test_revoke_fault_leaves_the_tokens_alive(sandbox: SandboxClient) -> None:
    tokens = sandbox.login()
    sandbox.fault(endpoint="revoke", status=502)
    assert_oauth_error(sandbox.revoke(tokens["access_token"]), "server_error", 502)
    assert sandbox.user_info(tokens["access_token"]).status_code == 200
    assert sandbox.revoke(tokens["access_token"]).status_code == 200
    assert sandbox.user_info(tokens["access_token"]).status_code == 401


def test_authorize_fault_shows_an_error_page(sandbox: SandboxClient) -> None:
    sandbox.fault(endpoint="authorize", status=400, error="server_error")
    assert_error_page(sandbox.authorize(), "server_error")
    assert sandbox.authorize().status_code == 302


def test_a_delay_slows_the_call_and_then_answers_normally(sandbox: SandboxClient) -> None:
    token = sandbox.login()["access_token"]
    sandbox.fault(endpoint="user_info", delay_seconds=0.4)
    started = time.monotonic()
    response = sandbox.user_info(token)
    assert time.monotonic() - started >= 0.4
    assert response.status_code == 200
    started = time.monotonic()
    assert sandbox.user_info(token).status_code == 200
    assert time.monotonic() - started < 0.4


def test_a_delay_longer_than_the_client_timeout_times_out(sandbox: SandboxClient) -> None:
    sandbox.fault(endpoint="token", delay_seconds=0.6, status=500)
    with pytest.raises(httpx.ReadTimeout):
        sandbox.http.post("/v2/oauth/token/", data={"grant_type": "x"}, timeout=0.2)
    # The server finishes the stalled call on its own and logs it.
    deadline = time.monotonic() + 5
    while not sandbox.calls(endpoint="token") and time.monotonic() < deadline:
        time.sleep(0.05)
    [call] = sandbox.calls(endpoint="token")
    assert (call["fault"], call["status"], call["error"]) == ("delay+error", 500, "server_error")


@pytest.mark.parametrize("endpoint", ["token", "revoke", "user_info", "authorize"])
def test_a_dropped_connection(sandbox: SandboxClient, endpoint: str) -> None:
    tokens = sandbox.login()
    sandbox.fault(endpoint=endpoint, drop_connection=True)
    calls = {
        "token": lambda: sandbox.refresh(tokens["refresh_token"]),
        "revoke": lambda: sandbox.revoke(tokens["access_token"]),
        "user_info": lambda: sandbox.user_info(tokens["access_token"]),
        "authorize": lambda: sandbox.authorize(),
    }
    with pytest.raises(httpx.RemoteProtocolError):
        calls[endpoint]()
    [record] = sandbox.calls(endpoint=endpoint)[-1:]
    assert (record["status"], record["fault"]) == (0, "drop_connection")
    # The next call goes through, and the dropped one changed nothing.
    assert calls[endpoint]().status_code in (200, 302)


def test_faults_are_consumed_in_order_and_can_be_cleared(sandbox: SandboxClient) -> None:
    token = sandbox.login()["access_token"]
    sandbox.fault(endpoint="user_info", status=500)
    sandbox.fault(endpoint="user_info", status=429)
    sandbox.fault(endpoint="token", status=500, count=5)
    listed = sandbox.admin("GET", "faults").json()["faults"]
    assert [(f["spec"]["endpoint"], f["remaining"]) for f in listed] == [
        ("user_info", 1),
        ("user_info", 1),
        ("token", 5),
    ]
    assert sandbox.user_info(token).status_code == 500
    cleared = sandbox.admin("DELETE", "faults?endpoint=user_info")
    assert cleared.json() == {"cleared": 1}
    assert sandbox.user_info(token).status_code == 200
    assert sandbox.admin("DELETE", "faults").json() == {"cleared": 1}
    assert sandbox.refresh("rft.x").json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "spec",
    [
        {"endpoint": "token"},
        {"endpoint": "video_upload", "status": 500},
        {"endpoint": "token", "status": 500, "drop_connection": True},
        {"endpoint": "token", "status": 999},
        {"endpoint": "token", "status": 500, "count": 0},
        {"endpoint": "user_info", "status": 500, "grant_type": "refresh_token"},
        {"endpoint": "token", "error": "server_error"},
        {"endpoint": "token", "delay_seconds": -1},
        {"endpoint": "token", "status": 500, "colour": "red"},
    ],
)
def test_bad_fault_specs_are_refused(sandbox: SandboxClient, spec: dict[str, object]) -> None:
    response = sandbox.admin("POST", "faults", spec)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_params"
    assert sandbox.admin("GET", "faults").json() == {"faults": []}

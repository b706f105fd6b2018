"""POST /v2/oauth/token/ with grant_type=authorization_code, and its error shapes."""

from __future__ import annotations

import hashlib
import re
from base64 import urlsafe_b64encode
from urllib.parse import quote

import httpx
import pytest

from tests.tiktok_sandbox.harness import (
    ALICE,
    CLIENT_KEY,
    CLIENT_SECRET,
    DAY,
    OTHER_APP_REDIRECT,
    OTHER_KEY,
    OTHER_REDIRECT_URI,
    OTHER_SECRET,
    REDIRECT_URI,
    SandboxClient,
)

LOG_ID = re.compile(r"^\d{14}[0-9A-F]{20}$")


def assert_oauth_error(
    response: httpx.Response, error: str, status: int = 400, description: str | None = None
) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_description", "log_id"}
    assert body["error"] == error
    assert LOG_ID.match(body["log_id"])
    if description is not None:
        assert body["error_description"] == description


def test_code_exchange_returns_the_contracts_flat_json(sandbox: SandboxClient) -> None:
    code = sandbox.code(scope="user.info.basic,video.list")
    response = sandbox.exchange(code)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert LOG_ID.match(response.headers["x-tt-logid"])
    body = response.json()
    assert list(body) == [
        "access_token",
        "expires_in",
        "open_id",
        "refresh_expires_in",
        "refresh_token",
        "scope",
        "token_type",
    ]
    assert body["access_token"].startswith("act.")
    assert body["refresh_token"].startswith("rft.")
    # What captured TikTok answers say (the newer docs say 2 h and 180 days).
    assert body["expires_in"] == 86400
    assert body["refresh_expires_in"] == 365 * DAY
    assert body["open_id"] == ALICE
    assert body["scope"] == "user.info.basic,video.list"
    assert body["token_type"] == "Bearer"


def test_a_code_is_single_use(sandbox: SandboxClient) -> None:
    code = sandbox.code()
    first = sandbox.exchange(code)
    assert first.status_code == 200
    assert_oauth_error(
        sandbox.exchange(code),
        "invalid_grant",
        description="Authorization code has already been used.",
    )
    # The reuse did not take the first exchange's tokens away.
    assert sandbox.user_info(first.json()["access_token"]).status_code == 200


def test_a_code_expires_after_code_ttl(sandbox: SandboxClient) -> None:
    fresh, stale = sandbox.code(), sandbox.code()
    sandbox.advance(299)
    assert sandbox.exchange(fresh).status_code == 200
    sandbox.advance(1)
    assert_oauth_error(
        sandbox.exchange(stale), "invalid_grant", description="Authorization code is expired."
    )


def test_code_ttl_is_a_live_setting(sandbox: SandboxClient) -> None:
    sandbox.settings(code_ttl=5)
    code = sandbox.code()
    sandbox.advance(5)
    assert_oauth_error(sandbox.exchange(code), "invalid_grant")


def test_redirect_uri_must_equal_the_one_used_for_the_code(sandbox: SandboxClient) -> None:
    code = sandbox.code()
    # Also registered for the app, but not the one the code was requested with.
    response = sandbox.exchange(code, redirect_uri=OTHER_REDIRECT_URI)
    # TikTok's real answer is invalid_request (not invalid_grant), with this description.
    assert_oauth_error(
        response,
        "invalid_request",
        description="Redirect_uri is not matched with the uri when requesting code.",
    )


def test_a_code_is_bound_to_its_app(sandbox: SandboxClient) -> None:
    code = sandbox.code()
    response = sandbox.exchange(
        code, client_key=OTHER_KEY, client_secret=OTHER_SECRET, redirect_uri=OTHER_APP_REDIRECT
    )
    assert_oauth_error(response, "invalid_grant")


def test_unknown_code_is_invalid_grant(sandbox: SandboxClient) -> None:
    assert_oauth_error(sandbox.exchange("made-up"), "invalid_grant")


def test_the_code_must_be_url_decoded(sandbox: SandboxClient) -> None:
    code = sandbox.code()
    assert quote(code, safe="") != code  # it holds characters a URL encodes
    assert_oauth_error(sandbox.exchange(quote(code, safe="")), "invalid_grant")
    assert sandbox.exchange(code).status_code == 200


@pytest.mark.parametrize(
    "form",
    [
        {"client_secret": "wrong"},
        {"client_key": "unknown_key"},
        {"client_key": OTHER_KEY, "client_secret": CLIENT_SECRET},
    ],
)
def test_invalid_client_answers_http_200_with_an_error_body(
    sandbox: SandboxClient, form: dict[str, str]
) -> None:
    response = sandbox.exchange(sandbox.code(), **form)
    assert_oauth_error(
        response, "invalid_client", status=200, description="Client key or secret is incorrect."
    )
    assert "access_token" not in response.json()


def test_invalid_client_status_is_configurable(sandbox: SandboxClient) -> None:
    sandbox.settings(invalid_client_http_status=401)
    assert_oauth_error(sandbox.exchange(sandbox.code(), client_secret="x"), "invalid_client", 401)


@pytest.mark.parametrize(
    ("form", "missing"),
    [
        ({"code": None}, "code"),
        ({"redirect_uri": None}, "redirect_uri"),
        ({"grant_type": None}, "grant_type"),
        ({"client_secret": None}, "client_secret"),
        ({"client_key": None}, "client_key"),
        ({"code": ""}, "code"),
    ],
)
def test_missing_parameters_are_invalid_request(
    sandbox: SandboxClient, form: dict[str, str | None], missing: str
) -> None:
    full: dict[str, str | None] = {
        "grant_type": "authorization_code",
        "code": sandbox.code(),
        "redirect_uri": REDIRECT_URI,
    }
    response = sandbox.token(**{**full, **form})
    assert_oauth_error(
        response, "invalid_request", description=f"Missing required parameter: {missing}."
    )


@pytest.mark.parametrize("grant_type", ["client_credentials", "password", "AUTHORIZATION_CODE"])
def test_unknown_grant_types_are_unsupported(sandbox: SandboxClient, grant_type: str) -> None:
    assert_oauth_error(sandbox.token(grant_type=grant_type), "unsupported_grant_type")


def test_the_body_must_be_form_encoded(sandbox: SandboxClient) -> None:
    form = {
        "client_key": CLIENT_KEY,
        "client_secret": CLIENT_SECRET,
        "grant_type": "authorization_code",
        "code": sandbox.code(),
        "redirect_uri": "x",
    }
    as_json = sandbox.http.post("/v2/oauth/token/", json=form)
    assert_oauth_error(
        as_json,
        "invalid_request",
        description=("Content-Type must be application/x-www-form-urlencoded."),
    )
    as_query = sandbox.http.post("/v2/oauth/token/", params=form)
    assert_oauth_error(as_query, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe\x00garbage",
        b"client_key=a&client_key=b&client_secret=s&grant_type=refresh_token",
        b"x=" + b"a" * 70_000,
    ],
)
def test_malformed_bodies_get_the_oauth_error_shape(sandbox: SandboxClient, body: bytes) -> None:
    response = sandbox.http.post(
        "/v2/oauth/token/",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_oauth_error(response, "invalid_request")


def test_wrong_method_and_unknown_path_get_the_oauth_error_shape(sandbox: SandboxClient) -> None:
    assert_oauth_error(sandbox.http.get("/v2/oauth/token/"), "invalid_request", 405)
    assert_oauth_error(sandbox.http.post("/v2/oauth/nothing/"), "invalid_request", 404)


def pkce_pair() -> tuple[str, str]:
    verifier = "sandbox-verifier-" + "x" * 40
    challenge = urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def test_pkce_with_the_right_verifier(sandbox: SandboxClient) -> None:
    verifier, challenge = pkce_pair()
    code = sandbox.code(code_challenge=challenge, code_challenge_method="S256")
    response = sandbox.exchange(code, code_verifier=verifier)
    assert response.status_code == 200
    assert response.json()["access_token"].startswith("act.")


@pytest.mark.parametrize("verifier", [None, "", "wrong-verifier-" + "y" * 40])
def test_pkce_with_a_wrong_or_missing_verifier(
    sandbox: SandboxClient, verifier: str | None
) -> None:
    right, challenge = pkce_pair()
    code = sandbox.code(code_challenge=challenge, code_challenge_method="S256")
    assert_oauth_error(
        sandbox.exchange(code, code_verifier=verifier),
        "invalid_request",
        description="Code verifier or code challenge is invalid.",
    )
    # A failed attempt does not use the code up.
    assert sandbox.exchange(code, code_verifier=right).status_code == 200


def test_a_verifier_without_a_challenge_is_ignored(sandbox: SandboxClient) -> None:
    assert sandbox.exchange(sandbox.code(), code_verifier="whatever").status_code == 200

"""GET /v2/auth/authorize/: validation on TikTok's own page, redirects, consent page."""

from __future__ import annotations

import hashlib
import re
from base64 import urlsafe_b64encode

import httpx
import pytest

from receiver.testing.servers import serve_in_thread
from tests.tiktok_sandbox.harness import (
    ALICE,
    CLIENT_KEY,
    OTHER_REDIRECT_URI,
    REDIRECT_URI,
    SandboxClient,
    make_config,
    query_of,
)
from tiktok_sandbox import SandboxConfig, create_app


def assert_error_page(response: httpx.Response, error: str, fragment: str = "") -> None:
    """TikTok fails on its own page: no redirect anywhere, the error shown (and in a header)."""
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-sandbox-error"] == error
    assert f'id="error">{error}</p>' in response.text
    assert fragment in response.text


@pytest.mark.parametrize(
    ("params", "error", "fragment"),
    [
        ({"client_key": "nope"}, "invalid_client", "not a registered app"),
        ({"client_key": None}, "invalid_request", "client_key"),
        ({"response_type": "token"}, "unsupported_response_type", "response_type must be code"),
        ({"response_type": None}, "unsupported_response_type", "response_type must be code"),
        ({"scope": "user.info.basic,user.email"}, "invalid_scope", "Unknown scope: user.email"),
        ({"scope": " , "}, "invalid_scope", "scope"),
        ({"redirect_uri": None}, "invalid_request", "redirect_uri"),
        ({"code_challenge_method": "plain", "code_challenge": "x" * 43}, "invalid_request", "S256"),
        ({"code_challenge_method": "S256", "code_challenge": "short"}, "invalid_request", "43"),
        ({"code_challenge_method": "S256"}, "invalid_request", "code_challenge"),
        ({"sandbox_user": "nobody"}, "invalid_request", "sandbox_user"),
        ({"sandbox_decision": "maybe"}, "invalid_request", "sandbox_decision"),
        ({"sandbox_grant_scopes": "video.list"}, "invalid_scope", "sandbox_grant_scopes"),
    ],
)
def test_invalid_requests_show_an_error_page(
    sandbox: SandboxClient, params: dict[str, str | None], error: str, fragment: str
) -> None:
    assert_error_page(sandbox.authorize(**params), error, fragment)


@pytest.mark.parametrize(
    "uri",
    [
        REDIRECT_URI + "/",  # a trailing slash is already a mismatch
        REDIRECT_URI.upper(),
        REDIRECT_URI.replace("https", "http"),
        REDIRECT_URI + "?next=/home",
        "https://evil.example.com/oauth/tiktok/callback",
    ],
)
def test_redirect_uri_must_match_exactly_and_is_never_redirected_to(
    sandbox: SandboxClient, uri: str
) -> None:
    assert_error_page(sandbox.authorize(redirect_uri=uri), "invalid_request", "redirect_uri")


def test_duplicate_parameters_are_refused(sandbox: SandboxClient) -> None:
    url = f"/v2/auth/authorize/?client_key={CLIENT_KEY}&client_key=other_client_key"
    assert_error_page(sandbox.http.get(url), "invalid_request", "more than once")


def test_error_page_escapes_what_it_echoes(sandbox: SandboxClient) -> None:
    response = sandbox.authorize(scope="<script>alert(1)</script>")
    assert_error_page(response, "invalid_scope")
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_auto_approve_redirects_with_code_scopes_and_state(sandbox: SandboxClient) -> None:
    state = "csrf token/with&odd=chars é"
    response = sandbox.authorize(scope="user.info.basic,user.info.profile", state=state)
    assert response.headers["location"].startswith(REDIRECT_URI + "?")
    query = query_of(response)
    assert set(query) == {"code", "scopes", "state"}
    assert query["scopes"] == "user.info.basic,user.info.profile"
    assert query["state"] == state
    assert len(query["code"]) > 40


def test_repeated_scopes_are_granted_once_in_order(sandbox: SandboxClient) -> None:
    query = query_of(sandbox.authorize(scope="video.list, user.info.basic,video.list"))
    assert query["scopes"] == "video.list,user.info.basic"


def test_any_registered_redirect_uri_works_and_no_state_means_none_echoed(
    sandbox: SandboxClient,
) -> None:
    response = sandbox.authorize(redirect_uri=OTHER_REDIRECT_URI, state=None)
    assert response.headers["location"].startswith(OTHER_REDIRECT_URI + "?")
    assert "state" not in query_of(response)


def test_deny_hint_redirects_with_access_denied(sandbox: SandboxClient) -> None:
    query = query_of(sandbox.authorize(sandbox_decision="deny", state="s1"))
    assert query["error"] == "access_denied"
    assert query["error_description"]
    assert query["state"] == "s1"
    assert "code" not in query
    assert sandbox.calls(endpoint="authorize")[-1]["error"] == "access_denied"


def test_first_seeded_user_logs_in_by_default(sandbox: SandboxClient) -> None:
    assert sandbox.login()["open_id"] == ALICE


def test_sandbox_user_hint_picks_the_user(sandbox: SandboxClient) -> None:
    bob = sandbox.admin("POST", "users", {"open_id": "open-bob"}).json()
    assert sandbox.login(sandbox_user=bob["open_id"])["open_id"] == "open-bob"


def test_a_new_user_is_created_when_none_is_seeded() -> None:
    with serve_in_thread(create_app(make_config(users=[]))) as base_url:
        client = SandboxClient(base_url)
        try:
            assert client.admin("GET", "users").json() == {"users": []}
            open_id = client.login()["open_id"]
            users = client.admin("GET", "users").json()["users"]
            assert [u["open_id"] for u in users] == [open_id]
            # ... and that user is "the first seeded user" from then on.
            assert client.login()["open_id"] == open_id
        finally:
            client.close()


def test_grant_scopes_hint_grants_a_subset(sandbox: SandboxClient) -> None:
    params = {"scope": "user.info.basic,user.info.stats", "sandbox_grant_scopes": "user.info.basic"}
    assert query_of(sandbox.authorize(**params))["scopes"] == "user.info.basic"
    assert sandbox.login(**params)["scope"] == "user.info.basic"


def consent_request_id(response: httpx.Response) -> str:
    match = re.search(r'name="request_id" value="([^"]+)"', response.text)
    assert match is not None, response.text
    return match.group(1)


def test_consent_page_then_approve(sandbox: SandboxClient) -> None:
    sandbox.settings(auto_approve=False)
    sandbox.admin("POST", "users", {"open_id": "open-eve", "display_name": "<b>Eve</b> & co"})
    page = sandbox.authorize(scope="user.info.basic,video.list", sandbox_user="open-eve")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "&lt;b&gt;Eve&lt;/b&gt; &amp; co" in page.text
    assert "<b>Eve</b>" not in page.text
    assert "<li>user.info.basic</li><li>video.list</li>" in page.text
    assert 'action="/v2/auth/authorize/decision/"' in page.text

    request_id = consent_request_id(page)
    decided = sandbox.http.post(
        "/v2/auth/authorize/decision/", data={"request_id": request_id, "decision": "approve"}
    )
    query = query_of(decided)
    assert decided.headers["location"].startswith(REDIRECT_URI + "?")
    assert query["state"] == "state-123"
    assert query["scopes"] == "user.info.basic,video.list"
    tokens = sandbox.exchange(query["code"]).json()
    assert tokens["open_id"] == "open-eve"

    again = sandbox.http.post(
        "/v2/auth/authorize/decision/", data={"request_id": request_id, "decision": "approve"}
    )
    assert_error_page(again, "invalid_request", "already answered")


def test_consent_page_deny(sandbox: SandboxClient) -> None:
    sandbox.settings(auto_approve=False)
    request_id = consent_request_id(sandbox.authorize())
    decided = sandbox.http.post(
        "/v2/auth/authorize/decision/", data={"request_id": request_id, "decision": "deny"}
    )
    query = query_of(decided)
    assert query["error"] == "access_denied"
    assert query["state"] == "state-123"


def test_decision_needs_a_known_request_and_a_valid_decision(sandbox: SandboxClient) -> None:
    sandbox.settings(auto_approve=False)
    request_id = consent_request_id(sandbox.authorize())
    bad = sandbox.http.post(
        "/v2/auth/authorize/decision/", data={"request_id": request_id, "decision": "yes"}
    )
    assert_error_page(bad, "invalid_request", "decision")
    unknown = sandbox.http.post(
        "/v2/auth/authorize/decision/", data={"request_id": "forged", "decision": "approve"}
    )
    assert_error_page(unknown, "invalid_request")
    # The bad decision did not use the request up.
    ok = sandbox.http.post(
        "/v2/auth/authorize/decision/", data={"request_id": request_id, "decision": "approve"}
    )
    assert "code" in query_of(ok)


def test_interactive_mode_still_honours_the_decision_hint(sandbox: SandboxClient) -> None:
    sandbox.settings(auto_approve=False)
    assert "code" in query_of(sandbox.authorize(sandbox_decision="approve"))


def test_pkce_challenge_is_accepted(sandbox: SandboxClient) -> None:
    challenge = urlsafe_b64encode(hashlib.sha256(b"v" * 50).digest()).rstrip(b"=").decode()
    response = sandbox.authorize(code_challenge=challenge, code_challenge_method="S256")
    assert "code" in query_of(response)


def test_wrong_method_on_authorize_is_an_html_error(sandbox: SandboxClient) -> None:
    response = sandbox.http.post("/v2/auth/authorize/")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("text/html")
    assert "GET" in response.headers["allow"]


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="code_ttl"):
        create_app(make_config(code_ttl=0))
    with pytest.raises(ValueError, match="share a client_key"):
        create_app(SandboxConfig(apps=[*make_config().apps, make_config().apps[0]]))

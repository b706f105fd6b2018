"""Every failure TikTok (or the network) can produce maps to one error class, over real HTTP."""

from __future__ import annotations

import logging
import time
from email.utils import formatdate
from typing import Any

import pytest
from prometheus_client import REGISTRY

from receiver.secrets import Secret
from receiver.testing.redis_server import free_port
from receiver.tiktok.client import TikTokClient
from receiver.tiktok.errors import (
    AccessTokenInvalid,
    InvalidClient,
    InvalidGrant,
    RateLimited,
    RedirectUriMismatch,
    RequestRejected,
    ScopeNotAuthorized,
    TikTokError,
    TransientError,
)
from tests.tiktok.conftest import ACCESS, CLIENT_SECRET, CODE, REFRESH, client_settings
from tests.tiktok.scripted_tiktok import Reply, ScriptedTikTok

TOKEN = "/v2/oauth/token/"
REVOKE = "/v2/oauth/revoke/"
USER = "/v2/user/info/"
TOKEN_OK = {
    "access_token": ACCESS,
    "refresh_token": REFRESH,
    "open_id": "u",
    "expires_in": 1,
    "refresh_expires_in": 2,
    "scope": "user.info.basic",
}


def oauth_error(error: str, description: str = "", log_id: str = "LOG-1") -> dict[str, str]:
    return {"error": error, "error_description": description, "log_id": log_id}


def api_error(code: str, message: str = "", log_id: str = "LOG-1") -> dict[str, Any]:
    return {"data": {}, "error": {"code": code, "message": message, "log_id": log_id}}


async def call(client: TikTokClient, path: str) -> None:
    if path == TOKEN:
        await client.refresh(Secret(REFRESH))
    elif path == REVOKE:
        await client.revoke(Secret(ACCESS))
    else:
        await client.user_info(Secret(ACCESS), ["open_id"])


def oauth(name: str, status: int, error: str, expected: type, path: str = TOKEN) -> Any:
    """An OAuth-shaped error answer; the error code must come out unchanged."""
    return pytest.param(path, Reply(status, oauth_error(error)), expected, error, id=name)


def api(name: str, status: int, code: str, expected: type) -> Any:
    """A user-info-shaped error answer (`error.code`)."""
    return pytest.param(USER, Reply(status, api_error(code)), expected, code, id=name)


def raw(name: str, path: str, reply: Reply, expected: type, code: str) -> Any:
    return pytest.param(path, reply, expected, code, id=name)


HTML = b"<html>Bad Gateway</html>"
CASES = [
    # OAuth errors: the body decides, whatever the status.
    oauth("invalid-client-200", 200, "invalid_client", InvalidClient),
    oauth("invalid-client-401", 401, "invalid_client", InvalidClient),
    oauth("unauthorized-client", 400, "unauthorized_client", InvalidClient),
    oauth("invalid-grant", 400, "invalid_grant", InvalidGrant),
    oauth("invalid-grant-200", 200, "invalid_grant", InvalidGrant),
    oauth("invalid-request-200", 200, "invalid_request", RequestRejected),
    oauth("unsupported-grant", 400, "unsupported_grant_type", RequestRejected),
    oauth("access-denied", 403, "access_denied", RequestRejected),
    oauth("invalid-scope", 400, "invalid_scope", ScopeNotAuthorized),
    oauth("server-error", 500, "server_error", TransientError),
    oauth("temporarily-unavailable-200", 200, "temporarily_unavailable", TransientError),
    oauth("unknown-error-400", 400, "brand_new_error", RequestRejected),
    oauth("unknown-error-503", 503, "brand_new_error", TransientError),
    oauth("revoke-invalid-client-200", 200, "invalid_client", InvalidClient, REVOKE),
    oauth("revoke-invalid-request", 400, "invalid_request", RequestRejected, REVOKE),
    oauth("user-info-oauth-shaped", 401, "invalid_client", InvalidClient, USER),
    # API errors: `error.code`, also with HTTP 200.
    api("access-token-invalid", 401, "access_token_invalid", AccessTokenInvalid),
    api("access-token-invalid-200", 200, "access_token_invalid", AccessTokenInvalid),
    api("scope-not-authorized", 401, "scope_not_authorized", ScopeNotAuthorized),
    api("scope-permission-missed", 400, "scope_permission_missed", ScopeNotAuthorized),
    api("invalid-params", 400, "invalid_params", RequestRejected),
    api("internal-error", 500, "internal_error", TransientError),
    # Answers without a usable error body: the status decides.
    raw("html-502", TOKEN, Reply(502, body=HTML), TransientError, "http_502"),
    raw("empty-500", TOKEN, Reply(500, body=b""), TransientError, "http_500"),
    raw("empty-400", TOKEN, Reply(400, body=b""), RequestRejected, "http_400"),
    raw("429-no-body", TOKEN, Reply(429, body=b""), RateLimited, "http_429"),
    raw("redirect", TOKEN, Reply(302, headers={"location": "/x"}), RequestRejected, "http_302"),
    raw("revoke-503", REVOKE, Reply(503, body=b"down"), TransientError, "http_503"),
    raw("user-info-html-504", USER, Reply(504, body=HTML), TransientError, "http_504"),
    raw(
        "user-info-ok-but-500",
        USER,
        Reply(500, {"error": {"code": "ok"}}),
        TransientError,
        "http_500",
    ),
    # A success status with a body we cannot use.
    raw("garbage-200", TOKEN, Reply(200, body=b"not json"), TransientError, "invalid_response"),
    raw("revoke-garbage-200", REVOKE, Reply(200, body=HTML), TransientError, "invalid_response"),
    raw(
        "token-missing-fields",
        TOKEN,
        Reply(200, {"open_id": "u"}),
        TransientError,
        "invalid_response",
    ),
    raw(
        "token-wrong-type",
        TOKEN,
        Reply(200, {**TOKEN_OK, "access_token": 5}),
        TransientError,
        "invalid_response",
    ),
    raw(
        "user-info-no-data",
        USER,
        Reply(200, {"error": {"code": "ok"}}),
        TransientError,
        "invalid_response",
    ),
]


@pytest.mark.parametrize(
    ("path", "reply", "expected", "code"),
    CASES,
)
async def test_error_mapping(
    client: TikTokClient,
    fake: ScriptedTikTok,
    path: str,
    reply: Reply,
    expected: type[TikTokError],
    code: str,
) -> None:
    fake.queue(path, reply)
    with pytest.raises(TikTokError) as excinfo:
        await call(client, path)
    error = excinfo.value
    assert type(error) is expected
    assert error.code == code
    assert error.http_status == reply.status
    assert error.endpoint == {TOKEN: "token", REVOKE: "revoke", USER: "user_info"}[path]
    assert error.hint
    assert error.is_retryable is (expected in (TransientError, RateLimited))
    if reply.json is not None and "LOG-1" in str(reply.json):
        assert error.log_id == "LOG-1"
        assert "[log_id=LOG-1]" in str(error)


async def test_redirect_uri_mismatch_is_a_kind_of_invalid_grant(
    client: TikTokClient, fake: ScriptedTikTok
) -> None:
    description = "Redirect_uri is not matched with the uri when requesting code."
    fake.queue(TOKEN, Reply(400, oauth_error("invalid_grant", description)))
    with pytest.raises(RedirectUriMismatch) as excinfo:
        await client.exchange_code(CODE, redirect_uri="https://e.com/cb")
    assert isinstance(excinfo.value, InvalidGrant)
    assert description in str(excinfo.value)
    assert "TIKTOK_REDIRECT_URI" in excinfo.value.hint


async def test_log_id_falls_back_to_the_response_header(
    client: TikTokClient, fake: ScriptedTikTok
) -> None:
    fake.queue(TOKEN, Reply(502, body=b"", headers={"x-tt-logid": "HDR-LOG"}))
    with pytest.raises(TransientError) as excinfo:
        await client.refresh(Secret(REFRESH))
    assert excinfo.value.log_id == "HDR-LOG"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"retry-after": "7"}, 7.0), ({}, 60.0), ({"retry-after": "soon"}, 60.0)],
)
async def test_rate_limited_carries_retry_after(
    client: TikTokClient, fake: ScriptedTikTok, headers: dict[str, str], expected: float
) -> None:
    fake.queue(USER, Reply(429, api_error("rate_limit_exceeded"), headers=headers))
    with pytest.raises(RateLimited) as excinfo:
        await client.user_info(Secret(ACCESS), ["open_id"])
    assert excinfo.value.retry_after == expected
    assert excinfo.value.is_retryable


async def test_rate_limited_understands_an_http_date(
    client: TikTokClient, fake: ScriptedTikTok
) -> None:
    when = formatdate(time.time() + 30, usegmt=True)
    fake.queue(USER, Reply(429, api_error("rate_limit_exceeded"), headers={"retry-after": when}))
    with pytest.raises(RateLimited) as excinfo:
        await client.user_info(Secret(ACCESS), ["open_id"])
    assert 25 <= excinfo.value.retry_after <= 31


async def test_timeout_is_transient(client: TikTokClient, fake: ScriptedTikTok) -> None:
    before = REGISTRY.get_sample_value(
        "tiktok_api_requests_total", {"endpoint": "token", "status_class": "error"}
    )
    fake.queue(TOKEN, Reply(json={}, delay=1.0))  # the client waits 0.5 s
    started = time.monotonic()
    with pytest.raises(TransientError) as excinfo:
        await client.refresh(Secret(REFRESH))
    assert time.monotonic() - started < 0.95
    assert excinfo.value.code == "timeout"
    assert excinfo.value.http_status is None
    assert excinfo.value.description == "ReadTimeout"
    assert excinfo.value.__cause__ is None  # httpx errors carry the request and its headers
    after = REGISTRY.get_sample_value(
        "tiktok_api_requests_total", {"endpoint": "token", "status_class": "error"}
    )
    assert after == (before or 0) + 1


async def test_connection_refused_is_transient() -> None:
    settings = client_settings(f"http://127.0.0.1:{free_port()}")
    async with TikTokClient(settings) as client:
        with pytest.raises(TransientError) as excinfo:
            await client.user_info(Secret(ACCESS), ["open_id"])
    assert excinfo.value.code == "connection_error"
    assert excinfo.value.is_retryable


async def test_errors_are_counted_by_class(client: TikTokClient, fake: ScriptedTikTok) -> None:
    labels = {"endpoint": "token", "kind": "InvalidClient"}
    before = REGISTRY.get_sample_value("tiktok_api_errors_total", labels) or 0
    fake.queue(TOKEN, Reply(200, oauth_error("invalid_client")))
    with pytest.raises(InvalidClient):
        await client.refresh(Secret(REFRESH))
    assert REGISTRY.get_sample_value("tiktok_api_errors_total", labels) == before + 1


async def test_no_secret_in_errors_or_logs(
    client: TikTokClient, fake: ScriptedTikTok, caplog: pytest.LogCaptureFixture
) -> None:
    """Run every kind of call and failure with full debug logging; nothing secret escapes."""
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    fake.queue(
        TOKEN,
        Reply(json=TOKEN_OK),
        Reply(json=TOKEN_OK),
        Reply(200, oauth_error("invalid_client")),
        Reply(400, oauth_error("invalid_grant", "Redirect_uri is not matched")),
        Reply(200, {"access_token": ACCESS, "open_id": "u"}),
        Reply(json={}, delay=1.0),
    )
    fake.queue(REVOKE, Reply(body=b""), Reply(400, oauth_error("invalid_request")))
    fake.queue(
        USER,
        Reply(json={"data": {"user": {"open_id": "u"}}, "error": {"code": "ok"}}),
        Reply(401, api_error("access_token_invalid")),
        Reply(429, api_error("rate_limit_exceeded")),
    )
    grants = [
        await client.exchange_code(CODE, redirect_uri="https://e.com/cb"),
        await client.refresh(Secret(REFRESH)),
    ]
    for _ in range(4):
        try:
            await client.exchange_code(
                CODE, redirect_uri="https://e.com/cb", code_verifier="V" * 43
            )
        except TikTokError as exc:
            errors.append(exc)
    await client.revoke(Secret(ACCESS))
    try:
        await client.revoke(Secret(ACCESS))
    except TikTokError as exc:
        errors.append(exc)
    await client.user_info(Secret(ACCESS), ["open_id"])
    for _ in range(2):
        try:
            await client.user_info(Secret(ACCESS), ["open_id"])
        except TikTokError as exc:
            errors.append(exc)
    async with TikTokClient(client_settings(f"http://127.0.0.1:{free_port()}")) as dead:
        try:
            await dead.refresh(Secret(REFRESH))
        except TikTokError as exc:
            errors.append(exc)

    assert len(errors) == 8
    assert any(r.name == "tiktok_webhooks.api" for r in caplog.records)
    texts = [r.getMessage() for r in caplog.records] + [caplog.text]
    texts += [repr(client), str(client)]
    texts += [repr(g) for g in grants] + [str(g) for g in grants]
    texts += [str(e) for e in errors] + [repr(e) for e in errors]
    for text in texts:
        for secret in (ACCESS, REFRESH, CLIENT_SECRET, CODE, "V" * 43):
            assert secret not in text
    for error in errors:
        assert "http" not in str(error)  # no URL at all, let alone one with a query
        assert "?" not in str(error)

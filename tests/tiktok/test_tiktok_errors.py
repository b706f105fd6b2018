"""The error hierarchy on its own: classification, Retry-After, and what messages show."""

from __future__ import annotations

import pytest

from receiver.tiktok.errors import (
    DEFAULT_RETRY_AFTER_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
    AccessTokenInvalid,
    InvalidClient,
    InvalidGrant,
    RateLimited,
    RedirectUriMismatch,
    RequestRejected,
    ScopeNotAuthorized,
    TikTokError,
    TransientError,
    error_for,
    parse_retry_after,
)

ALL = [
    TikTokError,
    InvalidClient,
    InvalidGrant,
    RedirectUriMismatch,
    ScopeNotAuthorized,
    AccessTokenInvalid,
    RateLimited,
    TransientError,
    RequestRejected,
]


@pytest.mark.parametrize("cls", ALL)
def test_every_class_has_a_one_sentence_hint(cls: type[TikTokError]) -> None:
    error = cls("some_code")
    assert error.hint.endswith(".")
    assert error.hint.count(". ") == 0
    assert f"Hint: {error.hint}" in str(error)
    assert error.is_retryable is (cls in (RateLimited, TransientError))


def test_message_has_code_status_description_and_log_id() -> None:
    error = InvalidClient(
        "invalid_client", "Client key\n  is invalid", log_id="L1", http_status=200, endpoint="token"
    )
    assert str(error).startswith(
        "TikTok token: invalid_client (HTTP 200): Client key is invalid [log_id=L1]. Hint: "
    )
    assert repr(error) == (
        "InvalidClient(code='invalid_client', http_status=200, log_id='L1', endpoint='token')"
    )


def test_long_descriptions_are_cut() -> None:
    error = RequestRejected("invalid_request", "x" * 5000)
    assert len(error.description) == 300


def test_a_custom_hint_wins() -> None:
    assert InvalidGrant("invalid_grant", hint="Do this.").hint == "Do this."


@pytest.mark.parametrize(
    ("code", "description", "status", "expected"),
    [
        ("invalid_grant", "Redirect_uri is not matched with the uri", 400, RedirectUriMismatch),
        ("invalid_grant", "Code expired", 400, InvalidGrant),
        ("unknown_thing", "", 429, RateLimited),
        ("unknown_thing", "", 500, TransientError),
        ("unknown_thing", "", 200, RequestRejected),
        ("unknown_thing", "", None, RequestRejected),
        ("server_error", "", 200, TransientError),
        ("rate_limit_exceeded", "", 200, RateLimited),
    ],
)
def test_error_for(
    code: str, description: str, status: int | None, expected: type[TikTokError]
) -> None:
    assert type(error_for(code, description, http_status=status)) is expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, DEFAULT_RETRY_AFTER_SECONDS),
        ("", DEFAULT_RETRY_AFTER_SECONDS),
        ("12", 12.0),
        (" 2.5 ", 2.5),
        ("-3", DEFAULT_RETRY_AFTER_SECONDS),
        ("nan", DEFAULT_RETRY_AFTER_SECONDS),
        ("inf", MAX_RETRY_AFTER_SECONDS),
        ("999999", MAX_RETRY_AFTER_SECONDS),
        ("tomorrow-ish", DEFAULT_RETRY_AFTER_SECONDS),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
    ],
)
def test_parse_retry_after(header: str | None, expected: float) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date_in_the_future() -> None:
    now = 1_445_412_480.0  # 2015-10-21 07:28:00 UTC
    assert parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now=now) == 60.0

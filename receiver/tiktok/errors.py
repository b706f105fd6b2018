"""What went wrong when calling TikTok, as one small typed hierarchy.

TikTok reports OAuth errors as ``{error, error_description, log_id}`` (sometimes with HTTP
200) and API errors as ``{"error": {code, message, log_id}}``. Callers should not have to
parse either: they catch a class that says what to do next (re-authorize, back off, fix the
configuration, retry). Every error carries a one-sentence `hint` for the operator.

Messages hold TikTok's error code, its description (TikTok's own text), the HTTP status and
the `log_id` TikTok support asks for, never a token, a secret or a URL with a query.
"""

from __future__ import annotations

import email.utils
import time
from typing import ClassVar, Final

DEFAULT_RETRY_AFTER_SECONDS: Final = 60.0
# A Retry-After of days (or "inf") would park a worker job forever; an hour is plenty.
MAX_RETRY_AFTER_SECONDS: Final = 3600.0
# TikTok's descriptions are short; a cap keeps a misbehaving proxy's HTML page out of logs.
_MAX_DESCRIPTION: Final = 300


class TikTokError(Exception):
    """A call to TikTok failed; `code` is TikTok's error string (or ours for transport faults)."""

    default_hint: ClassVar[str] = "Check the log_id with TikTok developer support."
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        code: str,
        description: str = "",
        *,
        log_id: str | None = None,
        http_status: int | None = None,
        endpoint: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.code = code
        self.description = _clean(description)
        self.log_id = log_id
        self.http_status = http_status
        self.endpoint = endpoint
        self.hint = hint or self.default_hint
        super().__init__(self._message())

    @property
    def is_retryable(self) -> bool:
        """True when the same call may succeed later without anyone changing anything."""
        return self.retryable

    def _message(self) -> str:
        where = f"TikTok {self.endpoint}" if self.endpoint else "TikTok"
        status = f" (HTTP {self.http_status})" if self.http_status is not None else ""
        text = f"{where}: {self.code}{status}"
        if self.description:
            text += f": {self.description}"
        if self.log_id:
            text += f" [log_id={self.log_id}]"
        return f"{text}. Hint: {self.hint}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, http_status={self.http_status!r}, "
            f"log_id={self.log_id!r}, endpoint={self.endpoint!r})"
        )


class InvalidClient(TikTokError):
    """TikTok rejected our client key or client secret."""

    default_hint = (
        "Check TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET against the app in the TikTok "
        "developer portal (and that the app is approved for this product)."
    )


class InvalidGrant(TikTokError):
    """The code or refresh token is used, expired, revoked or was rotated away."""

    default_hint = (
        "The authorization code or refresh token is no longer valid: the user has to "
        "connect the account again."
    )


class RedirectUriMismatch(InvalidGrant):
    """The code exchange's redirect_uri differs from the one the code was issued for.

    Captured TikTok answers say ``invalid_request`` with "Redirect_uri is not matched with
    the uri when requesting code."; some clients have reported ``invalid_grant``. Both map
    here by the description. It is a subclass of InvalidGrant so code that handles
    invalid_grant still works, while the hint points at the configuration instead.
    """

    default_hint = (
        "Set TIKTOK_REDIRECT_URI to exactly the URI used in the authorize request and "
        "registered in the portal (scheme, host, path and trailing slash)."
    )


class ScopeNotAuthorized(TikTokError):
    """The token lacks a scope the call needs (also `scope_permission_missed`)."""

    default_hint = (
        "Request only fields of scopes the user granted, or ask the user to authorize "
        "the missing scope (and check the scope is enabled for the app in the portal)."
    )


class AccessTokenInvalid(TikTokError):
    """The access token is expired, revoked or malformed."""

    default_hint = "Refresh the access token and retry; if refreshing fails, re-authorize the user."


class RateLimited(TikTokError):
    """TikTok throttled us (HTTP 429 / rate_limit_exceeded); wait `retry_after` seconds."""

    default_hint = (
        "Back off and retry later; TikTok allows about 600 requests per minute per endpoint."
    )
    retryable = True

    def __init__(
        self,
        code: str = "rate_limit_exceeded",
        description: str = "",
        *,
        retry_after: float = DEFAULT_RETRY_AFTER_SECONDS,
        log_id: str | None = None,
        http_status: int | None = None,
        endpoint: str | None = None,
        hint: str | None = None,
    ) -> None:
        # Jitter is the caller's business: it knows how many workers share the limit.
        self.retry_after = retry_after
        super().__init__(
            code,
            description,
            log_id=log_id,
            http_status=http_status,
            endpoint=endpoint,
            hint=hint,
        )


class TransientError(TikTokError):
    """A timeout, a connection failure, a 5xx or a TikTok-side error that may pass."""

    default_hint = (
        "Retry with backoff; if it persists, check network access to TikTok and "
        "TikTok's status page."
    )
    retryable = True


class RequestRejected(TikTokError):
    """TikTok refused the request as malformed (invalid_request, invalid_params, other 4xx)."""

    default_hint = (
        "The request does not match TikTok's contract: check the parameters (and "
        "the PKCE code_verifier, if used); retrying the same request will not help."
    )


_BY_CODE: Final[dict[str, type[TikTokError]]] = {
    "invalid_client": InvalidClient,
    "unauthorized_client": InvalidClient,
    "invalid_grant": InvalidGrant,
    "invalid_scope": ScopeNotAuthorized,
    "scope_not_authorized": ScopeNotAuthorized,
    "scope_permission_missed": ScopeNotAuthorized,
    "access_token_invalid": AccessTokenInvalid,
    "rate_limit_exceeded": RateLimited,
    "internal_error": TransientError,
    "server_error": TransientError,
    "temporarily_unavailable": TransientError,
}


def error_for(
    code: str,
    description: str = "",
    *,
    http_status: int | None,
    log_id: str | None = None,
    endpoint: str | None = None,
    retry_after: str | None = None,
) -> TikTokError:
    """The error for TikTok's `code`, falling back to the HTTP status for unknown codes.

    `retry_after` is the raw Retry-After header, if any.
    """
    cls = _BY_CODE.get(code)
    if code in ("invalid_grant", "invalid_request") and "redirect_uri" in description.lower():
        cls = RedirectUriMismatch
    if cls is None:
        if http_status == 429:
            cls = RateLimited
        elif http_status is not None and http_status >= 500:
            cls = TransientError
        else:
            cls = RequestRejected
    if cls is RateLimited:
        return RateLimited(
            code,
            description,
            retry_after=parse_retry_after(retry_after),
            log_id=log_id,
            http_status=http_status,
            endpoint=endpoint,
        )
    return cls(code, description, log_id=log_id, http_status=http_status, endpoint=endpoint)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float:
    """Seconds to wait from a Retry-After header (seconds or HTTP date), else the default."""
    if value is None or not value.strip():
        return DEFAULT_RETRY_AFTER_SECONDS
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER_SECONDS
        current = time.time() if now is None else now
        return min(MAX_RETRY_AFTER_SECONDS, max(0.0, when.timestamp() - current))
    if seconds != seconds or seconds < 0:  # NaN or negative
        return DEFAULT_RETRY_AFTER_SECONDS
    return min(MAX_RETRY_AFTER_SECONDS, seconds)


def _clean(description: str) -> str:
    text = " ".join(description.split())
    if len(text) > _MAX_DESCRIPTION:
        text = text[: _MAX_DESCRIPTION - 1] + "…"
    return text

"""What TikTok's answers mean: a response (or the lack of one) turned into a TikTokError.

OAuth endpoints answer errors as ``{error, error_description, log_id}``, sometimes with
HTTP 200; the API answers ``{"error": {code, message, log_id}}``. The body decides when it
names an error, the status only when it does not. Every error built here is counted
and logged once, by class and code, never with a request body or header.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import httpx
import msgspec

from receiver.tiktok import metrics as api_metrics
from receiver.tiktok.errors import TikTokError, TransientError, error_for
from receiver.tiktok.metrics import Endpoint

logger = logging.getLogger("tiktok_webhooks.api")

_decoder: Final = msgspec.json.Decoder()


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or None for anything else (empty, HTML, a list)."""
    try:
        body = _decoder.decode(response.content)
    except (msgspec.MsgspecError, RecursionError, ValueError, TypeError, MemoryError):
        # Not only DecodeError: deep nesting raises RecursionError. Any of them means
        # the answer is unusable, which callers treat like a body that is not JSON.
        return None
    return body if isinstance(body, dict) else None


def oauth_error(endpoint: Endpoint, response: httpx.Response, body: dict[str, Any]) -> TikTokError:
    return _from_answer(
        endpoint,
        response,
        str(body.get("error")),
        str(body.get("error_description") or ""),
        _str_or_none(body.get("log_id")),
    )


def api_error(endpoint: Endpoint, response: httpx.Response, error: dict[str, Any]) -> TikTokError:
    return _from_answer(
        endpoint,
        response,
        str(error.get("code")),
        str(error.get("message") or ""),
        _str_or_none(error.get("log_id")),
    )


def raise_for_api_error(
    endpoint: Endpoint, response: httpx.Response, body: dict[str, Any] | None
) -> None:
    """Raise the TikTokError a v2 API answer names; return for a usable success."""
    error = body.get("error") if body is not None else None
    if isinstance(error, dict):
        # Success is "ok"; an older copy of the docs showed 0 (contract §4).
        if error.get("code") not in ("ok", 0, "0", None):
            raise api_error(endpoint, response, error)
    elif error not in (None, "", 0):
        # An OAuth-shaped error on an API endpoint, e.g. from a gateway.
        assert body is not None
        raise oauth_error(endpoint, response, body)
    if not response.is_success:
        raise status_error(endpoint, response)
    if body is None:
        raise invalid_response(endpoint, response, "the body is not a JSON object")


def status_error(endpoint: Endpoint, response: httpx.Response) -> TikTokError:
    """For a failed status whose body names no error (a gateway's HTML page, nothing)."""
    return _from_answer(endpoint, response, f"http_{response.status_code}", "", None)


def invalid_response(endpoint: Endpoint, response: httpx.Response, why: str) -> TikTokError:
    """A success status with a body we cannot use: retryable, it may be a proxy hiccup."""
    error = TransientError(
        "invalid_response",
        why,
        http_status=response.status_code,
        log_id=response.headers.get("x-tt-logid"),
        endpoint=endpoint,
    )
    return _record(endpoint, error)


def transport_error(endpoint: Endpoint, exc: httpx.TransportError) -> TikTokError:
    """No HTTP answer at all. Callers raise it `from None`: httpx errors carry the request,
    Authorization header included."""
    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_error"
    return _record(endpoint, TransientError(code, type(exc).__name__, endpoint=endpoint))


def _from_answer(
    endpoint: Endpoint,
    response: httpx.Response,
    code: str,
    description: str,
    log_id: str | None,
) -> TikTokError:
    error = error_for(
        code,
        description,
        http_status=response.status_code,
        log_id=log_id or response.headers.get("x-tt-logid"),
        endpoint=endpoint,
        retry_after=response.headers.get("retry-after"),
    )
    return _record(endpoint, error)


def _record(endpoint: Endpoint, error: TikTokError) -> TikTokError:
    api_metrics.observe_error(endpoint, type(error).__name__)
    logger.warning(
        "TikTok %s failed: %s %s (HTTP %s, log_id=%s): %s",
        endpoint,
        type(error).__name__,
        error.code,
        error.http_status,
        error.log_id,
        error.description,
    )
    return error


def _str_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None

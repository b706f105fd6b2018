"""Prometheus metrics for our outbound calls to TikTok.

Labels come from fixed sets only (endpoint name, status class, error class name), so a
misbehaving upstream cannot blow up the series count, and no URL, open_id or token can
end up in a label. The metrics live in prometheus-client's default registry.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from prometheus_client import Counter, Histogram

Endpoint = Literal[
    "token",
    "revoke",
    "user_info",
    "publish_status",
    "video_query",
    "video_list",
    "data_add",
    "data_check",
    "data_download",
    "data_cancel",
]
ENDPOINTS: Final[tuple[Endpoint, ...]] = get_args(Endpoint)
STATUS_CLASSES: Final = ("2xx", "4xx", "5xx", "error")
# Error kinds are the class names of receiver.tiktok.errors, a closed set.
ERROR_KINDS: Final = (
    "InvalidClient",
    "InvalidGrant",
    "RedirectUriMismatch",
    "ScopeNotAuthorized",
    "AccessTokenInvalid",
    "RateLimited",
    "TransientError",
    "RequestRejected",
    "TikTokError",
)

API_REQUESTS: Final = Counter(
    "tiktok_api_requests_total",
    "HTTP requests to TikTok's API, by endpoint and response status class "
    "(error = no HTTP response: timeout or connection failure).",
    ["endpoint", "status_class"],
)
API_DURATION: Final = Histogram(
    "tiktok_api_request_duration_seconds",
    "Time from sending a request to TikTok until its response was read.",
    ["endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
API_ERRORS: Final = Counter(
    "tiktok_api_errors_total",
    "Failed TikTok calls by error class; OAuth errors that came with HTTP 200 count here too.",
    ["endpoint", "kind"],
)

for _endpoint in ENDPOINTS:
    API_DURATION.labels(_endpoint)
    for _status_class in STATUS_CLASSES:
        API_REQUESTS.labels(_endpoint, _status_class)


def status_class(http_status: int | None) -> str:
    """`2xx`/`4xx`/`5xx`, or `error` when there was no (usable) HTTP response."""
    if http_status is None:
        return "error"
    if 200 <= http_status < 300:
        return "2xx"
    if 400 <= http_status < 500:
        return "4xx"
    if 500 <= http_status < 600:
        return "5xx"
    # 1xx/3xx: we never follow redirects, so these are unusable answers.
    return "error"


def observe_request(endpoint: Endpoint, http_status: int | None, seconds: float) -> None:
    API_REQUESTS.labels(endpoint, status_class(http_status)).inc()
    API_DURATION.labels(endpoint).observe(seconds)


def observe_error(endpoint: Endpoint, kind: str) -> None:
    API_ERRORS.labels(endpoint, kind if kind in ERROR_KINDS else "TikTokError").inc()

"""One HTTP attempt at a destination: sign afresh, POST, read at most a little of the answer.

Redirects are never followed (a 3xx is a failed attempt), and only the first
MAX_READ_BYTES of an answer are read: destinations are configuration, but an answer
must not be able to make the worker read or follow anything it did not ask for.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import httpx

from handlers.forwarding.signing import signature_header
from receiver import __version__

MAX_READ_BYTES: Final = 16 * 1024
MAX_RETRY_AFTER_SECONDS: Final = 24 * 3600
USER_AGENT: Final = f"tiktok-webhooks/{__version__} (Standard Webhooks)"


@dataclass(frozen=True)
class Result:
    outcome: str  # one of handlers.forwarding.metrics.OUTCOMES
    status: int | None
    latency: float
    response: bytes
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "success"


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from now (delta-seconds or an HTTP date), bounded."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


def request_headers(
    keys: Sequence[bytes], message_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(keys, message_id, ts, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


async def send(
    client: httpx.AsyncClient,
    url: str,
    *,
    keys: Sequence[bytes],
    message_id: str,
    body: bytes,
    timeout_seconds: float,
) -> Result:
    headers = request_headers(keys, message_id, body)
    started = time.perf_counter()
    try:
        async with client.stream(
            "POST", url, content=body, headers=headers, timeout=timeout_seconds
        ) as response:
            read = bytearray()
            async for chunk in response.aiter_raw():
                read += chunk
                if len(read) >= MAX_READ_BYTES:
                    break
            latency = time.perf_counter() - started
            status = response.status_code
            retry_after = retry_after_seconds(response.headers.get("retry-after"), time.time())
    except httpx.TimeoutException as exc:
        return Result("timeout", None, time.perf_counter() - started, b"", _describe(exc))
    except (httpx.HTTPError, OSError) as exc:
        return Result("network_error", None, time.perf_counter() - started, b"", _describe(exc))
    body_read = bytes(read[:MAX_READ_BYTES])
    if 200 <= status < 300:
        return Result("success", status, latency, body_read)
    if status == 410:
        return Result("gone", status, latency, body_read, "410 Gone: the destination is retired")
    error = f"HTTP {status}"
    if 300 <= status < 400:
        error += " (redirects are not followed: configure the final URL)"
    return Result("http_error", status, latency, body_read, error, retry_after)


def _describe(exc: BaseException) -> str:
    # httpx messages name the host and port at most; never headers or the body.
    return f"{type(exc).__name__}: {exc}"[:300]

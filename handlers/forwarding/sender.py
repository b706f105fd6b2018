"""One HTTP attempt at a destination: sign afresh, POST, read at most a little of the answer.

Redirects are never followed (a 3xx is a failed attempt), and only the first
MAX_READ_BYTES of an answer are read: destinations are configuration, but an answer
must not be able to make the worker read or follow anything it did not ask for.

Requests go out through the destination's connections (`destination_connections`, see
`connections`), not through an `httpx.AsyncClient`: forwarding needs none of a client's
cookies, redirects, auth or URL and header merging. A proxy named by the environment
(HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY) is used as an `httpx.AsyncClient` would.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import httpx

from handlers.forwarding.connections import (
    SEND_ERRORS,
    SEND_TIMEOUTS,
    Connections,
    PooledConnections,
    SlotConnections,
)
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


PROXY_PROBLEM: Final = (
    "the proxy that HTTPS_PROXY, HTTP_PROXY or ALL_PROXY names for forward destination "
    "{name!r} is not a usable proxy URL (expected http://host:port)"
)


def destination_connections(url: str, *, concurrency: int) -> Connections:
    """The connections of one destination: `concurrency` of them, kept alive, through
    the proxy the environment names for it (if any). ValueError for a proxy URL httpx
    cannot use (the message never shows it: it may hold a password)."""
    proxy = _proxy_for(url)
    if proxy is None:
        return SlotConnections(url, concurrency=concurrency)
    return PooledConnections(url, concurrency=concurrency, proxy=proxy)


def _proxy_for(url: str) -> httpx.Proxy | None:
    proxy = environment_proxy(url)
    if proxy is None:
        return None
    try:
        return httpx.Proxy(proxy)
    except (ValueError, TypeError, httpx.InvalidURL):
        raise ValueError("unusable proxy URL") from None


def proxy_problems(destinations: Sequence[tuple[str, str]]) -> list[str]:
    """For `(name, url)` of each destination: the ones whose environment proxy httpx
    cannot use (checked when the worker starts, before anything runs)."""
    problems = []
    for name, url in destinations:
        try:
            _proxy_for(url)
        except ValueError:
            problems.append(PROXY_PROBLEM.format(name=name))
    return problems


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (None: connect directly), read as
    httpx.AsyncClient reads it: NO_PROXY wins, a proxy without a scheme is http://."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def split_credentials(url: str) -> tuple[str, str | None]:
    """`url` without its user info, and the Basic `Authorization` value that user info
    stands for (as httpx.AsyncClient sends it), or None."""
    parsed = httpx.URL(url)
    if not parsed.username and not parsed.password:
        return url, None
    pair = f"{parsed.username}:{parsed.password}".encode()
    bare = str(parsed.copy_with(username=None, password=None))
    return bare, "Basic " + base64.b64encode(pair).decode()


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
    connections: Connections,
    *,
    keys: Sequence[bytes],
    message_id: str,
    body: bytes,
    timeout_seconds: float,
    authorization: str | None = None,
) -> Result:
    """One POST; `timeout_seconds` bounds each step (connect, write, every read) and the
    whole attempt, so an answer trickling in cannot hold the slot longer."""
    headers = [
        (name.encode("ascii"), value.encode("ascii"))
        for name, value in request_headers(keys, message_id, body).items()
    ]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode("latin-1")))
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_seconds):
            answer = await connections.post(
                headers, body, step_seconds=timeout_seconds, limit=MAX_READ_BYTES
            )
        latency = time.perf_counter() - started
    except TimeoutError:
        took = time.perf_counter() - started
        return Result(
            "timeout", None, took, b"", f"no complete answer within {timeout_seconds:g} s"
        )
    except SEND_TIMEOUTS as exc:
        return Result("timeout", None, time.perf_counter() - started, b"", _describe(exc))
    except SEND_ERRORS as exc:
        return Result("network_error", None, time.perf_counter() - started, b"", _describe(exc))
    status = answer.status
    body_read = answer.body
    retry_after = retry_after_seconds(answer.retry_after, time.time())
    if 200 <= status < 300:
        return Result("success", status, latency, body_read)
    if status == 410:
        return Result("gone", status, latency, body_read, "410 Gone: the destination is retired")
    error = f"HTTP {status}"
    if 300 <= status < 400:
        error += " (redirects are not followed: configure the final URL)"
    return Result("http_error", status, latency, body_read, error, retry_after)


def _describe(exc: BaseException) -> str:
    # httpx and httpcore messages name the host and port at most; never headers or the body.
    return f"{type(exc).__name__}: {exc}"[:300]

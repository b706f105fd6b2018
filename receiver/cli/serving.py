"""What a peer may hold of the receiver: connections, time to send headers, file descriptors.

uvicorn closes a keep-alive connection after `--timeout-keep-alive` and answers 503 above
`--limit-concurrency` (open connections or running requests), but a connection that
sends nothing, or its headers a byte at a time, is held forever. `protocol_class` adds a
header deadline (`--header-timeout`), and logs, at most every few seconds, when open
connections near the concurrency limit. The body has its own deadline in the endpoint
(WEBHOOK_BODY_TIMEOUT_SECONDS).

`raise_fd_limit` lifts the soft RLIMIT_NOFILE to the hard one at start-up, and
`effective_concurrency` keeps the concurrency limit below it: past the fd limit,
`accept()` fails and every delivery stalls with nothing said; below it, a request over
the limit gets a clear 503.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger("tiktok_webhooks.serve")

DEFAULT_HEADER_TIMEOUT: Final = 10.0
# File descriptors kept free of connections: Redis pool, listening socket, logs, imports.
FD_RESERVE: Final = 64
# The log says so from this share of the limit on, at most every NEAR_LIMIT_LOG_EVERY s.
NEAR_LIMIT_SHARE: Final = 0.8
NEAR_LIMIT_LOG_EVERY: Final = 10.0
_SOFT_CAP: Final = 1 << 20
_HEADER_TIMEOUT_BODY: Final = (
    b'{"error":"header_timeout","message":"the request headers did not arrive in time"}'
)
_HEADER_TIMEOUT_RESPONSE: Final = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_HEADER_TIMEOUT_BODY), _HEADER_TIMEOUT_BODY)
)


def raise_fd_limit() -> tuple[int, int, int]:
    """Raise the soft fd limit to the hard one; (before, after, hard). Never fails."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, _SOFT_CAP) if hard != resource.RLIM_INFINITY else _SOFT_CAP
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the file descriptor limit from %d: %s", soft, exc)
            return soft, soft, hard
        return soft, target, hard
    return soft, soft, hard


def effective_concurrency(requested: int, fd_limit: int) -> int:
    """The concurrency limit, lowered so that connections never exhaust file descriptors."""
    return max(1, min(requested, fd_limit - FD_RESERVE))


def startup_limits(requested_concurrency: int) -> int:
    """Raise the fd limit, log both figures, and return the concurrency limit to use."""
    before, after, hard = raise_fd_limit()
    limit = effective_concurrency(requested_concurrency, after)
    logger.info(
        "file descriptor limit %d (raised from %d; hard limit %s); concurrency limit %d: "
        "requests above it are answered 503",
        after,
        before,
        "unlimited" if hard == resource.RLIM_INFINITY else hard,
        limit,
    )
    if limit < requested_concurrency:
        logger.warning(
            "--limit-concurrency %d lowered to %d: the file descriptor limit is %d; raise "
            "`ulimit -n` (or the container's nofile limit) to allow more",
            requested_concurrency,
            limit,
            after,
        )
    return limit


class _NearLimitLog:
    """One log line per interval at most, however many connections arrive."""

    def __init__(self) -> None:
        self.last = -NEAR_LIMIT_LOG_EVERY

    def maybe(self, open_connections: int, limit: int) -> None:
        now = time.monotonic()
        if now - self.last < NEAR_LIMIT_LOG_EVERY:
            return
        self.last = now
        full = open_connections >= limit
        logger.warning(
            "%d open connections, %s the concurrency limit of %d (--limit-concurrency): "
            "%s; connections that send nothing are closed after --header-timeout",
            open_connections,
            "at" if full else "near",
            limit,
            "new requests are answered 503" if full else "above it new requests get 503",
        )


_near_limit = _NearLimitLog()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for the request line and headers."""

    header_timeout: float = DEFAULT_HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.limit_concurrency
        if limit is not None and len(self.connections) >= NEAR_LIMIT_SHARE * limit:
            _near_limit.maybe(len(self.connections), limit)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Waiting for the next request is the keep-alive timeout's business.
        self._disarm_header_timer()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is running: its body has its own deadline
        self.transport.write(_HEADER_TIMEOUT_RESPONSE)
        self.transport.close()


def protocol_class(header_timeout: float) -> type[LimitedHttpToolsProtocol]:
    """The protocol class to give uvicorn as `http=`, with this header deadline."""
    return type(
        "LimitedHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {"header_timeout": header_timeout},
    )

"""The connections of one destination: how a forwarding attempt's POST goes out.

A destination reached directly has `concurrency` kept-alive HTTP/1.1 connections, each
used by one send at a time (`SlotConnections`): httpcore's connection (the engine inside
httpx) on the asyncio network backend of `netstream`. A pool would look at each of its
connections on every request; the dispatcher already keeps at most `concurrency` sends in
flight, so a free connection is simply taken from a list. Together that halves the CPU
of a request against an httpx transport (bench/WORKER.md).

A destination behind a proxy (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, not bypassed by
NO_PROXY) goes through an `httpx.AsyncHTTPTransport` with that proxy
(`PooledConnections`), which knows the proxy protocols.

Both verify TLS with httpx's default context, never follow a redirect, and read at most
`limit` bytes of an answer. Their errors are httpcore's or httpx's exceptions
(`SEND_ERRORS`, `SEND_TIMEOUTS`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final, Protocol

import httpcore
import httpx

from handlers.forwarding.netstream import AsyncioBackend

SEND_TIMEOUTS: Final = (httpx.TimeoutException, httpcore.TimeoutException)
SEND_ERRORS: Final = (
    httpx.HTTPError,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ConnectionNotAvailable,
    OSError,
)


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None
    body: bytes  # at most the `limit` asked for


class Connections(Protocol):
    async def post(
        self, headers: list[tuple[bytes, bytes]], body: bytes, *, step_seconds: float, limit: int
    ) -> Answer: ...

    async def aclose(self) -> None: ...


async def _read_up_to(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The first `limit` bytes of an answer's body; the rest is not read."""
    read = bytearray()
    async for chunk in chunks:
        read += chunk
        if len(read) >= limit:
            break
    return bytes(read[:limit])


def _timeouts(seconds: float) -> dict[str, float]:
    return {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}


# A connection idle longer than this is closed rather than reused (httpx's default): a
# NAT or load balancer may have dropped it silently, or the server be about to close it.
KEEPALIVE_SECONDS: Final = 5.0


class SlotConnections:
    """`concurrency` connections to `url`'s origin, one send on each at a time."""

    def __init__(
        self, url: str, *, concurrency: int, keepalive_seconds: float = KEEPALIVE_SECONDS
    ) -> None:
        self._keepalive_seconds = keepalive_seconds
        parsed = httpx.URL(url)
        scheme = parsed.scheme.encode("ascii")
        default_port = 443 if scheme == b"https" else 80
        self._origin = httpcore.Origin(scheme, parsed.raw_host, parsed.port or default_port)
        self._url = httpcore.URL(
            scheme=scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path
        )
        self._host = parsed.netloc
        self._ssl: ssl.SSLContext | None = (
            httpx.create_ssl_context() if scheme == b"https" else None
        )
        self._backend = AsyncioBackend()
        self._slots = asyncio.Semaphore(concurrency)
        self._idle: list[httpcore.AsyncHTTPConnection] = []
        self._busy: set[httpcore.AsyncHTTPConnection] = set()

    def _connection(self) -> httpcore.AsyncHTTPConnection:
        return httpcore.AsyncHTTPConnection(
            self._origin,
            ssl_context=self._ssl,
            keepalive_expiry=self._keepalive_seconds,
            network_backend=self._backend,
        )

    async def _take(self) -> httpcore.AsyncHTTPConnection:
        while self._idle:
            connection = self._idle.pop()
            if connection.is_closed() or connection.has_expired():
                await connection.aclose()  # the server closed it while it was idle
                continue
            return connection
        return self._connection()

    async def post(
        self, headers: list[tuple[bytes, bytes]], body: bytes, *, step_seconds: float, limit: int
    ) -> Answer:
        request = httpcore.Request(
            b"POST",
            self._url,
            headers=[
                (b"host", self._host),
                (b"content-length", str(len(body)).encode("ascii")),
                *headers,
            ],
            content=body,
            extensions={"timeout": _timeouts(step_seconds)},
        )
        async with self._slots:
            connection = await self._take()
            self._busy.add(connection)
            try:
                try:
                    response = await connection.handle_async_request(request)
                except httpcore.ConnectionNotAvailable:
                    # Closed between the check and the request: once more, on a new one.
                    await connection.aclose()
                    self._busy.discard(connection)
                    connection = self._connection()
                    self._busy.add(connection)
                    response = await connection.handle_async_request(request)
                try:
                    # An answer not read to its end closes the connection (not reused).
                    read = await _read_up_to(response.aiter_stream(), limit)
                finally:
                    await response.aclose()
            except BaseException:
                self._busy.discard(connection)
                await connection.aclose()
                raise
            self._busy.discard(connection)
            if connection.is_closed():
                await connection.aclose()
            else:
                self._idle.append(connection)
        retry_after = None
        for name, value in response.headers:
            if name.lower() == b"retry-after":
                retry_after = value.decode("latin-1")
        return Answer(response.status, retry_after, read)

    async def aclose(self) -> None:
        connections = [*self._idle, *self._busy]
        self._idle.clear()
        self._busy.clear()
        for connection in connections:
            await connection.aclose()


class PooledConnections:
    """An httpx transport (its pool of `concurrency` connections) through `proxy`."""

    def __init__(self, url: str, *, concurrency: int, proxy: httpx.Proxy) -> None:
        self._url = url
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._transport = httpx.AsyncHTTPTransport(limits=limits, proxy=proxy)

    async def post(
        self, headers: list[tuple[bytes, bytes]], body: bytes, *, step_seconds: float, limit: int
    ) -> Answer:
        request = httpx.Request(
            "POST",
            self._url,
            content=body,
            headers=headers,
            extensions={"timeout": _timeouts(step_seconds)},
        )
        response = await self._transport.handle_async_request(request)
        try:
            read = await _read_up_to(response.aiter_raw(), limit)
        finally:
            await response.aclose()
        return Answer(response.status_code, response.headers.get("retry-after"), read)

    async def aclose(self) -> None:
        await self._transport.aclose()

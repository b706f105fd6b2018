"""httpcore's network layer written on asyncio's transports directly.

httpcore (the HTTP engine of httpx) talks to sockets through a pluggable "network
backend"; its default goes through anyio, which wraps every read and write in a cancel
scope and rebuilds a dict of socket attributes each time a pooled connection is looked
at. Forwarding sends many small requests over a few kept-alive connections, where that
costs about a third of the CPU of a request (bench/WORKER.md). This backend does the same
job on an `asyncio.Protocol`: connect (TCP, then TLS with `loop.start_tls`), read, write
with back-pressure, close, each step bounded by httpcore's timeout and failing with
httpcore's own exceptions, which httpx and our sender already understand.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable
from typing import Any, Final

import httpcore

# Reading pauses while this much is buffered and not read (the kernel's flow control then
# holds the sender back): a server writing to an idle connection cannot fill the memory.
BUFFER_LIMIT: Final = 64 * 1024


class _Protocol(asyncio.Protocol):
    """Buffers what arrives (up to BUFFER_LIMIT) and wakes the one reader or writer
    waiting for it."""

    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self.reading_paused = False
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.paused = False
        self._reader: asyncio.Future[None] | None = None
        self._writer: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= BUFFER_LIMIT and not self.reading_paused:
            self._pause_reading(True)
        self._wake_reader()

    def consumed(self) -> None:
        if self.reading_paused and len(self.buffer) < BUFFER_LIMIT:
            self._pause_reading(False)

    def _pause_reading(self, pause: bool) -> None:
        transport = self.transport
        if isinstance(transport, asyncio.ReadTransport) and not transport.is_closing():
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()
        self.reading_paused = pause

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close the transport: HTTP/1.1 never half-closes usefully

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    def _wake_writer(self) -> None:
        if self._writer is not None and not self._writer.done():
            self._writer.set_result(None)

    async def readable(self, seconds: float | None) -> None:
        self._reader = asyncio.get_running_loop().create_future()
        try:
            await _within(self._reader, seconds)
        finally:
            self._reader = None

    async def drained(self, seconds: float | None) -> None:
        self._writer = asyncio.get_running_loop().create_future()
        try:
            await _within(self._writer, seconds)
        finally:
            self._writer = None


async def _within(waiter: asyncio.Future[None], seconds: float | None) -> None:
    if seconds is None:
        await waiter
        return
    async with asyncio.timeout(seconds):
        await waiter


class AsyncioStream(httpcore.AsyncNetworkStream):
    # The methods and their `timeout` arguments are httpcore's network interface.

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        protocol = self._protocol
        if not protocol.buffer and not protocol.eof:
            try:
                await protocol.readable(timeout)
            except TimeoutError:
                raise httpcore.ReadTimeout(f"no data within {timeout:g} s") from None
        if protocol.buffer:
            data = bytes(protocol.buffer[:max_bytes])
            del protocol.buffer[:max_bytes]
            protocol.consumed()
            return data
        if protocol.error is not None:
            raise httpcore.ReadError(_reason(protocol.error))
        return b""  # the peer closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        protocol = self._protocol
        if self._transport.is_closing() or protocol.eof:
            raise httpcore.WriteError(_reason(protocol.error))
        self._transport.write(buffer)
        if protocol.paused:
            try:
                await protocol.drained(timeout)
            except TimeoutError:
                raise httpcore.WriteTimeout(f"could not write within {timeout:g} s") from None
            if protocol.paused:
                raise httpcore.WriteError(_reason(protocol.error))

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport,
                    self._protocol,
                    ssl_context,
                    server_hostname=server_hostname,
                )
        except TimeoutError:
            self._transport.abort()
            raise httpcore.ConnectTimeout(f"TLS handshake not done within {timeout:g} s") from None
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.abort()
            raise httpcore.ConnectError(_reason(exc)) from None
        if transport is None:  # the connection closed during the handshake
            raise httpcore.ConnectError("connection closed during the TLS handshake")
        self._protocol.transport = transport  # reading is paused and resumed on TLS now
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # An idle kept-alive connection that has something to read was closed (or
            # answered out of turn) by the server: httpcore then drops it.
            return bool(self._protocol.buffer) or self._protocol.eof
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Protocol,
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {timeout:g} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(_reason(exc)) from None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for option in socket_options or ():
                sock.setsockopt(*option)
        return AsyncioStream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "closed"
    return str(exc) or type(exc).__name__

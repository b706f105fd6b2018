"""A destination's connections on real sockets: kept alive, replaced when the server
closes them, bounded in what they read and how long they wait, TLS verified."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpcore
import pytest

from handlers.forwarding.connections import Connections, SlotConnections
from handlers.forwarding.netstream import BUFFER_LIMIT, AsyncioBackend
from handlers.forwarding.sender import MAX_READ_BYTES, Result, destination_connections, send
from receiver.forward_config import secret_bytes
from tests.deploy.tls_redis import make_certificates
from tests.handlers.forwarding.consumer import Consumer, running
from tests.handlers.forwarding.support import SECRET

KEYS = [secret_bytes(SECRET)]
BODY = b'{"type":"tiktok.ping","timestamp":"2026-12-02T00:00:00Z","data":{}}'
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(
    handler: Handler, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    """A scripted server on loopback; yields its base URL and the ports of the
    connections it accepted (one entry per connection)."""
    accepted: list[int] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("peername")[1])
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}/hook", accepted
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


def answer(status: int = 200, body: bytes = b"ok", extra: bytes = b"") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n".encode() + extra + b"\r\n" + body
    )


def answering(status: int = 200, body: bytes = b"ok", requests: int | None = None) -> Handler:
    """A handler answering every request on its connection (only the first `requests`,
    then it closes the connection)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = 0
        while requests is None or answered < requests:
            await read_request(reader)
            writer.write(answer(status, body))
            await writer.drain()
            answered += 1

    return handler


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(5)


@asynccontextmanager
async def slot_connections(
    url: str, concurrency: int = 1, **options: float
) -> AsyncIterator[SlotConnections]:
    connections = SlotConnections(url, concurrency=concurrency, **options)
    try:
        yield connections
    finally:
        await connections.aclose()


@asynccontextmanager
async def raw_stream(url: str) -> AsyncIterator[httpcore.AsyncNetworkStream]:
    """A bare connection to `url`'s host and port through the asyncio backend."""
    host, port = url.split("/")[2].split(":")
    stream = await AsyncioBackend().connect_tcp(host, int(port), timeout=1)
    try:
        yield stream
    finally:
        await stream.aclose()


async def send_once(connections: Connections, message_id: str) -> Result:
    """One attempt on `connections`, closed afterwards."""
    try:
        return await send(
            connections, keys=KEYS, message_id=message_id, body=BODY, timeout_seconds=2
        )
    finally:
        await connections.aclose()


async def post(connections: SlotConnections, body: bytes = BODY) -> int:
    result = await send(connections, keys=KEYS, message_id="msg_1", body=body, timeout_seconds=2)
    assert result.status is not None, result
    return result.status


async def test_requests_reuse_at_most_concurrency_connections() -> None:
    consumer = Consumer(SECRET)
    with running(consumer) as url:
        async with slot_connections(url, concurrency=3) as connections:
            statuses = await asyncio.gather(*(post(connections) for _ in range(30)))
    assert statuses == [200] * 30
    assert len(consumer.received) == 30
    assert all(r.verified for r in consumer.received)
    received = consumer.received[0].headers
    assert received["host"] == url.split("/")[2]
    assert received["content-length"] == str(len(BODY))


async def test_keep_alive_and_a_connection_the_server_closed_is_replaced() -> None:
    # Two answers on a connection, then the server closes it while it is idle.
    async with (
        serving(answering(requests=2)) as (url, accepted),
        slot_connections(url) as connections,
    ):
        for _ in range(2):
            assert await post(connections) == 200
        await asyncio.sleep(0.1)  # the close reaches the idle connection
        assert await post(connections) == 200
    assert len(accepted) == 2, "two requests on the first connection, then a new one"


async def test_an_idle_connection_the_server_keeps_writing_to_buffers_little() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer())
        with contextlib.suppress(ConnectionError):
            for _ in range(2000):  # then garbage, as fast as the client takes it
                writer.write(b"x" * 65536)
                await writer.drain()
        await answering()(reader, writer)  # a second connection: answers properly

    async with serving(handler) as (url, accepted), slot_connections(url) as connections:
        assert await post(connections) == 200
        await asyncio.sleep(0.5)
        [idle] = connections._idle
        network_stream = idle._connection._network_stream  # type: ignore[union-attr]
        buffered = len(network_stream._protocol.buffer)
        # Reading paused at the limit (asyncio reads up to 256 KiB at a time).
        assert BUFFER_LIMIT <= buffered <= BUFFER_LIMIT + 256 * 1024
        assert await post(connections) == 200  # on a new connection
    assert len(accepted) == 2


async def test_a_connection_idle_longer_than_the_keepalive_is_not_reused() -> None:
    async with (
        serving(answering()) as (url, accepted),
        slot_connections(url, keepalive_seconds=0.3) as connections,
    ):
        assert [await post(connections), await post(connections)] == [200, 200]
        await asyncio.sleep(0.5)
        assert await post(connections) == 200
    assert len(accepted) == 2, "two requests kept alive, then a new connection"


async def test_an_answer_is_read_up_to_the_limit_and_its_connection_dropped() -> None:
    big = b"x" * (MAX_READ_BYTES * 4)
    async with (
        serving(answering(200, big)) as (url, accepted),
        slot_connections(url) as connections,
    ):
        result = await send(
            connections, keys=KEYS, message_id="msg_big", body=BODY, timeout_seconds=2
        )
        assert result.ok
        assert result.response == big[:MAX_READ_BYTES]
        assert await post(connections) == 200
    assert len(accepted) == 2, "an answer not read to its end is not reused"


async def test_a_server_that_hangs_up_without_answering_is_a_network_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with serving(handler) as (url, _):
        result = await send_once(SlotConnections(url, concurrency=1), "msg_hup")
    assert result.outcome == "network_error"
    assert result.error is not None
    assert result.error.startswith("RemoteProtocolError")


async def test_nothing_listening_is_a_connect_error() -> None:
    async with serving(silent) as (url, _):
        pass  # the server is closed again: its port refuses connections
    result = await send_once(SlotConnections(url, concurrency=1), "msg_refused")
    assert result.outcome == "network_error"
    assert result.error is not None
    assert result.error.startswith("ConnectError")


async def test_a_silent_server_times_out_each_read() -> None:
    async with serving(silent) as (url, _), raw_stream(url) as stream:
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(1024, timeout=0.2)
        assert stream.get_extra_info("is_readable") is False


async def test_a_server_that_does_not_read_times_out_the_write() -> None:
    async with serving(silent) as (url, _), raw_stream(url) as stream:
        with pytest.raises(httpcore.WriteTimeout):  # noqa: PT012
            for _ in range(1000):  # fills the socket buffers, then waits for room
                await stream.write(b"x" * 1024 * 1024, timeout=0.3)


async def test_a_closed_peer_makes_the_stream_readable_then_empty() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pass  # closes at once

    async with serving(handler) as (url, _), raw_stream(url) as stream:
        assert await stream.read(1024, timeout=1) == b""
        assert stream.get_extra_info("is_readable") is True
        with pytest.raises(httpcore.WriteError):
            await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=1)


@pytest.fixture
def certificates(tmp_path: Path) -> tuple[Path, Path, Path]:
    return make_certificates(tmp_path / "tls", ("127.0.0.1",))


async def test_tls_is_verified_against_the_trusted_authorities(
    certificates: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, cert, key = certificates
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    async with serving(answering(204, b""), tls) as (url, accepted):
        # Not trusted (the default authorities): refused.
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        result = await send_once(destination_connections(url, concurrency=1), "msg_tls")
        assert result.outcome == "network_error"
        assert result.error is not None
        assert "CERTIFICATE_VERIFY_FAILED" in result.error
        # Trusted through SSL_CERT_FILE, as for httpx: two requests, one connection.
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        trusting = destination_connections(url, concurrency=1)
        try:
            assert isinstance(trusting, SlotConnections)
            assert [await post(trusting), await post(trusting)] == [204, 204]
        finally:
            await trusting.aclose()
        # (a refused handshake never reaches the handler)
        assert len(accepted) == 1, "both requests on one kept-alive connection"

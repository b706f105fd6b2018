"""One attempt at a destination: credentials in its URL, proxies from the environment,
and an answer that trickles in, on real sockets on loopback."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from handlers.forwarding.sender import (
    destination_connections,
    environment_proxy,
    proxy_problems,
    send,
    split_credentials,
)
from receiver.forward_config import secret_bytes
from tests.handlers.forwarding.consumer import Consumer, running
from tests.handlers.forwarding.support import SECRET

KEYS = [secret_bytes(SECRET)]
BODY = b'{"type":"tiktok.ping","timestamp":"2026-12-02T00:00:00Z","data":{}}'


async def test_credentials_in_the_url_are_sent_as_basic_auth() -> None:
    consumer = Consumer(SECRET)
    with running(consumer) as url:
        with_user = url.replace("http://", "http://svc%40corp:p%3Ass@")
        bare, authorization = split_credentials(with_user)
        assert bare == url
        connections = destination_connections(bare, concurrency=1)
        try:
            result = await send(
                connections, keys=KEYS, message_id="msg_auth", body=BODY,
                timeout_seconds=5, authorization=authorization,
            )  # fmt: skip
        finally:
            await connections.aclose()
    assert result.ok, result
    [received] = consumer.received
    assert received.verified
    expected = base64.b64encode(b"svc@corp:p:ss").decode()
    assert received.headers["authorization"] == f"Basic {expected}"
    assert split_credentials(url) == (url, None)


@asynccontextmanager
async def trickling_server() -> AsyncIterator[str]:
    """Answers 200 with a 100-byte body, one byte every 0.1 s."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
        try:
            for _ in range(100):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.1)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        server.close()
        await server.wait_closed()


async def test_an_answer_trickling_in_is_cut_at_the_timeout() -> None:
    async with trickling_server() as url:
        connections = destination_connections(url, concurrency=1)
        try:
            result = await send(
                connections, keys=KEYS, message_id="msg_slow", body=BODY,
                timeout_seconds=0.5,
            )  # fmt: skip
        finally:
            await connections.aclose()
    # Every single read came within 0.5 s; the attempt as a whole did not.
    assert result.outcome == "timeout"
    assert result.error == "no complete answer within 0.5 s"
    assert 0.5 <= result.latency < 2.0


def test_the_environment_proxy_is_read_as_httpx_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert environment_proxy("https://hooks.example.com/x") is None
    monkeypatch.setenv("HTTPS_PROXY", "user:s3cret@proxy.corp:3128")
    assert environment_proxy("https://hooks.example.com/x") == "http://user:s3cret@proxy.corp:3128"
    assert environment_proxy("http://hooks.example.com/x") is None  # HTTPS_PROXY only
    monkeypatch.setenv("ALL_PROXY", "http://all.corp:8080")
    assert environment_proxy("http://hooks.example.com/x") == "http://all.corp:8080"
    monkeypatch.setenv("NO_PROXY", "hooks.example.com")
    assert environment_proxy("https://hooks.example.com/x") is None
    assert proxy_problems([("crm", "https://other.example.com/x")]) == []


def test_an_unusable_proxy_is_named_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "ftp://user:s3cret@proxy.corp:21")
    [problem] = proxy_problems([("crm", "https://hooks.example.com/x")])
    assert "forward destination 'crm'" in problem
    assert "s3cret" not in problem
    with pytest.raises(ValueError, match="unusable proxy URL") as raised:
        destination_connections("https://hooks.example.com/x", concurrency=1)
    assert "s3cret" not in str(raised.value)

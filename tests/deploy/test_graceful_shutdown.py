"""SIGTERM, as Kubernetes and `docker stop` send it, to real `tiktok-webhooks serve` processes.

The receiver must stop accepting connections at once, let a delivery that is already in
flight finish with its real answer (and its event stored), and exit within
--graceful-timeout even when a client never finishes its request.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from receiver.testing.redis_server import free_port
from tests.deploy.processes import (
    CLEAN_EXITS,
    ENTRYPOINT,
    answers,
    running,
    service_env,
    wait_for_exit,
)
from tests.factories import delivery
from tests.store import Store

QUEUE = "arq:queue"


@contextmanager
def serve(
    redis_url: str, tmp_path: Path, graceful: int
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    argv = [
        ENTRYPOINT,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--graceful-timeout",
        str(graceful),
    ]
    ready = answers(f"http://127.0.0.1:{port}/readyz")
    with running(argv, service_env(redis_url), tmp_path / "serve.log", ready) as process:
        yield process, port


def start_slow_post(port: int) -> tuple[socket.socket, bytes]:
    """A signed delivery whose headers and first bytes are sent; the rest is returned."""
    body, headers = delivery("tiktok.ping", {}, open_id=None)
    head = (
        "POST /webhooks/tiktok HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        + "\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head.encode() + body[:10])
    return sock, body[10:]


def read_response(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def refuses_connections(port: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except ConnectionRefusedError:
            return True
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                return True
        time.sleep(0.05)
    return False


def queued(redis_url: str) -> int:
    store = Store(redis_url)
    try:
        return store.zcard(QUEUE)
    finally:
        store.close()


def test_in_flight_delivery_finishes_and_new_connections_are_refused(
    redis_url: str, tmp_path: Path
) -> None:
    with serve(redis_url, tmp_path, graceful=10) as (process, port):
        sock, rest = start_slow_post(port)
        time.sleep(0.3)  # the request is in the app, waiting for the rest of its body
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        assert refuses_connections(port, within=3), "still accepting after SIGTERM"
        assert process.poll() is None, "exited with a delivery in flight"

        sock.sendall(rest)
        response = read_response(sock)
        sock.close()
        status_line, _, _ = response.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 200 OK", response
        assert response.endswith(b'{"status":"accepted"}')
        assert b"connection: close" in response.lower()

        status, _ = wait_for_exit(process, timeout=10)
        assert status in CLEAN_EXITS
        assert time.monotonic() - signalled < 10
    # Acknowledged means stored, also during shutdown.
    assert queued(redis_url) == 1


def test_a_stalled_request_cannot_hold_shutdown_past_the_graceful_timeout(
    redis_url: str, tmp_path: Path
) -> None:
    graceful = 2
    with serve(redis_url, tmp_path, graceful=graceful) as (process, port):
        sock, _ = start_slow_post(port)  # and never send the rest
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        status, took = wait_for_exit(process, timeout=graceful + 8)
        assert status in CLEAN_EXITS
        assert took >= graceful - 0.5, "gave up on the in-flight request too early"
        # The stalled client is cut off, not left hanging.
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            read_response(sock)
        sock.close()
    assert queued(redis_url) == 0  # never acknowledged, so never stored: TikTok retries


def test_idle_keep_alive_connections_do_not_delay_shutdown(redis_url: str, tmp_path: Path) -> None:
    with serve(redis_url, tmp_path, graceful=20) as (process, port):
        sock, rest = start_slow_post(port)
        sock.sendall(rest)
        # Read one full response; the connection then stays open (keep-alive) and idle.
        sock.settimeout(5)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 OK")
        process.send_signal(signal.SIGTERM)
        status, took = wait_for_exit(process, timeout=10)
        assert status in CLEAN_EXITS
        assert took < 5, f"took {took:.1f}s with only an idle connection open"
        sock.close()

"""What a slow, stuck or hostile peer can hold of `serve`, with real sockets and processes.

Idle and slowloris connections are closed after --header-timeout, a body that never
finishes gets 408 after WEBHOOK_BODY_TIMEOUT_SECONDS (also during a shutdown, instead of
holding it for the whole grace and ending in a 500), requests above --limit-concurrency
get a 503 and a log line says why, and the soft fd limit is raised and logged.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from receiver.testing.redis_server import free_port
from tests.deploy.processes import CLEAN_EXITS, ENTRYPOINT, answers, service_env, wait_for_exit
from tests.factories import delivery


@contextmanager
def serve(
    redis_url: str,
    tmp_path: Path,
    *options: str,
    env: dict[str, str] | None = None,
    nofile: tuple[int, int] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = free_port()
    log = tmp_path / "serve.log"
    argv = [ENTRYPOINT, "serve", "--port", str(port), *options]

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    with log.open("wb") as output:
        process = subprocess.Popen(
            argv,
            env=service_env(redis_url, **(env or {})),
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=limit,
        )
    try:
        ready = answers(f"http://127.0.0.1:{port}/readyz")
        deadline = time.monotonic() + 30
        while not ready():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield process, port, log
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def signed_head(port: int, body: bytes, headers: dict[str, str]) -> bytes:
    return (
        "POST /webhooks/tiktok HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        + "\r\n"
    ).encode()


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    redis_url: str, tmp_path: Path
) -> None:
    with serve(redis_url, tmp_path, "--header-timeout", "1") as (_, port, _):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        answer = read_all(sock)  # returns only once the server closes it
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"header_timeout" in answer


def test_slowloris_headers_are_cut_off(redis_url: str, tmp_path: Path) -> None:
    with serve(redis_url, tmp_path, "--header-timeout", "1") as (_, port, _):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(b"POST /webhooks/tiktok HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for _ in range(60):  # a header line every 0.25 s: never a complete request
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed = True
                break
            time.sleep(0.25)
        answer = read_all(sock) if not closed else b""
        sock.close()
    assert closed or answer.startswith(b"HTTP/1.1 408 ")


def test_a_body_that_never_finishes_gets_408_without_a_traceback(
    redis_url: str, tmp_path: Path
) -> None:
    env = {"WEBHOOK_BODY_TIMEOUT_SECONDS": "1"}
    with serve(redis_url, tmp_path, env=env) as (_, port, log):
        body, headers = delivery()
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(signed_head(port, body, headers) + body[:10])
        answer = read_all(sock)
        sock.close()
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b'"error":"body_timeout"' in answer
    assert b"connection: close" in answer.lower()
    assert 'outcome="body_timeout"} 1.0' in metrics
    assert "Traceback" not in log.read_text()


def test_an_unfinished_body_does_not_hold_shutdown_for_the_whole_grace(
    redis_url: str, tmp_path: Path
) -> None:
    env = {"WEBHOOK_BODY_TIMEOUT_SECONDS": "1"}
    options = ("--graceful-timeout", "20")
    with serve(redis_url, tmp_path, *options, env=env) as (process, port, log):
        body, headers = delivery()
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(signed_head(port, body, headers) + body[:10])
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        answer = read_all(sock)
        sock.close()
        status, _ = wait_for_exit(process, timeout=30)
    text = log.read_text()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert status in CLEAN_EXITS
    # uvicorn says this when the grace ran out and it cancelled the request.
    assert "timeout graceful shutdown exceeded" not in text
    assert "Traceback" not in text


def test_above_the_concurrency_limit_requests_get_503_and_the_log_says_why(
    redis_url: str, tmp_path: Path
) -> None:
    options = ("--limit-concurrency", "5", "--header-timeout", "60")
    with serve(redis_url, tmp_path, *options) as (_, port, log):
        idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(6)]
        try:
            body, headers = delivery()
            refused = httpx.post(
                f"http://127.0.0.1:{port}/webhooks/tiktok", content=body, headers=headers
            )
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.2)  # the server notices the closed connections
        accepted = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/tiktok", content=body, headers=headers
        )
        text = log.read_text()
    assert refused.status_code == 503
    assert accepted.status_code == 200
    assert "the concurrency limit of 5" in text


def test_the_soft_fd_limit_is_raised_and_logged(redis_url: str, tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 4096  # lowering the hard limit is allowed; an unlimited one is not raised to
    soft = min(256, hard // 2)
    with serve(redis_url, tmp_path, nofile=(soft, hard)) as (process, _, log):
        with open(f"/proc/{process.pid}/limits") as limits:
            line = next(row for row in limits if row.startswith("Max open files"))
        text = log.read_text()
    assert int(line.split()[3]) == hard
    assert f"file descriptor limit {hard} (raised from {soft};" in text


def test_the_concurrency_limit_stays_below_the_fd_limit(redis_url: str, tmp_path: Path) -> None:
    with serve(redis_url, tmp_path, "--limit-concurrency", "1000", nofile=(300, 300)) as (
        _,
        _,
        log,
    ):
        text = log.read_text()
    assert "concurrency limit 236" in text
    assert "--limit-concurrency 1000 lowered to 236" in text

"""The `tiktok-webhooks` commands, run as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from receiver.testing.redis_server import RedisServer, free_port
from receiver.testing.servers import wait_until_ready
from tests.contract_vector import VECTOR_BODY, VECTOR_HEADER, VECTOR_SECRET, VECTOR_T
from tests.factories import CLIENT_KEY, CLIENT_SECRET

CLI = [sys.executable, "-m", "receiver.cli"]


def run(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, timeout=60, env=env, check=False
    )


def test_sign_matches_the_contract_vector(tmp_path: object) -> None:
    result = run("sign", "--secret", VECTOR_SECRET, "--timestamp", str(VECTOR_T), stdin=VECTOR_BODY)
    assert result.returncode == 0
    assert result.stdout.decode().strip() == VECTOR_HEADER


def test_sign_reads_a_file(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    path = tmp_path / "body.json"
    path.write_bytes(VECTOR_BODY)
    result = run("sign", "--secret", VECTOR_SECRET, "--timestamp", str(VECTOR_T), str(path))
    assert result.stdout.decode().strip() == VECTOR_HEADER
    missing = run("sign", "--secret", "x", str(tmp_path / "nope.json"))
    assert missing.returncode == 2
    assert b"nope.json" in missing.stderr
    assert b"Traceback" not in missing.stderr


@pytest.fixture
def served(redis_server: RedisServer) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = {
        **os.environ,
        "TIKTOK_CLIENT_KEY": CLIENT_KEY,
        "TIKTOK_CLIENT_SECRET": CLIENT_SECRET,
        "REDIS_URL": redis_server.url,
    }
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(process, f"{url}/readyz")
    try:
        yield url, env
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn re-raises SIGTERM after a graceful shutdown, so -SIGTERM is a clean exit.
        assert process.wait(timeout=20) in (0, -signal.SIGTERM)


def test_serve_and_send(served: tuple[str, dict[str, str]], redis_url: str) -> None:
    url, env = served
    target = f"{url}/webhooks/tiktok"
    first = run("send", target, "--event", "authorization.removed", "--open-id", "u1", env=env)
    assert first.returncode == 0, first.stderr
    assert b"200 OK" in first.stdout
    assert b"accepted" in first.stdout
    custom = run(
        "send",
        target,
        "--event",
        "video.upload.failed",
        "--content",
        '{"share_id": "video.9.z"}',
        env=env,
    )
    assert b"accepted" in custom.stdout
    bad_secret = run("send", target, "--event", "tiktok.ping", "--secret", "wrong", env=env)
    assert bad_secret.returncode == 1
    assert b"401" in bad_secret.stdout
    bad_json = run("send", target, "--event", "tiktok.ping", "--content", "{nope", env=env)
    assert bad_json.returncode == 2
    assert b"not valid JSON" in bad_json.stderr


def test_send_to_nothing_says_so() -> None:
    port = free_port()
    result = run(
        "send",
        f"http://127.0.0.1:{port}/webhooks/tiktok",
        "--event",
        "tiktok.ping",
        "--client-key",
        "k",
        "--secret",
        "s",
    )
    assert result.returncode == 1
    assert b"could not deliver" in result.stderr


def test_serve_refuses_bad_config_with_a_clear_message() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIKTOK_", "REDIS_"))}
    result = run("serve", env=env)
    assert result.returncode == 2
    assert b"TIKTOK_CLIENT_KEY" in result.stderr
    assert b"Traceback" not in result.stderr
    env["TIKTOK_CLIENT_KEY"] = "k"
    env["TIKTOK_CLIENT_SECRET"] = "s3cr3t-value"
    env["WEBHOOK_TOLERANCE_SECONDS"] = "soon"
    result = run("serve", env=env)
    assert result.returncode == 2
    assert b"WEBHOOK_TOLERANCE_SECONDS" in result.stderr
    assert b"s3cr3t-value" not in result.stderr

"""Log lines cannot be forged from outside, in the text and the JSON format (LOG_FORMAT)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from receiver.testing.redis_server import free_port
from tests.deploy.processes import ENTRYPOINT, answers, running, service_env
from tests.oauth.harness import ENCRYPTION_KEY

FORGED = "2026-01-01 00:00:00,000 CRITICAL tiktok_webhooks.admin: forged line"
DESCRIPTION = f"denied\r\n{FORGED}\x1b[31m"


def _serve_and_inject(redis_url: str, log: Path, **env: str) -> None:
    """Start a sign-in, then come back with an error whose text carries a forged line."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environ = service_env(
        redis_url,
        TIKTOK_WEBHOOKS_ENV="development",
        TIKTOK_REDIRECT_URI=f"{base}/oauth/tiktok/callback",
        TOKEN_ENCRYPTION_KEYS=ENCRYPTION_KEY,
        **env,
    )
    argv = [ENTRYPOINT, "serve", "--port", str(port)]
    with (
        running(argv, environ, log, answers(f"{base}/readyz")),
        httpx.Client(base_url=base, timeout=10) as browser,
    ):
        start = browser.get("/oauth/tiktok/start")
        assert start.status_code == 302
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        callback = browser.get(
            "/oauth/tiktok/callback",
            params={"state": state, "error": "server_error", "error_description": DESCRIPTION},
        )
        assert callback.status_code == 400


def test_text_logs_escape_control_characters(redis_url: str, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    _serve_and_inject(redis_url, log)
    lines = log.read_text().splitlines()
    assert not any(line.startswith(FORGED) for line in lines), lines
    assert "\x1b" not in log.read_text()
    [warning] = [line for line in lines if "OAuth authorize failed" in line]
    assert "forged line\\x1b[31m" in warning


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_json_logs_are_one_object_per_line(command: str, redis_url: str, tmp_path: Path) -> None:
    log = tmp_path / f"{command}.log"
    if command == "serve":
        _serve_and_inject(redis_url, log, LOG_FORMAT="json")
    else:
        port = free_port()
        env = service_env(redis_url, TOKEN_ENCRYPTION_KEYS=ENCRYPTION_KEY, LOG_FORMAT="json")
        argv = [ENTRYPOINT, "worker", "--metrics-port", str(port)]
        with running(argv, env, log, answers(f"http://127.0.0.1:{port}/metrics"), timeout=20):
            pass
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys()
    if command == "serve":
        [warning] = [e for e in entries if "OAuth authorize failed" in e["message"]]
        assert FORGED in warning["message"]
        assert warning["level"] == "WARNING"
    else:
        assert any("metrics on" in e["message"] for e in entries)


def test_an_unknown_log_format_is_one_line_saying_what_to_set(redis_url: str) -> None:
    import subprocess

    result = subprocess.run(
        [ENTRYPOINT, "worker", "--check"],
        env=service_env(redis_url, LOG_FORMAT="xml"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") <= 2
    assert "LOG_FORMAT must be `text` or `json`" in result.stderr
    assert "Traceback" not in result.stderr

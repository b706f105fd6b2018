"""`python -m sandbox` and the functions the main CLI mounts as `tiktok-webhooks sandbox`."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.cli import config_from_args, configure_parser, run
from receiver.testing.redis_server import free_port
from tests.sandbox.harness import SandboxClient, query_of

ROOT = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    """Parse as the main CLI would: `sandbox` as a subcommand of a parent parser."""
    parser = argparse.ArgumentParser(prog="tiktok-webhooks")
    parser.add_argument("--config")  # a parent option must not clash with ours
    sub = parser.add_subparsers(dest="command", required=True)
    configure_parser(sub.add_parser("sandbox"))
    return parser.parse_args(["sandbox", *argv])


def test_defaults_register_the_built_in_app() -> None:
    args = parse()
    assert (args.sandbox_host, args.sandbox_port) == ("127.0.0.1", 9300)
    config = config_from_args(args)
    [app] = config.apps
    assert app.client_key == "sandbox_client_key"
    assert app.redirect_uris == ["http://127.0.0.1:8000/oauth/tiktok/callback"]
    assert config.auto_approve is True
    assert config.rate_limit_per_minute == 600


def test_options_make_the_config() -> None:
    args = parse(
        "--client-key", "K", "--client-secret", "S",
        "--redirect-uri", "https://a.example/cb", "--redirect-uri", "https://b.example/cb",
        "--interactive", "--access-token-ttl", "60", "--rate-limit", "0",
        "--invalid-client-status", "401",
    )  # fmt: skip
    config = config_from_args(args)
    [app] = config.apps
    assert (app.client_key, app.client_secret) == ("K", "S")
    assert app.redirect_uris == ["https://a.example/cb", "https://b.example/cb"]
    assert config.auto_approve is False
    assert config.access_token_ttl == 60
    assert config.rate_limit_per_minute is None
    assert config.invalid_client_http_status == 401


def test_bad_options_exit_2_without_serving(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse("--client-key", "K")) == 2
    assert "--client-secret" in capsys.readouterr().err
    assert run(parse("--code-ttl", "0")) == 2
    assert "code_ttl" in capsys.readouterr().err


@pytest.fixture
def sandbox_process() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(port), "--log-level", "warning",
         "--client-key", "cli_key", "--client-secret", "cli_secret",
         "--redirect-uri", "https://cli.example/cb"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(base_url + "/", timeout=0.5)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("python -m sandbox did not start") from None
                time.sleep(0.05)
        yield base_url
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
        assert b"TIKTOK_AUTH_URL=" + base_url.encode() in stderr


def test_python_m_sandbox_serves_the_flow(sandbox_process: str) -> None:
    client = SandboxClient(sandbox_process)
    try:
        query = query_of(
            client.authorize(client_key="cli_key", redirect_uri="https://cli.example/cb")
        )
        tokens = client.exchange(
            query["code"],
            client_key="cli_key",
            client_secret="cli_secret",
            redirect_uri="https://cli.example/cb",
        ).json()
        info = client.user_info(tokens["access_token"], "open_id,display_name").json()
        assert info["data"]["user"]["open_id"] == tokens["open_id"]
        assert info["error"]["code"] == "ok"
    finally:
        client.close()

"""`python -m tiktok_sandbox` and the functions the main CLI mounts as `tiktok-webhooks sandbox`."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from receiver.testing.redis_server import free_port
from tests.tiktok_sandbox.callback_target import Webhooks, serve_target, wait_until
from tests.tiktok_sandbox.harness import ALICE, CLIENT_KEY, SandboxClient, query_of
from tiktok_sandbox.cli import (
    config_from_args,
    configure_deliveries_parser,
    configure_parser,
    main,
    run,
    run_deliveries,
)

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
        [sys.executable, "-m", "tiktok_sandbox", "--port", str(port), "--log-level", "warning",
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
                    raise RuntimeError("python -m tiktok_sandbox did not start") from None
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


# -- webhooks: options, and the `deliveries` listing ---------------------------------------


def parse_deliveries(*argv: str) -> argparse.Namespace:
    """As the main CLI would mount it: `tiktok-webhooks sandbox deliveries ...`."""
    parser = argparse.ArgumentParser(prog="tiktok-webhooks")
    parser.add_argument("--url")  # a parent option must not clash with ours
    sub = parser.add_subparsers(dest="command", required=True)
    configure_deliveries_parser(sub.add_parser("deliveries"))
    return parser.parse_args(["deliveries", *argv])


def test_webhook_options_make_the_config() -> None:
    args = parse(
        "--callback-url", "http://127.0.0.1:8000/webhooks/tiktok",
        "--webhook-time-scale", "0.001", "--webhook-retry-base", "30",
        "--webhook-horizon", "3600", "--webhook-timeout", "2.5",
    )  # fmt: skip
    config = config_from_args(args)
    assert config.apps[0].callback_url == "http://127.0.0.1:8000/webhooks/tiktok"
    webhooks = config.webhooks
    assert (webhooks.time_scale, webhooks.retry_base_seconds) == (0.001, 30)
    assert (webhooks.horizon_seconds, webhooks.timeout_seconds) == (3600, 2.5)
    assert config_from_args(parse()).apps[0].callback_url is None


def test_bad_webhook_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse("--callback-url", "ftp://example.com/hook")) == 2
    assert "callback URL" in capsys.readouterr().err
    assert run(parse("--webhook-time-scale", "0")) == 2
    assert "time_scale" in capsys.readouterr().err


@pytest.fixture
def with_deliveries(sandbox: SandboxClient) -> Iterator[tuple[str, list[int]]]:
    """The shared sandbox after three deliveries: two delivered (one after a 503), one
    discarded."""
    with serve_target() as target:
        hooks = Webhooks(sandbox.http)
        hooks.set_callback(CLIENT_KEY, target.url)
        hooks.settings(time_scale=1 / 30000, max_attempts=2)
        target.answer_next(503)
        ids = [hooks.trigger(event="authorization.removed", open_id=ALICE)["id"]]
        hooks.wait_finished(ids[0])
        ids.append(hooks.trigger(event="my.custom.event")["id"])
        hooks.wait_finished(ids[1])
        target.answer_next(500, 500)
        ids.append(hooks.trigger(event="tiktok.ping")["id"])
        hooks.wait_finished(ids[2])
        yield sandbox.base_url, ids


def test_deliveries_prints_a_table(
    with_deliveries: tuple[str, list[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    base_url, ids = with_deliveries
    assert run_deliveries(parse_deliveries("--url", base_url)) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[:7] == [
        "ID", "STATUS", "EVENT", "OPEN_ID", "CLIENT_KEY", "ATTEMPTS", "LAST"
    ]  # fmt: skip
    cells = [row.split() for row in rows]
    assert [c[:7] for c in cells] == [
        [str(ids[0]), "delivered", "authorization.removed", ALICE, CLIENT_KEY, "2", "200"],
        [str(ids[1]), "delivered", "my.custom.event", "-", CLIENT_KEY, "1", "200"],
        [str(ids[2]), "discarded", "tiktok.ping", "-", CLIENT_KEY, "2", "500"],
    ]

    assert run_deliveries(parse_deliveries("--url", base_url, "--status", "discarded")) == 0
    _, only = capsys.readouterr().out.splitlines()
    assert only.split()[:2] == [str(ids[2]), "discarded"]

    assert run_deliveries(parse_deliveries("--url", base_url, "--json", "--event", "x")) == 0
    assert json.loads(capsys.readouterr().out) == {"deliveries": []}


def test_deliveries_shows_one_with_its_attempts(
    with_deliveries: tuple[str, list[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    base_url, ids = with_deliveries
    assert run_deliveries(parse_deliveries("--url", base_url, "--id", str(ids[0]))) == 0
    out = capsys.readouterr().out
    assert f"delivery {ids[0]}: authorization.removed for {ALICE}" in out
    assert "delivered after 2 attempt(s)" in out
    assert '"content":"{\\"reason\\":1}"' in out  # the body, exactly as sent
    attempts = out.split("#  STARTED (UTC)")[1].splitlines()[1:]
    assert [line.split()[0] for line in attempts] == ["1", "2"]
    assert "answer 503" in attempts[0]
    assert "200" in attempts[1]

    assert run_deliveries(parse_deliveries("--url", base_url, "--id", str(ids[2]))) == 0
    assert "discarded: no retry after 2 attempt(s)" in capsys.readouterr().out


def test_deliveries_fails_with_1_when_it_cannot_read_the_log(
    sandbox: SandboxClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_deliveries(parse_deliveries("--url", sandbox.base_url, "--id", "999999")) == 1
    assert "HTTP 404: No delivery has id 999999" in capsys.readouterr().err
    dead = f"http://127.0.0.1:{free_port()}"
    assert run_deliveries(parse_deliveries("--url", dead, "--timeout", "1")) == 1
    assert "cannot reach" in capsys.readouterr().err
    assert run_deliveries(parse_deliveries("--url", sandbox.base_url)) == 0
    assert capsys.readouterr().out.strip() == "no webhook deliveries"


def test_python_m_sandbox_sends_webhooks_and_lists_them() -> None:
    """`python -m tiktok_sandbox --callback-url ...`, then `python -m tiktok_sandbox deliveries`."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with serve_target() as target:
        process = subprocess.Popen(
            [sys.executable, "-m", "tiktok_sandbox", "--port", str(port), "--log-level", "warning",
             "--callback-url", target.url, "--webhook-time-scale", "0.0001"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            wait_until(lambda: _answers(base_url), timeout=15, what="python -m tiktok_sandbox")
            hooks = Webhooks(httpx.Client(base_url=base_url, timeout=5))
            target.answer_next(503)
            delivery = hooks.trigger(event="authorization.removed", open_id="someone")
            assert hooks.wait_finished(delivery["id"])["status"] == "delivered"
            hooks.http.close()
            listing = subprocess.run(
                [sys.executable, "-m", "tiktok_sandbox", "deliveries", "--url", base_url],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=10)
    assert listing.returncode == 0, listing.stderr
    _, row = listing.stdout.splitlines()
    assert row.split()[:7] == [
        str(delivery["id"]), "delivered", "authorization.removed", "someone",
        "sandbox_client_key", "2", "200",
    ]  # fmt: skip
    assert b"webhook callback URL: " + target.url.encode() in stderr
    [first, second] = target.received
    first.verify("sandbox_client_secret")
    assert first.body == second.body


def _answers(base_url: str) -> bool:
    try:
        httpx.get(base_url + "/", timeout=0.5)
    except httpx.TransportError:
        return False
    return True


def test_deliveries_of_a_user_whose_open_id_starts_with_a_dash(
    with_deliveries: tuple[str, list[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    base_url, _ = with_deliveries
    # `python -m tiktok_sandbox deliveries --open-id -000…`: real open_ids start with '-'.
    code = main(
        ["deliveries", "--url", base_url, "--open-id", "-000NAdxlHusXRGvLc05cl15y3jnkJg4utC5"]
    )
    assert code == 0
    assert capsys.readouterr().out == "no webhook deliveries\n"  # filtered by that user

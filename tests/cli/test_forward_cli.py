"""`tiktok-webhooks forward ...` as subprocesses, against a real Redis and consumer."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time

import httpx
import pytest

from receiver.forward_config import secret_bytes
from receiver.testing.redis_server import free_port
from receiver.testing.servers import wait_until_ready
from tests.cli.support import app_env
from tests.factories import delivery
from tests.handlers.forwarding.consumer import Consumer, running
from tests.handlers.forwarding.support import SECRET, forward_settings
from tests.worker_support import deliver, drain

CLI = [sys.executable, "-m", "receiver.cli"]


def forward(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "forward", *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def cli_env(redis_url: str, url: str) -> dict[str, str]:
    return app_env(redis_url, FORWARD_URL=url, FORWARD_SECRET=SECRET)


def test_keygen() -> None:
    result = forward("keygen", env=dict(os.environ))
    assert result.returncode == 0
    secret = result.stdout.strip()
    assert len(secret_bytes(secret)) == 32


async def test_list_show_replay_retry_enable(redis_url: str) -> None:
    consumer = Consumer(SECRET, then=500)
    with running(consumer) as url:
        settings = forward_settings(redis_url, url, FORWARD_RETRY_SCHEDULE="10ms")
        await deliver(settings, [delivery("tiktok.ping", {"reason": "x"})])
        await drain(settings)
        env = cli_env(redis_url, url)

        listed = forward("list", "--state", "dead", env=env)
        assert listed.returncode == 0, listed.stderr
        message_id = listed.stdout.split()[0]
        assert message_id.startswith("msg_")
        assert "tiktok.ping" in listed.stdout
        shown = forward("show", message_id, env=env)
        assert shown.returncode == 0
        assert shown.stdout.count('"status": 500') == 2
        assert SECRET not in shown.stdout + listed.stdout

        dests = forward("destinations", env=env)
        assert "default  enabled  pending=0  dead=1" in dests.stdout

        consumer.then = 200
        an_hour_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
        # Before the event: nothing to send.
        early = forward("replay", "--since", "0", "--until", "1", env=env)
        assert early.stdout.startswith("0 deliveries")
        replayed = forward(
            "replay", "--since", an_hour_ago.isoformat(), "--destination", "default", env=env
        )
        assert replayed.returncode == 0, replayed.stderr
        assert replayed.stdout.startswith("1 deliveries")
        await drain(settings)
        assert list(consumer.handled) == [message_id]
        # Delivered now: a second replay has nothing left to send.
        assert forward("replay", "--since", str(int(time.time()) - 60), env=env).stdout.startswith(
            "0 deliveries"
        )
        retried = forward("retry", message_id, env=env)
        assert retried.stdout.strip() == f"{message_id}: sending again now"
        await drain(settings)
        assert len(consumer.received) == 4  # two 500s, the replay, the retry

        assert forward("disable", "default", env=env).returncode == 0
        # An event for a disabled destination is held, not sent...
        await deliver(settings, [delivery("tiktok.ping", {"reason": "while disabled"})])
        await drain(settings)
        assert len(consumer.handled) == 1
        held = forward("list", "--state", "held", env=env).stdout.split()[0]
        # ...and enabling sends it.
        enabled = forward("enable", "default", env=env)
        assert enabled.stdout.startswith("default: enabled")
        assert "1 held delivery is sent now" in enabled.stdout
        await drain(settings)
        assert list(consumer.handled) == [message_id, held]
        again = forward("enable", "default", env=env)
        assert again.stdout.strip() == "default: was not disabled"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["replay", "--since", "yesterday"], "neither unix seconds nor ISO-8601"),
        (["replay", "--since", "10", "--until", "5"], "--until is before --since"),
        (["replay", "--since", "0", "--destination", "nope"], "no forward destination 'nope'"),
        (["show", "msg_nope"], "no such delivery"),
        (["retry", "msg_nope"], "no such delivery"),
        (["enable", "nope"], "no forward destination"),
    ],
)
def test_mistakes_are_one_line(redis_url: str, args: list[str], expected: str) -> None:
    result = forward(*args, env=cli_env(redis_url, "http://127.0.0.1:9/hook"))
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_echo_verifies_and_dedupes(tmp_path: object) -> None:
    from handlers.forwarding.sender import request_headers

    port = free_port()
    env = {**os.environ, "FORWARD_SECRET": SECRET}
    process = subprocess.Popen(
        [*CLI, "forward", "echo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_ready(process, f"http://127.0.0.1:{port}/healthz")
        body = b'{"type":"tiktok.ping","timestamp":"x","data":{"user_openid":"u1"}}'
        headers = request_headers([secret_bytes(SECRET)], "msg_1", body)
        url = f"http://127.0.0.1:{port}/"
        assert httpx.post(url, content=body, headers=headers).json() == {"status": "ok"}
        assert httpx.post(url, content=body, headers=headers).json() == {"status": "duplicate"}
        forged = {**headers, "webhook-signature": "v1,AAAA"}
        assert httpx.post(url, content=body, headers=forged).status_code == 401
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert b"echo: msg_1 tiktok.ping for u1" in output

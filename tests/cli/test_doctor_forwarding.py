"""`doctor`'s forwarding section, run as a subprocess against the private Redis and real
destinations on loopback (an HTTP consumer, a TLS listener, a closed port)."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis

from handlers.forwarding.store import DeliveryStore, delivery_id
from receiver.cli.doctor_forwarding import PENDING_WARN_SECONDS, span, state_checks
from receiver.testing.redis_server import free_port
from tests.cli.support import app_env
from tests.deploy.tls_redis import make_certificates
from tests.factories import CLIENT_KEY, delivery
from tests.handlers.forwarding.consumer import Consumer, running
from tests.handlers.forwarding.support import SECRET, forward_settings
from tests.worker_support import deliver, drain

CLI = [sys.executable, "-m", "receiver.cli", "doctor"]
URL_PASSWORD = "url-password-7f3a"
URL_QUERY = "query-token-91c2"
REDIS_PASSWORD = "redis-password-c0de"


def with_credentials(url: str) -> str:
    """`url` with a user name and password, and a token in its query."""
    parts = urlsplit(url)
    netloc = f"doctor:{URL_PASSWORD}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, f"token={URL_QUERY}", ""))


def doctor_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = app_env(
        redis_url,
        # A closed loopback port: TikTok is never contacted (that check fails at once).
        TIKTOK_API_BASE_URL=f"http://127.0.0.1:{free_port()}",
    )
    env.pop("SSL_CERT_FILE", None)
    return {**env, **extra}


def doctor(env: dict[str, str], *args: str) -> list[str]:
    """The forwarding section's lines of a doctor run; no traceback, no secret anywhere."""
    result = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    for secret in (SECRET, URL_PASSWORD, URL_QUERY, REDIS_PASSWORD):
        assert secret not in output, f"{secret!r} in doctor's output:\n{output}"
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"(all \d+ checks OK|\d+ of \d+ checks failed).*", lines[-1]), lines
    return [line for line in lines if line[5:].startswith("forward")]


def forward_config(tmp_path: Path, name: str, url: str) -> Path:
    path = tmp_path / "doctor.toml"
    path.write_text(f'[[forward]]\nname = "{name}"\nurl = "{url}"\nsecrets = ["{SECRET}"]\n')
    return path


def test_no_destination_says_forwarding_is_off(redis_url: str) -> None:
    [line] = doctor(doctor_env(redis_url))
    assert line.startswith("OK   forwarding: off: no destination"), line
    assert "FORWARD_URL and FORWARD_SECRET" in line
    assert "[[forward]]" in line


def test_a_healthy_destination_is_reached_and_sent_nothing(redis_url: str) -> None:
    consumer = Consumer(SECRET)
    with running(consumer) as url:
        port = urlsplit(url).port
        state, reach = doctor(
            doctor_env(redis_url, FORWARD_URL=with_credentials(url), FORWARD_SECRET=SECRET)
        )
    assert state == "OK   forward default: enabled, 0 pending"
    # scheme://host:port/path only: no user name, password or query.
    prefix = f"OK   forward default reach: http://127.0.0.1:{port}/hook accepts a TCP connection"
    assert reach.startswith(prefix), reach
    assert "doctor" not in reach
    assert consumer.received == []
    assert consumer.redirect_hits == 0


def test_a_closed_port_is_a_warning(redis_url: str) -> None:
    port = free_port()
    url = with_credentials(f"http://127.0.0.1:{port}/hook")
    state, reach = doctor(doctor_env(redis_url, FORWARD_URL=url, FORWARD_SECRET=SECRET))
    assert state == "OK   forward default: enabled, 0 pending"
    assert reach.startswith(
        f"WARN forward default reach: http://127.0.0.1:{port}/hook: cannot connect within 3 s: "
        "ConnectionRefusedError"
    ), reach


async def test_a_disabled_destination_fails_with_the_enable_command(
    redis_url: str, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    consumer = Consumer(SECRET)
    with running(consumer) as url:
        config = forward_config(tmp_path, "billing", with_credentials(url))
        store = DeliveryStore(redis_client)
        assert await store.disable("billing", "answered 410 Gone")
        held = [(delivery_id("doctor-event", "billing"), "billing")]
        body = b'{"type":"tiktok.ping","timestamp":"2026-01-01T00:00:00Z","data":{}}'
        created = await store.create(held, body=body, event="tiktok.ping", client_key=CLIENT_KEY)
        assert created == ["held"]
        env = doctor_env(redis_url)

        disabled, reach = doctor(env, "--config", str(config))
        assert disabled.startswith("FAIL forward billing: disabled 0 s ago (answered 410 Gone)")
        assert "1 event(s) held" in disabled
        assert "`tiktok-webhooks forward enable billing`" in disabled
        # It answers again: the operator can enable it.
        assert reach.startswith(f"OK   forward billing reach: {url} accepts"), reach

        # Enabled by hand in Redis, without sending the held delivery (`forward enable`
        # would send it): doctor points at the command that does.
        assert await store.enable("billing")
        enabled, _ = doctor(env, "--config", str(config))
    assert enabled.startswith("WARN forward billing: 1 delivery(ies) held"), enabled
    assert enabled.endswith("send them with `tiktok-webhooks forward enable billing`"), enabled
    assert consumer.received == []


async def test_dead_letters_are_a_warning_with_the_replay_command(redis_url: str) -> None:
    consumer = Consumer(SECRET, then=500)
    with running(consumer) as url:
        settings = forward_settings(redis_url, with_credentials(url), FORWARD_RETRY_SCHEDULE="10ms")
        await deliver(settings, [delivery("tiktok.ping", {"reason": "x"})])
        await drain(settings)
        sent = len(consumer.received)
        assert sent == 2  # the first try and one retry, both answered 500
        lines = doctor(
            doctor_env(redis_url, FORWARD_URL=with_credentials(url), FORWARD_SECRET=SECRET)
        )
    assert len(consumer.received) == sent  # the doctor sent nothing
    failing, dead, reach = lines
    assert failing.startswith("WARN forward default: every attempt has failed for "), failing
    assert dead.startswith("WARN forward default: 1 dead letter(s) failed their last try"), dead
    assert "`tiktok-webhooks forward list --destination default --state dead`" in dead
    assert "`tiktok-webhooks forward replay --destination default --since T`" in dead
    assert reach.startswith("OK   forward default reach: "), reach


def test_without_redis_the_state_is_not_read(redis_url: str) -> None:
    port = free_port()
    closed = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0"
    url = with_credentials(f"http://127.0.0.1:{port}/hook")
    state, reach = doctor(
        doctor_env(redis_url, REDIS_URL=closed, FORWARD_URL=url, FORWARD_SECRET=SECRET)
    )
    assert state == (
        "SKIP forward default: state not read: Redis is unreachable (ConnectionError; "
        "see `redis` above)"
    )
    assert reach.startswith(f"WARN forward default reach: http://127.0.0.1:{port}/hook"), reach


def test_settings_that_do_not_load_skip_the_section(redis_url: str) -> None:
    env = doctor_env(redis_url, FORWARD_URL="http://127.0.0.1:9/hook", FORWARD_SECRET="oops")
    assert doctor(env) == [
        "SKIP forwarding: not checked: the settings do not load (see `settings` above)"
    ]


@contextmanager
def tls_listener(cert: Path, key: Path) -> Iterator[tuple[int, list[bytes]]]:
    """A TLS server on loopback: its port, and what each client sent after the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # closed
            try:
                tls = context.wrap_socket(conn, server_side=True)
            except OSError:
                conn.close()  # the client did not trust us: no handshake
                continue
            with tls:
                tls.settimeout(5)
                try:
                    received.append(tls.recv(1024))
                except OSError:
                    received.append(b"")  # closed without a close_notify: nothing was read

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        server.close()
        thread.join(timeout=5)


def test_an_https_destination_gets_a_tls_handshake(redis_url: str, tmp_path: Path) -> None:
    ca, cert, key = make_certificates(tmp_path / "tls")
    with tls_listener(cert, key) as (port, received):
        url = f"https://127.0.0.1:{port}/hook"
        env = doctor_env(redis_url, FORWARD_URL=with_credentials(url), FORWARD_SECRET=SECRET)
        _, untrusted = doctor(env)
        assert untrusted.startswith(
            f"WARN forward default reach: {url}: cannot connect and complete a TLS handshake "
            "within 3 s: SSLCertVerificationError"
        ), untrusted
        # The worker's HTTP client honours SSL_CERT_FILE, and so does the check.
        _, trusted = doctor({**env, "SSL_CERT_FILE": str(ca)})
        assert trusted.startswith(
            f"OK   forward default reach: {url} accepts a TCP connection and a TLS handshake"
        ), trusted
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
    assert received == [b""]  # one handshake, then the doctor closed without a byte


def test_state_checks_name_a_backlog_and_how_long_it_has_failed() -> None:
    now = 1_800_000_000.0
    counts = {"pending": 3, "oldest_pending_at": now - 3600, "dead": 0, "held": 0}
    failing, backlog = state_checks(
        "billing", {**counts, "disabled": False}, {"failing_since": str(now - 9000)}, now=now
    )
    assert failing.line().startswith("WARN forward billing: ")
    assert "every attempt has failed for 2.5 h" in failing.detail
    assert backlog.warning
    assert backlog.detail.startswith("the oldest of 3 pending delivery(ies) has waited 60 min")
    fresh = {**counts, "oldest_pending_at": now - PENDING_WARN_SECONDS + 1, "disabled": False}
    [ok] = state_checks("billing", fresh, {}, now=now)
    assert ok.line() == "OK   forward billing: enabled, 3 pending, the oldest 14 min old"


def test_span_reads_like_a_person_would_say_it() -> None:
    assert [span(s) for s in (-5, 45, 125, 7199, 9000, 3 * 86400)] == [
        "0 s",
        "45 s",
        "2 min",
        "119 min",
        "2.5 h",
        "3.0 d",
    ]

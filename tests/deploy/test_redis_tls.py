"""Redis over TLS with a password, as docs/deploy.md tells to configure it.

The server here speaks only TLS, wants a password and has a certificate from a private
CA, like most managed or self-run production Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from receiver.testing.redis_server import free_port
from tests.deploy.processes import ENTRYPOINT, answers, running, service_env
from tests.deploy.test_commands import run_probe, wait_for_check
from tests.deploy.tls_redis import TlsRedisServer
from tests.factories import delivery


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedisServer]:
    server = TlsRedisServer(tmp_path / "redis-tls", password="test-only-password")
    server.start()
    yield server
    server.stop()


def test_receiver_stores_deliveries_in_a_tls_redis_with_a_private_ca(
    tls_redis: TlsRedisServer, tmp_path: Path
) -> None:
    url = tls_redis.url(ssl_cert_reqs="required", ssl_ca_certs=str(tls_redis.ca))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [ENTRYPOINT, "serve", "--port", str(port)]
    with running(argv, service_env(url), tmp_path / "serve.log", answers(f"{base}/readyz")):
        body, headers = delivery()
        response = httpx.post(f"{base}/webhooks/tiktok", content=body, headers=headers)
        assert response.json() == {"status": "accepted"}


def test_receiver_is_not_ready_when_the_certificate_is_not_trusted(
    tls_redis: TlsRedisServer, tmp_path: Path
) -> None:
    # No ssl_ca_certs: the private CA is unknown, so the connection must be refused.
    url = tls_redis.url(ssl_cert_reqs="required")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [ENTRYPOINT, "serve", "--port", str(port)]
    with running(argv, service_env(url), tmp_path / "serve.log", answers(f"{base}/healthz")):
        assert httpx.get(f"{base}/readyz").status_code == 503
        body, headers = delivery()
        response = httpx.post(f"{base}/webhooks/tiktok", content=body, headers=headers)
        assert response.status_code == 503


def test_worker_reaches_a_tls_redis_with_a_private_ca(
    tls_redis: TlsRedisServer, tmp_path: Path
) -> None:
    url = tls_redis.url(ssl_cert_reqs="required", ssl_ca_certs=str(tls_redis.ca))
    env = service_env(url)
    port = free_port()
    argv = [ENTRYPOINT, "worker", "--metrics-port", str(port)]
    metrics = answers(f"http://127.0.0.1:{port}/metrics")
    with running(argv, env, tmp_path / "worker.log", metrics, timeout=20):
        wait_for_check([ENTRYPOINT, "worker", "--check"], env, timeout=5)
    assert run_probe([ENTRYPOINT, "worker", "--check"], env) != 0

"""`doctor` reports weakened settings: TLS checks off, URLs not TikTok's, Redis memory."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.testing.redis_server import RedisServer
from tests.cli.support import clean_env
from tests.deploy.tls_redis import TlsRedisServer
from tests.factories import CLIENT_KEY, CLIENT_SECRET

PASSWORD = "doctor-test-password"


def doctor(**env: str) -> list[str]:
    environ = clean_env(
        **{"TIKTOK_CLIENT_KEY": CLIENT_KEY, "TIKTOK_CLIENT_SECRET": CLIENT_SECRET, **env}
    )
    result = subprocess.run(
        [sys.executable, "-m", "receiver.cli", "doctor"],
        capture_output=True, text=True, env=environ, timeout=60, check=False,
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    return result.stdout.splitlines()


@pytest.fixture
def wrong_host_redis(tmp_path: Path) -> Iterator[TlsRedisServer]:
    server = TlsRedisServer(tmp_path / "redis-tls", PASSWORD, names=("redis.wrong.example",))
    server.start()
    yield server
    server.stop()


def test_doctor_checks_the_redis_host_name_and_reports_the_opt_out(
    wrong_host_redis: TlsRedisServer,
) -> None:
    checked = doctor(REDIS_URL=wrong_host_redis.url(ssl_ca_certs=str(wrong_host_redis.ca)))
    assert any(line.startswith("FAIL redis:") for line in checked), checked

    lines = doctor(
        REDIS_URL=wrong_host_redis.url(
            ssl_ca_certs=str(wrong_host_redis.ca), ssl_check_hostname="false"
        ),
        # Not TikTok's host (loopback, so the API check only meets a refused connection).
        TIKTOK_API_BASE_URL="https://127.0.0.2:1",
    )
    assert any(line.startswith("OK   redis:") for line in lines), lines
    warnings = [line for line in lines if line.startswith("WARN security:")]
    assert any("ssl_check_hostname=false" in line for line in warnings), lines
    assert any("TIKTOK_API_BASE_URL points at 127.0.0.2" in line for line in warnings), lines


def test_doctor_reports_redis_memory_settings(stoppable_redis: RedisServer) -> None:
    import redis

    client = redis.Redis.from_url(stoppable_redis.url)
    try:
        client.config_set("maxmemory-policy", "allkeys-lru")
        [evicting] = [line for line in doctor(REDIS_URL=stoppable_redis.url) if "memory" in line]
        assert evicting.startswith("FAIL redis memory: maxmemory-policy is allkeys-lru")

        client.config_set("maxmemory-policy", "noeviction")
        [unbounded] = [line for line in doctor(REDIS_URL=stoppable_redis.url) if "memory" in line]
        assert unbounded.startswith("WARN redis memory: no maxmemory")

        client.config_set("maxmemory", str(256 * 1024 * 1024))
        [bounded] = [line for line in doctor(REDIS_URL=stoppable_redis.url) if "memory" in line]
        assert bounded.startswith("OK   redis memory: maxmemory 268435456 bytes")
    finally:
        client.close()

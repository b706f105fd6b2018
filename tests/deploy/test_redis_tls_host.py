"""Redis over TLS checks the server's host name, directly and behind Sentinel."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from arq.connections import create_pool
from redis.exceptions import ConnectionError as RedisConnectionError

from handlers.worker import check_health, redis_settings
from receiver.redis_conn import create_redis, tls_warnings
from receiver.testing.redis_server import free_port
from tests.deploy.processes import ENTRYPOINT, answers, running, service_env
from tests.deploy.tls_redis import TlsRedisServer
from tests.factories import delivery
from tests.worker_support import deliver, drain, worker_settings

PASSWORD = "test-only-password"


@pytest.fixture
def wrong_host_redis(tmp_path: Path) -> Iterator[TlsRedisServer]:
    """A TLS Redis whose certificate (from a trusted CA) names another host."""
    server = TlsRedisServer(tmp_path / "redis-wrong", PASSWORD, names=("redis.wrong.example",))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedisServer]:
    server = TlsRedisServer(tmp_path / "redis-tls", PASSWORD)
    server.start()
    yield server
    server.stop()


async def test_receiver_refuses_a_certificate_for_another_host(
    wrong_host_redis: TlsRedisServer,
) -> None:
    url = wrong_host_redis.url(ssl_ca_certs=str(wrong_host_redis.ca))
    client = create_redis(worker_settings(url))
    try:
        with pytest.raises(RedisConnectionError):
            await client.ping()
    finally:
        await client.aclose()


async def test_worker_refuses_a_certificate_for_another_host(
    wrong_host_redis: TlsRedisServer,
) -> None:
    url = wrong_host_redis.url(ssl_ca_certs=str(wrong_host_redis.ca))
    settings = redis_settings(worker_settings(url))
    settings.conn_retries = 0
    with pytest.raises(RedisConnectionError):
        await create_pool(settings)


async def test_an_explicit_opt_out_connects_and_is_warned_about(
    wrong_host_redis: TlsRedisServer,
) -> None:
    url = wrong_host_redis.url(ssl_ca_certs=str(wrong_host_redis.ca), ssl_check_hostname="false")
    settings = worker_settings(url)
    client = create_redis(settings)
    try:
        assert await client.ping()
    finally:
        await client.aclose()
    arq_settings = redis_settings(settings)
    arq_settings.conn_retries = 0
    pool = await create_pool(arq_settings)
    try:
        assert await pool.ping()
    finally:
        await pool.aclose()
    assert any("ssl_check_hostname=false" in w for w in tls_warnings(settings))
    assert tls_warnings(worker_settings(wrong_host_redis.url(ssl_ca_certs="x"))) == []


def test_serve_logs_the_opt_out_at_start_up(
    wrong_host_redis: TlsRedisServer, tmp_path: Path
) -> None:
    url = wrong_host_redis.url(ssl_ca_certs=str(wrong_host_redis.ca), ssl_check_hostname="false")
    port = free_port()
    log = tmp_path / "serve.log"
    argv = [ENTRYPOINT, "serve", "--port", str(port)]
    with running(argv, service_env(url), log, answers(f"http://127.0.0.1:{port}/readyz")):
        pass
    text = log.read_text()
    assert "ssl_check_hostname=false" in text
    assert PASSWORD not in text


def _start_sentinel(
    primary: TlsRedisServer, workdir: Path, *, tls: bool
) -> tuple[str, subprocess.Popen[bytes]]:
    """A sentinel that watches the TLS-only primary over TLS; it listens with TLS if `tls`."""
    port = free_port()
    listen = f"port 0\ntls-port {port}\n" if tls else f"port {port}\n"
    config = workdir / f"sentinel-{port}.conf"
    config.write_text(
        listen + f"bind 127.0.0.1\ndir {workdir}\n"
        f"tls-cert-file {primary.cert}\ntls-key-file {primary.key}\n"
        f"tls-ca-cert-file {primary.ca}\ntls-replication yes\ntls-auth-clients no\n"
        f"sentinel monitor tls-primary 127.0.0.1 {primary.port} 1\n"
        f"sentinel auth-pass tls-primary {PASSWORD}\n"
    )
    process = subprocess.Popen(
        [primary.binary, str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    probe = redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=1,
        ssl=tls,
        ssl_ca_certs=str(primary.ca) if tls else None,
    )
    deadline = time.monotonic() + 15
    try:
        while True:
            try:
                if probe.execute_command(  # type: ignore[no-untyped-call]
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "tls-primary"
                ):
                    break
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                process.kill()
                process.wait(timeout=10)
                raise RuntimeError("sentinel did not come up")
            time.sleep(0.1)
    finally:
        probe.close()
    return f"127.0.0.1:{port}", process


@pytest.fixture(params=[False, True], ids=["plain-sentinel", "tls-sentinel"])
def tls_sentinel(
    request: pytest.FixtureRequest, tls_redis: TlsRedisServer, tmp_path: Path
) -> Iterator[tuple[str, bool]]:
    tls: bool = request.param
    address, process = _start_sentinel(tls_redis, tmp_path, tls=tls)
    yield address, tls
    process.kill()
    process.wait(timeout=10)


async def test_receiver_and_worker_keep_tls_through_sentinel(
    tls_redis: TlsRedisServer, tls_sentinel: tuple[str, bool]
) -> None:
    address, sentinel_tls = tls_sentinel
    # The host is deliberately wrong: only the sentinels say where the primary is.
    url = f"rediss://:{PASSWORD}@127.0.0.1:1/0?ssl_ca_certs={tls_redis.ca}"
    settings = worker_settings(
        url,
        REDIS_SENTINELS=address,
        REDIS_SENTINEL_MASTER="tls-primary",
        REDIS_SENTINEL_TLS="1" if sentinel_tls else "0",
    )
    await deliver(settings, [delivery("video.upload.failed", {"share_id": "video.9.s"})])
    outcomes = await drain(settings)
    assert any(o.handler == "builtin.record_status" and o.ok for o in outcomes)
    assert await check_health(settings) == 1  # read through the sentinel, over TLS
    direct = create_redis(settings)
    try:
        assert await direct.zcard("arq:queue") == 0
    finally:
        await direct.aclose()

"""Redis Sentinel: the receiver and the worker find the primary through the sentinels."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.testing.redis_server import RedisServer, free_port
from tests.factories import delivery
from tests.store import Store
from tests.worker_support import deliver, drain, worker_settings


@pytest.fixture
def sentinel(stoppable_redis: RedisServer, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor primary-under-test 127.0.0.1 {stoppable_redis.port} 1\n"
    )
    process = subprocess.Popen(
        [stoppable_redis.binary, str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            probe = subprocess.run(
                ["redis-cli", "-p", str(port), "sentinel", "get-master-addr-by-name",
                 "primary-under-test"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if str(stoppable_redis.port) in probe.stdout:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("sentinel did not come up")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=10)


async def test_receiver_and_worker_through_sentinel(
    stoppable_redis: RedisServer, sentinel: str
) -> None:
    # REDIS_URL's host is deliberately wrong: only the sentinels say where the primary is.
    settings = worker_settings(
        "redis://127.0.0.1:1/0",
        REDIS_SENTINELS=sentinel,
        REDIS_SENTINEL_MASTER="primary-under-test",
    )
    await deliver(settings, [delivery("video.upload.failed", {"share_id": "video.9.s"})])
    store = Store(stoppable_redis.url)
    try:
        assert store.zcard("arq:queue") == 1
        outcomes = await drain(settings)
        assert any(o.handler == "builtin.record_status" and o.ok for o in outcomes)
        assert store.zcard("arq:queue") == 0
    finally:
        store.close()


def test_sentinel_addresses_are_validated() -> None:
    from receiver.settings import ConfigError, load_settings

    with pytest.raises(ConfigError, match="REDIS_SENTINELS"):
        load_settings(
            {"TIKTOK_CLIENT_KEY": "k", "TIKTOK_CLIENT_SECRET": "s", "REDIS_SENTINELS": "nohost"}
        )

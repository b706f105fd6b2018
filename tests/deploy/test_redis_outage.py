"""Redis goes away and comes back (a restart, a failover), under real processes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from receiver.testing.redis_server import RedisServer, free_port
from tests.deploy.processes import ENTRYPOINT, answers, running, service_env
from tests.deploy.test_commands import wait_for_check
from tests.factories import delivery


def test_receiver_answers_503_while_redis_is_gone_and_recovers_without_restart(
    stoppable_redis: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(stoppable_redis.url, REDIS_TIMEOUT_SECONDS="0.5")
    argv = [ENTRYPOINT, "serve", "--port", str(port)]
    with running(argv, env, tmp_path / "serve.log", answers(f"{base}/readyz")) as process:
        stoppable_redis.stop()
        body, headers = delivery()
        response = httpx.post(f"{base}/webhooks/tiktok", content=body, headers=headers)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert httpx.get(f"{base}/readyz").status_code == 503
        assert httpx.get(f"{base}/healthz").status_code == 200  # alive: nothing to restart

        stoppable_redis.start()
        deadline = time.monotonic() + 10
        while not answers(f"{base}/readyz")():
            assert time.monotonic() < deadline, "never ready again"
            time.sleep(0.1)
        # TikTok's retry of the same delivery is accepted: the 503 marked nothing as seen.
        response = httpx.post(f"{base}/webhooks/tiktok", content=body, headers=headers)
        assert response.json() == {"status": "accepted"}
        assert process.poll() is None


def test_worker_survives_a_short_redis_outage(stoppable_redis: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    env = service_env(stoppable_redis.url)
    argv = [ENTRYPOINT, "worker", "--metrics-port", str(port)]
    check = [ENTRYPOINT, "worker", "--check"]
    metrics = answers(f"http://127.0.0.1:{port}/metrics")
    with running(argv, env, tmp_path / "worker.log", metrics) as process:
        wait_for_check(check, env)
        stoppable_redis.stop()
        time.sleep(3)
        stoppable_redis.start()
        log = (tmp_path / "worker.log").read_text()
        assert process.poll() is None, f"the worker exited during the outage:\n{log[-2000:]}"
        wait_for_check(check, env, timeout=20)
        assert process.poll() is None

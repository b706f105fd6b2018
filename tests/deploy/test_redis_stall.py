"""A stalled Redis (SIGSTOP: connections are accepted, nothing is answered).

Every delivery must get its 503 within REDIS_TIMEOUT_SECONDS, connecting included.
redis-py makes new connections one at a time under its pool lock, so without one
bound around the whole enqueue, N concurrent deliveries took N times the timeout.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from receiver.testing.redis_server import RedisServer, free_port
from tests.deploy.processes import ENTRYPOINT, answers, running, service_env
from tests.factories import delivery

CONCURRENT = 24
REDIS_TIMEOUT = 1.0
# Not a benchmark: a margin wide enough for any machine, and far below the
# CONCURRENT x REDIS_TIMEOUT seconds that serialized connecting took.
CLIENT_TIMEOUT = 6.0
STAGGER = 0.05


async def _deliver_all(base: str) -> list[httpx.Response | BaseException]:
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:

        async def one(index: int) -> httpx.Response:
            # Staggered, as TikTok's deliveries arrive: each finds the connections of
            # the earlier ones busy and needs a new one.
            await asyncio.sleep(index * STAGGER)
            body, headers = delivery(create_time=1_700_000_000 + index)
            return await client.post(f"{base}/webhooks/tiktok", content=body, headers=headers)

        return await asyncio.gather(*(one(i) for i in range(CONCURRENT)), return_exceptions=True)


def test_every_delivery_is_answered_503_within_the_bound_while_redis_is_stalled(
    stoppable_redis: RedisServer, tmp_path: Path
) -> None:
    assert stoppable_redis.process is not None
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(stoppable_redis.url, REDIS_TIMEOUT_SECONDS=str(REDIS_TIMEOUT))
    argv = [ENTRYPOINT, "serve", "--port", str(port)]
    with running(argv, env, tmp_path / "serve.log", answers(f"{base}/readyz")):
        os.kill(stoppable_redis.process.pid, signal.SIGSTOP)
        try:
            results = asyncio.run(_deliver_all(base))
            ready = httpx.get(f"{base}/readyz", timeout=CLIENT_TIMEOUT)
        finally:
            os.kill(stoppable_redis.process.pid, signal.SIGCONT)
        for result in results:
            assert isinstance(result, httpx.Response), f"no answer in time: {result!r}"
            assert result.status_code == 503
            assert result.headers["retry-after"] == "5"
        assert ready.status_code == 503

        # Once Redis answers again, deliveries are accepted without a restart.
        body, headers = delivery(create_time=1_600_000_000)
        response = httpx.post(f"{base}/webhooks/tiktok", content=body, headers=headers, timeout=10)
        assert response.json() == {"status": "accepted"}

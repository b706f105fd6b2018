"""The internal API's forwarding routes, over a real worker, Redis and consumer."""

from __future__ import annotations

import time

from receiver.app import create_app
from receiver.testing.asgi import app_client
from tests.factories import delivery
from tests.handlers.forwarding.consumer import Consumer, running
from tests.handlers.forwarding.support import SECRET, forward_settings
from tests.worker_support import deliver, drain

ADMIN = "a-long-admin-token-for-the-forwarding-api-tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


async def test_deliveries_attempts_retry_and_replay(redis_url: str) -> None:
    consumer = Consumer(SECRET, then=500)
    with running(consumer) as url:
        settings = forward_settings(
            redis_url, url, ADMIN_TOKEN=ADMIN, FORWARD_RETRY_SCHEDULE="10ms"
        )
        await deliver(settings, [delivery("tiktok.ping", {"reason": "x"})])
        await drain(settings)
        async with app_client(create_app(settings)) as api:
            assert (await api.get("/internal/forward/deliveries")).status_code == 401
            listing = await api.get("/internal/forward/deliveries", headers=AUTH)
            assert listing.status_code == 200
            [row] = listing.json()["deliveries"]
            assert row["state"] == "dead"
            assert row["destination"] == "default"
            one = await api.get(f"/internal/forward/deliveries/{row['id']}", headers=AUTH)
            view = one.json()
            assert [a["status"] for a in view["attempts"]] == [500, 500]
            assert view["payload"]["type"] == "tiktok.ping"
            assert SECRET not in one.text
            assert url not in one.text
            dests = (await api.get("/internal/forward/destinations", headers=AUTH)).json()
            [dest] = dests["destinations"]
            assert (dest["name"], dest["dead"], dest["disabled"]) == ("default", 1, False)
            assert SECRET not in str(dests)

            consumer.then = 200
            replayed = await api.post(
                "/internal/forward/replay",
                json={"since": time.time() - 60, "destination": "default"},
                headers=AUTH,
            )
            assert replayed.status_code == 202
            assert replayed.json() == {"requeued": [row["id"]]}
            await drain(settings)
            done = (await api.get(f"/internal/forward/deliveries/{row['id']}", headers=AUTH)).json()
            assert done["state"] == "succeeded"
            assert [a["status"] for a in done["attempts"]] == [500, 500, 200]

            again = await api.post(f"/internal/forward/deliveries/{row['id']}/retry", headers=AUTH)
            assert again.status_code == 202
            await drain(settings)
    assert len(consumer.handled) == 1
    assert consumer.handled_twice == [row["id"]]  # an explicit retry sends even a success


async def test_bad_requests_are_400_or_404(redis_url: str) -> None:
    settings = forward_settings(redis_url, "http://127.0.0.1:9/hook", ADMIN_TOKEN=ADMIN)
    async with app_client(create_app(settings)) as api:
        for body in (b"{", b"{}", b'{"since": "yesterday"}', b'{"since": 1, "x": 2}'):
            response = await api.post("/internal/forward/replay", content=body, headers=AUTH)
            assert response.status_code == 400, body
        unknown = await api.post(
            "/internal/forward/replay", json={"since": 0, "destination": "nope"}, headers=AUTH
        )
        assert unknown.status_code == 404
        for query in ("limit=0", "limit=abc", "state=lost"):
            response = await api.get(f"/internal/forward/deliveries?{query}", headers=AUTH)
            assert response.status_code == 400, query
        missing = await api.get("/internal/forward/deliveries/msg_nope", headers=AUTH)
        assert missing.status_code == 404
        retry = await api.post("/internal/forward/deliveries/msg_nope/retry", headers=AUTH)
        assert retry.status_code == 404

"""The callback endpoint through the real app, against the suite's private Redis."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from prometheus_client import REGISTRY

from receiver.app import create_app
from receiver.ingest.delivery import build_body, signed_headers
from receiver.ingest.jobs import PROCESS_EVENT, job_deserializer
from receiver.testing.asgi import app_client
from tests.factories import CLIENT_KEY, CLIENT_SECRET, delivery, make_settings
from tests.store import Store

URL = "/webhooks/tiktok"


def count(event: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "tiktok_webhook_deliveries_total", {"event": event, "outcome": outcome}
    )
    return value or 0.0


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(make_settings(redis_url))) as test_client:
        yield test_client


@pytest.fixture
def store(redis_url: str) -> Iterator[Store]:
    client = Store(redis_url)
    yield client
    client.close()


async def test_accepted_delivery_is_an_arq_job(client: httpx.AsyncClient, store: Store) -> None:
    body, headers = delivery(content={"reason": 1}, timestamp=int(time.time()))
    before = count("authorization.removed", "accepted")
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    job_ids = store.zrange("arq:queue")
    assert len(job_ids) == 1
    raw_job = store.get(b"arq:job:" + job_ids[0])
    assert raw_job is not None
    job = job_deserializer(raw_job)
    assert job["f"] == PROCESS_EVENT
    assert job["a"] == [body]
    assert store.ttl(b"arq:job:" + job_ids[0]) > 6 * 24 * 3600
    dedupe_ttl = store.ttl(b"tiktok:dedupe:" + job_ids[0])
    assert dedupe_ttl >= 72 * 3600
    assert count("authorization.removed", "accepted") == before + 1


async def test_duplicate_is_acknowledged_but_enqueued_once(
    client: httpx.AsyncClient, store: Store
) -> None:
    body, headers = delivery()
    assert (await client.post(URL, content=body, headers=headers)).json() == {"status": "accepted"}
    # TikTok's retry: fresh signature timestamp, body re-serialized with other spacing/order.
    retry_body = (
        b'{"content": "{\\"reason\\":1}", "user_openid": "user-1", "create_time": 1700000000,'
        b' "event": "authorization.removed", "client_key": "' + CLIENT_KEY.encode() + b'"}'
    )
    retry = await client.post(
        URL, content=retry_body, headers=signed_headers(CLIENT_SECRET, retry_body)
    )
    assert retry.status_code == 200
    assert retry.json() == {"status": "duplicate"}
    assert store.zcard("arq:queue") == 1


async def test_unknown_event_is_accepted_and_counted(
    client: httpx.AsyncClient, store: Store
) -> None:
    before = count("unknown", "accepted")
    body, headers = delivery("live.started", {"room": 1})
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 200
    assert store.zcard("arq:queue") == 1
    assert count("unknown", "accepted") == before + 1


@pytest.mark.parametrize(
    ("header", "outcome"),
    [
        (None, "invalid_signature"),
        ("t=", "invalid_signature"),
        ("s=", "invalid_signature"),
        ("t=abc,s=x", "invalid_signature"),
        ("t=1,t=2,s=" + "0" * 64, "invalid_signature"),
        ("t=" + "9" * 5000, "invalid_signature"),
        ("t=1700000000,s=" + "0" * 64, "invalid_signature"),
    ],
)
async def test_bad_signatures_get_401(
    client: httpx.AsyncClient, store: Store, header: str | None, outcome: str
) -> None:
    body, _ = delivery()
    headers = {} if header is None else {"TikTok-Signature": header}
    before = count("authorization.removed", outcome)
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 401
    payload = response.json()
    assert payload["error"] == "invalid_signature"
    assert CLIENT_SECRET not in response.text
    assert store.zcard("arq:queue") == 0
    assert count("authorization.removed", outcome) == before + 1


async def test_wrong_secret_401(client: httpx.AsyncClient) -> None:
    body, headers = delivery(secret="someone-elses-secret")
    assert (await client.post(URL, content=body, headers=headers)).status_code == 401


async def test_unknown_client_key_401(client: httpx.AsyncClient) -> None:
    before = count("authorization.removed", "unknown_app")
    body, headers = delivery(client_key="another-app")
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unknown_app"
    assert count("authorization.removed", "unknown_app") == before + 1


async def test_stale_and_future_timestamps(redis_url: str) -> None:
    now = 1_800_000_000.0
    app = create_app(make_settings(redis_url), clock=lambda: now)
    async with app_client(app) as client:
        for offset, expected in ((-301, 401), (301, 401), (-300, 200), (300, 200)):
            body, headers = delivery(create_time=int(now) + offset, timestamp=int(now) + offset)
            response = await client.post(URL, content=body, headers=headers)
            assert response.status_code == expected, offset
            if expected == 401:
                assert response.json()["error"] == "stale_timestamp"


async def test_tolerance_is_a_setting(redis_url: str) -> None:
    now = 1_800_000_000.0
    settings = make_settings(redis_url, WEBHOOK_TOLERANCE_SECONDS="10")
    async with app_client(create_app(settings, clock=lambda: now)) as client:
        body, headers = delivery(timestamp=int(now) - 11)
        assert (await client.post(URL, content=body, headers=headers)).status_code == 401
        body, headers = delivery(timestamp=int(now) - 10)
        assert (await client.post(URL, content=body, headers=headers)).status_code == 200


async def test_secret_rotation_both_secrets_verify(redis_url: str) -> None:
    settings = make_settings(redis_url, TIKTOK_CLIENT_SECRET=f"brand-new,{CLIENT_SECRET}")
    async with app_client(create_app(settings)) as client:
        old_body, old_headers = delivery(open_id="a")
        new_body, new_headers = delivery(open_id="b", secret="brand-new")
        assert (await client.post(URL, content=old_body, headers=old_headers)).status_code == 200
        assert (await client.post(URL, content=new_body, headers=new_headers)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"\xff\xfe\xfd non-utf8",
        b'{"client_key": "' + CLIENT_KEY.encode() + b'", "event": "x"}',
        build_body(client_key=CLIENT_KEY, event="video.upload.failed", content="{not json"),
        build_body(client_key=CLIENT_KEY, event="video.upload.failed", content={"share": 1}),
    ],
)
async def test_valid_signature_over_broken_body_is_400(
    client: httpx.AsyncClient, store: Store, body: bytes
) -> None:
    response = await client.post(URL, content=body, headers=signed_headers(CLIENT_SECRET, body))
    assert response.status_code == 400
    assert response.json()["error"] == "malformed"
    assert store.zcard("arq:queue") == 0


async def test_unsigned_broken_body_is_401_not_400(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, content=b"not json", headers={"TikTok-Signature": "t=1,s=x"})
    assert response.status_code == 401


@pytest.mark.parametrize("timestamp", [None, 1])
async def test_a_body_that_is_no_envelope_is_refused_without_checking_the_hmac(
    client: httpx.AsyncClient, store: Store, timestamp: int | None
) -> None:
    """Which app's secret would apply is unknown: no HMAC is computed, so a wrong or a
    stale signature over such a body is answered the same as a right one."""
    body = b'["not", "an", "envelope"]'
    response = await client.post(
        URL, content=body, headers=signed_headers("not the secret", body, timestamp=timestamp)
    )
    assert response.status_code == 400
    assert response.json()["error"] == "malformed"
    assert store.zcard("arq:queue") == 0


async def test_body_over_cap_by_content_length_413(redis_url: str, store: Store) -> None:
    settings = make_settings(redis_url, WEBHOOK_MAX_BODY_BYTES="2048")
    async with app_client(create_app(settings)) as client:
        body = build_body(client_key=CLIENT_KEY, event="tiktok.ping", content={"pad": "x" * 4000})
        before = count("none", "too_large")
        response = await client.post(URL, content=body, headers=signed_headers(CLIENT_SECRET, body))
        assert response.status_code == 413
        assert response.json()["error"] == "too_large"
        assert count("none", "too_large") == before + 1
    assert store.zcard("arq:queue") == 0


async def test_body_over_cap_when_streamed_413(redis_url: str) -> None:
    settings = make_settings(redis_url, WEBHOOK_MAX_BODY_BYTES="2048")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 1000

    async with app_client(create_app(settings)) as client:
        response = await client.post(URL, content=chunks(), headers={"TikTok-Signature": "t=1,s=x"})
        assert response.status_code == 413


async def test_other_methods_405(client: httpx.AsyncClient) -> None:
    response = await client.get(URL)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_health_ready_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    text = (await client.get("/metrics")).text
    for name in (
        "tiktok_webhook_deliveries_total",
        "tiktok_webhook_request_duration_seconds",
        "tiktok_webhook_enqueue_duration_seconds",
        "tiktok_webhook_signature_age_seconds",
        "tiktok_webhooks_build_info",
    ):
        assert name in text
    assert CLIENT_SECRET not in text


async def test_signature_age_is_observed(client: httpx.AsyncClient) -> None:
    before = REGISTRY.get_sample_value("tiktok_webhook_signature_age_seconds_count") or 0.0
    body, headers = delivery(timestamp=int(time.time()) - 100)
    assert (await client.post(URL, content=body, headers=headers)).status_code == 200
    after = REGISTRY.get_sample_value("tiktok_webhook_signature_age_seconds_count")
    assert after == before + 1
    le_60 = REGISTRY.get_sample_value("tiktok_webhook_signature_age_seconds_bucket", {"le": "60.0"})
    le_120 = REGISTRY.get_sample_value(
        "tiktok_webhook_signature_age_seconds_bucket", {"le": "120.0"}
    )
    assert le_60 is not None
    assert le_120 is not None
    assert le_120 > le_60


async def test_several_apps_from_toml(redis_url: str, tmp_path: object) -> None:
    from pathlib import Path

    from receiver.settings import load_settings

    assert isinstance(tmp_path, Path)
    config = tmp_path / "apps.toml"
    config.write_text(
        f'redis_url = "{redis_url}"\n'
        '[[apps]]\nclient_key = "app-a"\nclient_secret = "secret-a"\n'
        '[[apps]]\nclient_key = "app-b"\nclient_secret = ["secret-b2", "secret-b1"]\n'
    )
    async with app_client(create_app(load_settings({}, config))) as client:
        for key, secret, status in (
            ("app-a", "secret-a", 200),
            ("app-b", "secret-b1", 200),
            ("app-b", "secret-a", 401),
        ):
            body, headers = delivery(client_key=key, secret=secret, open_id=f"{key}{secret}")
            assert (await client.post(URL, content=body, headers=headers)).status_code == status

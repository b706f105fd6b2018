"""The sandbox's webhooks against the project's real receiver (and its Redis)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from receiver.app import create_app as create_receiver
from receiver.ingest.jobs import job_deserializer
from receiver.ingest.webhook import PATH
from receiver.testing.servers import serve_in_thread
from tests.factories import CLIENT_KEY, CLIENT_SECRET, make_settings
from tests.store import Store
from tests.tiktok_sandbox.callback_target import Webhooks, wait_until
from tests.tiktok_sandbox.harness import ALICE, SandboxClient, make_config
from tiktok_sandbox import create_app


@pytest.fixture
def store(redis_url: str) -> Iterator[Store]:
    client = Store(redis_url)
    yield client
    client.close()


@pytest.fixture
def receiver_url(redis_url: str) -> Iterator[str]:
    with serve_in_thread(create_receiver(make_settings(redis_url))) as base_url:
        yield base_url + PATH


@pytest.fixture
def sandbox_client(receiver_url: str) -> Iterator[SandboxClient]:
    """A sandbox on the real clock whose first app is the receiver's (same key, secret)."""
    config = make_config(rate_limit_per_minute=None)
    assert (config.apps[0].client_key, config.apps[0].client_secret) == (
        CLIENT_KEY,
        CLIENT_SECRET,
    )
    config.apps[0].callback_url = receiver_url
    with serve_in_thread(create_app(config)) as base_url:
        client = SandboxClient(base_url)
        yield client
        client.close()


def queued_bodies(store: Store) -> list[bytes]:
    bodies = []
    for job_id in store.zrange("arq:queue"):
        raw = store.get(b"arq:job:" + job_id)
        assert raw is not None
        bodies.append(job_deserializer(raw)["a"][0])
    return bodies


def test_the_receiver_accepts_a_revoke_webhook(sandbox_client: SandboxClient, store: Store) -> None:
    hooks = Webhooks(sandbox_client.http)
    tokens = sandbox_client.login()
    assert sandbox_client.revoke(tokens["access_token"]).status_code == 200
    [delivery] = wait_until(lambda: hooks.list(status="delivered"), what="a delivery")
    done = hooks.get(delivery["id"])
    [attempt] = done["attempts"]
    assert attempt["status_code"] == 200
    assert json.loads(attempt["response_body"]) == {"status": "accepted"}
    [body] = queued_bodies(store)
    assert body == done["body"].encode()  # the exact bytes the sandbox signed
    envelope = json.loads(body)
    assert envelope["event"] == "authorization.removed"
    assert envelope["user_openid"] == ALICE
    assert json.loads(envelope["content"]) == {"reason": 5}


def test_a_redelivery_is_a_duplicate_to_the_receiver(
    sandbox_client: SandboxClient, store: Store
) -> None:
    hooks = Webhooks(sandbox_client.http)
    first = hooks.wait_finished(hooks.trigger(event="video.publish.completed", open_id=ALICE)["id"])
    response = sandbox_client.http.post(f"/sandbox/webhooks/{first['id']}/redeliver")
    assert response.status_code == 202
    again = hooks.wait_finished(response.json()["id"])
    assert again["redelivery_of"] == first["id"]
    assert again["body"] == first["body"]
    assert json.loads(again["attempts"][0]["response_body"]) == {"status": "duplicate"}
    assert len(queued_bodies(store)) == 1  # at-least-once, processed once


def test_a_skewed_clock_is_refused_until_fixed_and_the_retry_gets_through(
    sandbox_client: SandboxClient, store: Store
) -> None:
    hooks = Webhooks(sandbox_client.http)
    # TikTok's clock 10 minutes behind: the receiver's 300 s tolerance refuses it (401),
    # and since each retry is signed afresh, fixing the clock lets the next one through.
    hooks.settings(clock_skew_seconds=-600, time_scale=1 / 600)
    delivery = hooks.trigger(event="tiktok.ping")
    wait_until(lambda: hooks.get(delivery["id"])["attempt_count"], what="a refused attempt")
    hooks.settings(clock_skew_seconds=0)
    done = hooks.wait_finished(delivery["id"])
    refused, *_, accepted = done["attempts"]
    assert refused["status_code"] == 401
    assert "stale_timestamp" in refused["response_body"]
    assert refused["signature_timestamp"] <= int(time.time()) - 590
    assert accepted["status_code"] == 200
    assert accepted["signature_timestamp"] >= int(time.time()) - 5
    assert len(queued_bodies(store)) == 1


def test_an_unreachable_receiver_is_retried(receiver_url: str) -> None:
    # The receiver's own Redis is up; only the sandbox's view of the URL is wrong at first.
    config = make_config(rate_limit_per_minute=None)
    config.apps[0].callback_url = receiver_url + "-wrong"
    with serve_in_thread(create_app(config)) as base_url, httpx.Client(base_url=base_url) as http:
        hooks = Webhooks(http)
        hooks.settings(time_scale=1 / 600)
        delivery = hooks.trigger(event="tiktok.ping")
        wait_until(lambda: hooks.get(delivery["id"])["attempt_count"], what="an attempt")
        hooks.set_callback(CLIENT_KEY, receiver_url)
        done = hooks.wait_finished(delivery["id"])
    assert done["status"] == "delivered"
    assert done["attempts"][0]["status_code"] == 404
    assert done["attempts"][-1]["status_code"] == 200

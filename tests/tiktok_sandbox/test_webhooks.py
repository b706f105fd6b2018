"""The sandbox sends webhooks like TikTok: signed, TikTok's envelope, retried until 200."""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from receiver.ingest.examples import EXAMPLE_CONTENT
from receiver.testing.redis_server import free_port
from receiver.testing.servers import serve_in_thread
from tests.tiktok_sandbox.callback_target import (
    SLOW,
    TIMEOUT,
    CallbackTarget,
    Webhooks,
    serve_target,
    wait_until,
)
from tests.tiktok_sandbox.harness import (
    ALICE,
    CLIENT_KEY,
    CLIENT_SECRET,
    OTHER_KEY,
    OTHER_SECRET,
    START,
    SandboxClient,
    make_config,
)
from tiktok_sandbox import SandboxState, create_app
from tiktok_sandbox.config import WebhookSettings

# 60 s x 2^n on a 1/3000 scale: retries after 20 ms, 40 ms, 80 ms...
FAST = {"time_scale": 1 / 3000}


@pytest.fixture
def target() -> Iterator[CallbackTarget]:
    with serve_target() as target:
        yield target


@pytest.fixture
def hooks(sandbox: SandboxClient, target: CallbackTarget) -> Webhooks:
    """The shared sandbox with its first app's callback URL at `target`, retrying fast."""
    hooks = Webhooks(sandbox.http)
    assert hooks.set_callback(CLIENT_KEY, target.url).status_code == 200
    hooks.settings(**FAST)
    return hooks


class SteppingClock:
    """A wall clock that moves one second per reading, so every `t` differs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ticks = itertools.count(int(time.time()))

    def __call__(self) -> float:
        with self._lock:
            return float(next(self._ticks))


# -- what is sent --------------------------------------------------------------------


def test_a_triggered_event_is_signed_and_posted_in_tiktoks_envelope(
    hooks: Webhooks, target: CallbackTarget
) -> None:
    started = time.time()
    delivery = hooks.trigger(event="video.upload.failed", open_id=ALICE)
    assert delivery["status"] == "pending"
    [received] = wait_until(lambda: target.received, what="the webhook")
    assert received.headers["content-type"] == "application/json"
    # The receiver's own verification, against the wall clock.
    assert received.verify(CLIENT_SECRET, now=time.time()) >= int(started)
    assert list(received.envelope()) == [
        "client_key",
        "event",
        "create_time",
        "user_openid",
        "content",
    ]
    envelope = received.envelope()
    assert envelope["client_key"] == CLIENT_KEY
    assert envelope["event"] == "video.upload.failed"
    assert envelope["create_time"] == int(START)  # the sandbox clock, in seconds
    assert envelope["user_openid"] == ALICE
    assert isinstance(envelope["content"], str)  # a JSON string, as TikTok sends it
    assert json.loads(envelope["content"]) == EXAMPLE_CONTENT["video.upload.failed"]

    done = hooks.wait_finished(delivery["id"])
    assert done["status"] == "delivered"
    assert done["body"].encode() == received.body
    [attempt] = done["attempts"]
    assert attempt["status_code"] == 200
    assert attempt["error"] is None
    assert attempt["response_body"] == "answer 200"
    assert attempt["url"] == target.url
    assert attempt["signature_timestamp"] == received.t


def test_custom_events_content_and_time_go_out_as_given(
    hooks: Webhooks, target: CallbackTarget
) -> None:
    custom = hooks.trigger(event="my.custom.event", content={"a": [1, 2]}, create_time=42)
    verbatim = hooks.trigger(event="tiktok.ping", content='{"reason": "testing Webhook" }')
    unknown = hooks.trigger(event="another.event")
    for delivery in (custom, verbatim, unknown):
        assert hooks.wait_finished(delivery["id"])["status"] == "delivered"
    bodies = {r.envelope()["event"]: r for r in target.received}
    assert set(bodies) == {"my.custom.event", "tiktok.ping", "another.event"}
    first = bodies["my.custom.event"].envelope()
    assert first["create_time"] == 42
    assert "user_openid" not in first  # no open_id: left out, like portability.download.ready
    assert json.loads(first["content"]) == {"a": [1, 2]}
    # A string is sent byte for byte, spaces and all.
    assert bodies["tiktok.ping"].envelope()["content"] == '{"reason": "testing Webhook" }'
    assert bodies["another.event"].envelope()["content"] == "{}"
    for received in target.received:
        received.verify(CLIENT_SECRET, now=time.time())


def test_every_event_of_the_contract_can_be_triggered(
    hooks: Webhooks, target: CallbackTarget
) -> None:
    ids = [hooks.trigger(event=event, open_id=ALICE)["id"] for event in EXAMPLE_CONTENT]
    for delivery_id in ids:
        assert hooks.wait_finished(delivery_id)["status"] == "delivered"
    got = {r.envelope()["event"]: json.loads(r.envelope()["content"]) for r in target.received}
    assert got == EXAMPLE_CONTENT


def test_a_user_events_alias_takes_the_open_id_from_the_path(
    sandbox: SandboxClient, hooks: Webhooks, target: CallbackTarget
) -> None:
    response = sandbox.admin("POST", f"users/{ALICE}/events", {"event": "post.publish.complete"})
    assert response.status_code == 202, response.text
    hooks.wait_finished(response.json()["id"])
    assert target.received[0].envelope()["user_openid"] == ALICE
    assert sandbox.admin("POST", "users/nobody/events", {"event": "x"}).status_code == 404
    mismatch = sandbox.admin("POST", f"users/{ALICE}/events", {"event": "x", "open_id": "bob"})
    assert mismatch.status_code == 400


# -- retries ---------------------------------------------------------------------------


def test_retries_after_503_then_delivers_exactly_once_with_a_fresh_t() -> None:
    with serve_target() as target:
        config = make_config(rate_limit_per_minute=None)
        config.apps[0].callback_url = target.url
        config.webhooks = WebhookSettings(time_scale=1 / 3000)  # 20 ms, 40 ms, ...
        app = create_app(config, webhook_clock=SteppingClock())
        with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url) as http:
            hooks = Webhooks(http)
            target.answer_next(503, 503)
            delivery = hooks.trigger(event="authorization.removed", open_id=ALICE)
            done = hooks.wait_finished(delivery["id"])
            time.sleep(0.2)  # a second 200 would come within this (it must not)
            received = target.received
    assert done["status"] == "delivered"
    assert [a["status_code"] for a in done["attempts"]] == [503, 503, 200]
    assert [a["number"] for a in done["attempts"]] == [1, 2, 3]
    assert len(received) == 3  # acknowledged once, never sent again
    assert len({r.body for r in received}) == 1  # the same bytes each time
    stamps = [r.t for r in received]
    assert stamps == sorted(set(stamps))  # a fresh, later `t` on every attempt
    assert stamps == [a["signature_timestamp"] for a in done["attempts"]]
    for r in received:
        r.verify(CLIENT_SECRET)  # each signature is valid for its own `t`
    # Exponential backoff: the n-th retry waits at least 60 s x 2^(n-1), scaled.
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(received)]
    assert gaps[0] >= 0.020 * 0.95
    assert gaps[1] >= 0.040 * 0.95
    assert done["last_status_code"] == 200
    assert done["next_attempt_at"] is None


def test_any_answer_but_200_is_a_failed_attempt(hooks: Webhooks, target: CallbackTarget) -> None:
    hooks.settings(time_scale=1 / 30000)  # retries after 2, 4, 8, 16, 32 ms
    target.answer_next(202, 204, 301, 400, 500)
    delivery = hooks.trigger(event="tiktok.ping")
    done = hooks.wait_finished(delivery["id"])
    assert [a["status_code"] for a in done["attempts"]] == [202, 204, 301, 400, 500, 200]
    assert done["status"] == "delivered"
    assert len(target.received) == 6  # the redirect was not followed


def test_a_timeout_is_a_failed_attempt(hooks: Webhooks, target: CallbackTarget) -> None:
    hooks.settings(timeout_seconds=0.2)
    target.answer_next(TIMEOUT)
    delivery = hooks.trigger(event="tiktok.ping")
    done = hooks.wait_finished(delivery["id"])
    first, second = done["attempts"]
    assert first["status_code"] is None
    assert first["error"] == "timeout after 0.2 s"
    assert first["duration_ms"] >= 150
    assert second["status_code"] == 200


def test_connection_errors_fail_and_a_new_callback_url_gets_the_retries(
    sandbox: SandboxClient, hooks: Webhooks, target: CallbackTarget
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/webhooks/tiktok"
    hooks.set_callback(CLIENT_KEY, dead)
    hooks.settings(time_scale=1 / 600)  # retries after 0.1 s, 0.2 s, 0.4 s, ...
    delivery = hooks.trigger(event="tiktok.ping")

    def failed_twice() -> bool:
        count: int = hooks.get(delivery["id"])["attempt_count"]
        return count >= 2

    wait_until(failed_twice, what="two failed attempts")
    hooks.set_callback(CLIENT_KEY, target.url)  # fixed in the portal: retries go there
    done = hooks.wait_finished(delivery["id"])
    assert done["status"] == "delivered"
    failures = done["attempts"][:-1]
    assert all(a["status_code"] is None and a["url"] == dead for a in failures)
    assert all(a["error"].startswith("ConnectError") for a in failures)
    assert done["attempts"][-1]["url"] == target.url
    assert len(target.received) == 1


def test_discarded_after_the_scaled_horizon(hooks: Webhooks, target: CallbackTarget) -> None:
    # 1 h horizon, retries after 60 s x 2^n, all x 1e-4: 6, 12, 24, 48, 96 ms, then the
    # next retry (192 ms later, 378 ms in) would pass the 360 ms horizon.
    settings = hooks.settings(horizon_seconds=3600, time_scale=1e-4)
    assert settings["retry_base_seconds"] == 60
    target.always(503)
    started = time.monotonic()
    delivery = hooks.trigger(event="authorization.removed", open_id=ALICE)
    done = hooks.wait_finished(delivery["id"])
    assert done["status"] == "discarded"
    assert "horizon" in done["discard_reason"]
    assert done["next_attempt_at"] is None
    received = target.received
    assert 3 <= len(received) <= 6  # fewer only if the machine is very slow
    assert len(received) == done["attempt_count"]
    assert all(a["status_code"] == 503 for a in done["attempts"])
    assert received[-1].at - started < 0.36 + 0.2  # nothing sent past the horizon (+ slack)
    gaps = [b.at - a.at for a, b in itertools.pairwise(received)]
    for n, gap in enumerate(gaps, start=1):
        assert gap >= 0.006 * 2 ** (n - 1) * 0.95
    time.sleep(0.1)
    assert len(target.received) == len(received)  # and nothing afterwards


def test_max_attempts_discards_early(hooks: Webhooks, target: CallbackTarget) -> None:
    hooks.settings(max_attempts=2)
    target.always(500)
    done = hooks.wait_finished(hooks.trigger(event="tiktok.ping")["id"])
    assert done["status"] == "discarded"
    assert done["attempt_count"] == 2
    assert "max_attempts" in done["discard_reason"]


# -- events of the OAuth flow ------------------------------------------------------------


def test_revoke_sends_authorization_removed_with_reason_5(
    sandbox: SandboxClient, hooks: Webhooks, target: CallbackTarget
) -> None:
    tokens = sandbox.login()
    assert sandbox.revoke(tokens["access_token"]).status_code == 200
    [delivery] = wait_until(lambda: hooks.list(status="delivered"), what="a delivery")
    assert delivery["event"] == "authorization.removed"
    assert delivery["open_id"] == ALICE
    assert delivery["event_seq"] == sandbox.events()[0]["seq"]
    [received] = target.received
    received.verify(CLIENT_SECRET, now=time.time())
    envelope = received.envelope()
    assert envelope["event"] == "authorization.removed"
    assert envelope["user_openid"] == ALICE
    assert envelope["client_key"] == CLIENT_KEY
    assert json.loads(envelope["content"]) == {"reason": 5}
    # By then the token is already revoked, as the contract says.
    assert sandbox.user_info(tokens["access_token"]).status_code == 401


def test_revoke_can_be_configured_not_to_send(
    sandbox: SandboxClient, hooks: Webhooks, target: CallbackTarget
) -> None:
    hooks.settings(revoke_sends_event=False)
    assert sandbox.revoke(sandbox.login()["access_token"]).status_code == 200
    assert sandbox.events() == []
    assert hooks.list() == []


def test_deauthorize_sends_to_each_app_with_a_callback_url(
    sandbox: SandboxClient, hooks: Webhooks, target: CallbackTarget
) -> None:
    sandbox.login()
    sandbox.login(
        client_key=OTHER_KEY,
        client_secret=OTHER_SECRET,
        redirect_uri="https://other.example.com/cb",
    )
    # Only the first app has a callback URL: the other app's event is recorded, not sent.
    response = sandbox.admin("POST", f"users/{ALICE}/deauthorize", {"reason": 4}).json()
    assert sorted(response["revoked"]) == sorted([CLIENT_KEY, OTHER_KEY])
    [delivery_id] = response["deliveries"]
    done = hooks.wait_finished(delivery_id)
    assert done["client_key"] == CLIENT_KEY
    [received] = target.received
    assert json.loads(received.envelope()["content"]) == {"reason": 4}
    assert len(sandbox.events()) == 2


def test_no_callback_url_means_no_webhooks(sandbox: SandboxClient, hooks: Webhooks) -> None:
    assert hooks.set_callback(CLIENT_KEY, None).json()["callback_url"] is None
    ping = {"event": "tiktok.ping", "client_key": CLIENT_KEY}
    response = sandbox.admin("POST", "webhooks", ping)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_callback_url"
    assert sandbox.revoke(sandbox.login()["access_token"]).status_code == 200
    assert len(sandbox.events()) == 1  # raised, but there is nowhere to send it
    assert hooks.list() == []


# -- the sender --------------------------------------------------------------------------


def test_handlers_never_wait_and_concurrency_is_bounded(
    hooks: Webhooks, target: CallbackTarget
) -> None:
    target.hang_seconds = 0.5
    hooks.settings(concurrency=2)
    target.answer_next(*[SLOW] * 4)
    started = time.monotonic()
    ids = [hooks.trigger(event="tiktok.ping")["id"] for _ in range(4)]
    assert time.monotonic() - started < 0.5  # four triggers, none waited for a delivery
    for delivery_id in ids:
        assert hooks.wait_finished(delivery_id)["status"] == "delivered"
    assert target.max_active == 2
    assert time.monotonic() - started >= 2 * 0.5 * 0.95  # two rounds of two


def test_stopping_the_app_cancels_attempts_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with serve_target(hang_seconds=1.0) as target:
        config = make_config()
        config.apps[0].callback_url = target.url
        app = create_app(config)
        state = app.state.sandbox
        assert isinstance(state, SandboxState)
        with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url) as http:
            target.answer_next(TIMEOUT, 503)
            hanging = Webhooks(http).trigger(event="tiktok.ping")
            wait_until(lambda: target.received, what="the first attempt")
            retrying = Webhooks(http).trigger(event="tiktok.ping")
            wait_until(lambda: Webhooks(http).get(retrying["id"])["attempt_count"], what="503")
        # Stopped mid-attempt: the attempt is not counted and the delivery stays pending.
        cut = state.deliveries.get(hanging["id"])
        assert cut is not None
        assert (cut.status, cut.attempt_count) == ("pending", 0)
        waiting = state.deliveries.get(retrying["id"])
        assert waiting is not None
        assert (waiting.status, waiting.attempt_count) == ("pending", 1)
    assert not [r for r in caplog.records if r.name.startswith(("asyncio", "sandbox"))]


def test_reset_forgets_deliveries_and_callback_urls(
    sandbox: SandboxClient, hooks: Webhooks, target: CallbackTarget
) -> None:
    hooks.settings(retry_base_seconds=3600)  # a 1.2 s retry: still pending at the reset
    target.answer_next(503)
    delivery = hooks.trigger(event="tiktok.ping")
    wait_until(lambda: hooks.get(delivery["id"])["attempt_count"], what="an attempt")
    assert sandbox.admin("POST", "reset").status_code == 200
    assert hooks.list() == []
    apps = sandbox.admin("GET", "apps").json()["apps"]
    assert all(app["callback_url"] is None for app in apps)
    webhooks = sandbox.admin("GET", "settings").json()["webhooks"]
    assert (webhooks["time_scale"], webhooks["retry_base_seconds"]) == (1.0, 60.0)
    time.sleep(0.05)
    assert len(target.received) == 1

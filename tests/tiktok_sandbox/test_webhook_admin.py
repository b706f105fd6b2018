"""The webhook admin API: callback URLs, triggering, the delivery log, the settings."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.tiktok_sandbox.callback_target import BIG, CallbackTarget, Webhooks, serve_target
from tests.tiktok_sandbox.harness import ALICE, CLIENT_KEY, OTHER_KEY, SandboxClient, make_config
from tiktok_sandbox import create_app
from tiktok_sandbox.config import AppConfig, SandboxConfig, WebhookSettings
from tiktok_sandbox.delivery_log import Attempt, DeliveryLog
from tiktok_sandbox.events import Outbox


@pytest.fixture
def target() -> Iterator[CallbackTarget]:
    with serve_target() as target:
        yield target


@pytest.fixture
def hooks(sandbox: SandboxClient) -> Webhooks:
    return Webhooks(sandbox.http)


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


# -- callback URLs -------------------------------------------------------------------------


def test_callback_urls_are_set_checked_and_removed(sandbox: SandboxClient, hooks: Webhooks) -> None:
    url = "https://receiver.example/webhooks/tiktok"
    app = hooks.set_callback(CLIENT_KEY, url).json()
    assert app["callback_url"] == url
    apps = sandbox.admin("GET", "apps").json()["apps"]
    listed = {a["client_key"]: a["callback_url"] for a in apps}
    assert listed == {CLIENT_KEY: url, OTHER_KEY: None}
    for bad in ("ftp://x.example/", "/relative", "https://x.example/#frag", ""):
        assert error_of(hooks.set_callback(CLIENT_KEY, bad)) == (400, "invalid_params")
    assert error_of(hooks.set_callback("nope", url)) == (404, "not_found")
    assert error_of(sandbox.admin("PUT", f"apps/{CLIENT_KEY}/callback", {})) == (
        400,
        "invalid_params",
    )
    assert hooks.set_callback(CLIENT_KEY, None).json()["callback_url"] is None


def test_an_app_may_be_registered_with_a_callback_url(sandbox: SandboxClient) -> None:
    app = {
        "client_key": "hooked",
        "client_secret": "s",
        "redirect_uris": ["https://a.example/cb"],
        "callback_url": "http://127.0.0.1:1/hook",
    }
    assert sandbox.admin("POST", "apps", app).json()["callback_url"] == app["callback_url"]
    bad = {**app, "client_key": "bad", "callback_url": "mailto:x@example.com"}
    response = sandbox.admin("POST", "apps", bad)
    assert response.status_code == 400
    assert "callback URL" in response.json()["error"]["message"]


def test_a_config_with_a_bad_callback_url_or_webhook_settings_fails_at_start() -> None:
    with pytest.raises(ValueError, match="callback URL"):
        create_app(
            SandboxConfig(
                apps=[
                    AppConfig(
                        client_key="k",
                        client_secret="s",
                        redirect_uris=["https://a.example/cb"],
                        callback_url="nonsense",
                    )
                ]
            )
        )
    with pytest.raises(ValueError, match="time_scale"):
        create_app(make_config(webhooks=WebhookSettings(time_scale=0)))
    with pytest.raises(ValueError, match="retry_factor"):
        create_app(make_config(webhooks=WebhookSettings(retry_factor=0.5)))


# -- triggering --------------------------------------------------------------------------


def test_trigger_validation(sandbox: SandboxClient, hooks: Webhooks) -> None:
    def trigger(spec: object) -> tuple[int, str]:
        return error_of(sandbox.http.post("/sandbox/webhooks", json=spec))

    # No app has a callback URL yet: the client_key cannot be guessed.
    assert trigger({"event": "tiktok.ping"}) == (400, "invalid_params")
    assert trigger({"event": "tiktok.ping", "client_key": CLIENT_KEY}) == (409, "no_callback_url")
    hooks.set_callback(CLIENT_KEY, "http://127.0.0.1:1/hook")
    assert trigger({"event": "tiktok.ping", "client_key": "nope"}) == (404, "not_found")
    assert trigger({"event": ""}) == (400, "invalid_params")
    assert trigger({}) == (400, "invalid_params")
    assert trigger({"event": "x", "content": 5}) == (400, "invalid_params")
    assert trigger({"event": "x", "surprise": 1}) == (400, "invalid_params")
    response = sandbox.http.post(
        "/sandbox/webhooks", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert error_of(response) == (400, "invalid_params")
    # With exactly one app listening, it is the default.
    assert hooks.trigger(event="tiktok.ping")["client_key"] == CLIENT_KEY


def test_a_trigger_answers_at_once_with_the_pending_delivery(
    sandbox: SandboxClient, hooks: Webhooks, target: CallbackTarget
) -> None:
    hooks.set_callback(CLIENT_KEY, target.url)
    delivery = hooks.trigger(event="authorization.removed", open_id=ALICE, create_time=7)
    assert delivery["status"] == "pending"
    assert delivery["attempt_count"] == 0
    assert delivery["attempts"] == []
    assert delivery["create_time"] == 7
    assert delivery["body"] == (
        '{"client_key":"test_client_key","event":"authorization.removed","create_time":7,'
        '"user_openid":"open-alice","content":"{\\"reason\\":1}"}'
    )
    [event] = sandbox.events()
    assert delivery["event_seq"] == event["seq"]
    assert event["content"] == '{"reason":1}'


# -- the log -------------------------------------------------------------------------------


def test_the_delivery_log_lists_filters_shows_and_clears(
    sandbox: SandboxClient, hooks: Webhooks, target: CallbackTarget
) -> None:
    hooks.set_callback(CLIENT_KEY, target.url)
    hooks.settings(time_scale=1 / 30000, max_attempts=1)
    target.answer_next(500)
    failed = hooks.wait_finished(hooks.trigger(event="a.event", open_id=ALICE)["id"])
    sent = hooks.wait_finished(hooks.trigger(event="b.event")["id"])
    assert failed["status"] == "discarded"
    assert sent["status"] == "delivered"

    rows = hooks.list()
    assert [r["id"] for r in rows] == [failed["id"], sent["id"]]
    assert set(rows[0]) == {
        "id", "event", "open_id", "client_key", "status", "attempt_count",
        "last_status_code", "last_error", "created_at", "next_attempt_at",
        "finished_at", "event_seq", "redelivery_of",
    }  # fmt: skip
    assert rows[0]["last_status_code"] == 500
    assert rows[0]["created_at"] == pytest.approx(time.time(), abs=30)
    assert [r["id"] for r in hooks.list(status="delivered")] == [sent["id"]]
    assert [r["id"] for r in hooks.list(event="a.event")] == [failed["id"]]
    assert [r["id"] for r in hooks.list(open_id=ALICE)] == [failed["id"]]
    assert [r["id"] for r in hooks.list(since=str(failed["id"]))] == [sent["id"]]
    assert hooks.list(client_key=OTHER_KEY) == []
    assert error_of(sandbox.http.get("/sandbox/webhooks", params={"status": "x"}))[0] == 400
    assert error_of(sandbox.http.get("/sandbox/webhooks", params={"since": "x"}))[0] == 400

    detail = hooks.get(failed["id"])
    [attempt] = detail["attempts"]
    assert set(attempt) == {
        "number", "started_at", "duration_ms", "url", "signature_timestamp",
        "status_code", "error", "response_body", "response_truncated",
    }  # fmt: skip
    assert attempt["response_body"] == "answer 500"
    assert detail["discard_reason"] == "no retry after 1 attempt(s) (max_attempts)"
    assert detail["finished_at"] >= detail["created_at"]

    assert error_of(sandbox.http.get("/sandbox/webhooks/999999")) == (404, "not_found")
    assert error_of(sandbox.http.get("/sandbox/webhooks/abc")) == (404, "not_found")
    assert sandbox.http.delete("/sandbox/webhooks").json() == {"cleared": 2}
    assert hooks.list() == []


def test_redeliver_sends_the_same_body_as_a_new_delivery(
    sandbox: SandboxClient, hooks: Webhooks, target: CallbackTarget
) -> None:
    hooks.set_callback(CLIENT_KEY, target.url)
    first = hooks.wait_finished(hooks.trigger(event="tiktok.ping")["id"])
    response = sandbox.http.post(f"/sandbox/webhooks/{first['id']}/redeliver")
    assert response.status_code == 202
    again = hooks.wait_finished(response.json()["id"])
    assert again["id"] != first["id"]
    assert again["redelivery_of"] == first["id"]
    assert again["event_seq"] == first["event_seq"]
    first_copy, second_copy = target.received
    assert first_copy.body == second_copy.body
    assert hooks.get(first["id"])["attempt_count"] == 1  # the original is untouched

    assert error_of(sandbox.http.post("/sandbox/webhooks/999999/redeliver")) == (404, "not_found")
    hooks.set_callback(CLIENT_KEY, None)
    response = sandbox.http.post(f"/sandbox/webhooks/{first['id']}/redeliver")
    assert error_of(response) == (409, "no_callback_url")


def test_a_large_answer_is_cut_to_a_snippet(hooks: Webhooks, target: CallbackTarget) -> None:
    hooks.set_callback(CLIENT_KEY, target.url)
    target.answer_next(BIG)
    done = hooks.wait_finished(hooks.trigger(event="tiktok.ping")["id"])
    [attempt] = done["attempts"]
    assert attempt["status_code"] == 200
    assert attempt["response_body"] == "x" * 1024
    assert attempt["response_truncated"] is True


# -- settings -------------------------------------------------------------------------------


def test_webhook_settings_are_patched_field_by_field(sandbox: SandboxClient) -> None:
    response = sandbox.admin("PUT", "settings", {"webhooks": {"time_scale": 0.5}})
    assert response.status_code == 200
    webhooks = response.json()["webhooks"]
    assert webhooks["time_scale"] == 0.5
    assert webhooks["retry_base_seconds"] == 60
    changed = sandbox.admin("PUT", "settings", {"webhooks": {"max_attempts": 3}}).json()
    assert changed["webhooks"]["time_scale"] == 0.5  # the earlier change stays
    assert changed["webhooks"]["max_attempts"] == 3
    for bad in (
        {"time_scale": 0},
        {"retry_factor": 0.9},
        {"timeout_seconds": 0},
        {"concurrency": 0},
        {"max_attempts": 0},
        {"nope": 1},
    ):
        response = sandbox.admin("PUT", "settings", {"webhooks": bad})
        assert response.status_code == 400, bad
    assert sandbox.admin("GET", "settings").json()["webhooks"] == changed["webhooks"]


def test_the_retry_schedule() -> None:
    settings = WebhookSettings()
    assert [settings.retry_delay(n) for n in (1, 2, 3, 12)] == [60, 120, 240, 60 * 2**11]
    assert settings.horizon == 72 * 3600
    scaled = WebhookSettings(time_scale=0.001, retry_factor=3)
    assert scaled.retry_delay(2) == pytest.approx(0.18)
    assert scaled.horizon == pytest.approx(259.2)
    assert WebhookSettings(retry_factor=100).retry_delay(10_000) == float("inf")


def test_the_log_keeps_a_bounded_number_of_deliveries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tiktok_sandbox.delivery_log.MAX_DELIVERIES", 3)
    log = DeliveryLog()
    outbox = Outbox()
    outbox.subscribe(log.add_event)

    def emit() -> int:
        event = outbox.emit(client_key="k", event="e", open_id=None, content={}, now=0)
        delivery = log.for_event(event.seq)
        assert delivery is not None
        return delivery.id

    first = emit()
    [job] = log.claim_due(time.monotonic(), 1)
    answer = Attempt(
        number=1,
        started_at=0,
        duration_ms=1,
        url=None,
        signature_timestamp=0,
        status_code=200,
        error=None,
        response_body="",
    )
    log.finish(job, answer, WebhookSettings(), time.monotonic())
    ids = [emit() for _ in range(3)]
    # Over the bound: the finished one goes first, the pending ones stay.
    assert [d.id for d in log.list()] == ids
    assert log.get(first) is None
    ids.append(emit())
    assert [d.id for d in log.list()] == ids[1:]

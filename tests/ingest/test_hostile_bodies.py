"""Bodies built to break a decoder: deep nesting, huge numbers, invalid UTF-8.

Each must end as 401 (unsigned) or 400 `malformed` (signed), never as the catch-all's
503 with a traceback and `outcome="error"` (which pages the on-call).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from receiver.app import create_app
from receiver.ingest.delivery import build_body, signed_headers
from receiver.ingest.events import MalformedEvent, decode_body
from receiver.testing.redis_server import RedisServer
from receiver.testing.servers import serve_in_thread
from tests.factories import CLIENT_KEY, CLIENT_SECRET, make_settings

URL = "/webhooks/tiktok"


def errors_counted() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name != "tiktok_webhook_deliveries":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("outcome") == "error":
                total += sample.value
    return total


def nested_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def nested_array(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def envelope(content: str, **extra: object) -> bytes:
    fields: dict[str, object] = {
        "client_key": CLIENT_KEY,
        "event": "authorization.removed",
        "create_time": 1_700_000_000,
        "user_openid": "user-1",
        "content": content,
    }
    fields.update(extra)
    return msgspec.json.encode(fields)


DEEP = nested_array(50_000)
HUGE = b"9" * 5000
# Raw bytes, none of them a usable envelope.
HOSTILE_BODIES = {
    "object-990": nested_object(990),
    "object-5000": nested_object(5000),
    "array-2000": nested_array(2000),
    "array-100000": nested_array(100_000),
    "deep-unknown-field": b'{"client_key":"' + CLIENT_KEY.encode() + b'","x":' + DEEP,
    "huge-integer": b'{"client_key":"k","event":"e","create_time":' + HUGE + b',"content":"{}"}',
    "huge-float": b'{"client_key":"k","event":"e","create_time":1e999999,"content":"{}"}',
    "invalid-utf8": b'{"client_key":"\xff\xfe","event":"e","create_time":1,"content":"{}"}',
    "invalid-utf8-bare": b"\xc3\x28\xa0\xa1\xe2\x28\xa1",
    "lone-surrogate": b'{"client_key":"\\ud800","event":"e","create_time":1,"content":"{}"}',
}

# Valid envelopes whose `content` is hostile.
HOSTILE_CONTENTS = {
    "content-object-990": nested_object(990).decode(),
    "content-array-100000": nested_array(100_000).decode(),
    "content-huge-integer": '{"reason": ' + "9" * 5000 + "}",
    "content-huge-float": '{"reason": 1e999999}',
    "content-lone-surrogate": '{"reason": "\\udc00"}',
}


@pytest.fixture(scope="module")
def base_url(redis_server: RedisServer) -> Iterator[str]:
    app = create_app(make_settings(redis_server.url, WEBHOOK_MAX_BODY_BYTES=str(1 << 20)))
    with serve_in_thread(app) as url:
        yield url


def post(base_url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{base_url}{URL}", content=body, headers=headers, timeout=30)


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert record.levelno < logging.ERROR, record.getMessage()


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_unsigned_hostile_body_is_401(
    base_url: str, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = errors_counted()
    with caplog.at_level(logging.INFO):
        response = post(base_url, HOSTILE_BODIES[name], {})
    assert response.status_code == 401, response.text
    assert errors_counted() == before
    assert_no_traceback(caplog)


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_signed_hostile_body_is_400_malformed(
    base_url: str, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = HOSTILE_BODIES[name]
    before = errors_counted()
    with caplog.at_level(logging.INFO):
        response = post(base_url, body, signed_headers(CLIENT_SECRET, body))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed"
    assert errors_counted() == before
    assert_no_traceback(caplog)


@pytest.mark.parametrize("name", sorted(HOSTILE_CONTENTS))
def test_signed_envelope_with_hostile_content_is_400_malformed(
    base_url: str, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = envelope(HOSTILE_CONTENTS[name])
    before = errors_counted()
    with caplog.at_level(logging.INFO):
        response = post(base_url, body, signed_headers(CLIENT_SECRET, body))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed"
    assert errors_counted() == before
    assert_no_traceback(caplog)


@pytest.mark.parametrize("name", sorted(HOSTILE_CONTENTS))
def test_unknown_event_with_hostile_content_is_400(base_url: str, name: str) -> None:
    body = envelope(HOSTILE_CONTENTS[name], event="some.new.event")
    response = post(base_url, body, signed_headers(CLIENT_SECRET, body))
    # Unknown events keep their content as decoded JSON, so only what cannot be
    # decoded (or re-encoded for the dedupe key) is refused; the rest is accepted.
    assert response.status_code in {200, 400}, response.text
    if "huge" in name or "100000" in name:
        assert response.status_code == 400


def test_the_worker_decoder_refuses_the_same_bodies() -> None:
    for body in [*HOSTILE_BODIES.values(), *(envelope(c) for c in HOSTILE_CONTENTS.values())]:
        with pytest.raises(MalformedEvent):
            decode_body(body)


def test_a_sound_delivery_still_passes(base_url: str) -> None:
    body = build_body(client_key=CLIENT_KEY, event="authorization.removed", content={"reason": 1})
    response = post(base_url, body, signed_headers(CLIENT_SECRET, body))
    assert response.status_code == 200


openers = st.lists(
    st.sampled_from([b"[", b'{"a":', b'{"content":', b"[1,"]), min_size=1, max_size=4
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pattern=openers,
    depth=st.integers(min_value=200, max_value=40_000),
    tail=st.sampled_from([b"", b"1", b"\xff", b"9" * 400, b"1e99999", b'"\\ud800"']),
    signed=st.booleans(),
    in_content=st.booleans(),
)
def test_fuzzed_nesting_is_400_or_401(
    base_url: str, pattern: list[bytes], depth: int, tail: bytes, signed: bool, in_content: bool
) -> None:
    nested = b"".join(pattern) * (depth // len(pattern)) + tail
    body = envelope(nested.decode(errors="replace")) if in_content else nested
    headers = signed_headers(CLIENT_SECRET, body) if signed else {}
    before = errors_counted()
    response = post(base_url, body, headers)
    assert response.status_code == (400 if signed else 401), response.text
    assert errors_counted() == before

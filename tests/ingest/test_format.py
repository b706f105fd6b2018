"""The JSONL line format shared by capture export, the corpus and replay; the corpus."""

from __future__ import annotations

import base64
import tomllib
from pathlib import Path

import msgspec
import pytest

import receiver
from receiver.ingest.events import KNOWN_EVENTS, decode_body
from receiver.ingest.replay import (
    BadLine,
    Delivery,
    captured_line,
    corpus_path,
    encode_line,
    load_deliveries,
    read_deliveries,
    with_client_key,
)
from tests.contract_vector import VECTOR_BODY

TRICKY_BODIES = [
    VECTOR_BODY,
    b"",
    b'{"a": "line\\nbreak", "quote": "\\"", "raw": "\xe2\x80\xa8 \xf0\x9f\x8e\xb5 \\u00e9"}\r\n',
    b"  leading and trailing white space \t",
    b"\xff\xfe\x00 not UTF-8",
    b"\xed\xa0\x80",  # an encoded surrogate: not valid UTF-8 either
]


@pytest.mark.parametrize("body", TRICKY_BODIES)
def test_bodies_round_trip_byte_exact(body: bytes) -> None:
    line = encode_line(body, signature="t=1,s=ab", received_at=5, event="x")
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    record = msgspec.json.decode(line)
    try:
        body.decode("utf-8")
        assert record["body"].encode() == body
        assert "body_b64" not in record
    except UnicodeDecodeError:
        assert base64.b64decode(record["body_b64"]) == body
        assert "body" not in record
    (parsed,), bad = read_deliveries([line])
    assert bad == []
    assert parsed == Delivery(1, body, "t=1,s=ab", "x", 5)


def test_captured_stream_entries_become_lines() -> None:
    line = captured_line(
        {b"body": VECTOR_BODY, b"signature": b"t=1,s=ab", b"received_at": b"1700000000123"}
    )
    assert msgspec.json.decode(line) == {
        "body": VECTOR_BODY.decode(),
        "signature": "t=1,s=ab",
        "received_at": 1700000000123,
        "event": "authorization.removed",
    }
    assert msgspec.json.decode(captured_line({b"body": b"\xff", b"signature": b""})) == {
        "body_b64": "/w=="
    }


def test_bad_lines_are_reported_with_their_numbers_and_skipped() -> None:
    good = encode_line(b"{}", signature="t=1,s=ab")
    lines = [
        b"\xef\xbb\xbf" + good,  # a byte order mark is tolerated
        b"\n",  # blank: skipped silently
        b"{not json\n",
        b"[1, 2]\n",
        b'{"signature": "t=1,s=ab"}\n',
        b'{"body": "a", "body_b64": "YQ=="}\n',
        b'{"body_b64": "not base64!"}\n',
        b'{"body": 5}\n',
        b'{"body": "\\ud800"}\n',  # a lone surrogate: msgspec refuses it as JSON
        good,
        b'{"body": "x", "unknown": "keys are ignored", "signature": null}',
    ]
    deliveries, bad = read_deliveries(lines)
    assert [d.line for d in deliveries] == [1, 10, 11]
    assert deliveries[2].signature is None
    assert [b.line for b in bad] == [3, 4, 5, 6, 7, 8, 9]
    reasons = {b.line: b.reason for b in bad}
    assert reasons[3].startswith("not JSON")
    assert "Expected `object`" in reasons[4]
    assert "no `body`" in reasons[5]
    assert "both" in reasons[6]
    assert "base64" in reasons[7]
    assert "`$.body`" in reasons[8]
    assert reasons[9].startswith("not JSON")


def test_client_key_can_be_replaced() -> None:
    delivery = Delivery(3, VECTOR_BODY)
    changed = with_client_key(delivery, "mine")
    assert isinstance(changed, Delivery)
    assert decode_body(changed.body).envelope.client_key == "mine"
    # Everything else, `content`'s exact string included, is unchanged.
    original, rewritten = msgspec.json.decode(VECTOR_BODY), msgspec.json.decode(changed.body)
    assert list(rewritten) == list(original)
    assert {**rewritten, "client_key": original["client_key"]} == original
    assert with_client_key(Delivery(4, b"[]"), "mine") == BadLine(
        4, "cannot set client_key: the body is not a JSON object"
    )


def test_the_corpus_has_every_event_of_the_contract() -> None:
    path = corpus_path()
    assert path.parent.name == "corpus"
    assert path.parent.parent == Path(receiver.__file__).parent
    deliveries, bad = load_deliveries(path)
    assert bad == []
    events = [decode_body(d.body).name for d in deliveries]
    assert sorted(events) == sorted(KNOWN_EVENTS)
    for d in deliveries:
        assert d.event == decode_body(d.body).name
        assert d.signature is None  # unsigned: replay with --resign


def test_the_corpus_has_the_official_examples_verbatim() -> None:
    deliveries, _ = load_deliveries(corpus_path())
    by_event = {d.event: d.body for d in deliveries}
    # The contract's test vector is the official authorization.removed example.
    assert by_event["authorization.removed"] == VECTOR_BODY
    assert by_event["video.upload.failed"] == (
        b'{"client_key":"bwo2m45353a6k85","event":"video.upload.failed",'
        b'"create_time":1615338610,"user_openid":"act.example12345Example12345Example",'
        b'"content":"{\\"share_id\\":\\"video.6974245311675353080.VDCxrcMJ\\"}"}'
    )
    assert by_event["portability.download.ready"] == (
        b'{"client_key":"developer_client_key","event":"portability.download.ready",'
        b'"create_time":1615338610,"content":"{\\"request_id\\":123123123123123}"}'
    )
    ping = decode_body(by_event["tiktok.ping"])
    assert ping.envelope.create_time == 1752894700622
    assert ping.envelope.user_openid == "7528370655977505848"


def test_the_corpus_is_package_data() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["receiver"]
    assert any(corpus_path().match(pattern) for pattern in patterns)

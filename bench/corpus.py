"""Distinct, correctly signed TikTok deliveries for the benchmarks.

Deliveries are built and signed here, independently of `receiver/`, with the stdlib
only: the benchmark must not trust the code it measures to produce its own input.
Every delivery has a unique `user_openid` of the form ``act.b<run-id>.<index>``, so a
delivery can be found again in Redis (inside the stored job) by a byte search.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CLIENT_KEY: Final = "benchclientkey01"
# A throw-away secret for the private benchmark Redis and app; never a real one.
CLIENT_SECRET: Final = "bench-secret-0123456789abcdef0123456789abcdef"

# Finds the delivery identity inside any stored form (msgpack, JSON or pickle keep
# the UTF-8 text of `user_openid` as is).
OPENID_PATTERN: Final = re.compile(rb"act\.b([0-9a-f]{8})\.([0-9]+)")

_EVENTS: Final = (
    "authorization.removed",
    "video.upload.failed",
    "video.publish.completed",
    "post.publish.complete",
    "post.publish.failed",
)


@dataclass(frozen=True, slots=True)
class Delivery:
    index: int
    header: str  # the TikTok-Signature value
    body: bytes


def new_run_id() -> str:
    return secrets.token_hex(4)


def _content(event: str, index: int, run_id: str) -> dict[str, object]:
    if event == "authorization.removed":
        return {"reason": index % 6}
    if event in ("video.upload.failed", "video.publish.completed"):
        return {"share_id": f"video.{7_000_000_000_000_000_000 + index}.{run_id}"}
    if event == "post.publish.complete":
        return {"publish_id": f"v_pub_file~v2-1.{run_id}.{index}", "publish_type": "INBOX_SHARE"}
    return {
        "publish_id": f"v_pub_url~v2-1.{run_id}.{index}",
        "reason": "file_format_check_failed",
        "publish_type": "DIRECT_POST",
    }


def build_body(index: int, run_id: str, now: int, client_key: str = CLIENT_KEY) -> bytes:
    """One webhook body, shaped like TikTok's: `content` is a JSON string."""
    event = _EVENTS[index % len(_EVENTS)]
    envelope = {
        "client_key": client_key,
        "event": event,
        "create_time": now - (index % 3600),
        "user_openid": f"act.b{run_id}.{index}",
        "content": json.dumps(_content(event, index, run_id), separators=(",", ":")),
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},s={mac.hexdigest()}"


def generate(
    count: int,
    run_id: str,
    *,
    now: int | None = None,
    client_key: str = CLIENT_KEY,
    secret: str = CLIENT_SECRET,
) -> Iterator[Delivery]:
    """`count` distinct deliveries signed at `now` (default: the current time)."""
    timestamp = int(time.time()) if now is None else now
    for index in range(count):
        body = build_body(index, run_id, timestamp, client_key)
        yield Delivery(index, sign(secret, timestamp, body), body)


def write_corpus(path: Path, deliveries: Iterator[Delivery]) -> int:
    """Write one delivery per line, ``<signature header>\\t<body>``, for the wrk script.

    Compact JSON never holds a raw tab or newline, so the format needs no escaping.
    """
    written = 0
    with path.open("wb") as out:
        for delivery in deliveries:
            if b"\t" in delivery.body or b"\n" in delivery.body:
                raise ValueError("a body with a raw tab or newline cannot go in the corpus")
            out.write(delivery.header.encode() + b"\t" + delivery.body + b"\n")
            written += 1
    return written

"""Signed deliveries for tests: build one, or load a JSONL corpus."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from receiver.ingest.delivery import build_body, signed_headers
from receiver.ingest.examples import EXAMPLE_CONTENT
from receiver.ingest.signature import signature_header


class Delivery(msgspec.Struct, frozen=True):
    """What TikTok POSTs: the exact body bytes and the headers (with TikTok-Signature)."""

    body: bytes
    headers: dict[str, str]


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `TikTok-Signature` header value for `body`."""
    return signature_header(secret, body, timestamp)


def make_delivery(
    event: str,
    content: dict[str, Any] | str | None = None,
    *,
    client_key: str,
    secret: str,
    open_id: str | None = "test-user",
    create_time: int | None = None,
    timestamp: int | None = None,
) -> Delivery:
    """A delivery signed like TikTok's; `content` defaults to the contract's example."""
    body = build_body(
        client_key=client_key,
        event=event,
        content=EXAMPLE_CONTENT.get(event, {}) if content is None else content,
        user_openid=open_id,
        create_time=int(time.time()) if create_time is None else create_time,
    )
    return Delivery(body, signed_headers(secret, body, timestamp=timestamp))


class _Line(msgspec.Struct):
    body: str | None = None
    body_b64: str | None = None


def load_jsonl(path: Path, *, secret: str, client_key: str | None = None) -> Iterator[Delivery]:
    """Deliveries from a JSONL file (a capture export or the corpus), freshly signed.

    Each line has the raw body as `body` (or `body_b64`); lines that are not such an
    object raise ValueError naming the line. With `client_key`, each envelope is
    rewritten to that app (the corpus uses the client keys of TikTok's examples).
    """
    decoder = msgspec.json.Decoder(_Line)
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
            if entry.body is not None:
                body = entry.body.encode()
            elif entry.body_b64 is not None:
                body = base64.b64decode(entry.body_b64)
            else:
                raise ValueError(f"{path}:{number}: no `body` or `body_b64`")
            if client_key is not None:
                envelope = msgspec.json.decode(body)
                if isinstance(envelope, dict):
                    envelope["client_key"] = client_key
                    body = msgspec.json.encode(envelope)
            yield Delivery(body, signed_headers(secret, body))

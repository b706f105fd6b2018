"""Building and signing deliveries the way TikTok sends them (for `send`, tests, replay)."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from receiver.ingest.signature import HEADER_NAME, signature_header
from receiver.secrets import Secret


def build_body(
    *,
    client_key: str,
    event: str,
    content: dict[str, Any] | str,
    user_openid: str | None = None,
    create_time: int | None = None,
) -> bytes:
    """A webhook body: the envelope with `content` as a JSON string, like TikTok's."""
    envelope: dict[str, Any] = {
        "client_key": client_key,
        "event": event,
        "create_time": int(time.time()) if create_time is None else create_time,
    }
    if user_openid is not None:
        envelope["user_openid"] = user_openid
    envelope["content"] = (
        content if isinstance(content, str) else msgspec.json.encode(content).decode()
    )
    return msgspec.json.encode(envelope)


def signed_headers(
    secret: Secret | str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """Headers of a delivery: content type and a `TikTok-Signature` over `body`."""
    return {
        "Content-Type": "application/json",
        HEADER_NAME: signature_header(secret, body, timestamp),
    }

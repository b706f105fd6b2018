"""How TikTok builds and signs a webhook body, written for the sandbox alone.

The sandbox plays TikTok against the receiver, so it must never share code with it: a bug
in a shared signer would be invisible to every test. This follows TikTok's documented
scheme directly: `TikTok-Signature: t=<unix seconds>,s=<hex HMAC-SHA256 of "<t>.<body>">`
keyed with the app's client secret, over the exact body bytes sent.
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

SIGNATURE_HEADER = "TikTok-Signature"


def envelope_body(
    *,
    client_key: str,
    event: str,
    content: dict[str, Any] | str,
    user_openid: str | None,
    create_time: int,
) -> bytes:
    """The JSON envelope TikTok posts; `content` travels as a JSON-encoded string."""
    envelope: dict[str, Any] = {"client_key": client_key, "event": event}
    envelope["create_time"] = create_time
    if user_openid is not None:
        envelope["user_openid"] = user_openid
    envelope["content"] = (
        content if isinstance(content, str) else json.dumps(content, separators=(",", ":"))
    )
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(client_secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `TikTok-Signature` header value for `body` at `timestamp` (default: now)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(client_secret.encode("utf-8"), stamp.encode("ascii") + b"." + body, "sha256")
    return f"t={stamp},s={mac.hexdigest()}"


def delivery_headers(client_secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers of one delivery attempt."""
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(client_secret, body, timestamp),
    }

"""TikTok-Signature: parse the header, verify the HMAC, check the timestamp.

Header: ``TikTok-Signature: t=<unix seconds>,s=<hex HMAC-SHA256>``, where the HMAC key
is the app's client secret and the message is ``f"{t}." + raw_body``. Every way a
header can be wrong raises `SignatureError`, never `ValueError`, so nothing a sender
puts in the header can turn into a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from typing import Final, Literal

from receiver.secrets import Secret

HEADER_NAME: Final = "TikTok-Signature"
# A real header is ~80 bytes; anything far larger is not TikTok's and is not parsed.
MAX_HEADER_LENGTH: Final = 1024
_MAX_SIGNATURES: Final = 8
_HEX_DIGITS: Final = frozenset(b"0123456789abcdefABCDEF")

Reason = Literal["missing", "malformed", "mismatch", "stale"]


class SignatureError(Exception):
    """The delivery is not proven to come from TikTok; `reason` says how it failed."""

    def __init__(self, reason: Reason, message: str, *, timestamp: int | None = None) -> None:
        self.reason: Reason = reason
        self.timestamp = timestamp
        super().__init__(message)


# The form TikTok sends; anything else takes the general (slower, stricter) parser.
_COMMON_FORM: Final = re.compile(rb"t=(\d{1,12}),s=([0-9a-fA-F]{64})")


def parse_signature_header(value: bytes | str | None) -> tuple[int, tuple[bytes, ...]]:
    """Return (timestamp, candidate signatures as 32-byte digests)."""
    if value is None or len(value) == 0:
        raise SignatureError("missing", "TikTok-Signature header is missing")
    if len(value) > MAX_HEADER_LENGTH:
        raise SignatureError("malformed", "TikTok-Signature header is too long")
    raw = value.encode("latin-1", "replace") if isinstance(value, str) else value
    common = _COMMON_FORM.fullmatch(raw)
    if common is not None:
        return int(common[1]), (bytes.fromhex(common[2].decode("ascii")),)
    timestamp: int | None = None
    signatures: list[bytes] = []
    for element in raw.split(b","):
        prefix, sep, item = element.strip().partition(b"=")
        if not sep:
            raise SignatureError("malformed", "TikTok-Signature element without `=`")
        if prefix == b"t":
            if timestamp is not None:
                raise SignatureError("malformed", "TikTok-Signature has more than one `t`")
            if not item.isdigit() or len(item) > 12:
                raise SignatureError("malformed", "TikTok-Signature `t` is not a unix time")
            timestamp = int(item)
        elif prefix == b"s":
            if len(item) != 64 or not _HEX_DIGITS.issuperset(item):
                raise SignatureError("malformed", "TikTok-Signature `s` is not 64 hex digits")
            signatures.append(bytes.fromhex(item.decode("ascii")))
            if len(signatures) > _MAX_SIGNATURES:
                raise SignatureError("malformed", "TikTok-Signature has too many `s` values")
        # Unknown prefixes are ignored, as Stripe-style schemes add elements over time.
    if timestamp is None:
        raise SignatureError("malformed", "TikTok-Signature has no `t`")
    if not signatures:
        raise SignatureError("malformed", "TikTok-Signature has no `s`")
    return timestamp, tuple(signatures)


def compute_signature(secret: Secret | str, timestamp: int, body: bytes) -> str:
    key = secret.reveal() if isinstance(secret, Secret) else secret
    message = str(timestamp).encode() + b"." + body
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: Secret | str, body: bytes, timestamp: int | None = None) -> str:
    """The header value TikTok would send for `body` (used by `sign`, `send` and tests)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},s={compute_signature(secret, t, body)}"


def verify_signature(
    header: bytes | str | None,
    body: bytes,
    secrets: Sequence[Secret],
    *,
    tolerance_seconds: int,
    now: float,
) -> int:
    """Verify a delivery and return its signed timestamp; raise SignatureError."""
    keys = tuple(secret.reveal().encode() for secret in secrets)
    return verify_with_keys(header, body, keys, tolerance_seconds=tolerance_seconds, now=now)


def verify_with_keys(
    header: bytes | str | None,
    body: bytes,
    keys: Sequence[bytes],
    *,
    tolerance_seconds: int,
    now: float,
) -> int:
    """`verify_signature` with the secrets already encoded (the receiver's hot path).

    Any configured secret (rotation) and any `s` value may match. The timestamp is
    checked after the HMAC so that `stale` is only ever reported for deliveries
    TikTok really signed: that tells operators their tolerance is too tight.
    """
    timestamp, candidates = parse_signature_header(header)
    message = b"%d.%s" % (timestamp, body)
    matched = False
    for key in keys:
        expected = hmac.digest(key, message, "sha256")
        for candidate in candidates:
            # No early exit: the work done does not depend on which secret matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("mismatch", "TikTok-Signature does not match", timestamp=timestamp)
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureError(
            "stale", "TikTok-Signature timestamp is outside the tolerance", timestamp=timestamp
        )
    return timestamp

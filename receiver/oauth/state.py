"""OAuth `state` values: random, single use, short-lived, bound to the browser that started.

A state lives in Redis under ``OAUTH_STATE_PREFIX`` with the hash of a browser-binding
value (kept in an HttpOnly cookie) and, with PKCE, the code verifier. Consuming it swaps
the record for a "used" marker that keeps the remaining TTL, so a replayed callback can be
told apart from an expired one. One binding cookie serves every flow a browser starts, so
two tabs connecting at once both work.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from enum import Enum
from typing import Final, TypeGuard

import msgspec
import redis.asyncio as aioredis

from receiver.keys import OAUTH_STATE_PREFIX

_TOKEN_BYTES: Final = 32
# secrets.token_urlsafe(32): 43 characters of the URL-safe base64 alphabet.
_TOKEN_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_USED: Final = b"used"

# Return the record and leave a "used" marker with the same TTL; nil if unknown.
_CONSUME: Final = """
local value = redis.call('GET', KEYS[1])
if not value then return false end
if value == ARGV[1] then return value end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
return value
"""


class StateRecord(msgspec.Struct, frozen=True):
    binding_sha256: str
    code_verifier: str | None
    created_at: float


class Rejection(Enum):
    """Why a callback's state cannot be accepted; the value is the page's explanation."""

    MISSING = "The sign-in response has no state parameter."
    UNKNOWN = "This sign-in attempt is unknown or has expired."
    USED = "This sign-in response was already used."
    OTHER_BROWSER = "This sign-in attempt was started in another browser or was tampered with."


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(StateRecord)


def new_token() -> str:
    return secrets.token_urlsafe(_TOKEN_BYTES)


def is_token(value: str | None) -> TypeGuard[str]:
    return value is not None and _TOKEN_PATTERN.fullmatch(value) is not None


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) as RFC 7636 defines them."""
    verifier = secrets.token_urlsafe(64)  # 86 characters, within RFC 7636's 43-128
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _binding_hash(binding: str) -> str:
    return hashlib.sha256(binding.encode("utf-8")).hexdigest()


class StateStore:
    """Creates and consumes states in Redis."""

    def __init__(self, redis: aioredis.Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self.ttl_seconds = ttl_seconds
        self._consume = redis.register_script(_CONSUME)

    async def create(self, binding: str, code_verifier: str | None) -> str:
        state = new_token()
        record = StateRecord(_binding_hash(binding), code_verifier, time.time())
        await self._redis.set(
            OAUTH_STATE_PREFIX + state, _encoder.encode(record), ex=self.ttl_seconds, nx=True
        )
        return state

    async def consume(self, state: str | None, binding: str | None) -> StateRecord | Rejection:
        """The state's record, used up; or why it is not acceptable."""
        if not state:
            return Rejection.MISSING
        if not is_token(state):
            return Rejection.UNKNOWN
        raw = await self._consume(keys=[OAUTH_STATE_PREFIX + state], args=[_USED])
        if raw is None:
            return Rejection.UNKNOWN
        if raw == _USED:
            return Rejection.USED
        record = _decoder.decode(raw)
        presented = _binding_hash(binding) if is_token(binding) else ""
        if not hmac.compare_digest(presented.encode(), record.binding_sha256.encode()):
            return Rejection.OTHER_BROWSER
        return record

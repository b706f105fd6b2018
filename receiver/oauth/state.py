"""OAuth `state` values: random, single use, short-lived, bound to the browser that started.

Nothing is stored for a flow that is only started: the pending flow (its state, the PKCE
verifier and the expiry) travels in an encrypted, authenticated cookie (AES-256-GCM, keys
derived from TOKEN_ENCRYPTION_KEYS), so an unauthenticated flood of `/oauth/tiktok/start`
cannot grow Redis. The state itself carries its expiry and a MAC, so a callback can tell a
state this service issued (but for another browser) from garbage, and an expired one.

Redis holds only a small "used" marker per completed callback (`SET NX` with the state's
remaining lifetime), so a replayed callback is refused. The cookie keeps the few newest
pending flows of the browser, so two tabs connecting at once both work.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import struct
import time
from collections.abc import Sequence
from enum import Enum
from typing import Final

import msgspec
import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from receiver.keys import OAUTH_USED_PREFIX
from receiver.secrets import Secret

# state = base64url(random 16 | expiry, 4 bytes big-endian | MAC 16): 48 characters.
_RANDOM_BYTES: Final = 16
_MAC_BYTES: Final = 16
_STATE_BYTES: Final = _RANDOM_BYTES + 4 + _MAC_BYTES
_STATE_LENGTH: Final = 48
_NONCE_BYTES: Final = 12
# Pending flows kept per browser (tabs started before the newest one).
MAX_PENDING: Final = 4
# A browser may send several Cookie headers' worth; a real one of ours is under 1 KB.
_MAX_COOKIE_LENGTH: Final = 4096
_USED: Final = b"1"


class PendingFlow(msgspec.Struct, frozen=True, array_like=True):
    state: str
    code_verifier: str | None
    expires_at: int


class Rejection(Enum):
    """Why a callback's state cannot be accepted; the value is the page's explanation."""

    MISSING = "The sign-in response has no state parameter."
    UNKNOWN = "This sign-in attempt is unknown or has expired."
    USED = "This sign-in response was already used."
    OTHER_BROWSER = "This sign-in attempt was started in another browser or was tampered with."


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(list[PendingFlow])


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) as RFC 7636 defines them."""
    verifier = secrets.token_urlsafe(64)  # 86 characters, within RFC 7636's 43-128
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _derive(secret: Secret, purpose: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose)
    return hkdf.derive(secret.reveal().encode("utf-8"))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


class FlowCookies:
    """Makes states and the cookie of pending flows; checks them at the callback.

    The first key of TOKEN_ENCRYPTION_KEYS seals, any of them opens (rotation). `binding`
    (the cookie's name) is authenticated with every cookie, so a sealed value cannot be
    replayed as another kind of value.
    """

    def __init__(
        self,
        keys: Sequence[Secret],
        *,
        ttl_seconds: int,
        binding: str,
    ) -> None:
        if not keys:
            raise ValueError("FlowCookies needs at least one key")
        self._aeads = [AESGCM(_derive(k, b"tiktok-webhooks/oauth-cookie/v1")) for k in keys]
        self._macs = [_derive(k, b"tiktok-webhooks/oauth-state/v1") for k in keys]
        self._aad = b"tiktok-webhooks/oauth-cookie/v1\x00" + binding.encode("utf-8")
        self.ttl_seconds = ttl_seconds

    # --- state values ---------------------------------------------------------------

    def _mac(self, key: bytes, body: bytes) -> bytes:
        return hmac.digest(key, body, "sha256")[:_MAC_BYTES]

    def new_state(self, now: float) -> tuple[str, int]:
        """A new state and its expiry (unix seconds)."""
        expires_at = int(now) + self.ttl_seconds
        body = os.urandom(_RANDOM_BYTES) + struct.pack(">I", expires_at)
        return _b64(body + self._mac(self._macs[0], body)), expires_at

    def state_expiry(self, state: str) -> int | None:
        """The expiry a state of ours carries; None for anything we did not issue."""
        if len(state) != _STATE_LENGTH:
            return None
        raw = _unb64(state)
        if raw is None or len(raw) != _STATE_BYTES:
            return None
        body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not any(hmac.compare_digest(self._mac(key, body), mac) for key in self._macs):
            return None
        (expires_at,) = struct.unpack(">I", body[_RANDOM_BYTES:])
        return int(expires_at)

    # --- the cookie -----------------------------------------------------------------

    def seal(self, flows: Sequence[PendingFlow]) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aeads[0].encrypt(nonce, _encoder.encode(list(flows)), self._aad)
        return _b64(nonce + sealed)

    def open(self, cookie: str | None, now: float) -> list[PendingFlow]:
        """The browser's pending flows that have not expired; [] for a missing or bad cookie."""
        if not cookie or len(cookie) > _MAX_COOKIE_LENGTH:
            return []
        raw = _unb64(cookie)
        if raw is None or len(raw) <= _NONCE_BYTES:
            return []
        nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        for aead in self._aeads:
            try:
                plain = aead.decrypt(nonce, sealed, self._aad)
            except InvalidTag:
                continue
            try:
                flows = _decoder.decode(plain)
            except (msgspec.DecodeError, RecursionError):
                return []
            return [flow for flow in flows if flow.expires_at > now]
        return []

    def started(
        self, cookie: str | None, state: str, verifier: str | None, expires_at: int, now: float
    ) -> str:
        """The cookie after a new flow started: the new one plus the newest pending ones."""
        flows = [*self.open(cookie, now), PendingFlow(state, verifier, expires_at)]
        return self.seal(flows[-MAX_PENDING:])


class StateChecker:
    """Checks a callback's state against the browser's cookie; marks it used in Redis."""

    def __init__(self, redis: aioredis.Redis, cookies: FlowCookies) -> None:
        self._redis = redis
        self.cookies = cookies

    async def consume(
        self, state: str | None, cookie: str | None, *, now: float | None = None
    ) -> PendingFlow | Rejection:
        """The pending flow of `state`, now used up; or why it is not acceptable."""
        now = time.time() if now is None else now
        if not state:
            return Rejection.MISSING
        expires_at = self.cookies.state_expiry(state)
        if expires_at is None or expires_at <= now:
            return Rejection.UNKNOWN
        used_key = OAUTH_USED_PREFIX + hashlib.sha256(state.encode("ascii")).hexdigest()[:32]
        flow = next(
            (f for f in self.cookies.open(cookie, now) if hmac.compare_digest(f.state, state)),
            None,
        )
        if flow is None:
            # Ours, but not this browser's: a replay in another browser, or login CSRF.
            if await self._redis.exists(used_key):
                return Rejection.USED
            return Rejection.OTHER_BROWSER
        remaining = max(1, int(expires_at - now) + 1)
        if not await self._redis.set(used_key, _USED, nx=True, ex=remaining):
            return Rejection.USED
        return flow

"""The console's signed cookies, CSRF tokens and response headers.

A session cookie holds ``{sid, csrf, exp}`` as base64url JSON plus an HMAC-SHA256 of it
under a key derived from the console token, so changing the token ends every session.
The cookie is ``HttpOnly``, ``SameSite=Strict``, ``Path=/console`` and ``Secure``
(Chromium keeps ``Secure`` cookies that ``http://127.0.0.1`` sets, so development over
plain http works too; the browser test checks it). The session id is also kept in Redis
until it expires or the operator logs out: a cookie copied before a logout is refused.

Every form carries the session's CSRF token; the login form, before any session exists,
carries the one of a short-lived signed ``console_login`` cookie (double submit).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from typing import Final

import msgspec

from receiver.secrets import Secret

SESSION_COOKIE: Final = "console_session"
LOGIN_COOKIE: Final = "console_login"
LOGIN_COOKIE_SECONDS: Final = 15 * 60
COOKIE_PATH: Final = "/console"
CSRF_FIELD: Final = "csrf"

# No inline script or style, nothing from another host, no framing, forms only to us.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SessionData(msgspec.Struct, frozen=True):
    sid: str
    csrf: str
    exp: int


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(SessionData)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Makes and checks the console's signed values; never reveals the token."""

    def __init__(self, token: Secret, *, session_seconds: int) -> None:
        self._key = hmac.new(
            token.reveal().encode(), b"tiktok-webhooks console cookies v1", hashlib.sha256
        ).digest()
        self.session_seconds = session_seconds

    def __repr__(self) -> str:
        return "Signer(<key hidden>)"

    def _sign(self, purpose: bytes, payload: bytes) -> str:
        mac = hmac.new(self._key, purpose + b"\0" + payload, hashlib.sha256).digest()
        return _b64(payload) + "." + _b64(mac)

    def _open(self, purpose: bytes, value: str) -> bytes | None:
        encoded, dot, mac_text = value.partition(".")
        if not dot:
            return None
        try:
            payload = _unb64(encoded)
            mac = _unb64(mac_text)
        except (binascii.Error, ValueError):
            return None
        expected = hmac.new(self._key, purpose + b"\0" + payload, hashlib.sha256).digest()
        return payload if hmac.compare_digest(mac, expected) else None

    def new_session(self, now: float | None = None) -> tuple[SessionData, str]:
        data = SessionData(
            sid=secrets.token_hex(8),
            csrf=secrets.token_urlsafe(24),
            exp=int((now or time.time()) + self.session_seconds),
        )
        return data, self._sign(b"session", _encoder.encode(data))

    def read_session(self, value: str | None, now: float | None = None) -> SessionData | None:
        """The session in a cookie value, or None if it is missing, forged or expired."""
        if not value:
            return None
        payload = self._open(b"session", value)
        if payload is None:
            return None
        try:
            data = _decoder.decode(payload)
        except msgspec.DecodeError:
            return None
        return data if data.exp > (now or time.time()) else None

    def new_login(self, now: float | None = None) -> tuple[str, str]:
        """(csrf value for the login form, cookie value binding it)."""
        csrf = secrets.token_urlsafe(24)
        expires = int((now or time.time()) + LOGIN_COOKIE_SECONDS)
        return csrf, self._sign(b"login", f"{expires}:{csrf}".encode())

    def login_csrf(self, value: str | None, now: float | None = None) -> str | None:
        if not value:
            return None
        payload = self._open(b"login", value)
        if payload is None:
            return None
        expires, _, csrf = payload.decode("utf-8", "replace").partition(":")
        if not expires.isdigit() or int(expires) <= (now or time.time()):
            return None
        return csrf


def same_token(expected: str, presented: object) -> bool:
    """Constant-time comparison of a CSRF token with whatever a form sent."""
    if not isinstance(presented, str) or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())

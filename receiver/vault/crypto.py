"""AES-256-GCM encryption of OAuth tokens at rest, with key rotation.

Blob layout: ``version (1 byte) | key id (4) | nonce (12) | ciphertext + GCM tag (16)``.
The key id (first 4 bytes of SHA-256 of the key) lets any configured key decrypt while
the first key encrypts, so rotation is: prepend a new key, run re-encryption, drop the
old key. The caller's `context` (the record name) is GCM associated data: a blob copied
into another user's record does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from receiver.secrets import Secret
from receiver.settings import ConfigError

_VERSION: Final = 1
_KEY_BYTES: Final = 32
_KEY_ID_BYTES: Final = 4
_NONCE_BYTES: Final = 12
_HEADER_BYTES: Final = 1 + _KEY_ID_BYTES + _NONCE_BYTES
_TAG_BYTES: Final = 16
_AAD_PREFIX: Final = b"tiktok-webhooks/token/v1\x00"
_KEYGEN_HINT: Final = "create one with `tiktok-webhooks keygen`"


class TokenDecryptError(Exception):
    """A blob cannot be decrypted: unknown key, tampering, wrong record, or garbage."""


class UnknownKey(TokenDecryptError):
    """The blob was sealed with a key that is not configured (a settings problem: the
    blob itself may be fine)."""


def generate_key() -> str:
    """A new random key in the format TOKEN_ENCRYPTION_KEYS expects."""
    return base64.urlsafe_b64encode(os.urandom(_KEY_BYTES)).decode("ascii")


def _decode_key(text: str) -> bytes | None:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == _KEY_BYTES else None


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:_KEY_ID_BYTES]


class TokenCipher:
    """Encrypts with the first key, decrypts with any; never shows a key in repr or errors."""

    def __init__(self, keys: Sequence[Secret]) -> None:
        problems: list[str] = []
        if not keys:
            problems.append(f"TOKEN_ENCRYPTION_KEYS is empty: {_KEYGEN_HINT}")
        self._keys: dict[bytes, AESGCM] = {}
        self._current = b""
        for position, secret in enumerate(keys, start=1):
            raw = _decode_key(secret.reveal())
            if raw is None:
                problems.append(
                    f"TOKEN_ENCRYPTION_KEYS entry #{position} is not 32 bytes of urlsafe "
                    f"base64 (44 characters): {_KEYGEN_HINT}"
                )
                continue
            key_id = _key_id(raw)
            if key_id in self._keys:
                problems.append(
                    f"TOKEN_ENCRYPTION_KEYS entry #{position} repeats an earlier key: remove it"
                )
                continue
            self._keys[key_id] = AESGCM(raw)
            if position == 1:
                self._current = key_id
        if problems:
            raise ConfigError(problems)

    def __repr__(self) -> str:
        return f"TokenCipher(keys={len(self._keys)}, current_key_id={self.current_key_id!r})"

    @property
    def current_key_id(self) -> str:
        """Hex id of the encrypting key, safe to log (it is a hash prefix)."""
        return self._current.hex()

    def encrypt(self, plaintext: bytes, *, context: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[self._current].encrypt(nonce, plaintext, _aad(context))
        return bytes([_VERSION]) + self._current + nonce + sealed

    def decrypt(self, blob: bytes, *, context: str) -> bytes:
        """The plaintext, or TokenDecryptError saying which of the failure modes it is."""
        if len(blob) < _HEADER_BYTES + _TAG_BYTES or blob[0] != _VERSION:
            raise TokenDecryptError("not a token blob of a supported version")
        key_id = blob[1 : 1 + _KEY_ID_BYTES]
        aead = self._keys.get(key_id)
        if aead is None:
            raise UnknownKey(
                f"encrypted with key id {key_id.hex()}, which is not in "
                "TOKEN_ENCRYPTION_KEYS: add the old key back (after the current one)"
            )
        nonce = blob[1 + _KEY_ID_BYTES : _HEADER_BYTES]
        try:
            return aead.decrypt(nonce, blob[_HEADER_BYTES:], _aad(context))
        except InvalidTag:
            raise TokenDecryptError(
                "authentication failed: the blob was altered or belongs to another record"
            ) from None

    def needs_reencryption(self, blob: bytes) -> bool:
        """True when `blob` was not written by the current key (and format)."""
        return len(blob) < _HEADER_BYTES or blob[0] != _VERSION or blob[1:5] != self._current


def _aad(context: str) -> bytes:
    return _AAD_PREFIX + context.encode("utf-8")

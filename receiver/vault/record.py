"""How one user's tokens are laid out in Redis: a hash of plain metadata and one sealed blob.

The metadata (status, scopes, expiry times, version) stays readable so records can be
listed and swept without a key. Both tokens are sealed together (AES-GCM, bound to the
record name) and stored as base64 text, so the record reads the same through a Redis
client with or without ``decode_responses``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from enum import StrEnum
from typing import Final

import msgspec

from receiver.keys import PROFILE_PREFIX, TOKEN_PREFIX
from receiver.secrets import Secret
from receiver.vault.crypto import TokenCipher, TokenDecryptError


class TokenStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"
    REVOKED = "revoked"
    # The stored tokens cannot be opened with a configured key (tampered with, damaged):
    # kept for inspection, out of the refresh sweep; the user must connect again.
    CORRUPT = "corrupt"


class TokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the vault knows about a user's tokens, without the tokens themselves.

    `version` grows with every write; a changed version means someone refreshed.
    """

    client_key: str
    open_id: str
    status: TokenStatus
    scopes: tuple[str, ...]
    expires_at: float
    refresh_expires_at: float
    updated_at: float
    version: int


class _Tokens(msgspec.Struct, array_like=True):
    access_token: str
    refresh_token: str


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(_Tokens)


def record_name(client_key: str, open_id: str) -> str:
    """The record's name: Redis key suffix, expiry-index member and encryption context."""
    return f"{client_key}:{open_id}"


def token_key(client_key: str, open_id: str) -> str:
    return TOKEN_PREFIX + record_name(client_key, open_id)


def profile_key(client_key: str, open_id: str) -> str:
    return PROFILE_PREFIX + record_name(client_key, open_id)


def seal_tokens(cipher: TokenCipher, name: str, access: Secret, refresh: Secret) -> str:
    plain = _encoder.encode(_Tokens(access.reveal(), refresh.reveal()))
    return base64.b64encode(cipher.encrypt(plain, context=name)).decode("ascii")


def open_tokens(cipher: TokenCipher, name: str, sealed: str) -> tuple[Secret, Secret]:
    """(access, refresh); TokenDecryptError for any blob that does not open cleanly."""
    plain = cipher.decrypt(_unb64(sealed), context=name)
    try:
        tokens = _decoder.decode(plain)
    except msgspec.DecodeError:
        raise TokenDecryptError("the token blob does not hold tokens") from None
    return Secret(tokens.access_token), Secret(tokens.refresh_token)


def reseal(cipher: TokenCipher, name: str, sealed: str) -> str | None:
    """The blob re-encrypted with the current key, or None if it already uses it."""
    blob = _unb64(sealed)
    if not cipher.needs_reencryption(blob):
        return None
    plain = cipher.decrypt(blob, context=name)
    return base64.b64encode(cipher.encrypt(plain, context=name)).decode("ascii")


def parse_record(client_key: str, open_id: str, fields: Mapping[str, str]) -> TokenRecord:
    """The metadata of a stored hash; KeyError/ValueError if it is damaged."""
    return TokenRecord(
        client_key=client_key,
        open_id=open_id,
        status=TokenStatus(fields["status"]),
        scopes=tuple(s for s in fields.get("scopes", "").split(",") if s),
        expires_at=float(fields["expires_at"]),
        refresh_expires_at=float(fields["refresh_expires_at"]),
        updated_at=float(fields["updated_at"]),
        version=int(fields.get("version", "0")),
    )


def corrupt_placeholder(client_key: str, open_id: str, fields: Mapping[str, str]) -> TokenRecord:
    """A record whose metadata is damaged, as listings show it (status `corrupt`)."""

    def number(name: str) -> float:
        try:
            return float(fields.get(name, "0"))
        except ValueError:
            return 0.0

    return TokenRecord(
        client_key=client_key,
        open_id=open_id,
        status=TokenStatus.CORRUPT,
        scopes=(),
        expires_at=number("expires_at"),
        refresh_expires_at=number("refresh_expires_at"),
        updated_at=number("updated_at"),
        version=int(number("version")),
    )


# Mark a record corrupt (if it still exists) and take it out of the refresh sweep.
MARK_CORRUPT: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', 'corrupt', 'updated_at', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""


def as_text(value: bytes | str) -> str:
    """A Redis reply as text, whether or not the client decodes responses."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def glob_escape(text: str) -> str:
    """`text` as a literal inside a SCAN MATCH pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _unb64(sealed: str) -> bytes:
    try:
        return base64.b64decode(sealed, validate=True)
    except (binascii.Error, ValueError):
        raise TokenDecryptError("the token blob is not base64") from None

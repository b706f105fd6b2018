"""Why the token vault cannot hand out a token; `is_retryable` tells a job what to do next."""

from __future__ import annotations


class VaultError(Exception):
    """The vault cannot give out a token; `is_retryable` says whether trying later may help."""

    is_retryable: bool = False


class TokenNotFound(VaultError):
    """No record for this user: they never connected, or the record was deleted."""


class ReauthorizationRequired(VaultError):
    """The user's grant is gone (needs_reauth, revoked, or refresh token expired)."""


class RefreshTimeout(VaultError):
    """Another process held the refresh lock for too long; try again later."""

    is_retryable = True


class CorruptRecord(VaultError):
    """The stored tokens cannot be decrypted (missing key, tampering) or are malformed."""

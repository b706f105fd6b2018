"""How a job failed decides what happens next: retry later, or stop and keep it aside."""

from __future__ import annotations

from typing import Literal

from redis.exceptions import RedisError

from receiver.tiktok.errors import InvalidGrant, RateLimited, TikTokError
from receiver.vault.vault import ReauthorizationRequired, TokenNotFound, VaultError

Kind = Literal["transient", "reauth", "gone", "permanent"]


class RetryLater(Exception):
    """Raise from a handler to be run again later (with backoff, up to the max tries)."""

    def __init__(self, message: str = "", *, defer_seconds: float | None = None) -> None:
        super().__init__(message)
        self.defer_seconds = defer_seconds


def classify(exc: BaseException) -> Kind:
    """transient: retry with backoff; reauth: the user must connect again, stop;
    gone: the user is not connected (any more), nothing to do; permanent: dead-letter."""
    if isinstance(exc, InvalidGrant | ReauthorizationRequired):
        return "reauth"
    if isinstance(exc, TokenNotFound):
        return "gone"
    if isinstance(exc, RetryLater | RedisError | OSError | TimeoutError):
        return "transient"
    if isinstance(exc, TikTokError | VaultError):
        return "transient" if exc.is_retryable else "permanent"
    return "permanent"


def requested_delay(exc: BaseException) -> float | None:
    """The delay the failure itself asks for (TikTok's Retry-After, a handler's wish)."""
    if isinstance(exc, RateLimited):
        return exc.retry_after
    if isinstance(exc, RetryLater):
        return exc.defer_seconds
    return None

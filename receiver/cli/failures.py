"""How the commands fail: one line saying what was tried and what to check, and an exit
status per kind of failure, so scripts can tell them apart.

| status | meaning |
|---|---|
| 0 | done |
| 1 | the command ran and the answer was "no" (a non-200, a missing record, a failed check) |
| 2 | usage or configuration error (the line names the option or variable) |
| 3 | Redis could not be reached (or answered an error) |
| 4 | a port is already in use |
| 5 | another `tiktok-webhooks dev` already runs on the data directory |
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final
from urllib.parse import urlsplit

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from receiver.redis_watch import redis_location
from receiver.settings import Settings

__all__ = ["CommandFailed", "reaching_redis", "redis_location", "unreachable_redis"]

EXIT_FAILED: Final = 1
EXIT_CONFIG: Final = 2
EXIT_REDIS_UNREACHABLE: Final = 3
EXIT_PORT_IN_USE: Final = 4
EXIT_LOCKED: Final = 5


class CommandFailed(Exception):
    """A failure main() prints as one line and turns into `status`."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


def unreachable_redis(settings: Settings, exc: BaseException) -> CommandFailed:
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    password = _password(settings)
    if password:
        reason = reason.replace(password, "***")
    if isinstance(exc, RedisError) and not isinstance(
        exc, RedisConnectionError | RedisTimeoutError
    ):
        return CommandFailed(
            f"Redis at {redis_location(settings)} answered an error ({reason})",
            EXIT_REDIS_UNREACHABLE,
        )
    return CommandFailed(
        f"cannot reach Redis at {redis_location(settings)} ({reason}): check REDIS_URL "
        "and that Redis is running",
        EXIT_REDIS_UNREACHABLE,
    )


def _password(settings: Settings) -> str | None:
    try:
        return urlsplit(settings.redis_url.reveal()).password
    except ValueError:
        return None


@contextlib.contextmanager
def reaching_redis(settings: Settings) -> Iterator[None]:
    """Turn a Redis connection failure inside the block into one `CommandFailed` line."""
    try:
        yield
    except (RedisError, OSError, TimeoutError) as exc:
        raise unreachable_redis(settings, exc) from None

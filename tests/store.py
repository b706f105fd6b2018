"""A typed, synchronous view of a test Redis (redis-py's sync types are unions)."""

from __future__ import annotations

from typing import Any, cast

import redis


class Store:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)

    def zrange(self, key: str) -> list[bytes]:
        return cast(list[bytes], self.client.zrange(key, 0, -1))

    def zcard(self, key: str) -> int:
        return cast(int, self.client.zcard(key))

    def get(self, key: bytes | str) -> bytes | None:
        return cast(bytes | None, self.client.get(key))

    def ttl(self, key: bytes | str) -> int:
        return cast(int, self.client.ttl(key))

    def keys(self, pattern: str = "*") -> list[bytes]:
        return cast(list[bytes], self.client.keys(pattern))

    def dbsize(self) -> int:
        return cast(int, self.client.dbsize())

    def command(self, *args: Any) -> Any:
        return self.client.execute_command(*args)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self.client.close()

"""Moved to receiver.testing.redis_server; kept until in-flight work is updated."""

from receiver.testing.redis_server import RedisServer, free_port

__all__ = ["RedisServer", "free_port"]

"""Moved to receiver.testing.asgi; kept until in-flight work is updated."""

from receiver.testing.asgi import app_client

__all__ = ["app_client"]

"""Moved to receiver.testing.servers; kept until in-flight work is updated."""

from receiver.testing.servers import serve_in_thread

__all__ = ["serve_in_thread"]

"""The internal API's tests drive the same sandbox-backed TikTok as the OAuth tests."""

from tests.oauth.conftest import sandbox_info, tiktok

__all__ = ["sandbox_info", "tiktok"]

"""A local simulator of TikTok's OAuth v2 and User Info endpoints, for tests and development."""

from tiktok_sandbox.app import create_app
from tiktok_sandbox.config import AppConfig, SandboxConfig
from tiktok_sandbox.models import SandboxUser
from tiktok_sandbox.state import SandboxState

__all__ = ["AppConfig", "SandboxConfig", "SandboxState", "SandboxUser", "create_app"]

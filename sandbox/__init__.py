"""A local simulator of TikTok's OAuth v2 and User Info endpoints, for tests and development."""

from sandbox.app import create_app
from sandbox.config import AppConfig, SandboxConfig
from sandbox.models import SandboxUser
from sandbox.state import SandboxState

__all__ = ["AppConfig", "SandboxConfig", "SandboxState", "SandboxUser", "create_app"]

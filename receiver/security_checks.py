"""Settings that work but weaken security: logged at start-up and shown by `doctor`.

Settings that cannot be safe are refused by `receiver.settings` instead; these are the
ones an operator may have chosen on purpose (an opt-out, a proxy in front of TikTok).
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import urlsplit

from receiver.redis_conn import tls_warnings
from receiver.settings import Settings

logger = logging.getLogger("tiktok_webhooks.security")

# TikTok's own hosts for the authorize page and the API.
TIKTOK_HOSTS: Final = ("tiktok.com", "tiktokapis.com")


def is_tiktok_host(host: str | None) -> bool:
    return host is not None and any(host == h or host.endswith("." + h) for h in TIKTOK_HOSTS)


def security_warnings(settings: Settings) -> list[str]:
    """One line per weakened setting, saying what it means; [] when there is none."""
    found = list(tls_warnings(settings))
    if settings.is_development:
        return found
    for name, value in (
        ("TIKTOK_AUTH_URL", settings.tiktok_auth_url),
        ("TIKTOK_API_BASE_URL", settings.tiktok_api_base_url),
    ):
        host = urlsplit(value).hostname
        if not is_tiktok_host(host):
            found.append(
                f"{name} points at {host}, which is not TikTok's: tokens and codes go there"
            )
    return found


def log_security_warnings(settings: Settings) -> None:
    for warning in security_warnings(settings):
        logger.warning("%s", warning)

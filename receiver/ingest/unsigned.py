"""Deliveries without a TikTok-Signature header: counted, and the portal's ping explained.

Whether the portal's "Test URL" ping is signed is recorded nowhere, so an unsigned
`tiktok.ping` gets one log line saying what to do about it, and with
WEBHOOK_ACCEPT_UNSIGNED_PING=1 it is answered 200 without being enqueued. Every other
unsigned delivery is still refused with 401.
"""

from __future__ import annotations

import logging
from typing import Final

from prometheus_client import Counter

logger = logging.getLogger("tiktok_webhooks.webhook")

PING: Final = "tiktok.ping"
UNSIGNED = Counter(
    "tiktok_webhook_unsigned_total",
    "Webhook requests without a TikTok-Signature header, by event name (known names, else "
    "`unknown`/`none`).",
    ["event"],
)


def accept_unsigned(event_label: str, *, accept_ping: bool) -> bool:
    """Count an unsigned request; True when it is a ping to answer 200 (not enqueued)."""
    UNSIGNED.labels(event_label).inc()
    if event_label != PING:
        return False
    if accept_ping:
        logger.info("answered an unsigned tiktok.ping with 200 (WEBHOOK_ACCEPT_UNSIGNED_PING)")
        return True
    logger.warning(
        "refused an unsigned tiktok.ping with 401: if this came from the portal's Test "
        "button, set WEBHOOK_ACCEPT_UNSIGNED_PING=1"
    )
    return False

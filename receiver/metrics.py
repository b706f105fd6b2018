"""Prometheus metrics of the web process. Labels are bounded: see docs/metrics.md."""

from __future__ import annotations

import platform
from typing import Final

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from receiver import __version__

# `*_created` series double the output and no alert or dashboard here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

OUTCOMES: Final = (
    "accepted",
    "duplicate",
    "invalid_signature",
    "stale_timestamp",
    "malformed",
    "too_large",
    "body_timeout",
    "unavailable",
    "unknown_app",
    "error",
)
# Label for deliveries rejected before their event name could be read.
NO_EVENT: Final = "none"

DELIVERIES = Counter(
    "tiktok_webhook_deliveries_total",
    "Webhook deliveries by event name (known names, else `unknown`/`none`) and outcome.",
    ["event", "outcome"],
)
REQUEST_DURATION = Histogram(
    "tiktok_webhook_request_duration_seconds",
    "Time from the start of a webhook request to its response.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ENQUEUE_DURATION = Histogram(
    "tiktok_webhook_enqueue_duration_seconds",
    "Time from submitting a delivery to Redis confirming (or refusing) the write.",
    buckets=(0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 2.5),
)
ENQUEUE_BATCH_SIZE = Histogram(
    "tiktok_webhook_enqueue_batch_size",
    "Deliveries written to Redis in one pipelined round trip.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
SIGNATURE_AGE = Histogram(
    "tiktok_webhook_signature_age_seconds",
    "Age of the signed timestamp `t` on arrival, for correctly signed deliveries "
    "(negative ages count as 0); compare with WEBHOOK_TOLERANCE_SECONDS.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400, 259200),
)
BUILD_INFO = Gauge(
    "tiktok_webhooks_build_info",
    "Version of tiktok-webhooks and Python; always 1.",
    ["version", "python"],
)
BUILD_INFO.labels(__version__, platform.python_version()).set(1)

_delivery_children: dict[tuple[str, str], Counter] = {}


def count_delivery(event: str, outcome: str) -> None:
    """Increment the deliveries counter; `event` must already be a bounded label."""
    child = _delivery_children.get((event, outcome))
    if child is None:
        child = _delivery_children[(event, outcome)] = DELIVERIES.labels(event, outcome)
    child.inc()

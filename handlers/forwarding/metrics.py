"""Prometheus metrics of forwarding, per destination (a configured name, never a URL)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

# success: a 2xx; http_error: any other status (redirects included, never followed);
# timeout, network_error: no answer; gone: 410, which disables the destination.
OUTCOMES: Final = ("success", "http_error", "timeout", "network_error", "gone")

ATTEMPTS = Counter(
    "tiktok_forward_attempts_total",
    "Forwarding attempts by destination and outcome.",
    ["destination", "outcome"],
)
ATTEMPT_DURATION = Histogram(
    "tiktok_forward_attempt_duration_seconds",
    "Time from sending a forwarded request to its answer (or the failure).",
    ["destination"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DEAD_LETTERED = Counter(
    "tiktok_forward_dead_lettered_total",
    "Deliveries that failed their last try, by destination.",
    ["destination"],
)
PENDING = Gauge(
    "tiktok_forward_pending",
    "Deliveries waiting for their first attempt or a retry, by destination.",
    ["destination"],
)
OLDEST_PENDING_AGE = Gauge(
    "tiktok_forward_oldest_pending_age_seconds",
    "Age of the oldest delivery not yet delivered (0 when none waits), by destination.",
    ["destination"],
)
DEAD_LETTERS = Gauge(
    "tiktok_forward_dead_letters",
    "Deliveries that failed for good and wait for a replay, by destination.",
    ["destination"],
)
HELD = Gauge(
    "tiktok_forward_held",
    "Deliveries kept while their destination is disabled, by destination.",
    ["destination"],
)
DISABLED = Gauge(
    "tiktok_forward_destination_disabled",
    "1 when the destination is disabled (410 Gone, or failing for too long), else 0.",
    ["destination"],
)

_attempt_children: dict[tuple[str, str], Counter] = {}
_duration_children: dict[str, Histogram] = {}


def count_attempt(destination: str, outcome: str, seconds: float) -> None:
    """`ATTEMPTS` and `ATTEMPT_DURATION` with their labelled children cached."""
    counter = _attempt_children.get((destination, outcome))
    if counter is None:
        counter = _attempt_children[(destination, outcome)] = ATTEMPTS.labels(destination, outcome)
    counter.inc()
    histogram = _duration_children.get(destination)
    if histogram is None:
        histogram = _duration_children[destination] = ATTEMPT_DURATION.labels(destination)
    histogram.observe(seconds)

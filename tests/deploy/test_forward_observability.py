"""Forwarding's metrics are on the dashboard and behind alerts (names checked elsewhere)."""

from __future__ import annotations

from tests.deploy.deployfiles import (
    DASHBOARD,
    alert_rules,
    dashboard_queries,
    load_json,
    promql_names,
)
from tests.deploy.exported import exported_series

FORWARD_SERIES = {
    "tiktok_forward_attempts_total",
    "tiktok_forward_attempt_duration_seconds_bucket",
    "tiktok_forward_pending",
    "tiktok_forward_oldest_pending_age_seconds",
    "tiktok_forward_dead_letters",
    "tiktok_forward_held",
    "tiktok_forward_destination_disabled",
    "tiktok_forward_dead_lettered_total",
}


def test_forwarding_metrics_are_exported_with_a_destination_label() -> None:
    series = exported_series()
    for name in FORWARD_SERIES:
        assert name in series, name
        assert "destination" in series[name].labels, name


def test_the_dashboard_shows_forwarding() -> None:
    referenced: set[str] = set()
    for _, expr in dashboard_queries(load_json(DASHBOARD)):
        referenced |= promql_names(expr).metrics
    assert referenced >= FORWARD_SERIES


def test_alerts_watch_forwarding() -> None:
    watched: set[str] = set()
    for rule in alert_rules():
        watched |= promql_names(rule["expr"]).metrics
    assert {
        "tiktok_forward_attempts_total",
        "tiktok_forward_destination_disabled",
        "tiktok_forward_oldest_pending_age_seconds",
        "tiktok_forward_dead_letters",
    } <= watched

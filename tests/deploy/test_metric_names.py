"""Every metric and label an alert or a dashboard query names is one the service exports."""

from __future__ import annotations

import pytest

from tests.deploy.deployfiles import (
    DASHBOARD,
    alert_rules,
    dashboard_queries,
    load_json,
    promql_names,
)
from tests.deploy.exported import SCRAPE_SERIES, TARGET_LABELS, exported_series, metric_modules


def _problems(where: str, expr: str) -> list[str]:
    series = exported_series()
    names = promql_names(expr)
    problems = []
    allowed_grouping = set(TARGET_LABELS)
    for metric in sorted(names.metrics):
        if metric in SCRAPE_SERIES:
            labels = frozenset(TARGET_LABELS)
        elif metric in series:
            labels = series[metric].labels | TARGET_LABELS
        else:
            problems.append(f"{where}: {metric} is not exported by the service")
            continue
        allowed_grouping |= labels
        unknown = names.selector_labels.get(metric, set()) - labels
        if unknown:
            problems.append(f"{where}: {metric} has no label(s) {sorted(unknown)}")
    unknown_grouping = names.grouping_labels - allowed_grouping
    if unknown_grouping:
        problems.append(f"{where}: groups by unknown label(s) {sorted(unknown_grouping)}")
    if not names.metrics:
        problems.append(f"{where}: refers to no metric at all")
    return problems


def test_the_metrics_modules_are_found() -> None:
    modules = metric_modules()
    assert {"receiver.metrics", "receiver.tiktok.metrics", "handlers.metrics"} <= set(modules)
    series = exported_series()
    assert series["tiktok_webhook_deliveries_total"].labels == {"event", "outcome"}
    assert "tiktok_webhook_request_duration_seconds_bucket" in series
    assert "tiktok_webhook_deliveries" not in series  # a counter is only stored as _total


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_names_exported_metrics(rule: dict[str, str]) -> None:
    assert _problems(rule["alert"], rule["expr"]) == []


def test_dashboard_queries_name_exported_metrics() -> None:
    queries = list(dashboard_queries(load_json(DASHBOARD)))
    assert len(queries) >= 20
    problems = [p for title, expr in queries for p in _problems(f"panel {title!r}", expr)]
    assert problems == []


def test_the_dashboard_covers_what_the_issue_asks() -> None:
    referenced = set()
    for _, expr in dashboard_queries(load_json(DASHBOARD)):
        referenced |= promql_names(expr).metrics
    wanted = {
        "tiktok_webhook_deliveries_total",  # ingest rate by outcome
        "tiktok_webhook_request_duration_seconds_bucket",  # latency percentiles
        "tiktok_worker_queue_depth",
        "tiktok_worker_queue_oldest_age_seconds",
        "tiktok_worker_jobs_total",  # job outcomes
        "tiktok_api_request_duration_seconds_bucket",  # TikTok API latency
        "tiktok_api_requests_total",  # ... and errors
        "tiktok_api_errors_total",
        "tiktok_token_refreshes_total",  # token health
        "tiktok_tokens_expiring_soon",
        "tiktok_users_needing_reauth",
        "tiktok_dead_letter_size",
    }
    assert wanted <= referenced


def test_the_alerts_cover_what_the_issue_asks() -> None:
    referenced: dict[str, set[str]] = {}
    for rule in alert_rules():
        referenced[rule["alert"]] = promql_names(rule["expr"]).metrics
    everything = set().union(*referenced.values())
    assert {
        "tiktok_webhook_deliveries_total",  # signature failures, 503s
        "tiktok_worker_queue_oldest_age_seconds",
        "tiktok_dead_letter_size",
        "tiktok_token_refreshes_total",
        "tiktok_users_needing_reauth",
        "tiktok_api_errors_total",  # 429s
        "up",  # worker down
    } <= everything


def test_the_promql_reader_finds_names_and_labels() -> None:
    names = promql_names(
        'histogram_quantile(0.99, sum by (le, endpoint) (rate(a_bucket{job="x", le!="1"}'
        '[$__rate_interval]))) > 1e-9 and on(instance) absent(up{job=~"w|v"} offset 1h)'
        ' or sum without (pod) (b_total) / count(c{__name__!=""})'
    )
    assert names.metrics == {"a_bucket", "up", "b_total", "c"}
    assert names.selector_labels["a_bucket"] == {"job", "le"}
    assert names.grouping_labels == {"le", "endpoint", "instance", "pod"}


def test_dashboard_is_importable_anywhere() -> None:
    dashboard = load_json(DASHBOARD)
    assert dashboard["uid"] == "tiktok-webhooks"
    (variable,) = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            # The datasource variable, not a uid of one particular Grafana.
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"

"""The alert rules and the Prometheus config, checked by promtool itself, and their runbooks."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.deploy.deployfiles import (
    ALERT_TESTS,
    ALERTS,
    OPERATIONS_DOC,
    PROMETHEUS_CONFIG,
    alert_rules,
    load_yaml,
)

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian: apt-get install prometheus; scripts/bootstrap "
    "does it where apt-get exists)",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False
    )


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_the_compose_prometheus_config() -> None:
    result = promtool("check", "config", "--syntax-only", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_each_alert_fires_when_it_should_and_only_then() -> None:
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    fired = set()
    for case in load_yaml(ALERT_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            if check.get("exp_alerts"):
                fired.add(check["alertname"])
    assert {rule["alert"] for rule in alert_rules()} <= fired


def test_every_alert_is_labelled_and_has_a_runbook_entry() -> None:
    doc = OPERATIONS_DOC.read_text(encoding="utf-8")
    headings = {
        match.group(1).strip().lower()
        for match in re.finditer(r"^#{2,4}\s+(.+)$", doc, flags=re.MULTILINE)
    }
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"], name
        anchor = name.lower()
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{anchor}", name
        assert anchor in headings, f"docs/operations.md has no `### {name}` runbook section"


def test_the_scrape_jobs_are_the_ones_the_alerts_expect() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    expected = set()
    for rule in alert_rules():
        expected.update(re.findall(r'job="([^"]+)"', rule["expr"]))
    assert expected == jobs == {"tiktok-webhooks-receiver", "tiktok-webhooks-worker"}

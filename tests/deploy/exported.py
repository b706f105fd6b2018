"""The metric names the service exports, read from its own code (never a hand-made list).

Every module of `receiver/` and `handlers/` that builds prometheus-client metrics is
imported; then the default registry, which /metrics of both processes serves, says which
families exist and of what type, expanded to the series names Prometheus stores
(`_total`, `_bucket`/`_sum`/`_count`, ...).
"""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass
from typing import Final

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from tests.deploy.deployfiles import ROOT

PACKAGES: Final = ("receiver", "handlers")
_BUILDS_METRICS: Final = re.compile(r"\b(Counter|Gauge|Histogram|Summary|Info|Enum)\(")
# Series Prometheus makes itself for every target, and the labels it attaches.
SCRAPE_SERIES: Final = frozenset({"up"})
TARGET_LABELS: Final = frozenset({"job", "instance"})
_SUFFIXES: Final[dict[str, tuple[str, ...]]] = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


@dataclass(frozen=True)
class Series:
    family: str
    type: str
    labels: frozenset[str]


def metric_modules() -> list[str]:
    """Dotted names of the modules that construct prometheus-client metrics."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if "prometheus_client" in text and _BUILDS_METRICS.search(text):
                found.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


@functools.cache
def exported_series() -> dict[str, Series]:
    """Series name -> family, type and label names, for everything in the registry."""
    labels_of: dict[str, frozenset[str]] = {}
    for name in metric_modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                labels_of[value._name] = frozenset(value._labelnames)
    series: dict[str, Series] = {}
    for family in REGISTRY.collect():
        labels = labels_of.get(family.name)
        if labels is None:
            labels = frozenset(label for sample in family.samples for label in sample.labels)
        for suffix in _SUFFIXES.get(family.type, ("",)):
            extra = frozenset({"le"}) if suffix == "_bucket" else frozenset()
            series[family.name + suffix] = Series(family.name, family.type, labels | extra)
    return series

"""Reading the files under deploy/: YAML documents, the Dockerfile, PromQL metric names."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

# PyYAML comes with uvicorn[standard]; its stubs (types-PyYAML) may or may not be installed.
import yaml  # type: ignore[import-untyped,unused-ignore]

ROOT: Final = Path(__file__).resolve().parents[2]
DEPLOY: Final = ROOT / "deploy"
K8S: Final = DEPLOY / "k8s"
DOCKERFILE: Final = DEPLOY / "Dockerfile"
COMPOSE: Final = DEPLOY / "compose.yaml"
ALERTS: Final = DEPLOY / "prometheus" / "alerts.yaml"
ALERT_TESTS: Final = DEPLOY / "prometheus" / "alerts.test.yaml"
PROMETHEUS_CONFIG: Final = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD: Final = DEPLOY / "grafana" / "dashboard.json"
OPERATIONS_DOC: Final = ROOT / "docs" / "operations.md"
DEPLOY_DOC: Final = ROOT / "docs" / "deploy.md"

# Settings whose values are secrets: never written into a deploy file.
SECRET_ENV: Final = frozenset(
    {"TIKTOK_CLIENT_SECRET", "TOKEN_ENCRYPTION_KEYS", "ADMIN_TOKEN", "REDIS_URL"}
)


def load_yaml_documents(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def load_yaml(path: Path) -> Any:
    docs = load_yaml_documents(path)
    assert len(docs) == 1, f"{path} should hold one YAML document"
    return docs[0]


def parse_yaml_text(text: str) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def kustomization_manifests() -> list[dict[str, Any]]:
    """The documents of every resource the kustomization lists, without kustomize."""
    kustomization = load_yaml(K8S / "kustomization.yaml")
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs.extend(load_yaml_documents(K8S / name))
    return docs


# --- Dockerfile -----------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form ENTRYPOINT/CMD/HEALTHCHECK CMD."""
        text = self.arguments
        if self.keyword == "HEALTHCHECK":
            text = text[text.index("CMD") + len("CMD") :]
        value = json.loads(text)
        assert isinstance(value, list), f"{self.keyword} is not in exec (JSON array) form"
        return [str(item) for item in value]

    def options(self) -> dict[str, str]:
        """`--name=value` options before the command (HEALTHCHECK, COPY, FROM ...)."""
        found: dict[str, str] = {}
        for token in shlex.split(self.arguments):
            if not token.startswith("--"):
                break
            name, _, value = token[2:].partition("=")
            found[name] = value
        return found


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if not full:
            continue
        keyword, _, arguments = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def dockerfile_stages(path: Path = DOCKERFILE) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the build stages, in order."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in dockerfile_instructions(path):
        if instruction.keyword == "FROM":
            parts = instruction.arguments.split()
            base = parts[0]
            for arg, default in global_args.items():
                base = base.replace("${" + arg + "}", default).replace("$" + arg, default)
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            if instruction.keyword == "ARG":
                arg, _, default = instruction.arguments.partition("=")
                global_args[arg.strip()] = default.strip()
        else:
            stages[-1].instructions.append(instruction)
    return global_args, stages


# --- PromQL ---------------------------------------------------------------------------

_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_RANGE: Final = re.compile(r"\[[^\]]*\]")
_GRAFANA_VARIABLE: Final = re.compile(r"\$\{?\w+\}?")
_SELECTOR: Final = re.compile(r"(?<![\w:])([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER_LABEL: Final = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING: Final = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", re.IGNORECASE
)
_IDENTIFIER: Final = re.compile(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)(?![\w:])(\s*\()?")
_KEYWORDS: Final = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"bool", "offset", "inf", "nan"}
)


@dataclass
class QueryNames:
    """What a PromQL expression refers to."""

    metrics: set[str] = field(default_factory=set)
    # metric -> label names its selectors match on
    selector_labels: dict[str, set[str]] = field(default_factory=dict)
    # label names used in by/without/on/ignoring/group_* clauses
    grouping_labels: set[str] = field(default_factory=set)


def promql_names(expr: str) -> QueryNames:
    names = QueryNames()
    # Strings hold label values and regexes, never names; keep them out of the way.
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VARIABLE.sub("", text)
    text = _RANGE.sub("", text)

    def selector(match: re.Match[str]) -> str:
        metric = match.group(1)
        labels = set(_MATCHER_LABEL.findall(match.group(2)))
        if metric and metric.lower() not in _KEYWORDS:
            names.metrics.add(metric)
            names.selector_labels.setdefault(metric, set()).update(labels)
            return f" {metric} "
        for label in labels - {"__name__"}:
            names.selector_labels.setdefault("", set()).add(label)
        return " "

    text = _SELECTOR.sub(selector, text)

    def grouping(match: re.Match[str]) -> str:
        names.grouping_labels.update(
            part.strip() for part in match.group(2).split(",") if part.strip()
        )
        return " "

    text = _GROUPING.sub(grouping, text)
    for match in _IDENTIFIER.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _KEYWORDS:
            continue  # a function or aggregation, or an operator keyword
        names.metrics.add(word)
    return names


# --- dashboard ------------------------------------------------------------------------


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expr) for every Prometheus query in the dashboard, rows included."""

    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                if "expr" in target:
                    yield panel.get("title", "?"), target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard.get("panels", []))


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for group in load_yaml(ALERTS)["groups"]:
        rules.extend(group["rules"])
    return rules

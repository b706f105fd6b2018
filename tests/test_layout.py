"""The package layout's rules: each wing imports only downward, and nothing cycles.

The imports are read with `ast` from the source files (every import, including the ones
inside functions), so a rule holds for code paths no test happens to run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_PACKAGES = ("receiver", "handlers", "tiktok_sandbox")
WINGS = ("ingest", "tiktok", "vault", "oauth", "api", "cli", "testing", "corpus", "console")
HOT_PATH_MUST_NOT_IMPORT = (
    "receiver.vault",
    "receiver.oauth",
    "receiver.api",
    "receiver.cli",
    "handlers",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in TOP_PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            found[module_name(path)] = path
    return found


MODULES = all_modules()


def imports_of(name: str, path: Path) -> Iterator[str]:
    """The project modules `name` imports (a `from pkg import mod` names the module)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                drop = node.level - 1 if is_package else node.level
                anchor = anchor[: len(anchor) - drop] if drop else anchor
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield candidate if candidate in MODULES else base


def project_imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = {t for t in imports_of(name, path) if t.split(".")[0] in TOP_PACKAGES}
        graph[name] = targets
    return graph


GRAPH = project_imports()


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def unit_of(module: str) -> str:
    """The node of the package graph: a wing of `receiver`, a root module of it, or a
    top-level package."""
    parts = module.split(".")
    if parts[0] != "receiver":
        return parts[0]
    if len(parts) >= 2 and parts[1] in WINGS:
        return ".".join(parts[:2])
    return module


def violations(source: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if within(module, source)
        for target in targets
        if any(within(target, f) for f in forbidden)
    )


def test_the_walk_sees_the_project() -> None:
    # The rules below would pass vacuously on an empty graph.
    assert "receiver.ingest.webhook" in GRAPH
    assert "receiver.settings" in GRAPH["receiver.app"]
    assert "receiver.ingest.webhook" in GRAPH["receiver.app"]
    assert sum(len(t) for t in GRAPH.values()) > 100


def test_the_hot_path_knows_nothing_of_tokens_pages_or_the_command_line() -> None:
    assert violations("receiver.ingest", HOT_PATH_MUST_NOT_IMPORT) == []


def test_only_the_command_line_imports_the_command_line() -> None:
    outside = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if not within(module, "receiver.cli")
        for target in targets
        if within(target, "receiver.cli")
    )
    assert outside == []


def test_the_sandbox_shares_no_code_with_the_service() -> None:
    assert violations("tiktok_sandbox", ("receiver", "handlers")) == []


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_between_packages() -> None:
    edges: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        source = unit_of(module)
        for target in targets:
            if unit_of(target) != source:
                edges.setdefault(source, set()).add(unit_of(target))
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"c"}}, None),
    ],
)
def test_the_cycle_finder_finds_cycles(
    edges: dict[str, set[str]], expected: list[str] | None
) -> None:
    assert find_cycle(edges) == expected


def test_no_module_repeats_its_package_name_as_a_prefix() -> None:
    repeated = [
        name
        for name in MODULES
        if name.count(".") >= 2 and name.split(".")[-1].startswith(name.split(".")[-2] + "_")
    ]
    assert repeated == []


def test_every_wing_says_what_it_is() -> None:
    for wing in ("ingest", "tiktok", "vault", "oauth", "api", "cli", "console"):
        doc = ast.get_docstring(ast.parse((ROOT / "receiver" / wing / "__init__.py").read_text()))
        assert doc, wing
        assert len(doc.splitlines()) == 1, wing

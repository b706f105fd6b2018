"""README.md and docs/*.md: every Markdown table renders as a table.

A table is a header row, a delimiter row (`|---|---|`) and body rows, all contiguous: a
blank line inside it ends the table and turns the rest into a paragraph of pipes. Every
row must have the header's number of cells.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_DELIMITER = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


def cells(line: str) -> list[str]:
    """The cells of a table row, split as GitHub does: on every pipe but `\\|` (also
    inside `code`)."""
    text = line.strip()
    text = text.removeprefix("|")
    if text.endswith("|") and not text.endswith("\\|"):
        text = text[:-1]
    found, current = [], ""
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text) and text[index + 1] == "|":
            current += "|"
            index += 2
            continue
        if char == "|":
            found.append(current.strip())
            current = ""
        else:
            current += char
        index += 1
    found.append(current.strip())
    return found


def table_problems(text: str) -> list[str]:
    """One line per problem: rows of the wrong width, table rows outside any table."""
    lines = text.splitlines()
    problems: list[str] = []
    in_fence = False
    in_table_width: int | None = None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
            in_table_width = None
            continue
        if in_fence:
            continue
        is_row = stripped.startswith("|")
        if in_table_width is not None:
            if not is_row:
                in_table_width = None
                continue
            width = len(cells(stripped))
            if width != in_table_width:
                problems.append(f"line {number}: {width} cells, the header has {in_table_width}")
            continue
        following = lines[number].strip() if number < len(lines) else ""
        if is_row and _DELIMITER.match(following):
            in_table_width = len(cells(stripped))
            delimiter_width = len(cells(following))
            if delimiter_width != in_table_width:
                problems.append(f"line {number + 1}: the delimiter row does not fit the header")
            continue
        if is_row and not _DELIMITER.match(stripped):
            problems.append(f"line {number}: a table row outside a table (a blank line above?)")
    return problems


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: p.name)
def test_tables_render(doc: Path) -> None:
    assert table_problems(doc.read_text(encoding="utf-8")) == []


def test_the_checker_sees_a_broken_table() -> None:
    broken = "| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n| 5 | 6 | 7 |\n"
    assert table_problems(broken) == [
        "line 5: a table row outside a table (a blank line above?)",
        "line 6: a table row outside a table (a blank line above?)",
    ]
    assert table_problems("| a | b |\n|---|---|\n| 1 | `x|y` |\n") == [
        "line 3: 3 cells, the header has 2"
    ]
    assert table_problems("| a | b |\n|---|---|\n| `a\\|b` | 2 |\n") == []

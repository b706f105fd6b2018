"""docs/deploy.md and docs/operations.md point at files and sections that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.deployfiles import DEPLOY_DOC, OPERATIONS_DOC, ROOT

DOCS = [DEPLOY_DOC, OPERATIONS_DOC]
# Files the docs tell the user to create.
USER_CREATED = {"deploy/.env"}


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for match in re.finditer(r"^#{1,6}\s+(.+)$", path.read_text(encoding="utf-8"), re.MULTILINE):
        text = match.group(1).strip().lower()
        found.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text)))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_mentioned_files_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    mentioned = set(re.findall(r"`((?:deploy|tests|bench|docs|receiver|handlers)/[\w./-]+)`", text))
    assert mentioned, "expected the doc to name files"
    for name in sorted(mentioned - USER_CREATED):
        assert (ROOT / name).exists(), name


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_resolve(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith("http"):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        assert linked.exists(), target
        if anchor:
            assert anchor in anchors(linked), target

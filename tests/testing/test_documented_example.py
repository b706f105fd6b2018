"""The documented first handler and its test run, as documented, in a fresh virtualenv.

A wheel of this project is built and installed with the `testing` extra into a new
virtualenv (dependencies from pip's configured sources), the files docs/handlers.md and
docs/testing.md give (each code block starting with `# PATH`) are written into an empty
project, and that project's `pytest` must pass. Slow (a build and an install): one test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
DOCS = [ROOT / "docs" / "handlers.md", ROOT / "docs" / "testing.md"]
_BLOCK = re.compile(r"^```(?:python|toml)\n# ([\w./-]+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def documented_files() -> dict[str, str]:
    """PATH -> content of every code block whose first line is `# PATH`."""
    files: dict[str, str] = {}
    for doc in DOCS:
        for match in _BLOCK.finditer(doc.read_text(encoding="utf-8")):
            files[match.group(1)] = match.group(2)
    return files


def test_the_docs_name_a_handler_module_a_test_and_the_configuration() -> None:
    assert set(documented_files()) == {
        "mycompany/tiktok_handlers.py",
        "tests/test_tiktok_handlers.py",
        "pyproject.toml",
    }


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_the_documented_example_passes_in_a_fresh_venv_from_a_wheel(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    [wheel] = wheels.glob("tiktok_webhooks-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"{wheel}[testing]"],
        check=True,
        capture_output=True,
        timeout=900,
    )
    project = tmp_path / "project"
    for name, content in documented_files().items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    (project / "mycompany" / "__init__.py").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "PYTHON"))}
    result = subprocess.run(
        [str(venv / "bin" / "pytest"), "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout

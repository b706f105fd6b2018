"""deploy/Dockerfile, its lock and .dockerignore, read the way the builder reads them.

The suite starts no Docker engine: scripts/test-image (run by CI after the suite) builds
the image and runs it. What the image runs is run here too (test_commands.py), with the
same commands.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from importlib import metadata

from tests.deploy.deployfiles import DEPLOY, DOCKERFILE, ROOT, SECRET_ENV, dockerfile_stages

LOCK = DEPLOY / "requirements.lock"


def runtime_stage_instructions() -> list[tuple[str, str]]:
    _, stages = dockerfile_stages()
    return [(i.keyword, i.arguments) for i in stages[-1].instructions]


def test_multi_stage_on_a_slim_python_base() -> None:
    _, stages = dockerfile_stages()
    assert len(stages) >= 2
    for stage in stages:
        assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", stage.base), stage.base
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(part) for part in requires.removeprefix(">=").split("."))
    version = re.match(r"python:(\d+)\.(\d+)", stages[-1].base)
    assert version is not None
    assert (int(version.group(1)), int(version.group(2))) >= minimum


def test_runtime_stage_copies_only_the_venv_and_runs_unprivileged() -> None:
    _, stages = dockerfile_stages()
    runtime = stages[-1]
    copies = runtime.all("COPY")
    assert copies, "the runtime stage copies the built venv"
    for copy in copies:
        assert copy.options().get("from") == stages[0].name, copy.arguments
    user = runtime.last("USER")
    assert user is not None
    uid = user.arguments.split(":")[0]
    # Numeric and not root, so Kubernetes' runAsNonRoot can check it; deploy/k8s runs
    # the pods as this same user.
    assert uid == "10001"


def test_only_runtime_dependencies_are_installed_from_the_lock() -> None:
    _, stages = dockerfile_stages()
    build = stages[0]
    runs = [i.arguments for i in build.all("RUN")]
    joined = " ".join(runs)
    # Dependencies from the lock only, hashes checked; then the package, without deps and
    # without build isolation (its build requirements are in the lock too).
    assert any("--require-hashes" in run and "-r requirements.lock" in run for run in runs)
    assert "pip install --no-deps --no-build-isolation ." in joined
    assert "pip check" in joined
    assert any(
        copy.arguments.split()[:-1] == ["deploy/requirements.lock"] for copy in build.all("COPY")
    )
    for extra in ("[dev]", "[bench]", " -e "):
        assert extra not in joined
    assert "apt-get" not in joined, "every dependency ships wheels: no compiler or apt layer"


def test_no_syntax_directive() -> None:
    # `# syntax=` makes BuildKit fetch a frontend image from a registry before building.
    first = DOCKERFILE.read_text(encoding="utf-8").splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", first, flags=re.IGNORECASE), first


def test_build_commands_name_python3() -> None:
    # Debian-based images (a debootstrap stand-in, python3 from apt) have no `python`.
    _, stages = dockerfile_stages()
    for instruction in stages[0].all("RUN"):
        assert not re.match(r"python\b", instruction.arguments), instruction.arguments


def test_the_user_is_created_without_a_system_id_warning() -> None:
    # useradd/groupadd --system warn about ids above SYS_UID_MAX/SYS_GID_MAX (999).
    _, stages = dockerfile_stages()
    runs = " ".join(i.arguments for i in stages[-1].all("RUN"))
    assert "useradd" in runs
    assert "--uid 10001" in runs
    assert "--gid 10001" in runs
    assert "--system" not in runs


# --- deploy/requirements.lock ---------------------------------------------------------


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    """Package -> version, from the lock; every entry must carry hashes."""
    entries: dict[str, str] = {}
    text = LOCK.read_text(encoding="utf-8")
    for block in re.split(r"\n(?=\S)", text):
        if block.startswith("#") or not block.strip():
            continue
        match = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)", block)
        assert match is not None, block.splitlines()[0]
        assert "--hash=sha256:" in block, f"{match.group(1)} has no hash"
        entries[normalized(match.group(1))] = match.group(3)
    return entries


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert match is not None
    return normalized(match.group(0))


def test_the_lock_pins_every_runtime_and_build_requirement() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    entries = locked()
    wanted = pyproject["project"]["dependencies"] + pyproject["build-system"]["requires"]
    for requirement in wanted:
        assert requirement_name(requirement) in entries, requirement
    # No tool of the dev or bench extras (pyyaml is in both: uvicorn[standard] needs it).
    assert {"pytest", "mypy", "ruff", "hypothesis", "fastapi", "pydantic"}.isdisjoint(entries)


def test_the_suite_runs_the_locked_versions() -> None:
    # scripts/bootstrap installs the lock into .venv: the image runs what the tests ran.
    for name, version in locked().items():
        if name in ("setuptools", "wheel"):
            continue  # build tools of the image, not run by anything
        assert metadata.version(name) == version, f"{name}: locked {version}"


def test_entrypoint_and_the_two_roles() -> None:
    _, stages = dockerfile_stages()
    runtime = stages[-1]
    entrypoint, cmd = runtime.last("ENTRYPOINT"), runtime.last("CMD")
    assert entrypoint is not None
    assert cmd is not None
    assert entrypoint.exec_form() == ["tiktok-webhooks"]
    assert cmd.exec_form()[0] == "serve"
    healthcheck = runtime.last("HEALTHCHECK")
    assert healthcheck is not None
    assert {"interval", "timeout", "retries"} <= set(healthcheck.options())
    assert "/healthz" in " ".join(healthcheck.exec_form())
    exposed = {port for i in runtime.all("EXPOSE") for port in i.arguments.split()}
    assert {"8000", "9101"} <= exposed


def test_no_secret_is_baked_in() -> None:
    for keyword, arguments in runtime_stage_instructions():
        if keyword in ("ENV", "ARG", "LABEL"):
            for name in SECRET_ENV | {"TIKTOK_CLIENT_KEY"}:
                assert name not in arguments, f"{keyword} {arguments}"
    text = DOCKERFILE.read_text()
    for keyword in ("ENV", "ARG"):
        for name in SECRET_ENV:
            assert not re.search(rf"^\s*{keyword}\s+{name}\b", text, flags=re.MULTILINE)
    assert "--mount=type=secret" not in text  # nothing at build time needs a secret


# --- .dockerignore --------------------------------------------------------------------


def dockerignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        patterns.append((negated, line.lstrip("!").rstrip("/")))
    return patterns


def sent_to_builder(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or a parent of it decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for negated, pattern in dockerignore_patterns():
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*")
        if pattern.startswith("**/"):
            regex = "(.*/)?" + fnmatch.translate(pattern[3:]).replace(".*", "[^/]*")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            included = negated
    return included


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    for path in (
        "pyproject.toml",
        "README.md",
        "receiver/app.py",
        "handlers/worker.py",
        "tiktok_sandbox/app.py",
        "deploy/requirements.lock",
    ):
        assert sent_to_builder(path), path
    for path in (
        ".git/config",
        ".venv/bin/python",
        ".dev-data/env",
        "deploy/.env",
        ".env",
        "tests/conftest.py",
        "bench/ingest.py",
        "receiver/__pycache__/app.cpython-311.pyc",
        ".mypy_cache/x.json",
        "deploy/compose.yaml",
    ):
        assert not sent_to_builder(path), path


def test_every_copied_source_is_in_the_context() -> None:
    _, stages = dockerfile_stages()
    for stage in stages:
        for copy in stage.all("COPY"):
            if "from" in copy.options():
                continue
            sources = [t for t in copy.arguments.split() if not t.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), source
                assert sent_to_builder(source.rstrip("/")), f"{source} is .dockerignored"

"""No secret value in any deploy file: secrets are referenced (env interpolation, Secret
references), never written down."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from receiver.settings import ENV_NAMES
from tests.deploy.deployfiles import COMPOSE, DEPLOY, ROOT, SECRET_ENV, load_yaml
from tests.factories import CLIENT_SECRET

DEPLOY_FILES = sorted(
    [path for path in DEPLOY.rglob("*") if path.is_file()] + [ROOT / ".dockerignore"]
)
LOOKS_SECRET = {
    "PEM private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "credentials in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@\"']*:[^/\s@\"'$]+@"),
    "a 32-byte urlsafe-base64 key (TOKEN_ENCRYPTION_KEYS)": re.compile(
        r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])"
    ),
    "a long hex string": re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{32,}(?![0-9a-fA-F])"),
    "a bearer token": re.compile(r"Bearer\s+[A-Za-z0-9._~+/-]{16,}"),
}


def test_there_are_deploy_files() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in DEPLOY_FILES}
    assert {"deploy/Dockerfile", "deploy/compose.yaml", "deploy/k8s/kustomization.yaml"} <= names


@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_secret_looking_value(path: Path) -> None:
    # The dependency lock's file hashes are long hex strings by design.
    text = re.sub(r"--hash=sha256:[0-9a-f]{64}", "", path.read_text(encoding="utf-8"))
    for what, pattern in LOOKS_SECRET.items():
        match = pattern.search(text)
        assert match is None, f"{what}: {match.group(0) if match else ''!r}"
    assert CLIENT_SECRET not in text


def test_compose_takes_secrets_from_the_environment_only() -> None:
    services = load_yaml(COMPOSE)["services"]
    for name in ("receiver", "worker"):
        environment = services[name]["environment"]
        for key, value in environment.items():
            assert key in ENV_NAMES, f"{name}: {key} is not a setting the service reads"
            if key in SECRET_ENV - {"REDIS_URL"} or key == "TIKTOK_CLIENT_KEY":
                assert re.fullmatch(r"\$\{\w+:?[-?][^}]*\}", value), f"{name}: {key}={value}"
        # The stack's own Redis has a password: interpolated from the environment too.
        url = environment["REDIS_URL"]
        assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:\?[^}]*\}@redis:6379/0", url), url


def compose_variables() -> set[str]:
    """The variables deploy/compose.yaml interpolates, and the project name compose reads."""
    return set(re.findall(r"\$\{(\w+)", COMPOSE.read_text(encoding="utf-8"))) | {
        "COMPOSE_PROJECT_NAME"
    }


def test_env_example_holds_names_only() -> None:
    example = DEPLOY / "env.example"
    for line in example.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            assert name in ENV_NAMES or name in compose_variables(), name
            if name == "COMPOSE_PROJECT_NAME":
                assert value == "tiktok-webhooks"
            else:
                assert value == "", f"{name} has a value in env.example"

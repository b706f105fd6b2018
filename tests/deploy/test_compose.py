"""deploy/compose.yaml: the services the issue asks for, wired to files that exist."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deployfiles import COMPOSE, DEPLOY, SECRET_ENV, load_yaml

SECRET_VARIABLES = {"TIKTOK_CLIENT_KEY": "k", "TIKTOK_CLIENT_SECRET": "s"} | {
    name: "x" for name in SECRET_ENV
}


def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE)
    assert isinstance(data, dict)
    return data


def test_the_stack_has_every_service() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "receiver", "worker", "prometheus", "grafana"}


def test_redis_keeps_its_data_with_aof_and_never_evicts() -> None:
    redis = compose()["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    # An acknowledged delivery must survive a power cut (scripts/chaos power-cut).
    assert command[command.index("--appendfsync") + 1] == "always"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_receiver_and_worker_use_the_image_and_wait_for_redis() -> None:
    services = compose()["services"]
    for name in ("receiver", "worker"):
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["environment"]["REDIS_URL"].startswith("redis://redis:")
        assert service["init"] is True  # signals reach the process, zombies are reaped
        assert "healthcheck" in service


def test_published_ports_are_loopback_only() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} publicly"


def test_mounted_files_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"


def test_grafana_provisioning_points_at_the_mounted_dashboard() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("."))
    target = mounts["./grafana/dashboard.json"]
    provider = load_yaml(DEPLOY / "grafana/provisioning/dashboards/tiktok-webhooks.yaml")
    assert Path(target).parent.as_posix() == provider["providers"][0]["options"]["path"]
    datasource = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yaml")
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (Debian: apt-get install docker-compose)",
)
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    # Debian's docker-compose is v1, which predates the top-level `name:` of the Compose
    # specification; everything else it validates as Compose v2 would.
    text = "".join(
        line
        for line in COMPOSE.read_text(encoding="utf-8").splitlines(keepends=True)
        if not line.startswith("name:")
    )
    copy = tmp_path / "compose.yaml"
    copy.write_text(text, encoding="utf-8")
    command = ["docker-compose", "-f", str(copy), "--project-directory", str(DEPLOY), "config"]
    env = {"PATH": os.environ["PATH"], **SECRET_VARIABLES}
    result = subprocess.run(
        [*command, "-q"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    # Without the secrets it refuses to start, naming the missing one.
    bare = {"PATH": os.environ["PATH"]}
    result = subprocess.run(
        [*command, "-q"], capture_output=True, text=True, env=bare, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "TIKTOK_CLIENT_KEY" in result.stderr

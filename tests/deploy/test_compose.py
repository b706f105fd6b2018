"""deploy/compose.yaml: the services, wired to files that exist, hardened.

scripts/test-image brings the file up on a real Docker daemon; these tests read it, and
run its Redis command and health check against a real redis-server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from receiver.testing.redis_server import free_port
from tests.deploy.deployfiles import COMPOSE, DEPLOY, ROOT, SECRET_ENV, load_yaml

SECRET_VARIABLES = {"TIKTOK_CLIENT_KEY": "k", "TIKTOK_CLIENT_SECRET": "s"} | {
    name: "x" for name in SECRET_ENV | {"REDIS_PASSWORD"}
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
    # A cap, and a policy that evicts nothing (jobs, dedupe keys and tokens all have TTLs,
    # so any volatile-* policy would drop them too).
    assert command[command.index("--maxmemory") + 1]
    # An acknowledged delivery must survive a power cut (scripts/chaos power-cut).
    assert command[command.index("--appendfsync") + 1] == "always"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_redis_requires_a_password_from_the_environment() -> None:
    services = compose()["services"]
    command = services["redis"]["command"]
    # Required (compose refuses to start without it), never written in the file.
    assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == "${REDIS_PASSWORD}"
    for name in ("receiver", "worker"):
        url = services[name]["environment"]["REDIS_URL"]
        assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:\?[^}]*\}@redis:6379/0", url), url


def test_the_image_is_built_once_for_both_roles() -> None:
    services = compose()["services"]
    receiver, worker = services["receiver"], services["worker"]
    assert receiver["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / receiver["build"]["context"] / receiver["build"]["dockerfile"]).is_file()
    assert "build" not in worker
    assert worker["image"] == receiver["image"]
    # Started after the receiver, so `up --build` has built the tag before the worker runs.
    assert worker["depends_on"]["receiver"]["condition"] == "service_started"


def test_receiver_and_worker_wait_for_redis_and_have_their_own_checks() -> None:
    services = compose()["services"]
    for name in ("receiver", "worker"):
        service = services[name]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["init"] is True  # signals reach the process, zombies are reaped
    assert "/healthz" in " ".join(services["receiver"]["healthcheck"]["test"])
    # Not the image's HEALTHCHECK, which probes the receiver's port.
    assert services["worker"]["healthcheck"]["test"] == [
        "CMD",
        "tiktok-webhooks",
        "worker",
        "--check",
    ]


@pytest.mark.parametrize("name", ["receiver", "worker"])
def test_receiver_and_worker_are_hardened(name: str) -> None:
    service = compose()["services"][name]
    assert service["read_only"] is True
    assert service["tmpfs"] == ["/tmp"]  # the only place anything writes
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]


def test_redis_is_on_a_network_grafana_cannot_reach() -> None:
    data = compose()
    services = data["services"]
    redis_networks = set(services["redis"]["networks"])
    assert not redis_networks & set(services["grafana"]["networks"])
    assert not redis_networks & set(services["prometheus"]["networks"])
    for network in redis_networks:
        assert data["networks"][network]["internal"] is True
    # The two processes that use Redis are on its network.
    for name in ("receiver", "worker"):
        assert redis_networks <= set(services[name]["networks"])


def test_images_are_pinned() -> None:
    for name, service in compose()["services"].items():
        if "build" in service:
            continue
        image = service["image"]
        if image == compose()["services"]["receiver"]["image"]:
            continue  # the local build
        _, _, tag = image.rpartition(":")
        assert re.match(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to a release"


def test_host_ports_are_variables_with_defaults() -> None:
    defaults = {"receiver": "8000", "prometheus": "9090", "grafana": "3000"}
    for name, default in defaults.items():
        (port,) = compose()["services"][name]["ports"]
        variable = f"{name.upper()}_PORT"
        assert port == f"127.0.0.1:${{{variable}:-{default}}}:{default}", port


def test_no_top_level_name_and_the_project_name_comes_from_the_env_file() -> None:
    # docker-compose v1 refuses a top-level `name:`; COMPOSE_PROJECT_NAME does the same.
    assert "name" not in compose()
    example = (DEPLOY / "env.example").read_text(encoding="utf-8")
    assert "COMPOSE_PROJECT_NAME=tiktok-webhooks" in example.splitlines()
    assert "REDIS_PASSWORD=" in example.splitlines()  # empty: generated, never committed
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "deploy/.env" in ignored


def test_the_redis_command_and_healthcheck_on_a_real_redis_server(tmp_path: Path) -> None:
    """The compose Redis command, moved to a free loopback port, as redis-server runs it."""
    redis = compose()["services"]["redis"]
    password = "compose-test-password"
    port = free_port()
    command = [password if arg.startswith("${REDIS_PASSWORD") else arg for arg in redis["command"]]
    command = ["512mb" if arg.startswith("${REDIS_MAXMEMORY") else arg for arg in command]
    assert not any("$" in arg for arg in command), command
    argv = [*command, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    test = redis["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    probe = test[1].replace("redis-cli", f"redis-cli -p {port}")
    env = {"PATH": os.environ["PATH"]}
    authenticated = {**env, "REDISCLI_AUTH": password}
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["sh", "-c", probe], env=authenticated, check=False).returncode:
            assert time.monotonic() < deadline, "the health check never passed"
            assert process.poll() is None, "redis-server exited"
            time.sleep(0.2)
        # Without the password the same check fails: the password is really required.
        assert subprocess.run(["sh", "-c", probe], env=env, check=False).returncode != 0
        config = subprocess.run(
            ["redis-cli", "-p", str(port), "config", "get", "maxmemory-policy"],
            env=authenticated,
            capture_output=True,
            text=True,
            check=True,
        )
        assert config.stdout.split() == ["maxmemory-policy", "noeviction"]
    finally:
        process.terminate()
        process.wait(timeout=10)


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
def test_docker_compose_accepts_the_file() -> None:
    # Debian's docker-compose is v1.29: it takes the file as it is.
    command = ["docker-compose", "-f", str(COMPOSE), "--project-directory", str(DEPLOY), "config"]
    env = {"PATH": os.environ["PATH"], **SECRET_VARIABLES}
    result = subprocess.run(
        [*command, "-q"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    # Without any one of the required values it refuses to start, naming it.
    for missing in ("TIKTOK_CLIENT_KEY", "REDIS_PASSWORD"):
        partial = {k: v for k, v in env.items() if k != missing}
        result = subprocess.run(
            [*command, "-q"], capture_output=True, text=True, env=partial, timeout=60, check=False
        )
        assert result.returncode != 0
        assert missing in result.stderr

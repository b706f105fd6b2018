"""The commands the image, compose and Kubernetes run, run here as real processes.

Each test takes the command from the deploy file itself (ENTRYPOINT + CMD, HEALTHCHECK,
compose `command`/`healthcheck`, k8s `args`/probes), moves hosts and ports to free
loopback ones, and runs it against a private Redis.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from tests.deploy import test_k8s as k8s
from tests.deploy.deployfiles import COMPOSE, dockerfile_stages, load_yaml
from tests.deploy.processes import ENTRYPOINT, answers, on_loopback, running, service_env


def image_commands() -> tuple[list[str], list[str], list[str]]:
    """ENTRYPOINT, CMD and the HEALTHCHECK command of the runtime stage."""
    _, stages = dockerfile_stages()
    runtime = stages[-1]
    entrypoint, cmd, healthcheck = (
        runtime.last("ENTRYPOINT"),
        runtime.last("CMD"),
        runtime.last("HEALTHCHECK"),
    )
    assert entrypoint is not None
    assert cmd is not None
    assert healthcheck is not None
    return entrypoint.exec_form(), cmd.exec_form(), healthcheck.exec_form()


def resolve(argv: list[str]) -> list[str]:
    """The image's PATH puts the venv first: `tiktok-webhooks` and `python` are the venv's."""
    if argv[0] == "tiktok-webhooks":
        return [ENTRYPOINT, *argv[1:]]
    if argv[0] == "python":
        return [str(Path(ENTRYPOINT).with_name("python")), *argv[1:]]
    return argv


def run_probe(argv: list[str], env: dict[str, str]) -> int:
    result = subprocess.run(resolve(argv), env=env, capture_output=True, timeout=30, check=False)
    return result.returncode


def test_the_image_default_command_serves_and_its_healthcheck_passes(
    redis_url: str, tmp_path: Path
) -> None:
    entrypoint, cmd, healthcheck = image_commands()
    args, ports = on_loopback(cmd)
    base = f"http://127.0.0.1:{ports['--port']}"
    env = service_env(redis_url)
    probe_env = {**env, "HEALTHCHECK_URL": f"{base}/healthz"}
    with running(
        resolve([*entrypoint, *args]), env, tmp_path / "serve.log", answers(f"{base}/healthz")
    ):
        assert run_probe(healthcheck, probe_env) == 0
        assert answers(f"{base}/readyz")()
    # The same check fails once nothing answers.
    assert run_probe(healthcheck, probe_env) != 0


def test_the_image_worker_role_runs_and_its_check_passes(redis_url: str, tmp_path: Path) -> None:
    entrypoint, _, _ = image_commands()
    compose = load_yaml(COMPOSE)["services"]["worker"]
    args, ports = on_loopback(compose["command"])
    metrics = f"http://127.0.0.1:{ports['--metrics-port']}/metrics"
    env = service_env(redis_url)
    check = compose["healthcheck"]["test"][1:]  # after "CMD"
    with running(resolve([*entrypoint, *args]), env, tmp_path / "worker.log", answers(metrics)):
        wait_for_check(check, env)
        assert "tiktok_worker_queue_depth" in httpx.get(metrics, timeout=5).text
    # A cleanly stopped worker removes its health-check key: the check fails again.
    assert run_probe(check, env) != 0


def wait_for_check(check: list[str], env: dict[str, str], timeout: float = 20) -> None:
    """The worker reports in right after start; give the check `timeout` s to see it."""
    deadline = time.monotonic() + timeout
    while run_probe(check, env) != 0:
        assert time.monotonic() < deadline, f"{check} never passed"
        time.sleep(0.5)


def test_the_compose_receiver_command_and_healthcheck(redis_url: str, tmp_path: Path) -> None:
    entrypoint, _, _ = image_commands()
    service = load_yaml(COMPOSE)["services"]["receiver"]
    args, ports = on_loopback(service["command"])
    base = f"http://127.0.0.1:{ports['--port']}"
    env = service_env(redis_url)
    check = service["healthcheck"]["test"][1:]
    with running(
        resolve([*entrypoint, *args]), env, tmp_path / "serve.log", answers(f"{base}/healthz")
    ):
        assert run_probe(check, {**env, "HEALTHCHECK_URL": f"{base}/healthz"}) == 0


def test_the_k8s_receiver_args_and_probes(redis_url: str, tmp_path: Path) -> None:
    entrypoint, _, _ = image_commands()
    args, ports = on_loopback(k8s.expanded_args("receiver"))
    base = f"http://127.0.0.1:{ports['--port']}"
    spec = k8s.container("receiver")
    env = service_env(redis_url)
    with running(
        resolve([*entrypoint, *args]), env, tmp_path / "serve.log", answers(f"{base}/healthz")
    ):
        for probe in ("readinessProbe", "livenessProbe"):
            assert answers(base + spec[probe]["httpGet"]["path"])(), probe
        # What the ServiceMonitor scrapes.
        assert answers(f"{base}/metrics")()


def test_the_k8s_worker_args_and_probes(redis_url: str, tmp_path: Path) -> None:
    entrypoint, _, _ = image_commands()
    args, ports = on_loopback(k8s.expanded_args("worker"))
    spec = k8s.container("worker")
    base = f"http://127.0.0.1:{ports['--metrics-port']}"
    env = service_env(redis_url)
    readiness = base + spec["readinessProbe"]["httpGet"]["path"]
    with running(resolve([*entrypoint, *args]), env, tmp_path / "worker.log", answers(readiness)):
        wait_for_check(spec["livenessProbe"]["exec"]["command"], env)

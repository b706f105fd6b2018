"""The processes an experiment runs: redis-server, `serve`, `worker`. Loopback only;
each is stopped by its own PID (never by name), also when an experiment fails."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import httpx

from receiver.settings import ENV_NAMES
from receiver.testing.redis_server import free_port
from receiver.vault.crypto import generate_key

ROOT: Final = Path(__file__).resolve().parent.parent
ENTRYPOINT: Final = str(Path(sys.executable).with_name("tiktok-webhooks"))
CLIENT_KEY: Final = "chaos_client_key"
CLIENT_SECRET: Final = "chaos_client_secret"
# The worker needs a key; chaos stores no tokens.
ENCRYPTION_KEY: Final = generate_key()


class ChaosError(Exception):
    """The experiment could not be set up (not a failed expectation)."""


class Process:
    """One child process with a log file; `stop` ends it by PID."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.name = name
        self.popen = popen
        self.log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, grace: float = 10.0) -> None:
        if not self.alive():
            return
        try:
            os.kill(self.pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            os.kill(self.pid, signal.SIGTERM)
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Processes:
    """Everything an experiment started; `stop_all` at its end, whatever happened."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Process] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        nofile: int | None = None,
    ) -> Process:
        log = self.workdir / f"{name}.log"

        def limits() -> None:
            if nofile is not None:
                _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, hard), hard))

        with log.open("ab") as output:
            popen = subprocess.Popen(
                list(argv),
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=limits if nofile is not None else None,
            )
        process = Process(name, popen, log)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop(grace=5)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ChaosError(f"{what}: not within {timeout:g}s")
        time.sleep(0.05)


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(
    procs: Processes,
    name: str,
    datadir: Path,
    port: int,
    *,
    appendfsync: str | None = None,
    preload: Path | None = None,
) -> Process:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ChaosError("redis-server is not installed (scripts/bootstrap installs it)")
    datadir.mkdir(parents=True, exist_ok=True)
    persistence = (
        ["--appendonly", "no"]
        if appendfsync is None
        else ["--appendonly", "yes", "--appendfsync", appendfsync]
    )
    env = dict(os.environ)
    if preload is not None:
        env["LD_PRELOAD"] = str(preload)
    argv = [
        binary,
        "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        *persistence,
        "--dir", str(datadir), "--logfile", str(datadir / "redis.log"),
    ]  # fmt: skip
    process = procs.start(name, argv, env=env)
    wait_for(lambda: redis_answers(port), 15, f"{name} answering PING")
    return process


def service_env(redis_port: int, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ENV_NAMES}
    env.update(
        TIKTOK_CLIENT_KEY=CLIENT_KEY,
        TIKTOK_CLIENT_SECRET=CLIENT_SECRET,
        TOKEN_ENCRYPTION_KEYS=ENCRYPTION_KEY,
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def start_receiver(
    procs: Processes,
    redis_port: int,
    *,
    options: Sequence[str] = (),
    nofile: int | None = None,
    **env: str,
) -> tuple[Process, str]:
    port = free_port()
    argv = [ENTRYPOINT, "serve", "--host", "127.0.0.1", "--port", str(port), *options]
    process = procs.start(
        f"receiver-{port}", argv, env=service_env(redis_port, **env), nofile=nofile
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not process.alive():
            raise ChaosError(f"the receiver exited:\n{process.log_text()[-2000:]}")
        try:
            return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, 30, "the receiver ready")
    return process, base


def start_worker(
    procs: Processes, redis_port: int, name: str, *, options: Sequence[str] = (), **env: str
) -> Process:
    argv = [ENTRYPOINT, "worker", "--metrics-port", str(free_port()), *options]
    return procs.start(name, argv, env=service_env(redis_port, **env))

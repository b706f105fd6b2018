"""Running `tiktok-webhooks` as the image runs it: the console script, a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import httpx

from receiver.settings import ENV_NAMES
from receiver.testing.redis_server import free_port
from receiver.vault.crypto import generate_key
from tests.deploy.deployfiles import ROOT
from tests.factories import CLIENT_KEY, CLIENT_SECRET

# The console script the image's ENTRYPOINT names, from this virtualenv.
ENTRYPOINT: Final = str(Path(sys.executable).with_name("tiktok-webhooks"))
# uvicorn re-raises SIGTERM once it has shut down, so -SIGTERM is a clean exit too.
CLEAN_EXITS: Final = (0, -signal.SIGTERM)


def service_env(redis_url: str, **extra: str) -> dict[str, str]:
    """The environment a container gets: our settings only, none from this machine's."""
    env = {key: value for key, value in os.environ.items() if key not in ENV_NAMES}
    env.update(
        TIKTOK_CLIENT_KEY=CLIENT_KEY,
        TIKTOK_CLIENT_SECRET=CLIENT_SECRET,
        TOKEN_ENCRYPTION_KEYS=generate_key(),
        REDIS_URL=redis_url,
        # So WORKER_HANDLER_MODULES can name test modules.
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def on_loopback(args: Sequence[str]) -> tuple[list[str], dict[str, int]]:
    """`args` with hosts set to 127.0.0.1 and every port option to a free port."""
    rewritten = list(args)
    ports: dict[str, int] = {}
    for index, arg in enumerate(rewritten[:-1]):
        if arg in ("--host", "--metrics-host"):
            rewritten[index + 1] = "127.0.0.1"
        elif arg in ("--port", "--metrics-port"):
            ports[arg] = free_port()
            rewritten[index + 1] = str(ports[arg])
    return rewritten, ports


def answers(url: str, status: int = 200) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == status
        except httpx.TransportError:
            return False

    return check


@contextmanager
def running(
    argv: Sequence[str],
    env: dict[str, str],
    log: Path,
    ready: Callable[[], bool],
    *,
    timeout: float = 30,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `argv`, wait until `ready()`, yield the process, and always end it."""
    with log.open("wb") as output:
        process = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None:
                raise RuntimeError(f"{argv} exited with {process.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv} not ready after {timeout}s:\n{log.read_text()}")
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def wait_for_exit(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """(exit status, seconds it took), or fail the test if it takes longer."""
    started = time.monotonic()
    try:
        status = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise AssertionError(f"the process did not exit within {timeout}s") from None
    return status, time.monotonic() - started

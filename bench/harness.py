"""Process plumbing for the ingest benchmark: Redis, the app under test, wrk, sampling.

Every process here is started by the benchmark, pinned with `taskset`, bounded in
time, and stopped by its own pid.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

BENCH_DIR = Path(__file__).resolve().parent
LUA_SCRIPT = BENCH_DIR / "wrk_deliveries.lua"
DONE_MARKER = "BENCH_SENDING_DONE"
RESULT_MARKER = "BENCH_RESULT "


class HarnessError(Exception):
    """The benchmark itself could not run (a tool is missing, a process died...)."""


_INSTALL_HINTS: Final = {
    "wrk": "apt-get install -y wrk   (or build https://github.com/wg/wrk)",
    "redis-server": "apt-get install -y redis-server",
    "taskset": "apt-get install -y util-linux   (taskset pins processes to cores)",
}


def require_tools(tools: tuple[str, ...] = ("wrk", "redis-server", "taskset")) -> dict[str, str]:
    """Paths of `tools`, or HarnessError saying how to get each one that is missing."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for tool in tools:
        hint = _INSTALL_HINTS[tool]
        path = shutil.which(tool)
        if path is None:
            missing.append(f"  - `{tool}` is not on PATH: {hint}")
        else:
            found[tool] = path
    if missing:
        raise HarnessError("missing tools:\n" + "\n".join(missing))
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


def _stop(process: subprocess.Popen[bytes], grace: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class RedisServer:
    """A private redis-server: own port, own directory, no persistence unless
    `appendfsync` is given (then AOF on, with that fsync policy)."""

    def __init__(
        self, binary: str, taskset: str, core: int, workdir: Path, appendfsync: str | None = None
    ) -> None:
        self.appendfsync = appendfsync
        self.binary = binary
        self.taskset = taskset
        self.core = core
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "redis.log"
        self.process = subprocess.Popen(
            [
                self.taskset, "-c", str(self.core), self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                *(
                    ["--appendonly", "no"]
                    if self.appendfsync is None
                    else ["--appendonly", "yes", "--appendfsync", self.appendfsync]
                ),
                "--dir", str(self.workdir),
                "--logfile", str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(f"redis-server exited:\n{tail(log)}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise HarnessError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, grace=5)
        self.process = None


@dataclass
class AppProcess:
    """The app under test, started pinned to one core; `pid` is the server process."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise HarnessError(f"{self.name} is not running")
        return self.process.pid

    def start(self, ready_timeout: float = 30.0) -> float:
        """Start and wait until it answers HTTP; return the seconds that took."""
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                list(self.command),
                env=dict(self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=BENCH_DIR.parent,
            )
        deadline = started + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(
                    f"{self.name} exited with {self.process.returncode} while starting:\n"
                    f"{tail(self.log_path)}"
                )
            if self._answers():
                return time.monotonic() - started
            time.sleep(0.1)
        raise HarnessError(
            f"{self.name} did not answer within {ready_timeout:.0f}s:\n{tail(self.log_path)}"
        )

    def _answers(self) -> bool:
        """Any HTTP answer counts; a readiness route, where there is one, must say 200."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            conn.request("GET", "/readyz")
            status = conn.getresponse().status
        except OSError:
            return False
        finally:
            conn.close()
        return status != 503

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def logtail(self) -> str:
        return tail(self.log_path)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, grace=15)


def scrape_metrics(port: int) -> dict[str, float]:
    """Prometheus samples from GET /metrics (series name with labels -> value), or {}."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        text = response.read().decode(errors="replace")
    except OSError:
        return {}
    finally:
        conn.close()
    if response.status != 200:
        return {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            samples[name] = float(value)
        except ValueError:
            continue
    return samples


# --------------------------------------------------------------------------- /proc


def _pids_of_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the CLI could fork; uvicorn with one worker does not)."""
    pids = [pid]
    index = 0
    while index < len(pids):
        current = pids[index]
        index += 1
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                pids.extend(int(child) for child in children)
        except OSError:
            continue
    return pids


def _status_kib(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process tree so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for each in _pids_of_tree(pid):
        try:
            stat = Path(f"/proc/{each}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def core_times(cores: Sequence[int]) -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies per core, from /proc/stat."""
    result: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name = line.split(" ", 1)[0]
        if not name.startswith("cpu") or name == "cpu":
            continue
        core = int(name[3:])
        if core not in cores:
            continue
        values = [int(v) for v in line.split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        result[core] = (sum(values) - idle, sum(values))
    return result


def core_busy_percent(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> dict[int, float]:
    busy: dict[int, float] = {}
    for core, (busy_after, total_after) in after.items():
        busy_before, total_before = before.get(core, (0, 0))
        span = total_after - total_before
        busy[core] = 100.0 * (busy_after - busy_before) / span if span else 0.0
    return busy


def peak_rss_kib(pid: int) -> int:
    """VmHWM (the kernel's own high-water mark of resident memory) over the tree."""
    return sum(_status_kib(each, "VmHWM") for each in _pids_of_tree(pid))


class RssSampler:
    """Samples VmRSS of a process tree in the background, keeping the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = sum(_status_kib(each, "VmRSS") for each in _pids_of_tree(self.pid))
            self.peak_kib = max(self.peak_kib, rss)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkRun:
    result: dict[str, Any]
    sending_done: bool
    wall_seconds: float
    returncode: int
    stdout: list[str] = field(default_factory=list)
    stderr: str = ""


def run_wrk(
    *,
    wrk: str,
    taskset: str,
    core: int,
    url: str,
    corpus: Path,
    connections: int,
    send_seconds: int,
    grace_seconds: int = 15,
    timeout_seconds: int = 10,
) -> WrkRun:
    """Run wrk with the delivery script and end it as soon as every answer is in.

    The script stops sending when the corpus is used up or after `send_seconds`,
    then waits for the answers still outstanding and prints a line; wrk would still
    sleep for its whole `-d`, so on that line it is sent SIGINT, which makes it stop
    and report at once. `-d` (`send_seconds` + `grace_seconds`) is only the hard
    bound for an app that stops answering.
    """
    command = [
        taskset, "-c", str(core), wrk,
        "-t1", f"-c{connections}", f"-d{send_seconds + grace_seconds}s",
        f"--timeout={timeout_seconds}s", "--latency",
        "-s", str(LUA_SCRIPT), url,
    ]  # fmt: skip
    env = {**os.environ, "BENCH_CORPUS": str(corpus), "BENCH_SEND_SECONDS": str(send_seconds)}
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stderr is not None
    lines: list[str] = []
    sending_done = threading.Event()
    stderr_parts: list[str] = []

    def read_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith(DONE_MARKER) and not sending_done.is_set():
                sending_done.set()
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)

    def read_stderr() -> None:
        assert process.stderr is not None
        stderr_parts.append(process.stderr.read())

    readers = [
        threading.Thread(target=read_stdout, daemon=True),
        threading.Thread(target=read_stderr, daemon=True),
    ]
    for reader in readers:
        reader.start()
    # Bounded: wrk stops itself after -d; init reads the corpus first, so allow slack.
    try:
        process.wait(timeout=send_seconds + grace_seconds + 120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise HarnessError("wrk did not finish in time and was killed") from None
    finally:
        for reader in readers:
            reader.join(timeout=10)
    wall = time.monotonic() - started
    stderr = "".join(stderr_parts)
    result_lines = [line for line in lines if line.startswith(RESULT_MARKER)]
    if not result_lines:
        raise HarnessError(
            f"wrk exited with {process.returncode} and no result line.\n"
            f"stdout:\n{chr(10).join(lines[-20:])}\nstderr:\n{stderr[-2000:]}"
        )
    result: dict[str, Any] = json.loads(result_lines[-1][len(RESULT_MARKER) :])
    return WrkRun(result, sending_done.is_set(), wall, process.returncode, lines, stderr)

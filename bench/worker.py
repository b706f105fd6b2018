"""Worker benchmark: drain throughput against a bare arq worker, and 200 -> handler latency.

    .venv/bin/python bench/worker.py [--events 20000] [--repeats 3] [--rate 500]
                                     [--latency-seconds 10] [--parts throughput,latency,forward]

Throughput: N jobs are enqueued, then one worker process (pinned to the worker core)
drains them in burst mode with no-op jobs; bare arq (`enqueue_job` + `Worker` with one
no-op function, pickle) and ours (`EventQueue.enqueue` of N distinct signed deliveries +
`handlers.worker.create_worker` with one no-op `on_any` handler) alternate `--repeats`
times (ABBA). Drain time is first no-op start -> last no-op end, taken inside the worker
by the same code for both (see `worker_drain.py`). `--builtins-drain` adds a third
worker: ours with the built-in handlers registered too.

Latency: the real `tiktok-webhooks serve` and `tiktok-webhooks worker` run, the worker
with WORKER_HANDLER_MODULES=bench.worker_handlers; deliveries are POSTed at `--rate` per
second for `--latency-seconds`, and latency = the handler's `time.time()` at its start
minus the client's `time.time()` when the 200 arrived.

Forwarding (`--parts forward`, see bench/worker_forward.py): events/s forwarded to a local
consumer against a bare httpx client posting the same bodies, and the built-in handlers'
drain rate with and without a destination.

Every process is private (own Redis on a free loopback port, own temp dir), pinned with
`taskset`, bounded in time, and stopped by its own pid, also on Ctrl-C or an error.
See bench/WORKER.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from harness import HarnessError, free_port, require_tools, tail

BENCH_DIR: Final = Path(__file__).resolve().parent
REPO_ROOT: Final = BENCH_DIR.parent
RESULTS_DIR: Final = BENCH_DIR / "results"
DRAIN_MARKER: Final = "BENCH_DRAIN_RESULT "
DRAIN_COMMAND = ["-m", "bench.worker_drain"]  # run with the repo root on PYTHONPATH
CLIENT_KEY: Final = "benchworkerclientkey"
# Throw-away credentials for the private benchmark Redis and receiver; never real ones.
CLIENT_SECRET: Final = "bench-worker-secret-0123456789abcdef0123456789"
STARTS_KEY: Final = "bench:handler-starts"  # = bench.worker_handlers.STARTS_KEY
DLQ_INDEX: Final = "tiktok:dlq:index"
ENQUEUE_CHUNK: Final = 500
THROUGHPUT_TARGET: Final = 0.9
LATENCY_TARGET_MS: Final = 100.0
# The event mix of the deliveries (round robin); `content` is the contract's example.
EVENTS: Final = (
    "video.publish.completed",
    "post.publish.complete",
    "post.publish.publicly_available",
    "post.publish.failed",
    "video.upload.failed",
    "post.publish.inbox_delivered",
    "authorization.removed",
)


class BenchError(Exception):
    """The benchmark itself could not run (a tool is missing, a process died...)."""


def say(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- processes


class Processes:
    """Every process the benchmark started; `stop_all` ends each by its own pid."""

    def __init__(self) -> None:
        self._running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, command: Sequence[str], *, env: Mapping[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            process = subprocess.Popen(
                list(command),
                env=dict(env),
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._running.append((name, process))
        return process

    def stop(self, process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self._running = [(n, p) for n, p in self._running if p is not process]

    def stop_all(self) -> None:
        for _, process in reversed(list(self._running)):
            with contextlib.suppress(Exception):
                self.stop(process, grace=5.0)


def start_redis(
    procs: Processes, tools: dict[str, str], core: int, workdir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    rdir = workdir / "redis"
    rdir.mkdir()
    command = [
        tools["taskset"], "-c", str(core), tools["redis-server"],
        "--port", str(port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no",
        "--dir", str(rdir), "--logfile", str(rdir / "redis.log"),
    ]  # fmt: skip
    process = procs.start("redis-server", command, env=os.environ, log=rdir / "stdout.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"redis-server exited:\n{tail(rdir / 'redis.log')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"redis-server did not answer on port {port}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc (0.0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_times() -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies per core, from /proc/stat."""
    out: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values]
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
            out[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return out


def busy_percent(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> dict[str, float]:
    out = {}
    for core, (busy1, total1) in after.items():
        busy0, total0 = before.get(core, (busy1, total1))
        out[str(core)] = round(100.0 * (busy1 - busy0) / max(1, total1 - total0), 1)
    return out


# --------------------------------------------------------------------------- deliveries


def make_deliveries(n: int, tag: str) -> list[tuple[str, bytes, str]]:
    """(user_openid, body, dedupe_key) of `n` distinct deliveries, built like TikTok's."""
    from receiver.ingest.delivery import build_body
    from receiver.ingest.events import decode_body
    from receiver.ingest.examples import EXAMPLE_CONTENT

    now = int(time.time())
    out = []
    for i in range(n):
        event = EVENTS[i % len(EVENTS)]
        openid = f"act.bench{tag}.{i}"
        body = build_body(
            client_key=CLIENT_KEY,
            event=event,
            content=EXAMPLE_CONTENT[event],
            user_openid=openid,
            create_time=now,
        )
        out.append((openid, body, decode_body(body).dedupe_key))
    return out


# --------------------------------------------------------------------------- throughput


async def redis_client(url: str) -> Any:
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(url)


async def flush(url: str) -> None:
    client = await redis_client(url)
    try:
        await client.flushall()
    finally:
        await client.aclose()


async def enqueue_bare(url: str, bodies: Sequence[bytes]) -> float:
    """arq's own `enqueue_job` of the no-op (pickle), concurrently in chunks."""
    from arq.connections import RedisSettings, create_pool

    pool = await create_pool(RedisSettings.from_dsn(url))
    started = time.perf_counter()
    try:
        for lo in range(0, len(bodies), ENQUEUE_CHUNK):
            jobs = await asyncio.gather(
                *(pool.enqueue_job("noop", body) for body in bodies[lo : lo + ENQUEUE_CHUNK])
            )
            if any(job is None for job in jobs):
                raise BenchError("arq refused a job (duplicate job id?)")
    finally:
        await pool.aclose()
    return time.perf_counter() - started


async def enqueue_ours(
    url: str, settings: Any, deliveries: Sequence[tuple[str, bytes, str]]
) -> float:
    """The receiver's enqueue path: `EventQueue.enqueue`, many concurrent calls per batch."""
    from receiver.ingest.enqueue import EventQueue

    client = await redis_client(url)
    queue = EventQueue(
        client,
        queue_name=settings.queue_name,
        dedupe_ttl_seconds=settings.webhook_dedupe_ttl_seconds,
        job_expires_seconds=settings.job_expires_seconds,
    )
    started = time.perf_counter()
    try:
        await queue.load_script()
        for lo in range(0, len(deliveries), ENQUEUE_CHUNK):
            chunk = deliveries[lo : lo + ENQUEUE_CHUNK]
            fresh = await asyncio.gather(*(queue.enqueue(key, body) for _, body, key in chunk))
            if not all(fresh):
                raise BenchError("a delivery was taken for a duplicate")
        await queue.aclose()
    finally:
        await client.aclose()
    return time.perf_counter() - started


async def queue_state(url: str, queue_name: str) -> dict[str, int]:
    client = await redis_client(url)
    try:
        job_keys = 0
        async for _ in client.scan_iter(match="arq:job:*", count=1000):
            job_keys += 1
        return {
            "queued": int(await client.zcard(queue_name)),
            "job_keys": job_keys,
            "dead_letters": int(await client.zcard(DLQ_INDEX)),
        }
    finally:
        await client.aclose()


def command_counts(url: str) -> dict[str, int]:
    """Redis's own count of calls per command (INFO commandstats), e.g. {"zrangebyscore": 12}."""
    import redis

    with redis.Redis.from_url(url) as client:
        stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def run_drain(
    kind: str,
    *,
    args: argparse.Namespace,
    tools: dict[str, str],
    env: Mapping[str, str],
    redis_pid: int,
    workdir: Path,
    label: str,
) -> dict[str, Any]:
    """Run `bench/worker_drain.py` pinned to the worker core; return its result."""
    command = [
        tools["taskset"], "-c", str(args.worker_core), sys.executable, *DRAIN_COMMAND,
        kind, "--redis-url", env["REDIS_URL"], "--expect", str(args.events),
        "--poll-delay", str(args.poll_delay), "--max-jobs", str(args.max_jobs),
    ]  # fmt: skip
    if args.queue_read_limit:
        command += ["--queue-read-limit", str(args.queue_read_limit)]
    if args.uvloop:
        command.append("--uvloop")
    if args.profile:
        command += ["--profile", str(workdir / f"{label}.prof")]
    log = workdir / f"{label}.log"
    calls0 = command_counts(env["REDIS_URL"])
    redis_cpu0, cores0 = cpu_seconds(redis_pid), core_times()
    with log.open("wb") as err:
        try:
            done = subprocess.run(
                command,
                env=dict(env),
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                timeout=args.drain_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            # subprocess.run kills the child (its own pid) before raising.
            raise BenchError(
                f"{kind} worker did not drain within {args.drain_timeout}s:\n{tail(log)}"
            ) from None
    redis_cpu = cpu_seconds(redis_pid) - redis_cpu0
    cores = busy_percent(cores0, core_times())
    calls1 = command_counts(env["REDIS_URL"])
    # Redis commands the worker sent per job (a Lua script's own calls count too).
    per_job = {
        name: round((calls1[name] - calls0.get(name, 0)) / args.events, 2)
        for name in sorted(calls1)
        if calls1[name] - calls0.get(name, 0) >= args.events / 100
    }
    lines = [
        line
        for line in done.stdout.decode(errors="replace").splitlines()
        if line.startswith(DRAIN_MARKER)
    ]
    if done.returncode != 0 or not lines:
        raise BenchError(f"{kind} worker exited with {done.returncode}:\n{tail(log)}")
    result: dict[str, Any] = json.loads(lines[-1][len(DRAIN_MARKER) :])
    drain = result["drain_seconds"]
    result["jobs_per_second"] = (args.events - 1) / drain if drain else None
    result["worker_cpu_percent"] = round(100.0 * result["cpu_seconds"] / result["main_seconds"], 1)
    result["redis_cpu_seconds"] = round(redis_cpu, 3)
    result["core_busy_percent"] = cores
    result["redis_commands_per_job"] = per_job
    result["redis_commands_per_job_total"] = round(sum(per_job.values()), 1)
    result["worker_cpu_us_per_job"] = round(1e6 * result["cpu_seconds"] / args.events)
    return result


def throughput(
    args: argparse.Namespace,
    tools: dict[str, str],
    env: Mapping[str, str],
    redis_pid: int,
    settings: Any,
    workdir: Path,
) -> dict[str, Any]:
    url = env["REDIS_URL"]
    n = args.events
    kinds = ["bare", "ours", *(["builtins"] if args.builtins_drain else [])]
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for rep in range(1, args.repeats + 1):
        # ABBA order, so a drift in the machine's speed does not favour one side.
        for kind in kinds if rep % 2 else kinds[::-1]:
            asyncio.run(flush(url))
            deliveries = make_deliveries(n, f"{os.getpid():x}r{rep}")
            if kind == "bare":
                seconds = asyncio.run(enqueue_bare(url, [body for _, body, _ in deliveries]))
                how = "arq enqueue_job"
            else:
                seconds = asyncio.run(enqueue_ours(url, settings, deliveries))
                how = "EventQueue.enqueue"
            before = asyncio.run(queue_state(url, settings.queue_name))
            if before["queued"] != n:
                raise BenchError(f"{kind}: {before['queued']} jobs queued, expected {n}")
            result = run_drain(
                kind,
                args=args,
                tools=tools,
                env=env,
                redis_pid=redis_pid,
                workdir=workdir,
                label=f"drain-{kind}-{rep}",
            )
            after = asyncio.run(queue_state(url, settings.queue_name))
            result["enqueue_seconds"] = round(seconds, 3)
            result["enqueued_per_second"] = round(n / seconds)
            result["after"] = after
            problems = []
            if result["noop_calls"] != n:
                problems.append(f"no-op ran {result['noop_calls']} times, expected {n}")
            # The built-in handlers enqueue follow-up jobs (fetches) of their own: those
            # complete too, on top of the N events.
            complete_ok = (
                result["jobs_complete"] >= n if kind == "builtins" else result["jobs_complete"] == n
            )
            if not complete_ok or result["jobs_failed"] or result["jobs_retried"]:
                problems.append(
                    f"jobs complete/failed/retried = {result['jobs_complete']}/"
                    f"{result['jobs_failed']}/{result['jobs_retried']}"
                )
            if after["queued"] or after["job_keys"] or after["dead_letters"]:
                problems.append(f"left in Redis: {after}")
            result["problems"] = problems
            runs[kind].append(result)
            say(
                f"  [{rep}/{args.repeats}] {kind:<8}  enqueued {n:,} via {how} in {seconds:.2f}s"
                f" | drained {result['noop_calls']:,} in {result['drain_seconds']:.3f}s"
                f" = {result['jobs_per_second']:,.0f} jobs/s"
                f" | worker CPU {result['worker_cpu_percent']:.0f}%"
                f" ({result['worker_cpu_us_per_job']} us/job, {result['function_us_per_job']:.0f}"
                " in the job function)"
                f", {result['redis_commands_per_job_total']:g} Redis commands/job"
                f", Redis CPU {result['redis_cpu_seconds']:.2f}s"
                f", cores busy {result['core_busy_percent']}"
                + (f" | PROBLEMS: {'; '.join(problems)}" if problems else "")
            )
    asyncio.run(flush(url))

    def summary(kind: str) -> dict[str, Any]:
        rates = [r["jobs_per_second"] for r in runs[kind]]
        mains = [r["main_seconds"] for r in runs[kind]]
        return {
            "jobs_per_second_median": statistics.median(rates),
            "jobs_per_second_best": max(rates),
            "jobs_per_second_all": [round(r) for r in rates],
            "main_seconds_median": statistics.median(mains),
            "startup_seconds_median": statistics.median(r["startup_seconds"] for r in runs[kind]),
            "all_ran": all(not r["problems"] for r in runs[kind]),
        }

    out: dict[str, Any] = {kind: summary(kind) for kind in kinds}
    out["runs"] = runs
    out["ratio"] = out["ours"]["jobs_per_second_median"] / out["bare"]["jobs_per_second_median"]
    # Cross-check, method 2: Worker.main() wall time minus each worker's own start-up
    # (connect + on_startup, up to the first job start), medians.
    out["ratio_main_minus_startup"] = (
        out["bare"]["main_seconds_median"] - out["bare"]["startup_seconds_median"]
    ) / (out["ours"]["main_seconds_median"] - out["ours"]["startup_seconds_median"])
    return out


# --------------------------------------------------------------------------- latency


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def wait_until(check: Any, timeout: float, what: str, logs: Sequence[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise BenchError(f"{what} within {timeout:.0f}s:\n" + "\n".join(tail(p) for p in logs))


class RawHttpClient:
    """A minimal HTTP/1.1 keep-alive client: pre-built requests, one in flight per connection.

    httpx costs about 2 ms of CPU per request here, which on the shared load core (with
    Redis) cannot keep a paced 500/s and delays the recorded arrival of the 200s; this
    costs about a tenth of that. `--client httpx` uses httpx instead.
    """

    IDLE_SECONDS: Final = 2.0  # well under uvicorn's 5 s keep-alive timeout

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []

    def request_bytes(self, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head += [f"Content-Length: {len(body)}", "", ""]
        return "\r\n".join(head).encode() + body

    def _reusable(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        now = time.monotonic()
        while self._idle:
            since, reader, writer = self._idle.pop()
            if now - since < self.IDLE_SECONDS and not reader.at_eof():
                return reader, writer
            writer.close()
        return None

    async def post(self, raw: bytes) -> int:
        """Send one pre-built request; return the status code."""
        async with asyncio.timeout(self.timeout):
            conn = self._reusable()
            if conn is not None:
                try:
                    return await self._exchange(conn, raw)
                except (ConnectionError, asyncio.IncompleteReadError):
                    pass  # the server closed a kept-alive connection: once more, on a new one
            conn = await asyncio.open_connection(self.host, self.port)
            return await self._exchange(conn, raw)

    async def _exchange(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], raw: bytes
    ) -> int:
        reader, writer = conn
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if b"connection: close" in head.lower():
            writer.close()
        else:
            self._idle.append((time.monotonic(), reader, writer))
        return status

    async def aclose(self) -> None:
        for _, _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def send_paced(
    base: str,
    deliveries: Sequence[tuple[str, bytes, dict[str, str]]],
    rate: float,
    *,
    client_kind: str,
    max_in_flight: int,
    request_timeout: float,
) -> dict[str, Any]:
    """POST each delivery once, the i-th at start + i/rate; record when each 200 arrived."""
    import httpx

    arrived: dict[str, float] = {}
    round_trips: list[float] = []
    failures: dict[str, int] = {}
    lags: list[float] = []
    in_flight = asyncio.Semaphore(max_in_flight)
    loop = asyncio.get_running_loop()
    host, port = base.removeprefix("http://").split(":")
    raw_client = RawHttpClient(host, int(port), request_timeout)
    http_client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight),
        timeout=request_timeout,
    )
    path = "/webhooks/tiktok"

    async def send(openid: str, request: Any) -> None:
        try:
            sent = time.perf_counter()
            if client_kind == "raw":
                status = await raw_client.post(request)
            else:
                body, headers = request
                status = (
                    await http_client.post(base + path, content=body, headers=headers)
                ).status_code
            now = time.time()
            if status == 200:
                arrived[openid] = now
                round_trips.append(time.perf_counter() - sent)
            else:
                failures[str(status)] = failures.get(str(status), 0) + 1
        except (
            OSError,
            TimeoutError,
            ValueError,
            asyncio.IncompleteReadError,
            httpx.HTTPError,
        ) as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
        finally:
            in_flight.release()

    requests = [
        (o, raw_client.request_bytes(path, b, h) if client_kind == "raw" else (b, h))
        for o, b, h in deliveries
    ]
    tasks: list[asyncio.Task[None]] = []
    cpu0 = time.process_time()
    try:
        start = loop.time() + 0.05
        for i, (openid, request) in enumerate(requests):
            due = start + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await in_flight.acquire()
            lags.append(loop.time() - due)
            tasks.append(asyncio.ensure_future(send(openid, request)))
        sending = loop.time() - start
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=request_timeout + 5)
    finally:
        for task in tasks:
            task.cancel()
        await raw_client.aclose()
        await http_client.aclose()
    cpu = time.process_time() - cpu0
    lags.sort()
    round_trips.sort()
    return {
        "arrived": arrived,
        "failures": failures,
        "client": client_kind,
        "client_cpu_seconds": round(cpu, 2),
        "send_seconds": sending,
        "offered_rate": len(deliveries) / sending if sending > 0 else None,
        "send_lag_ms_p99": 1000 * percentile(lags, 0.99) if lags else None,
        "send_lag_ms_max": 1000 * lags[-1] if lags else None,
        "round_trip_ms_p50": 1000 * percentile(round_trips, 0.5) if round_trips else None,
        "round_trip_ms_p99": 1000 * percentile(round_trips, 0.99) if round_trips else None,
    }


def signed(
    deliveries: Sequence[tuple[str, bytes, str]],
) -> list[tuple[str, bytes, dict[str, str]]]:
    from receiver.ingest.delivery import signed_headers

    return [(o, body, signed_headers(CLIENT_SECRET, body)) for o, body, _ in deliveries]


async def wait_for_starts(url: str, expected: int, seconds: float) -> dict[str, float]:
    """The handler starts recorded so far, once `expected` are there or `seconds` passed."""
    client = await redis_client(url)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while await client.hlen(STARTS_KEY) < expected:  # noqa: ASYNC110 (polls Redis)
                    await asyncio.sleep(0.1)
        raw = await client.hgetall(STARTS_KEY)
        return {k.decode(): float(v) for k, v in raw.items()}
    finally:
        await client.aclose()


def latency(
    args: argparse.Namespace,
    tools: dict[str, str],
    env: Mapping[str, str],
    procs: Processes,
    settings: Any,
    workdir: Path,
) -> dict[str, Any]:
    import httpx

    url = env["REDIS_URL"]
    asyncio.run(flush(url))
    bin_dir = Path(sys.executable).parent
    cli = [str(bin_dir / "tiktok-webhooks")]
    if not Path(cli[0]).exists():
        cli = [sys.executable, "-m", "receiver.cli"]
    port = free_port()
    rlog, wlog = workdir / "receiver.log", workdir / "worker.log"
    receiver = procs.start(
        "receiver",
        [tools["taskset"], "-c", str(args.receiver_core), *cli, "serve",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        log=rlog,
    )  # fmt: skip
    modules = ",".join(["bench.worker_handlers", *args.extra_handler_modules])
    worker_env = {**env, "WORKER_HANDLER_MODULES": modules}
    if args.latency_handlers == "bench-only":
        worker_env["BENCH_WORKER_HANDLERS_ONLY"] = "1"
    worker = procs.start(
        "worker",
        [tools["taskset"], "-c", str(args.worker_core), *cli, "worker",
         "--metrics-port", "0"],
        env=worker_env,
        log=wlog,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def receiver_ready() -> bool:
        if receiver.poll() is not None:
            raise BenchError(f"receiver exited with {receiver.returncode}:\n{tail(rlog)}")
        try:
            return httpx.get(base + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def worker_ready() -> bool:
        if worker.poll() is not None:
            raise BenchError(f"worker exited with {worker.returncode}:\n{tail(wlog)}")
        import redis

        with redis.Redis.from_url(url) as client:
            return bool(client.exists(settings.queue_name + ":health-check"))

    wait_until(receiver_ready, 30, "the receiver did not become ready", [rlog])
    wait_until(worker_ready, 30, "the worker did not report in", [wlog])
    say(
        f"  receiver pid {receiver.pid} on core {args.receiver_core}, worker pid {worker.pid} on "
        f"core {args.worker_core}, client + Redis on core {args.load_core}"
    )
    tag = f"{os.getpid():x}"
    n_warm = int(args.rate * args.warmup_seconds)
    n = int(args.rate * args.latency_seconds)
    bound = args.latency_seconds + args.warmup_seconds + 60

    async def run() -> tuple[dict[str, Any], dict[str, float], int]:
        if n_warm:
            warm = signed(make_deliveries(n_warm, tag + "w"))
            sent = await send_paced(
                base, warm, args.rate, client_kind=args.client, max_in_flight=64, request_timeout=10
            )
            await wait_for_starts(url, len(sent["arrived"]), 15)
            client = await redis_client(url)
            try:
                await client.delete(STARTS_KEY)
            finally:
                await client.aclose()
        measured = signed(make_deliveries(n, tag + "m"))
        calls0 = command_counts(url)
        cpu0 = {"receiver": cpu_seconds(receiver.pid), "worker": cpu_seconds(worker.pid)}
        wall0 = time.perf_counter()
        sent = await send_paced(
            base, measured, args.rate, client_kind=args.client, max_in_flight=64, request_timeout=10
        )
        starts = await wait_for_starts(url, len(sent["arrived"]), 30)
        # From the first request to the last handler start (or the wait's end).
        wall = time.perf_counter() - wall0
        cpu = {
            "receiver": cpu_seconds(receiver.pid) - cpu0["receiver"],
            "worker": cpu_seconds(worker.pid) - cpu0["worker"],
        }
        sent["cpu_seconds"] = {k: round(v, 2) for k, v in cpu.items()}
        sent["cpu_us_per_delivery"] = {k: round(1e6 * v / n) for k, v in cpu.items()}
        sent["cpu_percent"] = {k: round(100 * v / wall, 1) for k, v in cpu.items()}
        calls1 = command_counts(url)
        # Receiver + worker + this benchmark's HLEN polls; the Lua enqueue's own calls count.
        sent["redis_commands_per_delivery"] = {
            name: round((calls1[name] - calls0.get(name, 0)) / n, 2)
            for name in sorted(calls1)
            if calls1[name] - calls0.get(name, 0) >= n / 100
        }
        return sent, starts, n

    say(
        f"  warm-up {n_warm:,} deliveries, then {n:,} at {args.rate:g}/s "
        f"({args.latency_seconds:g}s)..."
    )
    cores0 = core_times()
    # The client runs on uvloop (a dependency of uvicorn[standard]): less CPU per request.
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        sent, starts, n = runner.run(asyncio.wait_for(run(), timeout=bound))
    cores = busy_percent(cores0, core_times())
    arrived: dict[str, float] = sent.pop("arrived")
    # In the order the 200s arrived: (seconds since the first 200, latency ms).
    series = sorted((t, 1000 * (starts[o] - t)) for o, t in arrived.items() if o in starts)
    latencies = sorted(ms for _, ms in series)
    missing = [o for o in arrived if o not in starts]
    state = asyncio.run(queue_state(url, settings.queue_name))
    procs.stop(worker, grace=30)
    procs.stop(receiver, grace=30)
    asyncio.run(flush(url))
    out: dict[str, Any] = {
        "sent": n,
        "answered_200": len(arrived),
        "handler_started": len(latencies),
        "missing_handler_start": len(missing),
        "after": state,
        **sent,
        "core_busy_percent": cores,
        "series": [[round(t - series[0][0], 4), round(ms, 2)] for t, ms in series],
    }
    if len(series) >= 10:
        # A worker that cannot keep up shows as latency growing through the run.
        fifth = len(series) // 5
        first = sorted(ms for _, ms in series[:fifth])
        last = sorted(ms for _, ms in series[-fifth:])
        out["p50_first_fifth_ms"] = percentile(first, 0.5)
        out["p50_last_fifth_ms"] = percentile(last, 0.5)
    if latencies:
        out.update(
            {
                "latency_ms": {
                    "p50": percentile(latencies, 0.50),
                    "p90": percentile(latencies, 0.90),
                    "p99": percentile(latencies, 0.99),
                    "max": latencies[-1],
                    "min": latencies[0],
                    "mean": statistics.fmean(latencies),
                }
            }
        )
    return out


# --------------------------------------------------------------------------- forwarding

FORWARD_MARKER: Final = "BENCH_FORWARD_RESULT "
FORWARD_TARGET: Final = 0.7
BUILTINS_SLOWDOWN_LIMIT: Final = 0.9


def run_forward_child(
    mode: list[str],
    *,
    args: argparse.Namespace,
    tools: dict[str, str],
    env: Mapping[str, str],
    log: Path,
) -> dict[str, Any]:
    """`bench/worker_forward.py MODE...` pinned to the worker core; its result line."""
    command = [tools["taskset"], "-c", str(args.worker_core), sys.executable,
               "-m", "bench.worker_forward", *mode]  # fmt: skip
    with log.open("wb") as err:
        try:
            done = subprocess.run(
                command, env=dict(env), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=err,
                stdin=subprocess.DEVNULL, timeout=args.drain_timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise BenchError(
                f"{mode[0]} did not finish in {args.drain_timeout}s:\n{tail(log)}"
            ) from None
    lines = [
        line for line in done.stdout.decode(errors="replace").splitlines()
        if line.startswith(FORWARD_MARKER)
    ]  # fmt: skip
    if done.returncode != 0 or not lines:
        raise BenchError(f"{mode[0]} exited with {done.returncode}:\n{tail(log)}")
    result: dict[str, Any] = json.loads(lines[-1][len(FORWARD_MARKER) :])
    return result


def consumer_count(url: str) -> int:
    import httpx

    return int(httpx.get(url, timeout=5).text)


async def forward_counts(redis_url: str, settings: Any) -> dict[str, Any]:
    from handlers.forwarding.store import DeliveryStore

    client = await redis_client(redis_url)
    try:
        return await DeliveryStore(client).counts("default")
    finally:
        await client.aclose()


def forwarding(
    args: argparse.Namespace,
    tools: dict[str, str],
    env: Mapping[str, str],
    procs: Processes,
    workdir: Path,
) -> dict[str, Any]:
    from handlers.forwarding.payload import build_payload
    from receiver.forward_config import generate_secret
    from receiver.ingest.events import decode_body
    from receiver.settings import load_settings

    redis_url = env["REDIS_URL"]
    n = args.forward_events
    port = free_port()
    procs.start(
        "consumer",
        [tools["taskset"], "-c", str(args.load_core), sys.executable, "-m",
         "bench.worker_forward", "consumer", "--port", str(port)],
        env=env, log=workdir / "consumer.log",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def consumer_up() -> bool:
        try:
            consumer_count(base)
            return True
        except Exception:
            return False

    wait_until(consumer_up, 20, "the consumer did not answer", [workdir / "consumer.log"])
    concurrency = args.forward_concurrency
    config = workdir / "forward.toml"
    config.write_text(
        f'[[forward]]\nname = "default"\nurl = "{base}/hook"\n'
        f'secrets = ["{generate_secret()}"]\nconcurrency = {concurrency}\n'
    )
    fenv = {**env, "TIKTOK_WEBHOOKS_ENV": "development"}
    fsettings = load_settings(fenv, config)
    runs: dict[str, list[dict[str, Any]]] = {
        "bare": [], "forward": [], "builtins": [], "builtins_forward": []
    }  # fmt: skip
    for rep in range(1, args.repeats + 1):
        deliveries = make_deliveries(n, f"{os.getpid():x}f{rep}")
        bodies = [build_payload(decode_body(body).envelope) for _, body, _ in deliveries]
        bodies_file = workdir / "bodies.json"
        bodies_file.write_text(json.dumps([b.decode() for b in bodies]))
        before = consumer_count(base)
        bare = run_forward_child(
            ["bare", "--url", f"{base}/hook", "--bodies", str(bodies_file),
             "--concurrency", str(concurrency)],
            args=args, tools=tools, env=env, log=workdir / f"bare-{rep}.log",
        )  # fmt: skip
        bare["received"] = consumer_count(base) - before
        runs["bare"].append(bare)

        asyncio.run(flush(redis_url))
        asyncio.run(enqueue_ours(redis_url, fsettings, deliveries))
        before = consumer_count(base)
        calls0 = command_counts(redis_url)
        fwd = run_forward_child(
            ["drain", "forward", "--expect", str(n), "--config", str(config)],
            args=args, tools=tools, env=fenv, log=workdir / f"forward-{rep}.log",
        )  # fmt: skip
        fwd["received"] = consumer_count(base) - before
        calls1 = command_counts(redis_url)
        # Redis's own counts: commands run inside scripts count too; evalsha = script calls.
        fwd["redis_commands_per_event"] = (sum(calls1.values()) - sum(calls0.values())) / n
        fwd["script_calls_per_event"] = (calls1.get("evalsha", 0) - calls0.get("evalsha", 0)) / n
        fwd["counts"] = asyncio.run(forward_counts(redis_url, fsettings))
        fwd["per_second"] = n / fwd["forward_seconds"] if fwd["forward_seconds"] else 0.0
        fwd["problems"] = [
            problem
            for problem, bad in (
                (f"consumer got {fwd['received']} of {n}", fwd["received"] != n),
                (f"undelivered: {fwd['counts']}", fwd["counts"]["pending"] + fwd["counts"]["dead"]),
                (f"{fwd['jobs_failed']} jobs failed", fwd["jobs_failed"]),
            )
            if bad
        ]  # fmt: skip
        runs["forward"].append(fwd)

        pair = [("builtins", []), ("builtins_forward", ["--config", str(config)])]
        # ABBA across repeats: a drift in the machine's speed favours neither.
        for kind, extra in pair if rep % 2 else reversed(pair):
            asyncio.run(flush(redis_url))
            asyncio.run(enqueue_ours(redis_url, fsettings, deliveries))
            drained = run_forward_child(
                ["drain", "builtins", "--expect", str(n), *extra],
                args=args, tools=tools, env=fenv, log=workdir / f"{kind}-{rep}.log",
            )  # fmt: skip
            drained["per_second"] = n / drained["event_drain_seconds"]
            runs[kind].append(drained)
        say(
            f"  [{rep}/{args.repeats}] bare httpx {bare['per_second']:,.0f}/s"
            f" ({bare['statuses']}) | forwarded {fwd['per_second']:,.0f}/s"
            f" ({fwd['received']:,} received, {fwd['counts']}, worker CPU"
            f" {1e6 * fwd['cpu_seconds'] / n:.0f} us/event, Redis commands"
            f" {fwd['redis_commands_per_event']:.1f}/event of which script calls"
            f" {fwd['script_calls_per_event']:.2f})"
            f" | built-ins drain {runs['builtins'][-1]['per_second']:,.0f}/s,"
            f" with forwarding {runs['builtins_forward'][-1]['per_second']:,.0f}/s"
            + (f" | PROBLEMS: {'; '.join(fwd['problems'])}" if fwd["problems"] else "")
        )
    asyncio.run(flush(redis_url))

    def median(kind: str) -> float:
        return statistics.median(r["per_second"] for r in runs[kind])

    out: dict[str, Any] = {kind: {"per_second_median": median(kind),
                                  "per_second_all": [round(r["per_second"]) for r in runs[kind]]}
                           for kind in runs}  # fmt: skip
    out["events"] = n
    out["concurrency"] = concurrency
    out["ratio"] = median("forward") / median("bare")
    out["builtins_ratio"] = median("builtins_forward") / median("builtins")
    out["all_delivered"] = all(not r["problems"] for r in runs["forward"])
    out["runs"] = runs
    return out


# --------------------------------------------------------------------------- main


def versions() -> dict[str, str]:
    out = {}
    for name in ("tiktok-webhooks", "arq", "redis", "hiredis", "msgspec", "uvicorn", "httpx"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


@contextlib.contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGTERM/SIGHUP raise KeyboardInterrupt, so the cleanup in `finally` runs."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Worker benchmark: drain throughput vs bare arq, and 200 -> handler latency.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--events", type=int, default=20_000, help="jobs per drain")
    p.add_argument("--repeats", type=int, default=3, help="bare/ours drains, alternating")
    p.add_argument("--rate", type=float, default=500, help="deliveries/s in the latency part")
    p.add_argument("--latency-seconds", type=float, default=10, help="measured sending time")
    p.add_argument("--warmup-seconds", type=float, default=1, help="latency warm-up, not counted")
    p.add_argument(
        "--client", choices=["raw", "httpx"], default="raw", help="HTTP client of the latency part"
    )
    p.add_argument("--parts", default="throughput,latency", help="which parts to run")
    p.add_argument(
        "--forward-events", type=int, default=5_000, help="events per run of the forward part"
    )
    p.add_argument(
        "--forward-concurrency",
        type=int,
        default=10,
        help="the destination's `concurrency`, and the bare client's requests in flight",
    )
    p.add_argument(
        "--poll-delay", type=float, help="every worker (None: WORKER_POLL_DELAY_SECONDS or 0.05)"
    )
    p.add_argument("--max-jobs", type=int, help="every worker (None: WORKER_MAX_JOBS or 50)")
    p.add_argument("--queue-read-limit", type=int, help="drains (None: arq's)")
    p.add_argument("--uvloop", action="store_true", help="drains on uvloop (experiment)")
    p.add_argument(
        "--builtins-drain",
        action="store_true",
        help="also drain with the built-in handlers registered (+ the no-op), for their cost",
    )
    p.add_argument(
        "--extra-handler-modules",
        default="",
        help="comma-separated modules (importable with the repo root on PYTHONPATH) added to "
        "the latency worker's WORKER_HANDLER_MODULES, to measure with your own handlers",
    )
    p.add_argument(
        "--latency-handlers",
        choices=["all", "bench-only"],
        default="all",
        help="latency worker: built-ins + the bench handler (default), or the bench handler only",
    )
    p.add_argument("--profile", action="store_true", help="cProfile each drain into the workdir")
    p.add_argument("--worker-core", type=int, default=0, help="every worker (drains, latency)")
    p.add_argument("--receiver-core", type=int, default=0, help="the latency part's receiver")
    p.add_argument("--load-core", type=int, default=1, help="Redis, enqueue and the client")
    p.add_argument("--drain-timeout", type=float, default=300, help="seconds per drain, bound")
    p.add_argument("--keep-workdir", action="store_true", help="keep logs and profiles")
    p.add_argument("--fail-on-miss", action="store_true", help="exit 1 if a target is missed")
    args = p.parse_args(argv)
    args.parts = {part.strip() for part in args.parts.split(",") if part.strip()}
    if not args.parts <= {"throughput", "latency", "forward"}:
        p.error("--parts takes throughput, latency and/or forward")
    if args.events < 2 or args.repeats < 1 or args.rate <= 0 or args.latency_seconds <= 0:
        p.error("--events >= 2, --repeats >= 1, --rate > 0, --latency-seconds > 0")
    args.extra_handler_modules = [
        m.strip() for m in args.extra_handler_modules.split(",") if m.strip()
    ]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from receiver.settings import load_settings
    from receiver.vault.crypto import generate_key

    try:
        tools = require_tools(("redis-server", "taskset"))
    except HarnessError as exc:
        raise BenchError(str(exc)) from None
    cores = os.sched_getaffinity(0)
    needed = {args.worker_core, args.receiver_core, args.load_core}
    if not needed <= cores:
        raise BenchError(f"cores {sorted(needed)} needed, this process may use {sorted(cores)}")
    # The benchmark process itself (enqueue, HTTP client) runs on the load core.
    os.sched_setaffinity(0, {args.load_core})

    workdir = Path(tempfile.mkdtemp(prefix="worker-bench-"))
    procs = Processes()
    started = datetime.datetime.now(datetime.UTC)
    report: dict[str, Any] = {
        "benchmark": "worker",
        "created": started.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {k: sorted(v) if isinstance(v, set) else v for k, v in vars(args).items()},
        "machine": {
            "cpu_count": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg(),
            "versions": versions(),
        },
    }
    try:
        with interrupts_as_exceptions():
            redis_proc, redis_url = start_redis(procs, tools, args.load_core, workdir)
            env = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
                ),
                "REDIS_URL": redis_url,
                "TIKTOK_CLIENT_KEY": CLIENT_KEY,
                "TIKTOK_CLIENT_SECRET": CLIENT_SECRET,
                "TOKEN_ENCRYPTION_KEYS": generate_key(),
                "WEBHOOK_TOLERANCE_SECONDS": "300",
            }
            env.pop("WORKER_HANDLER_MODULES", None)
            if args.poll_delay is not None:
                env["WORKER_POLL_DELAY_SECONDS"] = str(args.poll_delay)
            if args.max_jobs is not None:
                env["WORKER_MAX_JOBS"] = str(args.max_jobs)
            settings = load_settings(env)
            args.poll_delay = settings.worker_poll_delay_seconds
            args.max_jobs = settings.worker_max_jobs
            report["config"].update(poll_delay=args.poll_delay, max_jobs=args.max_jobs)
            say(
                f"worker benchmark: Redis pid {redis_proc.pid} on core {args.load_core}, "
                f"poll_delay={args.poll_delay}s max_jobs={args.max_jobs}, "
                f"load average {os.getloadavg()[0]:.2f}"
            )
            if "throughput" in args.parts:
                say(
                    f"throughput: {args.events:,} no-op jobs per drain, one worker process on "
                    f"core {args.worker_core}, {args.repeats} x (bare arq, ours)"
                )
                t = throughput(args, tools, env, redis_proc.pid, settings, workdir)
                report["throughput"] = t
            if "latency" in args.parts:
                say(
                    f"latency: tiktok-webhooks serve + worker, {args.rate:g} deliveries/s for "
                    f"{args.latency_seconds:g}s"
                )
                report["latency"] = latency(args, tools, env, procs, settings, workdir)
            if "forward" in args.parts:
                say(
                    f"forward: {args.forward_events:,} events per run to a consumer answering "
                    f"200 at once, {args.repeats} x (bare httpx, forwarding, built-ins +/- "
                    "forwarding)"
                )
                report["forward"] = forwarding(args, tools, env, procs, workdir)
    except BenchError as exc:
        say(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        procs.stop_all()
        if args.keep_workdir or args.profile:
            say(f"workdir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    missed = print_report(report)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"worker-{started:%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    say(f"result: {path.relative_to(REPO_ROOT)}")
    return 1 if (missed and args.fail_on_miss) else 0


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_report(report: dict[str, Any]) -> bool:
    missed = False
    say("")
    t = report.get("throughput")
    if t:
        bare, ours = t["bare"], t["ours"]
        say(f"{'worker':<8} {'jobs/s median':>12} {'best':>8}  all runs        all ran")
        for name in ("bare", "ours", "builtins"):
            if name not in t:
                continue
            s = t[name]
            say(
                f"{name:<8} {s['jobs_per_second_median']:>12,.0f} "
                f"{s['jobs_per_second_best']:>8,.0f}  {s['jobs_per_second_all']!s:<15} "
                f"{'yes' if s['all_ran'] else 'NO'}"
            )
        ok = t["ratio"] >= THROUGHPUT_TARGET and ours["all_ran"] and bare["all_ran"]
        missed |= not ok
        say(
            f"drain throughput: ours / bare arq = {t['ratio']:.2f}x (target >= "
            f"{THROUGHPUT_TARGET}x) {verdict(ok)}   [cross-check, Worker.main() minus start-up: "
            f"{t['ratio_main_minus_startup']:.2f}x]"
        )
    lat = report.get("latency")
    if lat:
        ms = lat.get("latency_ms")
        say(
            f"latency, 200 -> handler start, {lat['offered_rate'] or 0:,.0f} deliveries/s offered:"
            f" {lat['handler_started']:,} of {lat['sent']:,} sent ({lat['answered_200']:,} "
            f"answered 200, {lat['missing_handler_start']} without a handler start)"
        )
        if ms:
            say(
                f"  p50 {ms['p50']:.1f} ms  p90 {ms['p90']:.1f} ms  p99 {ms['p99']:.1f} ms  "
                f"max {ms['max']:.1f} ms  (min {ms['min']:.1f} ms)"
            )
        ok = bool(ms) and ms["p99"] < LATENCY_TARGET_MS and lat["missing_handler_start"] == 0
        ok = ok and lat["answered_200"] == lat["sent"]
        missed |= not ok
        say(f"  p99 < {LATENCY_TARGET_MS:.0f} ms: {verdict(ok)}")
        if "p50_first_fifth_ms" in lat:
            first, last = lat["p50_first_fifth_ms"], lat["p50_last_fifth_ms"]
            behind = last > 2 * first + 50
            say(
                f"  p50 in the first fifth of the run {first:.1f} ms, in the last {last:.1f} ms"
                + ("  <- the worker fell behind (latency grew)" if behind else "")
            )
        say(
            f"  CPU per delivery: receiver {lat['cpu_us_per_delivery']['receiver']} us, worker "
            f"{lat['cpu_us_per_delivery']['worker']} us; busy: receiver "
            f"{lat['cpu_percent']['receiver']}%, worker {lat['cpu_percent']['worker']}%, cores "
            f"{lat['core_busy_percent']}"
        )
        say(
            f"  client ({lat['client']}): round trip p50 {lat['round_trip_ms_p50'] or 0:.2f} ms,"
            f" p99 {lat['round_trip_ms_p99'] or 0:.2f} ms; send lag p99 "
            f"{lat['send_lag_ms_p99'] or 0:.2f} ms; {lat['client_cpu_seconds']} s CPU; "
            f"failures {lat['failures'] or 'none'}"
        )
    fwd = report.get("forward")
    if fwd:
        ok = fwd["ratio"] >= FORWARD_TARGET and fwd["all_delivered"]
        missed |= not ok
        say(
            f"forwarding: {fwd['forward']['per_second_median']:,.0f} events/s forwarded vs "
            f"{fwd['bare']['per_second_median']:,.0f}/s bare httpx (same bodies, "
            f"{fwd['concurrency']} in flight) = {fwd['ratio']:.2f}x (target >= "
            f"{FORWARD_TARGET}x) {verdict(ok)}; all delivered: {fwd['all_delivered']}"
        )
        ok = fwd["builtins_ratio"] >= BUILTINS_SLOWDOWN_LIMIT
        missed |= not ok
        say(
            f"  built-in handlers' drain: {fwd['builtins']['per_second_median']:,.0f}/s without,"
            f" {fwd['builtins_forward']['per_second_median']:,.0f}/s with forwarding ="
            f" {fwd['builtins_ratio']:.2f}x (target >= {BUILTINS_SLOWDOWN_LIMIT}x) {verdict(ok)}"
        )
    la0, la1 = report["machine"]["loadavg_at_start"], report["machine"]["loadavg_at_end"]
    say(f"load average at start {la0[0]:.2f}, at end {la1[0]:.2f}")
    return missed


if __name__ == "__main__":
    sys.exit(main())

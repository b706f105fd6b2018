"""Ingest benchmark: the receiver against a bare Starlette app and a naive FastAPI app.

One command:

    .venv/bin/python bench/ingest.py [--deliveries 80000] [--connections 64]
                                     [--duration 10] [--apps receiver,bare,naive]

For each app, in the same run and the same way: start it pinned to the app core
(uvicorn, uvloop, httptools, no access log, one process), warm it up, then drive it
from the load core with wrk (one thread, 64 connections) over distinct, correctly
signed deliveries, each sent at most once. Print requests/s, p50/p99 latency, non-200
answers, peak RSS, and (for apps that enqueue) check every acknowledged delivery is in
Redis. The receiver is then judged against the targets, as ratios of this run.

See bench/README.md for what each number means and how to read a noisy run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import corpus
import redis
from console_operator import Operator
from harness import (
    BENCH_DIR,
    AppProcess,
    HarnessError,
    RedisServer,
    RssSampler,
    WrkRun,
    core_busy_percent,
    core_times,
    cpu_seconds,
    free_port,
    peak_rss_kib,
    require_tools,
    run_wrk,
    scrape_metrics,
)

PATH: Final = "/webhooks/tiktok"
# `console`: the receiver with CONSOLE_ENABLED (and so its recent-delivery index) and an
# operator loading the console's overview once a second during the run.
APPS: Final = ("receiver", "bare", "naive", "console")
DEFAULT_APPS: Final = ("receiver", "bare", "naive")
ENQUEUEING_APPS: Final = frozenset({"receiver", "naive", "console"})
CONSOLE_TOKEN: Final = "bench-console-token-" + "x" * 24
QUEUE_KEY: Final = "arq:queue"
JOB_PREFIX: Final = "arq:job:"
DEDUPE_PATTERN: Final = "tiktok:dedupe:*"
TOLERANCE_SECONDS: Final = 300
FSYNC_MODES: Final = ("off", "always", "everysec", "no")

# Targets for the receiver, as in the issue.
MIN_VS_BARE: Final = 0.4
MIN_VS_NAIVE: Final = 4.0
MAX_P99_MS: Final = 15.0
MAX_RSS_MB: Final = 150.0
MIN_DELIVERIES: Final = 10_000
# The console (index on, overview loaded every second) must leave ingest unchanged within
# the run-to-run noise of this shared machine.
MIN_CONSOLE_VS_RECEIVER: Final = 0.9

# Environment of the shell that must not leak into the apps' configuration.
_CONFIG_PREFIXES: Final = (
    "TIKTOK_", "WEBHOOK_", "REDIS_", "ARQ_", "JOB_", "TOKEN_", "OAUTH_", "HTTP_TIMEOUT",
    "ADMIN_TOKEN",
)  # fmt: skip

_started = time.monotonic()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - _started:6.1f}s] {message}", flush=True)


# --------------------------------------------------------------------------- results


@dataclass
class RedisCheck:
    queue_entries: int = 0  # ZCARD arq:queue
    jobs_present: int = 0  # queue entries whose arq:job:<id> exists
    jobs_absent: int = 0  # queue entries without their job
    deliveries_found: int = 0  # distinct deliveries of this run found inside jobs
    jobs_unidentified: int = 0  # jobs in which no delivery of this run was found
    found_but_never_sent: int = 0
    dedupe_keys: int = 0
    job_format: str = "-"
    used_memory_mb: float = 0.0
    settle_seconds: float = 0.0


@dataclass
class AppResult:
    app: str
    corpus: int = 0
    corpus_seconds: float = 0.0
    startup_seconds: float = 0.0
    stop_reason: str = ""
    sent: int = 0
    answered: int = 0
    unanswered: int = 0
    accepted: int = 0
    duplicate: int = 0
    other_200: int = 0
    non_200: int = 0
    non_200_statuses: dict[str, int] = field(default_factory=dict)
    non_200_samples: list[str] = field(default_factory=list)
    socket_errors: dict[str, int] = field(default_factory=dict)
    active_seconds: float = 0.0
    requests_per_second: float = 0.0
    wrk_requests_per_second: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    sampled_peak_rss_mb: float = 0.0
    app_cpu_percent: float = 0.0
    core_busy_percent: dict[str, float] = field(default_factory=dict)
    warmup: dict[str, Any] = field(default_factory=dict)
    app_metrics: dict[str, float] = field(default_factory=dict)
    redis: RedisCheck | None = None
    missing_min: int = 0
    missing_max: int = 0
    notes: list[str] = field(default_factory=list)
    console: dict[str, float] = field(default_factory=dict)
    cpu_us_per_delivery: dict[str, float] = field(default_factory=dict)

    @property
    def acked(self) -> int:
        return self.accepted + self.duplicate + self.other_200

    @property
    def failures(self) -> int:
        return self.non_200 + sum(self.socket_errors.values())


# --------------------------------------------------------------------------- apps


def app_command(app: str, port: int, core: int, taskset: str) -> list[str]:
    pinned = [taskset, "-c", str(core)]
    if app in ("receiver", "console"):
        script = Path(sys.executable).with_name("tiktok-webhooks")
        executable = str(script) if script.exists() else shutil.which("tiktok-webhooks")
        if executable is None:
            raise HarnessError(
                "`tiktok-webhooks` is not installed: run `.venv/bin/pip install -e '.[bench]'`"
            )
        # `serve` runs uvicorn with uvloop, httptools, no access log, one process.
        return [
            *pinned, executable, "serve",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ]  # fmt: skip
    module = {"bare": "bare_starlette:app", "naive": "naive_fastapi:app"}[app]
    return [
        *pinned, sys.executable, "-m", "uvicorn", module,
        "--app-dir", str(BENCH_DIR / "apps"),
        "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--workers", "1", "--log-level", "warning",
    ]  # fmt: skip


def app_env(redis_url: str, app: str = "receiver") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CONFIG_PREFIXES)}
    env.update(
        TIKTOK_CLIENT_KEY=corpus.CLIENT_KEY,
        TIKTOK_CLIENT_SECRET=corpus.CLIENT_SECRET,
        REDIS_URL=redis_url,
        WEBHOOK_TOLERANCE_SECONDS=str(TOLERANCE_SECONDS),
    )
    if app == "console":
        from receiver.vault.crypto import generate_key

        env.update(
            CONSOLE_ENABLED="1", CONSOLE_TOKEN=CONSOLE_TOKEN, TOKEN_ENCRYPTION_KEYS=generate_key()
        )
    return env


# --------------------------------------------------------------------------- redis


def wait_until_settled(client: redis.Redis, limit: float = 10.0) -> float:
    """Wait until the queue stops growing (requests in flight when wrk ended)."""
    started = time.monotonic()
    last = -1
    stable_since = started
    while time.monotonic() - started < limit:
        count = int(client.zcard(QUEUE_KEY))  # type: ignore[arg-type]
        now = time.monotonic()
        if count != last:
            last, stable_since = count, now
        elif now - stable_since >= 0.5:
            break
        time.sleep(0.1)
    return time.monotonic() - started


def _count_keys(client: redis.Redis, pattern: str) -> int:
    return sum(1 for _ in client.scan_iter(match=pattern, count=10_000))


def _job_format(job: bytes) -> str:
    if job.startswith(b"\x80"):
        return "pickle"
    if job[:1] in (b"{", b"["):
        return "json"
    if job and (0x80 <= job[0] <= 0x8F or job[0] in (0xDE, 0xDF)):
        return "msgpack"
    return "other"


def check_redis(client: redis.Redis, run_id: str, sent: int) -> tuple[RedisCheck, set[int]]:
    """Look up every queued job and find which deliveries of this run it holds."""
    check = RedisCheck(settle_seconds=wait_until_settled(client))
    ids: list[bytes] = client.zrange(QUEUE_KEY, 0, -1)  # type: ignore[assignment]
    check.queue_entries = len(ids)
    found: set[int] = set()
    wanted = run_id.encode()
    for start in range(0, len(ids), 2000):
        chunk = ids[start : start + 2000]
        pipe = client.pipeline(transaction=False)
        for job_id in chunk:
            pipe.get(JOB_PREFIX.encode() + job_id)
        for job in pipe.execute():
            if job is None:
                check.jobs_absent += 1
                continue
            check.jobs_present += 1
            if check.job_format == "-":
                check.job_format = _job_format(job)
            hits = {
                int(m.group(2)) for m in corpus.OPENID_PATTERN.finditer(job) if m.group(1) == wanted
            }
            if not hits:
                check.jobs_unidentified += 1
            found |= hits
    check.deliveries_found = len(found)
    check.found_but_never_sent = sum(1 for index in found if index >= sent)
    check.dedupe_keys = _count_keys(client, DEDUPE_PATTERN)
    memory: dict[str, Any] = client.info("memory")  # type: ignore[assignment]
    check.used_memory_mb = int(memory["used_memory"]) / 1e6
    return check, found


# --------------------------------------------------------------------------- one app


def _fill_from_wrk(result: AppResult, run: WrkRun) -> None:
    wrk = run.result
    threads: list[dict[str, Any]] = wrk.get("threads") or []
    if not threads:
        raise HarnessError("wrk reported no thread results (did the Lua script load?)")

    def total(name: str) -> int:
        return sum(int(t.get(name) or 0) for t in threads)

    result.corpus = total("corpus")
    result.sent = total("sent")
    result.answered = total("answered")
    result.unanswered = result.sent - result.answered
    result.accepted = total("accepted")
    result.duplicate = total("duplicate")
    result.other_200 = total("other_200")
    result.non_200 = total("non_200")
    for thread in threads:
        detail = json.loads(thread.get("non_200_detail") or "{}")
        for status, count in (detail.get("statuses") or {}).items():
            result.non_200_statuses[status] = result.non_200_statuses.get(status, 0) + count
        result.non_200_samples.extend(detail.get("samples") or [])
    result.socket_errors = {k: int(v) for k, v in (wrk.get("errors") or {}).items() if v}
    reasons = {t.get("stop_reason") or "" for t in threads}
    if not run.sending_done or "" in reasons:
        result.stop_reason = "wrk -d, answers outstanding"
    elif reasons == {"corpus"}:
        result.stop_reason = "corpus used up"
    else:
        result.stop_reason = "time limit"
    duration_s = float(wrk.get("duration_us") or 0) / 1e6
    result.wrk_requests_per_second = (
        float(wrk.get("requests") or 0) / duration_s if duration_s else 0
    )
    t = threads[0]
    if int(t.get("clock") or 0) and int(t.get("first_send_us") or -1) >= 0:
        # First request sent to last answer received, by the script's own clock.
        result.active_seconds = (int(t["last_answer_us"]) - int(t["first_send_us"])) / 1e6
    else:
        result.active_seconds = duration_s
    if result.active_seconds > 0:
        result.requests_per_second = result.answered / result.active_seconds
    lat = wrk.get("latency_us") or {}
    result.latency_ms = {k: float(v) / 1000 for k, v in lat.items() if k != "stdev"}
    if run.returncode not in (0, -2, 130):
        result.notes.append(f"wrk exited with {run.returncode}")


def _metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What the app itself reported for the measured run (its /metrics, if it has one)."""

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    found: dict[str, float] = {}
    batches = delta("tiktok_webhook_enqueue_batch_size_count")
    if batches > 0:
        found["enqueue_batches"] = batches
        found["mean_batch_size"] = delta("tiktok_webhook_enqueue_batch_size_sum") / batches
    enqueues = delta("tiktok_webhook_enqueue_duration_seconds_count")
    if enqueues > 0:
        found["mean_enqueue_ms"] = (
            1000 * delta("tiktok_webhook_enqueue_duration_seconds_sum") / enqueues
        )
    for name in after:
        if name.startswith("tiktok_webhook_deliveries_total{"):
            outcome = name.split('outcome="', 1)[-1].split('"', 1)[0]
            key = f"reported_{outcome}"
            found[key] = found.get(key, 0.0) + delta(name)
    return {k: round(v, 3) for k, v in found.items() if v}


def _wrk(args: argparse.Namespace, tools: dict[str, str], port: int, path: Path) -> WrkRun:
    return run_wrk(
        wrk=tools["wrk"],
        taskset=tools["taskset"],
        core=args.load_core,
        url=f"http://127.0.0.1:{port}{PATH}",
        corpus=path,
        connections=args.connections,
        send_seconds=args.duration,
    )


def _write_corpus(path: Path, count: int, run_id: str) -> float:
    started = time.monotonic()
    corpus.write_corpus(path, corpus.generate(count, run_id))
    return time.monotonic() - started


def bench_app(
    app: str,
    args: argparse.Namespace,
    tools: dict[str, str],
    redis_server: RedisServer,
    client: redis.Redis,
    workdir: Path,
) -> AppResult:
    result = AppResult(app)
    port = free_port()
    process = AppProcess(
        name=app,
        command=app_command(app, port, args.app_core, tools["taskset"]),
        env=app_env(redis_server.url, app),
        port=port,
        log_path=workdir / f"{app}.log",
    )
    client.flushall()
    progress(f"{app}: starting on core {args.app_core}, port {port}")
    try:
        result.startup_seconds = process.start()
        # Warm-up: its own distinct deliveries, then Redis is emptied again.
        if args.warmup_deliveries > 0:
            warm_path = workdir / f"{app}-warmup.tsv"
            _write_corpus(warm_path, args.warmup_deliveries, corpus.new_run_id())
            progress(f"{app}: warming up with {args.warmup_deliveries} deliveries")
            warm = _wrk(args, tools, port, warm_path)
            warm_result = AppResult(app)
            _fill_from_wrk(warm_result, warm)
            result.warmup = {
                "sent": warm_result.sent,
                "answered": warm_result.answered,
                "non_200": warm_result.non_200,
                "requests_per_second": round(warm_result.requests_per_second),
            }
            if warm_result.failures:
                progress(
                    f"{app}: warm-up had {warm_result.non_200} non-200 answers and "
                    f"socket errors {warm_result.socket_errors}; first answers: "
                    f"{warm_result.non_200_samples[:2]}"
                )
            wait_until_settled(client)
            client.flushall()
            warm_path.unlink()

        run_id = corpus.new_run_id()
        path = workdir / f"{app}.tsv"
        # Signed right before the run, so every timestamp is within the tolerance.
        result.corpus_seconds = _write_corpus(path, args.deliveries, run_id)
        progress(
            f"{app}: {args.deliveries} signed deliveries written in "
            f"{result.corpus_seconds:.1f}s; running wrk -t1 -c{args.connections} "
            f"(at most {args.duration}s) on core {args.load_core}"
        )
        cores = [args.app_core, args.load_core]
        metrics_before = scrape_metrics(port)
        cpu_before = cpu_seconds(process.pid)
        redis_pid = redis_server.process.pid if redis_server.process else None
        redis_cpu_before = cpu_seconds(redis_pid) if redis_pid else 0.0
        cores_before = core_times(cores)
        operator = Operator(f"http://127.0.0.1:{port}", CONSOLE_TOKEN)
        with RssSampler(process.pid) as sampler:
            if app == "console":
                with operator:
                    run = _wrk(args, tools, port, path)
            else:
                run = _wrk(args, tools, port, path)
        if app == "console":
            result.console = operator.summary()
            if operator.errors:
                result.notes.append(f"console operator: {operator.errors[:3]}")
            result.console["index_entries"] = int(client.xlen("tiktok:console:recent"))
        cores_after = core_times(cores)
        cpu_after = cpu_seconds(process.pid)
        time.sleep(0.1)  # what the app writes after its answers (capture, console index)
        redis_cpu_after = cpu_seconds(redis_pid) if redis_pid else 0.0
        _fill_from_wrk(result, run)
        if result.sent:
            # CPU time per delivery: much less sensitive than req/s to what else the
            # shared machine runs.
            result.cpu_us_per_delivery = {
                "app": round((cpu_after - cpu_before) / result.sent * 1e6, 1),
                "redis": round((redis_cpu_after - redis_cpu_before) / result.sent * 1e6, 1),
            }
        # The app idles while wrk loads its corpus and after the last answer, so its
        # CPU time belongs to the active window (first request to last answer).
        active = max(result.active_seconds, 1e-9)
        result.app_cpu_percent = 100.0 * (cpu_after - cpu_before) / active
        result.core_busy_percent = {
            f"core{core}": round(busy, 1)
            for core, busy in core_busy_percent(cores_before, cores_after).items()
        }
        result.sampled_peak_rss_mb = sampler.peak_kib / 1024
        if metrics_before:
            result.app_metrics = _metrics_delta(metrics_before, scrape_metrics(port))
        if not process.alive():
            result.notes.append(f"{app} died during the run:\n{process.log_tail()}")
        else:
            result.peak_rss_mb = peak_rss_kib(process.pid) / 1024
        progress(
            f"{app}: {result.stop_reason}; sent {result.sent}, answered {result.answered}, "
            f"{result.requests_per_second:,.0f} req/s"
        )
        if app in ENQUEUEING_APPS:
            check, found = check_redis(client, run_id, result.sent)
            result.redis = check
            not_found = result.sent - len([i for i in found if i < result.sent])
            not_acked = result.sent - result.accepted
            # Which answer belonged to which delivery is unknown, so when some were
            # not accepted the number missing is only known within bounds.
            result.missing_min = max(0, not_found - not_acked)
            result.missing_max = min(not_found, result.accepted)
            if check.jobs_absent:
                result.notes.append(f"{check.jobs_absent} queue entries have no arq:job")
            if check.jobs_unidentified:
                result.notes.append(
                    f"{check.jobs_unidentified} jobs hold no delivery of this run "
                    "(cannot tell which delivery they are)"
                )
        path.unlink()
    finally:
        process.stop()
        client.flushall()
    return result


# --------------------------------------------------------------------------- report


def _fmt_int(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def print_table(results: Sequence[AppResult]) -> None:
    headers = [
        "app", "req/s", "p50 ms", "p99 ms", "non-200", "sock err", "peak RSS MB",
        "app CPU%", "sent", "acked", "in Redis", "missing", "stopped by",
    ]  # fmt: skip
    rows: list[list[str]] = []
    for r in results:
        in_redis = "-" if r.redis is None else _fmt_int(r.redis.deliveries_found)
        if r.redis is None:
            missing = "-"
        elif r.missing_max > r.missing_min:
            missing = f"{r.missing_min}..{r.missing_max}"
        else:
            missing = str(r.missing_min)
        rows.append(
            [
                r.app,
                f"{r.requests_per_second:,.0f}",
                f"{r.latency_ms.get('p50', 0):.2f}",
                f"{r.latency_ms.get('p99', 0):.2f}",
                _fmt_int(r.non_200),
                _fmt_int(sum(r.socket_errors.values())),
                f"{r.peak_rss_mb:.1f}",
                f"{r.app_cpu_percent:.0f}",
                _fmt_int(r.sent),
                _fmt_int(r.acked),
                in_redis,
                missing,
                r.stop_reason,
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    line = "  ".join(
        h.rjust(w) if i else h.ljust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    print()
    print(line)
    print("-" * len(line))
    for row in rows:
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    print()


@dataclass
class Target:
    name: str
    value: str
    goal: str
    passed: bool | None  # None: not measurable in this run

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "n/a" if self.value == "not run" else "?"
        return "PASS" if self.passed else "MISS"


def evaluate(results: dict[str, AppResult]) -> list[Target]:
    receiver = results.get("receiver")
    if receiver is None:
        return []
    targets: list[Target] = []
    for other, minimum in (("bare", MIN_VS_BARE), ("naive", MIN_VS_NAIVE)):
        ref = results.get(other)
        if ref is None or ref.requests_per_second <= 0:
            targets.append(Target(f"throughput vs {other}", "not run", f">= {minimum}x", None))
            continue
        ratio = receiver.requests_per_second / ref.requests_per_second
        targets.append(
            Target(f"throughput vs {other}", f"{ratio:.2f}x", f">= {minimum}x", ratio >= minimum)
        )
    p99 = receiver.latency_ms.get("p99", float("inf"))
    targets.append(Target("p99 latency", f"{p99:.2f} ms", f"<= {MAX_P99_MS} ms", p99 <= MAX_P99_MS))
    targets.append(
        Target(
            "non-200 answers (+ socket errors)",
            f"{receiver.non_200} (+ {sum(receiver.socket_errors.values())})",
            "0",
            receiver.failures == 0,
        )
    )
    missing = (
        f"{receiver.missing_min}"
        if receiver.missing_max == receiver.missing_min
        else f"{receiver.missing_min}..{receiver.missing_max}"
    )
    # Exact unless some answers never came: then only bounds are known.
    verdict: bool | None = None
    if receiver.redis is not None and receiver.missing_max == 0:
        verdict = True
    elif receiver.redis is None or receiver.missing_min > 0:
        verdict = False
    targets.append(Target("acknowledged deliveries missing from Redis", missing, "0", verdict))
    targets.append(
        Target(
            "receiver peak RSS",
            f"{receiver.peak_rss_mb:.1f} MB",
            f"< {MAX_RSS_MB:.0f} MB",
            0 < receiver.peak_rss_mb < MAX_RSS_MB,
        )
    )
    console = results.get("console")
    if console is not None and receiver.requests_per_second > 0:
        ratio = console.requests_per_second / receiver.requests_per_second
        targets.append(
            Target(
                "with the console open vs without",
                f"{ratio:.2f}x",
                f">= {MIN_CONSOLE_VS_RECEIVER}x (unchanged within noise)",
                ratio >= MIN_CONSOLE_VS_RECEIVER,
            )
        )
    return targets


def print_details(results: Sequence[AppResult]) -> None:
    for r in results:
        parts = [
            f"{r.app}: active {r.active_seconds:.2f}s",
            f"wrk's own req/s {r.wrk_requests_per_second:,.0f}",
            f"accepted {r.accepted:,}",
            f"duplicate {r.duplicate:,}",
            f"unanswered {r.unanswered}",
            f"p90 {r.latency_ms.get('p90', 0):.2f} ms",
            f"p99.9 {r.latency_ms.get('p999', 0):.2f} ms",
            f"max {r.latency_ms.get('max', 0):.2f} ms",
            "busy " + ", ".join(f"{k} {v:.0f}%" for k, v in r.core_busy_percent.items()),
        ]
        if r.redis is not None:
            parts.append(
                f"Redis: {r.redis.queue_entries:,} queued, {r.redis.jobs_present:,} jobs "
                f"({r.redis.job_format}), {r.redis.dedupe_keys:,} dedupe keys, "
                f"{r.redis.used_memory_mb:.0f} MB used"
            )
        if r.cpu_us_per_delivery:
            parts.append(
                "CPU per delivery: "
                + ", ".join(f"{k} {v:g} us" for k, v in r.cpu_us_per_delivery.items())
            )
        if r.console:
            parts.append("console: " + ", ".join(f"{k} {v:g}" for k, v in r.console.items()))
        if r.app_metrics:
            parts.append(
                "its /metrics: " + ", ".join(f"{k} {v:g}" for k, v in r.app_metrics.items())
            )
        print("  " + "; ".join(parts))
        if r.non_200_statuses:
            print(f"    non-200 statuses: {r.non_200_statuses}")
            for sample in r.non_200_samples[:3]:
                print(f"    e.g. {sample}")
        if r.socket_errors:
            print(f"    socket errors: {r.socket_errors}")
        for note in r.notes:
            print(f"    note: {note}")
    print()


def print_targets(targets: Sequence[Target]) -> None:
    if not targets:
        print("targets: no receiver numbers in this run, nothing to judge")
        return
    print("receiver targets (ratios are of this run):")
    width = max(len(t.name) for t in targets)
    for t in targets:
        print(f"  {t.verdict:4}  {t.name.ljust(width)}  {t.value:>14}  (target {t.goal})")
    print()


# --------------------------------------------------------------------------- main


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for package in (
        "tiktok-webhooks", "starlette", "uvicorn", "uvloop", "httptools", "msgspec",
        "redis", "arq", "fastapi", "pydantic",
    ):  # fmt: skip
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
        "versions": versions,
        "app_core": args.app_core,
        "load_core": args.load_core,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--deliveries", type=int, default=80_000, help="corpus size per app")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--duration",
        type=int,
        default=10,
        help="most seconds of sending per app (the corpus may run out first)",
    )
    parser.add_argument(
        "--apps",
        default=",".join(DEFAULT_APPS),
        help=f"comma-separated subset of {','.join(APPS)}",
    )
    parser.add_argument("--warmup-deliveries", type=int, default=3_000)
    parser.add_argument("--app-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1, help="wrk runs here")
    parser.add_argument(
        "--redis-core",
        type=int,
        default=None,
        help="where redis-server runs (default: the app core, as the issue sets it up: Redis "
        "and the app share one core, wrk has the other; give the load core to move Redis there)",
    )
    parser.add_argument(
        "--appendfsync",
        default="off",
        help="Redis persistence, comma-separated to compare in one run: off (no AOF), "
        "always, everysec, no (AOF on with that appendfsync policy); every app runs "
        "against each, e.g. --apps receiver --appendfsync everysec,always",
    )
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--fail-on-miss", action="store_true", help="exit 1 when a receiver target is missed"
    )
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep corpora and app logs for inspection"
    )
    args = parser.parse_args(argv)
    apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    unknown = sorted(set(apps) - set(APPS))
    if unknown or not apps:
        parser.error(f"--apps: unknown {unknown}; choose from {', '.join(APPS)}")
    args.app_list = list(dict.fromkeys(apps))
    modes = [m.strip() for m in args.appendfsync.split(",") if m.strip()]
    if not modes or set(modes) - set(FSYNC_MODES):
        parser.error(f"--appendfsync: choose from {', '.join(FSYNC_MODES)}")
    args.fsync_modes = modes  # repeat modes to alternate them in one run
    if args.deliveries < 1000:
        parser.error("--deliveries must be at least 1000")
    if not 1 <= args.duration <= TOLERANCE_SECONDS - 60:
        parser.error(
            f"--duration must be 1..{TOLERANCE_SECONDS - 60} seconds: the deliveries are "
            f"signed before the run and must arrive within the {TOLERANCE_SECONDS}s tolerance"
        )
    if args.connections < 1:
        parser.error("--connections must be positive")
    return args


def _check_cores(args: argparse.Namespace) -> None:
    allowed = os.sched_getaffinity(0)
    for name, core in (("--app-core", args.app_core), ("--load-core", args.load_core)):
        if core not in allowed:
            raise HarnessError(f"{name} {core} is not a core this process may use: {allowed}")
    if args.app_core == args.load_core:
        raise HarnessError("--app-core and --load-core must differ (the machine needs 2 cores)")


def run(args: argparse.Namespace) -> int:
    tools = require_tools()
    _check_cores(args)
    # The harness itself stays off the app's core.
    os.sched_setaffinity(0, {args.load_core})
    workdir = Path(tempfile.mkdtemp(prefix="tiktok-ingest-bench-"))
    info = machine_info(args)
    progress(
        f"apps {', '.join(args.app_list)}; {args.deliveries:,} deliveries, "
        f"{args.connections} connections, at most {args.duration}s each; "
        f"load average {' '.join(f'{x:.2f}' for x in info['loadavg_at_start'])}"
    )
    redis_core = args.app_core if args.redis_core is None else args.redis_core
    # Targets are judged on the first persistence mode; the others are for comparison.
    results: dict[str, AppResult] = {}
    ordered: list[AppResult] = []
    failed: dict[str, str] = {}
    labelled = args.fsync_modes != ["off"]
    try:
        for mode in args.fsync_modes:
            redis_server = RedisServer(
                tools["redis-server"],
                tools["taskset"],
                redis_core,
                workdir / f"redis-{mode}",
                appendfsync=None if mode == "off" else mode,
            )
            try:
                redis_server.start()
                progress(
                    f"redis-server on core {redis_core}, port {redis_server.port}, "
                    f"appendfsync {mode}"
                )
                client = redis.Redis.from_url(redis_server.url)
                try:
                    for app in args.app_list:
                        name = f"{app} [aof {mode}]" if labelled else app
                        try:
                            result = bench_app(app, args, tools, redis_server, client, workdir)
                        except HarnessError as exc:
                            # One app failing (e.g. the receiver does not start) must not
                            # cost the numbers of the others; the run still exits 2.
                            progress(f"{name}: FAILED: {exc}")
                            failed[name] = str(exc)
                            continue
                        result.app = name
                        ordered.append(result)
                        if mode == args.fsync_modes[0]:
                            results[app] = result
                finally:
                    client.close()
            finally:
                redis_server.stop()
    finally:
        if args.keep_workdir:
            progress(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    if ordered:
        print_table(ordered)
    for app, error in failed.items():
        print(f"{app}: FAILED, no numbers: {error.splitlines()[0]}")
    print_details(ordered)
    targets = evaluate(results)
    print_targets(targets)
    info["loadavg_at_end"] = os.getloadavg()
    small = [r.app for r in ordered if r.sent < MIN_DELIVERIES]
    if small:
        print(
            f"note: fewer than {MIN_DELIVERIES:,} deliveries were sent to {', '.join(small)}; "
            "the issue asks for at least that many (raise --deliveries or --duration)"
        )
    if max(info["loadavg_at_start"][0], info["loadavg_at_end"][0]) > 0.5:
        print(
            f"note: the machine was not quiet (load average {info['loadavg_at_start'][0]:.2f} "
            f"at start, {info['loadavg_at_end'][0]:.2f} at end); other work on the cores "
            "makes these numbers noisy. Compare 'busy' with 'app CPU%' above."
        )
    path = write_results(args, info, ordered, targets, failed)
    print(f"results: {path}")
    if failed:
        return 2
    missed = [t for t in targets if t.passed is False]
    return 1 if missed and args.fail_on_miss else 0


def write_results(
    args: argparse.Namespace,
    info: dict[str, Any],
    results: Sequence[AppResult],
    targets: Sequence[Target],
    failed: dict[str, str],
) -> Path:
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path: Path = args.results_dir / f"ingest-{stamp}.json"
    document = {
        "benchmark": "ingest",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {
            "deliveries": args.deliveries,
            "connections": args.connections,
            "duration": args.duration,
            "warmup_deliveries": args.warmup_deliveries,
            "apps": args.app_list,
            "appendfsync": args.fsync_modes,
            "wrk_threads": 1,
        },
        "machine": info,
        "results": [{**asdict(r), "acked": r.acked} for r in results],
        "targets": [{**asdict(t), "verdict": t.verdict} for t in targets],
        "failed": failed,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except HarnessError as exc:
        print(f"ingest benchmark could not run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The chaos experiments. Each starts its own processes on loopback, drives them, breaks
something, checks one promise of the service, and stops every process it started.

Each returns a `Result`: passed or not, and the numbers that decided it.
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import redis
from redis.asyncio import Redis

from chaos.consumer import Consumer, running
from chaos.load import Load
from chaos.procs import (
    ROOT,
    ChaosError,
    Process,
    Processes,
    start_receiver,
    start_redis,
    start_worker,
    wait_for,
)
from handlers.deadletter import DeadLetterStore
from handlers.forwarding.store import ALL_INDEX, DeliveryStore, delivery_id
from receiver.forward_config import DEFAULT_NAME, generate_secret
from receiver.ingest.events import decode_body
from receiver.private_files import write_private
from receiver.testing.redis_server import free_port

QUEUE: Final = "arq:queue"
RECORDING: Final = {"WORKER_HANDLER_MODULES": "chaos.recording_handlers"}


@dataclass
class Result:
    name: str
    passed: bool
    details: list[str] = field(default_factory=list)
    seconds: float = 0.0


Experiment = Callable[[Processes, Path], Awaitable[Result]]


def handled(record: Path) -> set[str]:
    if not record.exists():
        return set()
    return {line for line in record.read_text().splitlines() if line}


def queue_size(port: int) -> int:
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        return int(client.zcard(QUEUE))  # type: ignore[arg-type]
    finally:
        client.close()


async def dead_lettered(port: int) -> dict[str, str]:
    """The open_ids of the deliveries in the dead-letter list, with their error type."""
    from redis.asyncio import Redis

    client = Redis(host="127.0.0.1", port=port)
    try:
        letters = await DeadLetterStore(client).list(limit=10_000)
    finally:
        await client.aclose()
    found = {}
    for letter in letters:
        if letter.args and isinstance(letter.args[0], bytes):
            found[decode_body(letter.args[0]).envelope.user_openid or ""] = letter.error_type
    return found


async def drain(procs: Processes, port: int, record: Path, name: str, expect: set[str]) -> None:
    """Run a recording worker until `expect` is handled or the queue is empty."""
    worker = start_worker(procs, port, name, CHAOS_RECORD_FILE=str(record), **RECORDING)
    deadline = time.monotonic() + 40
    empty_since: float | None = None
    while time.monotonic() < deadline and not expect <= handled(record):
        if queue_size(port) == 0:  # what is missing now will not come
            empty_since = empty_since or time.monotonic()
            if time.monotonic() - empty_since > 2:
                break
        else:
            empty_since = None
        await asyncio.sleep(0.2)
    await asyncio.to_thread(worker.stop)


# ------------------------------------------------------------------ (a) power cut


def build_shim(workdir: Path) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise ChaosError("no C compiler (cc) to build the power-cut shim: apt-get install gcc")
    library = workdir / "powercut.so"
    source = ROOT / "chaos" / "powercut.c"
    build = subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl", "-lpthread"],
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0:
        raise ChaosError(f"building the power-cut shim failed:\n{build.stderr}")
    return library


async def _power_cut(
    procs: Processes, workdir: Path, shim: Path, appendfsync: str
) -> tuple[int, int, dict[str, int]]:
    """(acknowledged, acknowledged but lost, answers) for one power cut under load."""
    port = free_port()
    datadir = workdir / f"redis-{appendfsync}"
    redis_process = await asyncio.to_thread(
        start_redis, procs, f"redis-{appendfsync}", datadir, port,
        appendfsync=appendfsync, preload=shim,
    )  # fmt: skip
    _, base = await asyncio.to_thread(start_receiver, procs, port, REDIS_TIMEOUT_SECONDS="1")
    load = Load(base, run=f"cut-{appendfsync}", concurrency=16)
    sending = asyncio.ensure_future(load.run_until_stopped())
    await asyncio.sleep(2.0)
    redis_process.kill()  # the power cut: what was not fsynced is gone with the process
    await asyncio.sleep(0.3)
    await asyncio.to_thread(
        start_redis, procs, f"redis-{appendfsync}-after", datadir, port, appendfsync=appendfsync
    )
    await asyncio.sleep(1.0)  # deliveries are accepted again
    load.stop.set()
    await sending
    acked = set(load.acknowledged())
    record = workdir / f"handled-{appendfsync}.txt"
    await drain(procs, port, record, f"worker-{appendfsync}", acked)
    return len(acked), len(acked - handled(record)), load.statuses()


async def power_cut(procs: Processes, workdir: Path) -> Result:
    """(a) Redis power cut under load, appendfsync always: 0 acknowledged-but-lost.
    The same cut with everysec is the control: it must lose some, or the simulation
    proves nothing."""
    shim = await asyncio.to_thread(build_shim, workdir)
    acked, lost, answers = await _power_cut(procs, workdir, shim, "always")
    c_acked, c_lost, _ = await _power_cut(procs, workdir, shim, "everysec")
    details = [
        f"appendfsync always: {acked} acknowledged, {lost} lost (answers {answers})",
        f"control, appendfsync everysec: {c_acked} acknowledged, {c_lost} lost",
    ]
    passed = acked > 0 and lost == 0 and c_lost > 0
    if c_lost == 0:
        details.append("the control lost nothing: the power-cut simulation did not take effect")
    return Result("power cut (appendfsync always)", passed, details)


# ------------------------------------------------------------------ (b) worker storm


def _is_up(worker: Process) -> Callable[[], bool]:
    return lambda: "metrics on http" in worker.log_text()


async def worker_storm(procs: Processes, workdir: Path) -> Result:
    """(b) Workers SIGKILLed every KILL_EVERY s, with jobs that outlive that interval:
    every event is handled or dead-lettered, none silently dropped."""
    # A worker is killed this long after it is up (it logged "metrics on"): shorter
    # than the slow jobs and than WORKER_JOB_TIMEOUT_SECONDS, so those never finish.
    kill_every = 1.5
    port = free_port()
    await asyncio.to_thread(start_redis, procs, "redis-storm", workdir / "redis-storm", port)
    _, base = await asyncio.to_thread(start_receiver, procs, port)
    quick = Load(base, run="storm", concurrency=4, limit=60)
    await quick.run_until_stopped()
    slow = Load(base, run="storm-slow", concurrency=4, limit=4)
    await slow.run_until_stopped()
    sent = set(quick.acknowledged()) | set(slow.acknowledged())
    if len(sent) != 64:
        return Result("worker SIGKILL storm", False, [f"only {len(sent)} of 64 accepted"])
    record = workdir / "handled-storm.txt"
    env = {
        **RECORDING,
        "CHAOS_RECORD_FILE": str(record),
        "CHAOS_SLOW_SECONDS": "30",
        "WORKER_JOB_TIMEOUT_SECONDS": "2",
        "WORKER_MAX_TRIES": "1",
        "WORKER_POLL_DELAY_SECONDS": "0.05",
    }
    kills = 0
    deadline = time.monotonic() + 120
    settled = False
    while time.monotonic() < deadline:
        worker = start_worker(procs, port, f"worker-storm-{kills}", **env)
        await asyncio.to_thread(wait_for, _is_up(worker), 20, "a worker up")
        await asyncio.sleep(kill_every)
        worker.kill()
        kills += 1
        if handled(record) | set(await dead_lettered(port)) >= sent:
            settled = True
            break
    done = handled(record)
    by_error = await dead_lettered(port)
    letters = set(by_error)
    missing = sent - done - letters
    gave_up = sum(1 for o in letters & sent if by_error[o] == "JobAbandoned")
    details = [
        f"{kills} workers SIGKILLed, each {kill_every:g}s after it was up; {len(sent)} events "
        f"({len(slow.acknowledged())} taking longer than the interval)",
        f"handled {len(done & sent)}, dead-lettered {len(letters & sent)} ({gave_up} of them "
        f"after arq gave up on a job whose worker kept dying), neither {len(missing)}",
    ]
    if not settled:
        details.append("did not settle within 120 s")
    return Result("worker SIGKILL storm", settled and not missing, details)


# ------------------------------------------------------------------ (c) receiver SIGTERM


async def receiver_sigterm(procs: Processes, workdir: Path) -> Result:
    """(c) SIGTERM to the receiver under load: every 200 it gave is queued in Redis."""
    port = free_port()
    await asyncio.to_thread(start_redis, procs, "redis-term", workdir / "redis-term", port)
    receiver, base = await asyncio.to_thread(start_receiver, procs, port)
    load = Load(base, run="term", concurrency=16, client_timeout=30)
    sending = asyncio.ensure_future(load.run_until_stopped())
    await asyncio.sleep(1.5)
    receiver.signal(signal.SIGTERM)
    exited = await asyncio.to_thread(_wait_exit, receiver, 30)
    load.stop.set()
    await sending
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        acked = load.acknowledged()
        absent = [o for o in acked if not client.exists(f"arq:job:{load.dedupe_key(o)}")]
    finally:
        client.close()
    details = [
        f"{len(acked)} acknowledged, {len(absent)} of them not queued; answers {load.statuses()}",
        f"receiver exit status {receiver.popen.returncode}",
    ]
    return Result("receiver SIGTERM under load", exited and acked != [] and not absent, details)


def _wait_exit(process: Process, timeout: float) -> bool:
    try:
        process.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


# ------------------------------------------------------------------ (d) Redis stall


async def redis_stall(procs: Processes, workdir: Path) -> Result:
    """(d) Redis stopped (SIGSTOP) under load: every answer within REDIS_TIMEOUT_SECONDS
    (+ slack for the request's own work on a busy machine), 503 while stalled."""
    bound, slack = 1.0, 0.75
    port = free_port()
    redis_process = await asyncio.to_thread(
        start_redis, procs, "redis-stall", workdir / "redis-stall", port
    )
    _, base = await asyncio.to_thread(start_receiver, procs, port, REDIS_TIMEOUT_SECONDS=str(bound))
    load = Load(base, run="stall", concurrency=16, pause=0.02, client_timeout=30)
    sending = asyncio.ensure_future(load.run_until_stopped())
    await asyncio.sleep(1.0)
    redis_process.signal(signal.SIGSTOP)
    await asyncio.sleep(4.0)
    redis_process.signal(signal.SIGCONT)
    await asyncio.sleep(1.0)
    load.stop.set()
    await sending
    slowest = max((a.seconds for a in load.answers), default=0.0)
    statuses = load.statuses()
    unexpected = {s: n for s, n in statuses.items() if s not in ("200", "503")}
    details = [
        f"{len(load.answers)} answers {statuses}; slowest {slowest:.2f}s "
        f"(bound {bound:g}s + {slack:g}s slack)",
    ]
    passed = slowest <= bound + slack and not unexpected and statuses.get("503", 0) > 0
    return Result("Redis stall (SIGSTOP)", passed, details)


# ------------------------------------------------------------------ (e) fd-limit flood


async def fd_flood(procs: Processes, workdir: Path) -> Result:
    """(e) More idle connections than the fd limit the receiver starts with: deliveries
    keep flowing or get a clear 503, and the log says why."""
    start_nofile, flood = 1024, 1100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < flood + 200:
        return Result("fd-limit flood", False, [f"hard fd limit {hard} is too low to flood"])
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # for our own sockets
    port = free_port()
    await asyncio.to_thread(start_redis, procs, "redis-flood", workdir / "redis-flood", port)
    receiver, base = await asyncio.to_thread(
        start_receiver, procs, port, options=("--header-timeout", "3"), nofile=start_nofile
    )
    receiver_port = int(base.rsplit(":", 1)[1])
    idle: list[socket.socket] = []
    try:
        for _ in range(flood):
            idle.append(socket.create_connection(("127.0.0.1", receiver_port), timeout=5))
        load = Load(base, run="flood", concurrency=4, pause=0.05, client_timeout=10)
        sending = asyncio.ensure_future(load.run_until_stopped())
        await asyncio.sleep(5.0)  # past the header timeout: the idle ones are shed
        load.stop.set()
        await sending
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    log = receiver.log_text()
    statuses = load.statuses()
    unclear = {s: n for s, n in statuses.items() if s not in ("200", "503")}
    said_why = "the concurrency limit" in log
    raised = f"raised from {start_nofile}" in log
    details = [
        f"{flood} idle connections against a receiver started with nofile {start_nofile}",
        f"deliveries meanwhile: {statuses}",
        f"log says why: {said_why}; fd limit raised and logged: {raised}",
    ]
    passed = not unclear and statuses.get("200", 0) > 0 and said_why and raised
    return Result("fd-limit flood", passed, details)


# ------------------------------------------------------------------ (f) forwarding storm


def _up(worker: Process) -> Callable[[], bool]:
    def check() -> bool:
        if not worker.alive():
            raise ChaosError(f"{worker.name} exited:\n{worker.log_text()[-2000:]}")
        return "metrics on http" in worker.log_text()

    return check


@dataclass
class _Forwarded:
    """What Redis says about the destination's deliveries."""

    counts: dict[str, object]
    records: set[str]

    def finished(self) -> bool:
        return all(self.counts[k] == 0 for k in ("pending", "dead", "held"))


async def _forwarded(port: int) -> _Forwarded:
    client = Redis(host="127.0.0.1", port=port)
    try:
        counts = await DeliveryStore(client).counts(DEFAULT_NAME)
        records = {m.decode() for m in await client.zrange(ALL_INDEX, 0, -1)}
    finally:
        await client.aclose()
    return _Forwarded(counts, records)


async def _attempts(port: int, ids: set[str]) -> tuple[int, int]:
    """(attempts recorded for `ids`, how many of them did not succeed)."""
    client = Redis(host="127.0.0.1", port=port)
    try:
        store = DeliveryStore(client)
        outcomes = [a.outcome for i in sorted(ids) for a in await store.attempts(i)]
    finally:
        await client.aclose()
    return len(outcomes), sum(1 for o in outcomes if o != "success")


async def forward_storm(procs: Processes, workdir: Path) -> Result:
    """(f) Workers forwarding to a slow consumer, SIGKILLed mid-send again and again, then
    one left running: every acknowledged event's delivery reaches the consumer at least
    once (a send cut short goes again when its lease runs out, with the same webhook-id),
    every request verifies, nothing is left pending or dead."""
    name = "forwarding through worker SIGKILLs"
    # More events than the killed workers can send (each sends at most concurrency 10 /
    # answer delay 0.3 s per second), so every one is killed with sends in flight. A
    # lease runs out timeout + 32 s after its claim: the final worker waits for that.
    kill_every, kills, events, answer_delay, timeout = 1.5, 5, 400, 0.3, 1.5
    deadline = time.monotonic() + 120
    port = free_port()
    await asyncio.to_thread(start_redis, procs, "redis-fwd", workdir / "redis-fwd", port)
    _, base = await asyncio.to_thread(start_receiver, procs, port)
    load = Load(base, run="fwd", concurrency=16, limit=events)
    await load.run_until_stopped()
    acked = load.acknowledged()
    if len(acked) != events:
        return Result(name, False, [f"only {len(acked)} of {events} accepted"])
    expected = {delivery_id(load.dedupe_key(o), DEFAULT_NAME) for o in acked}
    secret = generate_secret()
    consumer = Consumer(secret, delay=answer_delay)
    with running(consumer) as url:
        config = workdir / "forward.toml"
        write_private(
            config,
            f'[[forward]]\nname = "{DEFAULT_NAME}"\nurl = "{url}"\nsecrets = ["{secret}"]\n'
            f"timeout_seconds = {timeout}\n",
        )
        env = {
            "TIKTOK_WEBHOOKS_ENV": "development",  # the consumer is http on loopback
            "FORWARD_RETRY_SCHEDULE": "1s,2s,5s,10s,10s",  # a try that timed out: soon again
            "WORKER_JOB_TIMEOUT_SECONDS": "2",  # an event job cut short: again in ~17 s
        }
        options = ("--config", str(config))
        for number in range(kills):
            worker = start_worker(procs, port, f"worker-fwd-{number}", options=options, **env)
            await asyncio.to_thread(wait_for, _up(worker), 20, "a worker up")
            await asyncio.sleep(kill_every)
            worker.kill()
        last = start_worker(procs, port, "worker-fwd-last", options=options, **env)
        await asyncio.to_thread(wait_for, _up(last), 20, "the last worker up")
        settled = False
        while time.monotonic() < deadline:
            got, _, _ = consumer.snapshot()
            state = await _forwarded(port)
            if expected <= got.keys() and state.finished() and state.records >= expected:
                settled = True
                break
            await asyncio.sleep(0.5)
        await asyncio.to_thread(last.stop)
    got, refused, cut_off = consumer.snapshot()
    state = await _forwarded(port)
    attempts, failed = await _attempts(port, expected)
    requests = sum(got.values())
    duplicates = requests - len(got)
    missing = expected - got.keys()
    strangers = (got.keys() | state.records) - expected
    # Requests the consumer got whose result no worker recorded, and ones cut off mid-body.
    cut_short = requests - attempts + cut_off
    details = [
        f"{kills} workers SIGKILLed, each {kill_every:g}s after it was up, then one left "
        f"running; {len(acked)} events acknowledged",
        f"consumer: {requests} verified requests for {len(got)} webhook-ids, "
        f"{len(missing)} of the expected {len(expected)} never arrived; {refused} did not "
        f"verify; {cut_off} cut off before their body arrived",
        f"duplicates: {duplicates} (of {sum(1 for n in got.values() if n > 1)} webhook-ids); "
        f"Redis recorded {attempts} attempts ({failed} not successful): "
        f"{cut_short} sends cut short by a kill",
        f"Redis: {len(state.records)} deliveries, pending {state.counts['pending']}, "
        f"dead {state.counts['dead']}, held {state.counts['held']}",
    ]
    if strangers:
        details.append(f"{len(strangers)} webhook-ids that no acknowledged event explains")
    if not settled:
        details.append("did not settle within 120 s")
    if cut_short <= 0:
        details.append("no send was cut short by a kill: the experiment proved nothing")
    passed = (
        settled
        and not missing
        and not strangers
        and refused == 0
        and state.finished()
        and len(state.records) == len(acked)
        and cut_short > 0
    )
    return Result(name, passed, details)


EXPERIMENTS: Final[dict[str, Experiment]] = {
    "power-cut": power_cut,
    "worker-storm": worker_storm,
    "receiver-sigterm": receiver_sigterm,
    "redis-stall": redis_stall,
    "fd-flood": fd_flood,
    "forward-storm": forward_storm,
}

"""Micro-benchmark: what `appendfsync always` adds to one enqueue batch, in isolation.

The ingest benchmark (`bench/ingest.py --appendfsync everysec,always`) measures the cost
end to end, where concurrent batches share Redis' fsyncs and a busy machine's noise can
hide it. This one writes one batch at a time with nothing else in flight, through the
receiver's own `EventQueue`, against a private `redis-server --appendonly yes
--appendfsync MODE` whose AOF is on the disk of `--dir` (default: this checkout's disk),
alternating the modes. The difference is the fsync on that disk.

    .venv/bin/python bench/fsync_cost.py [--batches 300] [--size 25] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

from receiver.ingest.enqueue import EventQueue
from receiver.testing.redis_server import free_port

BODY = b'{"client_key":"bench","event":"tiktok.ping","create_time":1,"content":"{}"}' * 8


def start_redis(mode: str, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install -y redis-server)")
    server = subprocess.Popen(
        [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", mode,
            "--dir", str(workdir), "--logfile", str(workdir / "redis.log"),
        ],
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise SystemExit("redis-server did not start") from None
            time.sleep(0.05)


async def one_mode(mode: str, args: argparse.Namespace) -> list[float]:
    """Seconds per batch, for `args.batches` batches of `args.size` deliveries."""
    workdir = Path(tempfile.mkdtemp(prefix="fsync-cost-", dir=args.dir))
    port = free_port()
    server = start_redis(mode, workdir, port)
    try:
        client = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        queue = EventQueue(
            client, queue_name="arq:queue", dedupe_ttl_seconds=345_600, job_expires_seconds=60
        )
        await queue.load_script()
        seconds = []
        for batch in range(args.batches):
            started = time.perf_counter()
            await asyncio.gather(
                *(queue.enqueue(f"{mode}-{batch}-{i}", BODY) for i in range(args.size))
            )
            seconds.append(time.perf_counter() - started)
        await queue.aclose()
        await client.aclose()
        return seconds
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def summary(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    mean = sum(ordered) / len(ordered)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"mean {mean * 1000:6.2f} ms  p50 {p50 * 1000:6.2f} ms  p99 {p99 * 1000:6.2f} ms"


async def main(args: argparse.Namespace) -> None:
    print(f"{args.batches} batches of {args.size} deliveries, one at a time; AOF in {args.dir}")
    results: dict[str, list[float]] = {"everysec": [], "always": []}
    for _ in range(args.repeats):
        for mode in ("everysec", "always"):
            seconds = await one_mode(mode, args)
            results[mode].extend(seconds)
            print(f"  {mode:9s} {summary(seconds)}", flush=True)
    print("all runs:")
    for mode, seconds in results.items():
        print(f"  {mode:9s} {summary(seconds)}")
    added = (sum(results["always"]) - sum(results["everysec"])) / len(results["always"])
    print(f"always adds {added * 1000:.2f} ms per batch on average (the fsync)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--size", type=int, default=25, help="deliveries per batch")
    parser.add_argument("--repeats", type=int, default=2, help="alternations of the two modes")
    parser.add_argument(
        "--dir", type=Path, default=Path(__file__).resolve().parent, help="where the AOF goes"
    )
    try:
        asyncio.run(main(parser.parse_args()))
    except KeyboardInterrupt:
        sys.exit(130)

"""CPU per request of the ways forwarding could POST: httpx's client down to our connections.

    .venv/bin/python bench/forward_requests.py [--requests 4000] [--rounds 3] [--concurrency 10]

A consumer answering 200 at once (the forwarding benchmark's, uvicorn + httptools) runs on
the load core (core 1); each client runs in its own process on the client core (core 0),
posts a forwarded-size body `--requests` times with `--concurrency` in flight after a
warm-up of as many, and reports requests/s and its own CPU per request. Clients, in turn
each round:

- `client`: `httpx.AsyncClient.post` (the forwarding benchmark's bare reference);
- `transport`: an `httpx.AsyncHTTPTransport` called directly (forwarding before 2026-12-02);
- `pool`: httpcore's connection pool, default (anyio) network backend;
- `slots-anyio`: one httpcore connection per slot, default backend;
- `slots`: `SlotConnections` as forwarding uses them (a connection per slot, our asyncio
  network backend) — through `sender.send`, so signing is included.

Needs `taskset` and two cores. Prints numbers only; see bench/WORKER.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
KINDS = ("client", "transport", "pool", "slots-anyio", "slots")
BODY = json.dumps(
    {
        "type": "post.publish.publicly_available",
        "timestamp": "2026-12-02T00:00:00Z",
        "data": {
            "client_key": "awx1234567890abc",
            "user_openid": "-000abcdEFGhijklmnop-qrstUVWxyz012345",
            "create_time": 1764633600,
            "content": {
                "publish_id": "v_pub_url~v2.7123456789012345678",
                "post_id": "7123456789012345678",
            },
        },
    }
).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_client(kind: str, url: str, requests: int, concurrency: int) -> dict[str, Any]:
    import httpcore
    import httpx

    from handlers.forwarding.connections import SlotConnections
    from handlers.forwarding.sender import send
    from receiver.forward_config import generate_secret, secret_bytes

    headers = {"content-type": "application/json"}
    timeout = httpx.Timeout(10).as_dict()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    closers: list[Any] = []
    parsed = httpx.URL(url)
    origin = httpcore.Origin(b"http", parsed.raw_host, parsed.port or 80)
    raw_headers = [
        (b"host", parsed.netloc),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ]

    async def core_post(target: httpcore.AsyncConnectionPool | httpcore.AsyncHTTPConnection) -> int:
        """One POST through httpcore (a pool or a single connection), answer read."""
        request = httpcore.Request(
            b"POST", url, headers=raw_headers, content=BODY, extensions={"timeout": timeout}
        )
        response = await target.handle_async_request(request)
        async for _ in response.aiter_stream():
            pass
        await response.aclose()
        return int(response.status)

    if kind == "client":
        client = httpx.AsyncClient(limits=limits)
        closers.append(client.aclose)

        async def one() -> int:
            return (await client.post(url, content=BODY, headers=headers)).status_code

    elif kind == "transport":
        transport = httpx.AsyncHTTPTransport(limits=limits)
        closers.append(transport.aclose)

        async def one() -> int:
            request = httpx.Request(
                "POST", url, content=BODY, headers=headers, extensions={"timeout": timeout}
            )
            response = await transport.handle_async_request(request)
            async for _ in response.aiter_raw():
                pass
            await response.aclose()
            return int(response.status_code)

    elif kind == "pool":
        pool = httpcore.AsyncConnectionPool(
            max_connections=concurrency, max_keepalive_connections=concurrency
        )
        closers.append(pool.aclose)

        async def one() -> int:
            return await core_post(pool)

    elif kind == "slots-anyio":
        free = [httpcore.AsyncHTTPConnection(origin) for _ in range(concurrency)]
        closers.extend(connection.aclose for connection in free)

        async def one() -> int:
            connection = free.pop()
            try:
                return await core_post(connection)
            finally:
                free.append(connection)

    else:
        connections = SlotConnections(url, concurrency=concurrency)
        closers.append(connections.aclose)
        keys = [secret_bytes(generate_secret())]

        async def one() -> int:
            result = await send(
                connections, keys=keys, message_id="msg_bench", body=BODY, timeout_seconds=10
            )
            return result.status or 0

    async def lanes(count: int) -> None:
        left = [count]

        async def lane() -> None:
            while left[0] > 0:
                left[0] -= 1
                status = await one()
                if status != 200:
                    raise RuntimeError(f"{kind}: HTTP {status}")

        await asyncio.gather(*(lane() for _ in range(concurrency)))

    await lanes(requests)  # warm-up: connections open, code paths warm
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await lanes(requests)
    elapsed = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for close in closers:
        await close()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"per_second": requests / elapsed, "cpu_us": cpu / requests * 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="per client and round (4000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every client (3)")
    parser.add_argument("--concurrency", type=int, default=10, help="requests in flight (10)")
    parser.add_argument("--client-core", type=int, default=0, help="core of the clients (0)")
    parser.add_argument("--load-core", type=int, default=1, help="core of the consumer (1)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = asyncio.run(run_client(args.child, args.url, args.requests, args.concurrency))
        print(json.dumps(result), flush=True)
        return 0
    taskset = shutil.which("taskset")
    if taskset is None or (os.cpu_count() or 1) < 2:
        print("needs taskset (util-linux) and two cores", file=sys.stderr)
        return 2
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    port = free_port()
    consumer = subprocess.Popen(
        [taskset, "-c", str(args.load_core), sys.executable, "-m", "bench.worker_forward",
         "consumer", "--port", str(port)],
        env=env, cwd=REPO_ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/hook"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or consumer.poll() is not None:
                    print("the consumer did not start", file=sys.stderr)
                    return 2
                time.sleep(0.1)
        print(
            f"{args.requests} requests per client and round, {args.concurrency} in flight, "
            f"client on core {args.client_core}, consumer on core {args.load_core}; "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for round_number in range(1, args.rounds + 1):
            for kind in KINDS:
                output = subprocess.run(
                    [taskset, "-c", str(args.client_core), sys.executable, __file__,
                     "--child", kind, "--url", url, "--requests", str(args.requests),
                     "--concurrency", str(args.concurrency)],
                    env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                )  # fmt: skip
                result = json.loads(output.stdout.strip().splitlines()[-1])
                results[kind].append(result)
                print(
                    f"  [{round_number}/{args.rounds}] {kind:<12} {result['per_second']:7,.0f}/s"
                    f"  CPU {result['cpu_us']:6,.0f} us/request",
                    flush=True,
                )
        print("CPU per request, median of the rounds (range):")
        for kind in KINDS:
            cpu = sorted(r["cpu_us"] for r in results[kind])
            print(f"  {kind:<12} {cpu[len(cpu) // 2]:6,.0f} us  ({cpu[0]:,.0f}-{cpu[-1]:,.0f})")
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    except KeyboardInterrupt:
        return 130
    finally:
        consumer.terminate()
        consumer.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

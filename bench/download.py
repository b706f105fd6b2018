"""Data archive download: throughput, and that the archive never sits in memory.

Starts the sandbox as its own process (so its in-memory archive is not ours), connects a
user with a portability scope, makes one ready data request whose archive is padded to
`--megabytes`, then downloads it `--runs` times with the receiver's streaming download
(`receiver.tiktok.portability.download_archive`): temp file, sha256, ZIP check, rename.
Prints MB/s per run and this process's peak RSS before and after.

    .venv/bin/python bench/download.py [--megabytes 256] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from urllib.parse import parse_qs, urlsplit

import httpx

from receiver.secrets import Secret
from receiver.settings import AppCredentials, Settings
from receiver.testing.redis_server import free_port
from receiver.tiktok.client import TikTokClient
from receiver.tiktok.portability import add_data_request, download_archive

KEY, SECRET = "bench_client_key", "bench_client_secret"
REDIRECT = "http://127.0.0.1:8000/oauth/tiktok/callback"


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start_sandbox(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tiktok_sandbox", "--port", str(port), "--client-key", KEY,
         "--client-secret", SECRET, "--redirect-uri", REDIRECT, "--rate-limit", "0",
         "--log-level", "warning"],
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the sandbox did not start")


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    sandbox = start_sandbox(port)
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        apps=(AppCredentials(KEY, (Secret(SECRET),)),),
        tiktok_api_base_url=base,
        http_timeout_seconds=60,
    )
    try:
        admin = httpx.AsyncClient(base_url=base, timeout=60)
        (
            await admin.put(
                "/sandbox/settings",
                json={"data_archive_padding_bytes": args.megabytes * 1024 * 1024},
            )
        ).raise_for_status()
        location = (await admin.get(
            "/v2/auth/authorize/",
            params={"client_key": KEY, "response_type": "code", "redirect_uri": REDIRECT,
                    "scope": "user.info.basic,portability.all.ongoing", "state": "s"},
        )).headers["location"]  # fmt: skip
        code = parse_qs(urlsplit(location).query)["code"][0]
        async with TikTokClient(settings) as client:
            grant = await client.exchange_code(code, redirect_uri=REDIRECT)
            request_id = await add_data_request(client, grant.access_token, ["all_data"], "json")
            advanced = await admin.post("/sandbox/clock/advance", json={"seconds": 5})
            advanced.raise_for_status()
            await asyncio.sleep(0.3)  # the sandbox's timeline makes the request ready
            print(f"archive: {args.megabytes} MiB of padding; peak RSS before: "
                  f"{peak_rss_mb():.1f} MB")  # fmt: skip
            with tempfile.TemporaryDirectory() as directory:
                for number in range(args.runs):
                    started = time.perf_counter()
                    archive = await download_archive(
                        client, grant.access_token, request_id, directory=directory,
                        name=f"run{number}", max_bytes=2**40,
                    )  # fmt: skip
                    seconds = time.perf_counter() - started
                    megabytes = archive.size / 1e6
                    rate = megabytes / seconds
                    digest = archive.sha256[:12]
                    print(f"run {number + 1}: {megabytes:.1f} MB in {seconds:.2f} s = "
                          f"{rate:.1f} MB/s (sha256 {digest}…)")  # fmt: skip
                    os.unlink(archive.path)
        print(f"peak RSS after: {peak_rss_mb():.1f} MB")
        await admin.aclose()
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Node consumer of docs/forwarding.md, run as written against forwarded requests.

Needs `node` and `npm` (to install the `standardwebhooks` npm package into a temporary
directory); skipped with the reason when either is missing or the registry is unreachable.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.forwarding.store import DeliveryStore
from receiver.testing.redis_server import free_port
from tests.factories import delivery
from tests.handlers.forwarding.support import SECRET, forward_settings
from tests.worker_support import deliver, drain

DOC = Path(__file__).resolve().parents[3] / "docs" / "forwarding.md"
NODE, NPM = shutil.which("node"), shutil.which("npm")


def node_example() -> str:
    blocks = re.findall(r"```js\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/forwarding.md should hold exactly one Node example"
    return str(blocks[0])


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if NODE is None or NPM is None:
        pytest.skip("node and npm are not installed")
    where = tmp_path_factory.mktemp("node-consumer")
    (where / "package.json").write_text('{"name": "consumer", "private": true}')
    try:
        installed = subprocess.run(
            [NPM, "install", "--no-audit", "--no-fund", "standardwebhooks@1"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("npm install standardwebhooks timed out (registry unreachable?)")
    if installed.returncode != 0:
        pytest.skip(f"npm could not install standardwebhooks: {installed.stderr.strip()[-200:]}")
    (where / "consumer.js").write_text(node_example())
    return where


@pytest.fixture
def node_consumer(node_dir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The example running on a free port; stopped (by its own pid) after the test."""
    assert NODE is not None
    port = free_port()
    process = subprocess.Popen(
        [NODE, "consumer.js"],
        cwd=node_dir,
        env={"PORT": str(port), "FORWARD_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 20
        while process.stdout.readline().strip() != b"listening":
            assert process.poll() is None, "the Node example exited"
            assert time.monotonic() < deadline, "the Node example did not start"
        yield port, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def stop_and_read(process: subprocess.Popen[bytes]) -> list[str]:
    process.terminate()
    output, _ = process.communicate(timeout=10)
    return output.decode().splitlines()


async def test_the_node_example_verifies_forwarded_events(
    node_consumer: tuple[int, subprocess.Popen[bytes]], redis_url: str, redis_client: object
) -> None:
    port, process = node_consumer
    settings = forward_settings(redis_url, f"http://127.0.0.1:{port}/")
    content = {"publish_id": "p-node", "post_id": 7300000000000000001}
    await deliver(settings, [delivery("post.publish.publicly_available", content)])
    await drain(settings)
    store = DeliveryStore(
        redis_client,  # type: ignore[arg-type]
    )
    [row] = await store.recent(limit=10)
    assert row.state == "succeeded"
    [attempt] = await store.attempts(row.id)
    assert attempt.status == 204  # the example verified the signature (else 401)
    # The same request once more: the example dedupes by webhook-id.
    assert await store.requeue(row.id, only_unfinished=False)
    await drain(settings)
    [_, second] = await store.attempts(row.id)
    assert second.status == 204
    lines = [line for line in stop_and_read(process) if line.startswith("handled")]
    assert lines == [
        f"handled {row.id} post.publish.publicly_available post_id=7300000000000000001"
    ]

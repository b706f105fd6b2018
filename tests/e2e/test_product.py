"""The whole product with real processes, as `tiktok-webhooks dev` starts them.

Connect a user through OAuth against the sandbox, see the profile fetched, have the
sandbox send events and see them handled, make the receiver unavailable for a while and
see TikTok-style retries deliver everything exactly once, revoke the user and see the data
purged, and find all of it in both metrics endpoints.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from receiver.testing.redis_server import free_port
from tests.dev_stack import answers, connect, wait_for

EVENTS = 12
SCOPES = "user.info.basic,user.info.profile,user.info.stats,video.list,video.upload," + (
    "portability.all.ongoing"
)


@dataclass
class Stack:
    receiver: str
    sandbox: str
    worker_metrics: str
    admin_token: str
    process: subprocess.Popen[bytes]
    data_dir: Path

    def internal(self, path: str) -> httpx.Response:
        return httpx.get(
            f"{self.receiver}/internal{path}",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10,
        )

    def sandbox_api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, f"{self.sandbox}{path}", timeout=10, **kwargs)
        assert response.is_success, response.text
        return response.json() if response.content else None


def pid_of(*words: str) -> int:
    """The process whose command line holds all `words` (the receiver among dev's children)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(word.encode() in argv for word in words):
            return int(entry.name)
    raise AssertionError(f"no process with {words}")


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("dev-stack")
    port, sandbox_port, metrics_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIKTOK_", "REDIS_"))}
    process = subprocess.Popen(
        [
            sys.executable, "-m", "receiver.cli", "dev", "--quiet",
            "--port", str(port), "--sandbox-port", str(sandbox_port),
            "--worker-metrics-port", str(metrics_port), "--data-dir", str(data_dir),
            "--scopes", SCOPES,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    receiver = f"http://127.0.0.1:{port}"
    try:
        wait_for("the dev stack", lambda: answers(f"{receiver}/readyz"), timeout=90)
        wait_for("the worker", lambda: answers(f"http://127.0.0.1:{metrics_port}/metrics"))
        secrets = dict(
            line.split("=", 1)
            for line in (data_dir / "env").read_text().splitlines()
            if "=" in line
        )
        yield Stack(
            receiver=receiver,
            sandbox=f"http://127.0.0.1:{sandbox_port}",
            worker_metrics=f"http://127.0.0.1:{metrics_port}/metrics",
            admin_token=secrets["ADMIN_TOKEN"],
            process=process,
            data_dir=data_dir,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_whole_product(stack: Stack) -> None:
    stack.sandbox_api(
        "POST", "/sandbox/users", json={"open_id": "e2e-user", "display_name": "Edda"}
    )
    # Short attempts, so an outage shows up as failed attempts and retries.
    stack.sandbox_api("PUT", "/sandbox/settings", json={"webhooks": {"timeout_seconds": 1}})

    # 1. Connect through OAuth; the worker fetches the profile.
    connect(stack.receiver, "e2e-user")

    def profile() -> dict[str, Any] | None:
        response = stack.internal("/users/e2e-user")
        if response.status_code != 200:
            return None
        fetched: dict[str, Any] | None = response.json()["profile"]
        return fetched

    wait_for("the profile fetch", lambda: profile() is not None)
    user = stack.internal("/users/e2e-user").json()
    assert user["status"] == "active"
    assert profile() is not None
    assert (profile() or {})["fields"]["display_name"] == "Edda"
    assert "act." not in str(user)  # sandbox tokens look like TikTok's: act.… / rft.…
    assert "rft." not in str(user)

    # 2. Events from the sandbox while the receiver is frozen for a while.
    receiver_pid = pid_of("serve", "--port", stack.receiver.rsplit(":", 1)[1])
    os.kill(receiver_pid, signal.SIGSTOP)
    try:
        for number in range(EVENTS):
            stack.sandbox_api(
                "POST",
                "/sandbox/webhooks",
                json={
                    "event": "video.publish.completed",
                    "open_id": "e2e-user",
                    "content": {"share_id": f"video.{number}.e2e"},
                },
            )
        time.sleep(3)
    finally:
        os.kill(receiver_pid, signal.SIGCONT)

    def all_delivered() -> bool:
        listed = stack.sandbox_api(
            "GET", "/sandbox/webhooks", params={"event": "video.publish.completed"}
        )
        items = listed["deliveries"] if isinstance(listed, dict) else listed
        return len(items) == EVENTS and all(d["status"] == "delivered" for d in items)

    wait_for("every webhook to be delivered", all_delivered, timeout=120)
    listed = stack.sandbox_api(
        "GET", "/sandbox/webhooks", params={"event": "video.publish.completed"}
    )
    items = listed["deliveries"] if isinstance(listed, dict) else listed
    assert max(d["attempt_count"] for d in items) > 1  # the outage really cost attempts

    def handled() -> bool:
        return all(
            stack.internal(f"/status/share/video.{number}.e2e").status_code == 200
            for number in range(EVENTS)
        )

    wait_for("every event to be handled", handled)

    # 3. Nothing lost, nothing handled twice: both metrics endpoints agree.
    def worker_count() -> float:
        return metric(
            httpx.get(stack.worker_metrics, timeout=5).text,
            "tiktok_worker_jobs_total",
            function="process_event",
            event="video.publish.completed",
            outcome="ok",
        )

    wait_for("the worker's counters", lambda: worker_count() == EVENTS)
    receiver_text = httpx.get(f"{stack.receiver}/metrics", timeout=5).text
    accepted = metric(
        receiver_text,
        "tiktok_webhook_deliveries_total",
        event="video.publish.completed",
        outcome="accepted",
    )
    assert accepted == EVENTS
    time.sleep(1)
    assert worker_count() == EVENTS

    # 4. The user removes the app in TikTok: the sandbox sends authorization.removed.
    stack.sandbox_api("POST", "/sandbox/users/e2e-user/deauthorize")

    def purged() -> bool:
        view = stack.internal("/users/e2e-user")
        return view.status_code == 200 and view.json()["status"] == "removed"

    wait_for("the purge", purged)
    view = stack.internal("/users/e2e-user").json()
    assert view["profile"] is None
    assert view["removal"]["reason"] == 1
    worker_text = httpx.get(stack.worker_metrics, timeout=5).text
    assert (
        metric(
            worker_text,
            "tiktok_worker_jobs_total",
            function="process_event",
            event="authorization.removed",
            outcome="ok",
        )
        == 1
    )
    assert (
        metric(worker_text, "tiktok_worker_jobs_total", function="fetch_profile", outcome="ok") >= 1
    )
    assert metric(worker_text, "tiktok_api_requests_total", endpoint="user_info") >= 1


def test_the_dev_stack_keeps_its_secrets_private(stack: Stack) -> None:
    secrets = dict(
        line.split("=", 1)
        for line in (stack.data_dir / "env").read_text().splitlines()
        if "=" in line
    )
    for name in ("env", "stack.env", "receiver.log", "sandbox.log"):
        assert (stack.data_dir / name).stat().st_mode & 0o777 == 0o600, name
    # The sandbox gets the client secret by environment: no command line shows it.
    sandbox = pid_of("sandbox", "--client-key")
    argv = Path(f"/proc/{sandbox}/cmdline").read_bytes()
    assert secrets["TIKTOK_CLIENT_SECRET"].encode() not in argv
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            assert secrets["TIKTOK_CLIENT_SECRET"].encode() not in cmdline


def test_a_publish_to_its_public_video_and_a_data_request_to_its_archive(stack: Stack) -> None:
    """The follow-up fetches end to end: the sandbox's publish sends its webhooks, the
    worker fetches status and video; a data request started through the internal API
    ends as a verified archive on disk."""
    open_id = "-000e2eRealShapedOpenIdAbCdEf0123456"  # TikTok's shape: 36 chars, leading '-'
    stack.sandbox_api("POST", "/sandbox/users", json={"open_id": open_id, "display_name": "Ro"})
    stack.sandbox_api("PUT", "/sandbox/settings", json={"publish_step_seconds": 0.5})
    connect(stack.receiver, open_id)

    # 1. Upload to inbox → the creator posts → the post becomes public.
    publish = stack.sandbox_api("POST", "/sandbox/publishes", json={"open_id": open_id})
    publish_id = publish["publish_id"]

    def fetched_post_ids() -> list[str]:
        response = stack.internal(f"/publishes/{publish_id}")
        if response.status_code != 200:
            return []
        body = response.json()
        fetched = body["fetched"] or {}
        ids: list[str] = fetched.get("post_ids") or []
        return ids if (body["event"] or {}).get("status") == "publicly_available" else []

    wait_for("the publish status with its post id", lambda: bool(fetched_post_ids()))
    [post_id] = fetched_post_ids()
    assert post_id == stack.sandbox_api("GET", f"/sandbox/publishes/{publish_id}")["post_ids"][0]

    def video() -> dict[str, Any] | None:
        videos = stack.internal(f"/users/{open_id}/videos").json()["videos"]
        found = [v for v in videos if v["post_id"] == post_id and v["state"] == "fetched"]
        return found[0] if found else None

    wait_for("the public video's details", lambda: video() is not None)
    details = (video() or {})["details"]
    assert details["id"] == post_id  # a string, all 19 digits
    assert details["view_count"] == 1234
    assert (video() or {})["public"] is True

    # 2. A data request: add → ready webhook (no user_openid) → check → download.
    started = httpx.post(
        f"{stack.receiver}/internal/users/{open_id}/data-requests",
        json={"categories": ["all_data"], "format": "json"},
        headers={"Authorization": f"Bearer {stack.admin_token}"},
        timeout=10,
    )
    assert started.status_code == 201, started.text
    request_id = started.json()["request_id"]

    def request_status() -> dict[str, Any]:
        listed = stack.internal(f"/users/{open_id}/data-requests").json()["data_requests"]
        found: dict[str, Any] = next(r for r in listed if r["request_id"] == request_id)
        return found

    wait_for("the archive", lambda: request_status()["status"] == "downloaded")
    record = request_status()
    path = Path(record["path"])
    assert path.parent == stack.data_dir / "portability"
    data = path.read_bytes()
    assert record["size"] == len(data)
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert open_id.encode() in archive.read("user_data.json")


def test_dev_forwards_events_to_its_echo_consumer(stack: Stack) -> None:
    stack.sandbox_api("POST", "/sandbox/webhooks", json={"event": "tiktok.ping"})
    echo_log = stack.data_dir / "echo.log"

    def forwarded() -> bool:
        text = echo_log.read_text() if echo_log.exists() else ""
        return "tiktok.ping" in text

    wait_for("the echo consumer to print the forwarded ping", forwarded)
    text = echo_log.read_text()
    assert "echo: msg_" in text
    assert "refused" not in text  # every request verified with the dev stack's secret

"""`capture export` and `replay`, run as a user runs them (subprocesses, real HTTP)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec
import pytest

from receiver.cli.main import main
from receiver.ingest.capture import CaptureConfig
from receiver.ingest.events import KNOWN_EVENTS
from receiver.ingest.replay import encode_line
from receiver.testing.redis_server import free_port
from tests.factories import CLIENT_KEY, CLIENT_SECRET, delivery, make_settings
from tests.ingest.conftest import captured, running_receiver, wait_until
from tests.store import Store

CLI = [sys.executable, "-m", "receiver.cli"]


def env(**extra: str) -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("TIKTOK_", "WEBHOOK_", "REDIS_"))
    }
    return {**clean, **extra}


def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, env=env(**extra_env), check=False
    )


def signed_file(path: Path, count: int, *, timestamp: int | None = None, tag: str = "u") -> Path:
    with path.open("wb") as out:
        for i in range(count):
            body, headers = delivery(open_id=f"{tag}-{i}", timestamp=timestamp)
            out.write(encode_line(body, signature=headers["TikTok-Signature"]))
    return path


def test_capture_export_then_replay(redis_url: str, other_db_url: str, tmp_path: Path) -> None:
    bodies = []
    with running_receiver(make_settings(redis_url), CaptureConfig(enabled=True)) as first:
        for i in range(3):
            body, headers = delivery(open_id=f"user-{i}")
            bodies.append(body)
            assert httpx.post(first, content=body, headers=headers).status_code == 200
        wait_until(lambda: len(captured(redis_url)) == 3)

    out = tmp_path / "captured.jsonl"
    export = run("capture", "export", str(out), REDIS_URL=redis_url)
    assert export.returncode == 0, export.stderr
    assert export.stderr.strip() == f"exported 3 deliveries to {out}"
    lines = [msgspec.json.decode(line) for line in out.read_bytes().splitlines()]
    assert [line["body"].encode() for line in lines] == bodies
    assert {line["event"] for line in lines} == {"authorization.removed"}
    assert all(line["signature"].startswith("t=") for line in lines)
    assert not (tmp_path / "captured.jsonl.partial").exists()
    # It holds open_ids and signatures valid within the tolerance: its owner's only.
    assert out.stat().st_mode & 0o777 == 0o600

    to_stdout = run("capture", "export", "-", REDIS_URL=redis_url)
    assert to_stdout.stdout.encode() == out.read_bytes()

    with running_receiver(make_settings(other_db_url)) as second:
        replayed = run("replay", str(out), second, "--json")
        assert replayed.returncode == 0, replayed.stderr
        summary = msgspec.json.decode(replayed.stdout)
        assert (summary["sent"], summary["accepted"], summary["succeeded"]) == (3, 3, True)
        again = run("replay", str(out), second, "--concurrency", "1")
    assert again.returncode == 0, again.stderr
    assert "200              3 (accepted 0, duplicate 3)" in again.stdout
    assert "OK: every delivery was answered 200" in again.stdout
    assert "replay: 3/3 100%" in again.stderr  # progress lines (stderr is not a terminal)


def test_export_of_nothing_and_of_an_unreachable_redis(redis_url: str, tmp_path: Path) -> None:
    empty = run("capture", "export", str(tmp_path / "none.jsonl"), REDIS_URL=redis_url)
    assert empty.returncode == 0
    assert (tmp_path / "none.jsonl").read_bytes() == b""
    assert "WEBHOOK_CAPTURE=1" in empty.stderr

    down = f"redis://127.0.0.1:{free_port()}/0"
    failed = run("capture", "export", str(tmp_path / "out.jsonl"), REDIS_URL=down)
    assert failed.returncode == 3
    assert f"cannot reach Redis at {down} (ConnectionError" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "none.jsonl"]


def test_stale_and_bad_lines_fail_but_the_rest_is_sent(redis_url: str, tmp_path: Path) -> None:
    path = signed_file(tmp_path / "old.jsonl", 3, timestamp=int(time.time()) - 3600)
    with path.open("ab") as out:
        out.write(b"{broken\n")
        out.write(b'{"body": 1}\n')
    with running_receiver(make_settings(redis_url)) as url:
        as_captured = run("replay", str(path), url)
        resigned = run("replay", str(path), url, "--resign", TIKTOK_CLIENT_SECRET=CLIENT_SECRET)
    assert as_captured.returncode == 1
    assert f"{path}:4: not JSON" in as_captured.stderr
    assert f"{path}:5: not a delivery: Expected `str | null`, got `int`" in as_captured.stderr
    assert "note: 3 of 3 deliveries were signed more than 300 s ago" in as_captured.stderr
    assert "line 1: 401 stale_timestamp" in as_captured.stderr
    assert "401              3 (stale_timestamp 3)" in as_captured.stdout
    assert "bad lines        2 (skipped: 4, 5)" in as_captured.stdout
    assert "FAILED: 3 not answered 200, 2 bad lines" in as_captured.stdout

    assert resigned.returncode == 1  # the bad lines still count
    assert "200              3 (accepted 3, duplicate 0)" in resigned.stdout
    assert "FAILED: 2 bad lines" in resigned.stdout


def test_the_corpus_replays_resigned(redis_url: str) -> None:
    with running_receiver(make_settings(redis_url)) as url:
        refused = run("replay", "--corpus", url)
        result = run(
            "replay",
            "--corpus",
            url,
            "--resign",
            "--secret",
            CLIENT_SECRET,
            "--client-key",
            CLIENT_KEY,
            "--json",
        )
    assert refused.returncode == 2
    assert "have no signature" in refused.stderr
    assert "--resign --secret S" in refused.stderr
    assert result.returncode == 0, result.stderr
    summary = msgspec.json.decode(result.stdout)
    assert summary["accepted"] == len(KNOWN_EVENTS)
    store = Store(redis_url)
    assert store.zcard("arq:queue") == len(KNOWN_EVENTS)
    store.close()


def test_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process (each case ends before anything is sent); the flows above are subprocesses.
    monkeypatch.delenv("TIKTOK_CLIENT_SECRET", raising=False)
    path = signed_file(tmp_path / "d.jsonl", 1)
    url = "http://127.0.0.1:9/webhooks/tiktok"
    cases = [
        (["replay", str(path), url, "--secret", "s"], "--secret is only used with --resign"),
        (["replay", str(path), url, "--client-key", "k"], "needs --resign"),
        (["replay", str(path), url, "--resign"], "--resign needs --secret S"),
        (["replay", str(path), "ftp://x/"], "is not an http(s) URL"),
        (["replay", str(tmp_path / "missing.jsonl"), url], "cannot read"),
        (["replay", str(path)], "give the deliveries FILE (or --corpus)"),
        (["replay", str(path), url, "--rate", "fast"], "is not a rate"),
        (["replay", str(path), url, "--concurrency", "0"], "between 1 and 1000"),
    ]
    for args, message in cases:
        status: int | str | None
        try:
            status = main(args)
        except SystemExit as exc:  # argparse's own errors
            status = exc.code
        assert status == 2, args
        stderr = capsys.readouterr().err
        assert message in stderr, (args, stderr)


def test_no_receiver_means_failure(tmp_path: Path) -> None:
    path = signed_file(tmp_path / "d.jsonl", 2)
    result = run("replay", str(path), f"http://127.0.0.1:{free_port()}/webhooks/tiktok", "-q")
    assert result.returncode == 1
    assert "no answer        2 (ConnectError 2)" in result.stdout
    assert result.stderr == ""  # -q: no progress, and the failures are in the summary


def test_ctrl_c_ends_with_a_summary_of_what_was_sent(redis_url: str, tmp_path: Path) -> None:
    path = signed_file(tmp_path / "many.jsonl", 40)
    store = Store(redis_url)
    with running_receiver(make_settings(redis_url)) as url:
        process = subprocess.Popen(
            [*CLI, "replay", str(path), url, "--rate", "10", "--concurrency", "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        wait_until(lambda: store.zcard("arq:queue") >= 3, timeout=20)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    accepted = store.zcard("arq:queue")
    store.close()
    assert process.returncode == 130, stderr
    assert "interrupted: waiting for the requests in flight" in stderr
    assert "Traceback" not in stderr
    assert f"(accepted {accepted}, duplicate 0)" in stdout
    assert f"interrupted: {40 - accepted} deliveries not sent" in stdout

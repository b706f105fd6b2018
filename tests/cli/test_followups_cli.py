"""`status`, `data-request` and ids with a leading '-', run as subprocesses."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import redis.asyncio as aioredis

from receiver import fetched
from receiver.apps import AppChoiceError, choose_app
from receiver.cli.main import build_parser
from receiver.status_store import StatusRecord, save_status
from receiver.testing.redis_server import free_port
from tests.cli.support import clean_env
from tests.cli.test_tokens_doctor import run, service_env
from tests.factories import CLIENT_KEY, CLIENT_SECRET
from tests.oauth.conftest import SandboxInfo
from tests.oauth.harness import oauth_settings, running

OPEN_ID = "-000NAdxlHusXRGvLc05cl15y3jnkJg4utC5"  # real open_ids start with '-'
POST_ID = "7678907398077074696"


@pytest.fixture
def sandbox(sandbox_info: SandboxInfo) -> SandboxInfo:
    httpx.post(f"{sandbox_info.url}/sandbox/reset", timeout=10).raise_for_status()
    httpx.post(
        f"{sandbox_info.url}/sandbox/users", json={"open_id": OPEN_ID}, timeout=10
    ).raise_for_status()
    return sandbox_info


def connect(redis_url: str, sandbox: SandboxInfo, scopes: str) -> None:
    async def flow() -> None:
        settings = oauth_settings(redis_url, sandbox.url, TIKTOK_SCOPES=scopes)
        async with running(settings) as browser:
            assert (await browser.connect(OPEN_ID)).status_code == 200

    asyncio.run(flow())


@pytest.mark.parametrize(
    "argv",
    [
        ["tokens", "show", OPEN_ID],
        ["tokens", "show", OPEN_ID, "--client-key", "k"],
        ["send", "http://127.0.0.1:1/x", "--event", "tiktok.ping", "--open-id", OPEN_ID],
        ["status", "video", "-7678907398077074696"],
        ["data-request", "start", OPEN_ID, "--category", "video"],
        ["data-request", "list", OPEN_ID],
    ],
)
def test_every_id_argument_takes_a_leading_dash(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert argv[2] in vars(args).values() or OPEN_ID in vars(args).values()


def test_options_that_look_like_nothing_are_still_refused() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["tokens", "show", "alice", "-x"])


def test_tokens_show_and_send_with_a_real_shaped_open_id(
    redis_url: str, sandbox: SandboxInfo
) -> None:
    env = service_env(redis_url, sandbox)
    connect(redis_url, sandbox, "user.info.basic")
    shown = run("tokens", "show", OPEN_ID, env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["open_id"] == OPEN_ID
    port = free_port()  # nothing listens: the point is that argparse accepted the id
    sent = run(
        "send", f"http://127.0.0.1:{port}/webhooks/tiktok", "--event", "tiktok.ping",
        "--open-id", OPEN_ID, "--client-key", CLIENT_KEY, "--secret", CLIENT_SECRET,
        env=clean_env(),
    )  # fmt: skip
    assert sent.returncode == 1
    assert "could not deliver" in sent.stderr
    assert "Traceback" not in sent.stderr


def test_status_of_a_publish_a_video_and_a_data_request(
    redis_url: str, sandbox: SandboxInfo
) -> None:
    env = service_env(redis_url, sandbox)

    async def seed() -> None:
        redis_client = aioredis.Redis.from_url(redis_url)
        await save_status(
            redis_client,
            StatusRecord(
                kind="publish", id="v_pub_file~v2.1", status="complete",
                event="post.publish.complete", create_time=1, client_key=CLIENT_KEY,
            ),
        )  # fmt: skip
        await fetched.note_video(
            redis_client, CLIENT_KEY, POST_ID, open_id=OPEN_ID, publish_id="v_pub_file~v2.1"
        )
        await redis_client.aclose()

    asyncio.run(seed())
    publish = run("status", "publish", "v_pub_file~v2.1", env=env)
    assert publish.returncode == 0, publish.stderr
    assert json.loads(publish.stdout)["event"]["status"] == "complete"
    video = run("status", "video", POST_ID, env=env)
    assert json.loads(video.stdout)["post_id"] == POST_ID
    missing = run("status", "data-request", "123", env=env)
    assert missing.returncode == 1
    assert "nothing recorded for data-request 123" in missing.stderr
    wrong_app = run("status", "publish", "v_pub_file~v2.1", "--client-key", "nope", env=env)
    assert wrong_app.returncode == 2
    assert "no app with client_key 'nope'" in wrong_app.stderr


def test_data_request_start_and_list(redis_url: str, sandbox: SandboxInfo) -> None:
    env = service_env(redis_url, sandbox)
    connect(redis_url, sandbox, "user.info.basic,portability.postsandprofile.ongoing")
    started = run(
        "data-request", "start", OPEN_ID, "--category", "video", "--category", "profile", env=env
    )
    assert started.returncode == 0, started.stderr
    record = json.loads(started.stdout)
    assert record["request_id"].isdigit()
    assert record["status"] == "requested"
    listed = run("data-request", "list", OPEN_ID, env=env)
    assert [r["request_id"] for r in json.loads(listed.stdout)] == [record["request_id"]]
    refused = run("data-request", "start", OPEN_ID, "--category", "activity", env=env)
    assert refused.returncode == 1
    assert "scope_not_authorized" in refused.stderr
    assert "Traceback" not in refused.stderr
    unnamed = run("data-request", "start", OPEN_ID, env=env)
    assert unnamed.returncode == 2
    assert "--category" in unnamed.stderr


def test_choose_app() -> None:
    assert choose_app(["a"], None) == "a"
    assert choose_app(["a", "b"], "b") == "b"
    with pytest.raises(AppChoiceError, match="2 apps are configured"):
        choose_app(["a", "b"], None)
    with pytest.raises(AppChoiceError, match="no app"):
        choose_app(["a"], "c")

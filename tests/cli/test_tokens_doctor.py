"""`keygen`, `tokens ...`, `doctor` and `serve` with OAuth, run as subprocesses."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from receiver.secrets import Secret
from receiver.testing.redis_server import free_port
from receiver.testing.servers import wait_until_ready
from receiver.vault.crypto import TokenCipher, generate_key
from tests.cli.support import clean_env
from tests.factories import CLIENT_KEY, CLIENT_SECRET
from tests.oauth.conftest import SandboxInfo
from tests.oauth.harness import (
    ADMIN_TOKEN,
    ENCRYPTION_KEY,
    assert_absent,
    oauth_settings,
    running,
    stored_tokens,
)

CLI = [sys.executable, "-m", "receiver.cli"]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


@pytest.fixture
def sandbox(sandbox_info: SandboxInfo) -> SandboxInfo:
    httpx.post(f"{sandbox_info.url}/sandbox/reset", timeout=10).raise_for_status()
    return sandbox_info


def service_env(redis_url: str, sandbox: SandboxInfo, **extra: str) -> dict[str, str]:
    base = {
        "TIKTOK_CLIENT_KEY": CLIENT_KEY,
        "TIKTOK_CLIENT_SECRET": CLIENT_SECRET,
        "REDIS_URL": redis_url,
        "TOKEN_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "TIKTOK_WEBHOOKS_ENV": "development",
        "TIKTOK_API_BASE_URL": sandbox.url,
        "TIKTOK_AUTH_URL": f"{sandbox.url}/v2/auth/authorize/",
    }
    return clean_env(**{**base, **extra})


def connect(redis_url: str, sandbox: SandboxInfo, *open_ids: str) -> list[str]:
    """Connect users through the OAuth routes; their (access, refresh) tokens, flattened."""

    async def flow() -> list[str]:
        tokens: list[str] = []
        async with running(oauth_settings(redis_url, sandbox.url)) as browser:
            for open_id in open_ids:
                assert (await browser.connect(open_id)).status_code == 200
                tokens.extend(await stored_tokens(browser.app.redis, open_id))
        return tokens

    return asyncio.run(flow())


def current_tokens(redis_url: str, *open_ids: str) -> list[str]:
    async def read() -> list[str]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return [t for open_id in open_ids for t in await stored_tokens(client, open_id)]
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_keygen_prints_a_fresh_valid_key() -> None:
    first = run("keygen", env=clean_env())
    second = run("keygen", env=clean_env())
    assert first.returncode == 0
    key = first.stdout.strip()
    assert len(key) == 44
    assert key != second.stdout.strip()
    TokenCipher([Secret(key)])


def test_tokens_list_show_refresh_revoke(redis_url: str, sandbox: SandboxInfo) -> None:
    env = service_env(redis_url, sandbox)
    seen = connect(redis_url, sandbox, "alice", "bob")
    outputs: list[str] = []

    def ok(*args: str) -> str:
        result = run("tokens", *args, env=env)
        outputs.extend([result.stdout, result.stderr])
        assert result.returncode == 0, result.stderr
        return result.stdout

    listed = ok("list").splitlines()
    assert listed[0].split()[:2] == ["OPEN_ID", "STATUS"]
    assert [line.split()[:2] for line in listed[1:]] == [["alice", "active"], ["bob", "active"]]
    shown = json.loads(ok("show", "alice"))
    assert shown["status"] == "active"
    assert shown["scopes"] == ["user.info.basic"]

    assert "alice: refreshed; access token valid until" in ok("refresh", "alice")
    refreshes = httpx.get(
        f"{sandbox.url}/sandbox/calls", params={"endpoint": "token", "grant_type": "refresh_token"}
    ).json()["calls"]
    assert [c["status"] for c in refreshes] == [200]
    seen += current_tokens(redis_url, "alice")

    assert "revoked at TikTok" in ok("revoke", "bob")
    revokes = httpx.get(f"{sandbox.url}/sandbox/calls", params={"endpoint": "revoke"}).json()
    assert [(c["status"], c["open_id"]) for c in revokes["calls"]] == [(200, "bob")]
    assert json.loads(ok("show", "bob"))["status"] == "revoked"
    assert "already revoked" in ok("revoke", "bob")
    assert [line.split()[1] for line in ok("list").splitlines()[1:]] == ["active", "revoked"]

    failures = [("show", "nobody"), ("refresh", "nobody"), ("revoke", "nobody"), ("refresh", "bob")]
    with ThreadPoolExecutor() as pool:
        results = list(pool.map(lambda args: run("tokens", *args, env=env), failures))
    for args, failed in zip(failures, results, strict=True):
        outputs.extend([failed.stdout, failed.stderr])
        assert failed.returncode == 1, args
        assert "Traceback" not in failed.stderr
    assert run("tokens", "show", env=env).returncode == 2
    for output in outputs:
        assert_absent(output, [*seen, CLIENT_SECRET, ENCRYPTION_KEY], "CLI output")


def test_tokens_reencrypt_rotates_the_key(redis_url: str, sandbox: SandboxInfo) -> None:
    connect(redis_url, sandbox, "alice")
    new_key = generate_key()
    both = service_env(redis_url, sandbox, TOKEN_ENCRYPTION_KEYS=f"{new_key},{ENCRYPTION_KEY}")
    result = run("tokens", "reencrypt", env=both)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "re-encrypted 1 token record(s) with the current key"
    assert "re-encrypted 0" in run("tokens", "reencrypt", env=both).stdout

    old_only = run("tokens", "refresh", "alice", env=service_env(redis_url, sandbox))
    assert old_only.returncode == 1
    assert "not in TOKEN_ENCRYPTION_KEYS" in old_only.stderr
    new_only = service_env(redis_url, sandbox, TOKEN_ENCRYPTION_KEYS=new_key)
    assert run("tokens", "refresh", "alice", env=new_only).returncode == 0


def test_tokens_need_the_encryption_keys(redis_url: str) -> None:
    env = clean_env(TIKTOK_CLIENT_KEY="k", TIKTOK_CLIENT_SECRET="s", REDIS_URL=redis_url)
    result = run("tokens", "list", env=env)
    assert result.returncode == 2
    assert "TOKEN_ENCRYPTION_KEYS is not set" in result.stderr


def test_doctor_good_config(redis_url: str, sandbox: SandboxInfo) -> None:
    env = service_env(
        redis_url,
        sandbox,
        TIKTOK_REDIRECT_URI="https://receiver.example/oauth/tiktok/callback",
        TIKTOK_SCOPES="user.info.basic,user.info.profile",
        ADMIN_TOKEN=ADMIN_TOKEN,
    )
    result = run("doctor", env=env)
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    names = [line.split(":")[0].split(maxsplit=1)[1] for line in lines[:-1]]
    assert names == [
        "client key",
        "client secret",
        "redirect uri",
        "scopes",
        "encryption keys",
        "admin token",
        "settings",
        "security",
        "redis",
        "redis memory",
        "tiktok api",
        "tiktok credentials",
        "forwarding",
    ]
    assert lines[-2].startswith("OK   forwarding: off: no destination")
    # The test Redis has no maxmemory: a warning, not a failure.
    warned = [line for line in lines[:-1] if not line.startswith("OK ")]
    assert warned == [line for line in lines if line.startswith("WARN redis memory: no maxmemory")]
    assert lines[-1] == "all 13 checks OK (1 warning)"
    assert_absent(
        result.stdout + result.stderr, [CLIENT_SECRET, ENCRYPTION_KEY, ADMIN_TOKEN], "doctor"
    )


def test_doctor_bad_config_says_what_to_fix(redis_url: str, sandbox: SandboxInfo) -> None:
    env = service_env(
        f"redis://:hunter2-password@127.0.0.1:{free_port()}/0",
        sandbox,
        TIKTOK_CLIENT_SECRET="wrong-secret ",
        TIKTOK_REDIRECT_URI="https://receiver.example/oauth/tiktok/callback?from=tiktok",
        TIKTOK_SCOPES="user.info.basic user.info.profile",
        TOKEN_ENCRYPTION_KEYS="not-a-key",
        ADMIN_TOKEN="short",
    )
    result = run("doctor", env=env)
    assert result.returncode == 1
    failed = {
        line.split(":")[0].split(maxsplit=1)[1]: line
        for line in result.stdout.splitlines()
        if line.startswith("FAIL")
    }
    assert set(failed) == {
        "client secret",
        "redirect uri",
        "scopes",
        "encryption keys",
        "admin token",
        "settings",
        "redis",
        "tiktok credentials",
    }, result.stdout
    assert "spaces" in failed["client secret"]
    assert "must not have a query" in failed["redirect uri"]
    assert "comma-separated" in failed["scopes"]
    assert "tiktok-webhooks keygen" in failed["encryption keys"]
    assert "invalid_client" in failed["tiktok credentials"]
    assert "TIKTOK_CLIENT_SECRET" in failed["tiktok credentials"]
    assert "8 of 10 checks failed" in result.stdout
    assert_absent(result.stdout + result.stderr, ["wrong-secret", "hunter2"], "doctor")


def test_doctor_unreachable_tiktok(redis_url: str) -> None:
    env = service_env(
        redis_url,
        SandboxInfo(f"http://127.0.0.1:{free_port()}", 0),
    )
    result = run("doctor", env=env)
    assert result.returncode == 1
    assert "FAIL tiktok api: cannot reach" in result.stdout
    assert "tiktok credentials" not in result.stdout


def test_serve_refuses_half_configured_oauth(redis_url: str) -> None:
    env = clean_env(
        TIKTOK_CLIENT_KEY="k",
        TIKTOK_CLIENT_SECRET="s3cr3t-value",
        REDIS_URL=redis_url,
        TIKTOK_REDIRECT_URI="https://receiver.example/oauth/tiktok/callback",
    )
    result = run("serve", "--port", str(free_port()), env=env)
    assert result.returncode == 2
    assert "TOKEN_ENCRYPTION_KEYS is not set" in result.stderr
    assert "Traceback" not in result.stderr
    assert "s3cr3t-value" not in result.stderr


@pytest.fixture
def served(redis_url: str, sandbox: SandboxInfo, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`tiktok-webhooks serve` with OAuth on http loopback (development), logging at debug."""
    env = service_env(
        redis_url,
        sandbox,
        TIKTOK_WEBHOOKS_ENV="development",
        TIKTOK_REDIRECT_URI=sandbox.dev_redirect_uri,
        ADMIN_TOKEN=ADMIN_TOKEN,
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*CLI, "serve", "--port", str(sandbox.dev_port), "--log-level", "debug"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{sandbox.dev_port}"
    wait_until_ready(process, f"{url}/readyz", log=log)
    try:
        yield url, log
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) in (0, -signal.SIGTERM)


def test_served_flow_over_real_http(served: tuple[str, Path], redis_url: str) -> None:
    """A browser that follows every redirect: receiver -> sandbox -> receiver, real sockets."""
    url, log = served
    with httpx.Client(follow_redirects=True, timeout=10) as browser:
        response = browser.get(f"{url}/oauth/tiktok/start")
        assert response.status_code == 200, response.text
        assert "TikTok account connected" in response.text
        assert [r.status_code for r in response.history] == [302, 302, 303]
        assert "tiktok_oauth" in browser.cookies
        view = browser.get(
            f"{url}/internal/users/alice", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
    assert view.json()["status"] == "active"
    tokens = current_tokens(redis_url, "alice")
    assert_absent(log.read_text(), [*tokens, CLIENT_SECRET, ENCRYPTION_KEY, ADMIN_TOKEN], "logs")

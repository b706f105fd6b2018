"""What a new user meets first: help, one-line errors with distinct exit statuses, typos,
the doctor's verdict, the handlers list. Each command runs as a real process."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.cli.main import build_parser
from receiver.testing.redis_server import free_port
from receiver.vault.crypto import generate_key
from tests.cli.support import clean_env

CLI = [sys.executable, "-m", "receiver.cli"]


def run(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def worker_env(redis_url: str, **values: str) -> dict[str, str]:
    return clean_env(
        TIKTOK_CLIENT_KEY="dev_key",
        TIKTOK_CLIENT_SECRET="dev-secret",
        TOKEN_ENCRYPTION_KEYS=generate_key(),
        REDIS_URL=redis_url,
        **values,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("tiktok-webhooks:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


# --------------------------------------------------------------------------- help


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"{name}: no one-line help in the command list"
                yield name, sub
                for inner, deeper in _subparsers(sub):
                    yield f"{name} {inner}", deeper


def test_every_command_and_option_has_help_with_its_default() -> None:
    commands = list(_subparsers(build_parser()))
    assert len(commands) >= 15
    problems = []
    for name, parser in commands:
        if not parser.description:
            problems.append(f"{name}: no description")
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not action.help:
                problems.append(f"{label}: no help")
                continue
            has_default = action.default not in (None, False, argparse.SUPPRESS, [])
            if action.option_strings and has_default and "default" not in action.help:
                problems.append(f"{label}: the help does not say the default {action.default!r}")
    assert problems == []


# --------------------------------------------------------------------------- errors


def test_settings_errors_name_the_variable_and_the_form() -> None:
    result = run("serve", env=worker_env("redis://127.0.0.1:1/0", WEBHOOK_TOLERANCE_SECONDS="abc"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "WEBHOOK_TOLERANCE_SECONDS: expected a whole number (default: 300), got 'abc'" in (
        result.stderr
    )
    for command in (["serve"], ["tokens", "list"]):
        bad_port = run(*command, env=worker_env("redis://127.0.0.1:notaport/0"))
        assert bad_port.returncode == 2
        assert "REDIS_URL: the port is not a number" in bad_port.stderr
        assert "Traceback" not in bad_port.stderr


@pytest.mark.parametrize(
    "command",
    [["dlq", "list"], ["status", "share", "video.1"], ["worker", "--check"], ["tokens", "list"]],
    ids=" ".join,
)
def test_an_unreachable_redis_is_one_line_with_status_3(command: list[str]) -> None:
    port = free_port()
    result = run(*command, env=worker_env(f"redis://:hunter2@127.0.0.1:{port}/0"))
    line = one_line_error(result)
    assert result.returncode == 3
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0 (ConnectionError" in line
    assert "check REDIS_URL" in line
    assert "hunter2" not in result.stderr + result.stdout


def test_the_worker_checks_its_configuration_then_its_port(busy_port: int) -> None:
    unconfigured = run("worker", "--metrics-port", str(busy_port), env=clean_env())
    assert unconfigured.returncode == 2
    assert "TOKEN_ENCRYPTION_KEYS is not set" in unconfigured.stderr
    assert "metrics" not in unconfigured.stderr

    bad_module = run(
        "worker",
        "--metrics-port",
        str(busy_port),
        env=worker_env("redis://127.0.0.1:1/0", WORKER_HANDLER_MODULES="no_such_module"),
    )
    assert bad_module.returncode == 2
    assert "cannot import 'no_such_module'" in bad_module.stderr

    taken = run("worker", "--metrics-port", str(busy_port), env=worker_env("redis://127.0.0.1:1/0"))
    line = one_line_error(taken)
    assert taken.returncode == 4
    assert f"127.0.0.1:{busy_port}" in line
    assert "--metrics-port" in line


def test_send_refuses_a_typo_and_suggests_the_event() -> None:
    url = f"http://127.0.0.1:{free_port()}/webhooks/tiktok"
    env = clean_env(TIKTOK_CLIENT_KEY="k", TIKTOK_CLIENT_SECRET="s")
    typo = run("send", url, "--event", "video.publish.complete", env=env)
    assert typo.returncode == 2
    assert "did you mean video.publish.completed?" in typo.stderr
    assert "--force" in typo.stderr
    assert "could not deliver" not in typo.stderr  # nothing was sent
    forced = run("send", url, "--event", "video.publish.complete", "--force", env=env)
    assert forced.returncode == 1
    assert "could not deliver" in forced.stderr  # it was sent (to nobody)


def test_doctor_with_nothing_configured_agrees_with_serve() -> None:
    env = clean_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    serve = run("serve", env=env)
    assert serve.returncode == 2
    doctor = run("doctor", env=env)
    assert doctor.returncode == 1
    lines = doctor.stdout.splitlines()
    assert "FAIL settings: `serve` and `worker` would refuse to start (see above)" in lines
    [tiktok] = [line for line in lines if "tiktok api" in line]
    assert tiktok.startswith("SKIP tiktok api: not contacted")
    assert lines[-1].endswith(", 1 skipped")


def test_handlers_list_names_builtin_and_own_handlers(tmp_path: Path) -> None:
    package = tmp_path / "acme"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "hooks.py").write_text(
        "from handlers.registry import registry\n\n"
        "@registry.on('video.publish.completed', name='acme.shout')\n"
        "async def shout(event, ctx):\n"
        "    return 'ok'\n"
    )
    env = clean_env(WORKER_HANDLER_MODULES="acme.hooks")
    missing = run("handlers", "list", env=env)
    assert missing.returncode == 2
    assert "cannot import 'acme.hooks'" in missing.stderr
    listed = run("handlers", "list", "--handlers-path", str(tmp_path), env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines() if line.strip()}
    assert rows["HANDLER"].split() == ["HANDLER", "MODULE", "EVENTS"]
    assert rows["acme.shout"].split()[1:] == ["acme.hooks", "video.publish.completed"]
    assert "builtin.purge_user" in rows
    assert "handler modules (WORKER_HANDLER_MODULES): acme.hooks" in listed.stdout


def test_sign_on_a_terminal_says_it_reads_standard_input() -> None:
    import pty

    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [*CLI, "sign", "--secret", "s", "--timestamp", "1700000000"],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        assert process.stderr is not None
        said = process.stderr.readline()
        assert "reading the body from standard input" in said
        os.write(controller, b"{}\n\x04")
        out, _ = process.communicate(timeout=30)
    finally:
        os.close(controller)
        os.close(terminal)
        if process.stderr is not None:
            process.stderr.close()
    assert out.startswith("t=1700000000,s=")
    piped = subprocess.run(
        [*CLI, "sign", "--secret", "s"], input="{}", capture_output=True, text=True, check=False
    )
    assert piped.returncode == 0
    assert piped.stderr == ""


def test_serve_names_the_redis_it_cannot_reach() -> None:
    port = free_port()
    env = worker_env(f"redis://:hunter2@127.0.0.1:{port}/0")
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(free_port())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if "tiktok_webhooks.redis" in line:
                break
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stderr.close()
    assert f"Redis at redis://:***@127.0.0.1:{port}/0 unreachable (ConnectionError)" in line
    assert "check REDIS_URL" in line


def test_replaying_the_corpus_resigned_needs_the_client_key() -> None:
    env = clean_env(TIKTOK_CLIENT_SECRET="s")
    url = f"http://127.0.0.1:{free_port()}/webhooks/tiktok"
    result = run("replay", "--corpus", url, "--resign", env=env)
    assert result.returncode == 2
    assert "--corpus needs --client-key" in result.stderr

from __future__ import annotations

from collections.abc import Iterator

import pytest

from receiver.testing.servers import serve_in_thread
from tests.tiktok_sandbox.harness import START, FakeClock, SandboxClient, make_config
from tiktok_sandbox import create_app


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[tuple[str, FakeClock]]:
    """One sandbox server for the session, on a clock that only the tests move."""
    clock = FakeClock()
    with serve_in_thread(create_app(make_config(), clock=clock)) as base_url:
        yield base_url, clock


@pytest.fixture
def sandbox(shared_sandbox: tuple[str, FakeClock]) -> Iterator[SandboxClient]:
    """A client of the shared sandbox, reset to its configuration before the test."""
    base_url, clock = shared_sandbox
    clock.set(START)
    client = SandboxClient(base_url, clock)
    assert client.admin("POST", "reset").status_code == 200
    yield client
    client.close()

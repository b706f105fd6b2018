"""TikTok's answers are untrusted bytes too: deep nesting, huge numbers and invalid
UTF-8 become a TikTokError (for the token grant a retryable `invalid_response`), never
a RecursionError or a traceback."""

from __future__ import annotations

import logging

import pytest

from receiver.tiktok.client import TikTokClient
from receiver.tiktok.errors import TikTokError, TransientError
from tests.tiktok.scripted_tiktok import Reply, ScriptedTikTok
from tests.tiktok.test_client_errors import TOKEN, USER, call

HOSTILE_ANSWERS = {
    "deep-array": b"[" * 100_000 + b"]" * 100_000,
    "deep-object": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "deep-data": b'{"data":{"user":' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
    "huge-integer": b'{"expires_in":' + b"9" * 5000 + b"}",
    "huge-float": b'{"access_token":"a","expires_in":1e999999}',
    "invalid-utf8": b'{"access_token":"\xff\xfe","open_id":"u"}',
    "lone-surrogate": b'{"access_token":"\\ud800","open_id":"u"}',
}


@pytest.mark.parametrize("path", [TOKEN, USER])
@pytest.mark.parametrize("name", sorted(HOSTILE_ANSWERS))
async def test_hostile_answer_is_an_invalid_response(
    client: TikTokClient,
    fake: ScriptedTikTok,
    path: str,
    name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.queue(path, Reply(200, body=HOSTILE_ANSWERS[name]))
    with caplog.at_level(logging.INFO), pytest.raises(TikTokError) as raised:
        await call(client, path)
    if path == TOKEN:
        assert isinstance(raised.value, TransientError)
        assert raised.value.code == "invalid_response"
    assert all(record.exc_info is None for record in caplog.records)

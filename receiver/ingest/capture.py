"""Opt-in capture of verified deliveries into a bounded Redis stream.

With ``WEBHOOK_CAPTURE=1`` the receiver appends every delivery whose signature verified
(whatever its answer then is: accepted, duplicate, malformed content, 503) to the stream
``tiktok:capture`` (`keys.CAPTURE_STREAM`), one entry per delivery with three fields:
``body`` (the raw bytes exactly as received), ``signature`` (the ``TikTok-Signature``
header as received) and ``received_at`` (arrival time, ms since the epoch). Nothing else is
stored: nothing secret beyond what TikTok sent.

Retention: ``MAXLEN`` (``WEBHOOK_CAPTURE_MAX_ENTRIES``) on every ``XADD`` and ``MINID``
(now minus ``WEBHOOK_CAPTURE_MAX_AGE_SECONDS``) once per batch. Redis lets an ``XADD``
trim by one of the two only, so the age trim is an ``XTRIM`` in the same script call.
From `APPROXIMATE_FROM` entries on both trims are approximate (``~``: Redis drops whole
stream nodes, which is much cheaper, and may keep up to one node, 100 entries, more);
below that they are exact.

Capture never fails and never delays a delivery: the hook only appends to an in-memory
buffer (bounded by `MAX_PENDING` entries and `MAX_PENDING_BYTES`); the buffer is written
`LINGER_SECONDS` later, after the answer went out, one batch in flight at a time, as one
round trip (one small Lua script, `CAPTURE_SCRIPT`) per `MAX_ENTRIES_PER_CALL` entries or
`MAX_BYTES_PER_CALL` bytes. Entries Redis refused or could not take, and entries that found
the buffer full, are dropped and counted as ``failed`` in
``tiktok_webhook_captures_total{outcome}``.

``tiktok-webhooks capture export FILE.jsonl`` (`export_capture`) writes the stream out in
the JSONL format of `receiver.ingest.replay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec
import redis.asyncio as aioredis
from prometheus_client import Counter

from receiver import keys
from receiver.settings import ConfigError

if TYPE_CHECKING:
    from receiver.ingest.webhook import WebhookEndpoint

logger = logging.getLogger("tiktok_webhooks.capture")

ENV_ENABLED: Final = "WEBHOOK_CAPTURE"
ENV_MAX_ENTRIES: Final = "WEBHOOK_CAPTURE_MAX_ENTRIES"
ENV_MAX_AGE_SECONDS: Final = "WEBHOOK_CAPTURE_MAX_AGE_SECONDS"
DEFAULT_MAX_ENTRIES: Final = 10_000
DEFAULT_MAX_AGE_SECONDS: Final = 7 * 24 * 3600
# Below this many entries trimming is exact (cheap at that size, and predictable).
APPROXIMATE_FROM: Final = 1000
# Entries (and their bytes) waiting for Redis; past either, new ones are dropped (and
# counted as failed). TikTok's bodies are a few hundred bytes; the byte bound is for
# bodies near WEBHOOK_MAX_BODY_BYTES.
MAX_PENDING: Final = 10_000
MAX_PENDING_BYTES: Final = 32 * 1024 * 1024
# One script call: at most this many entries and (beyond its first entry) bytes, so
# Redis is never blocked for long.
MAX_ENTRIES_PER_CALL: Final = 256
MAX_BYTES_PER_CALL: Final = 4 * 1024 * 1024
# How long the first entry of a batch waits: the answer to its delivery goes out first,
# and deliveries arriving meanwhile share the round trip.
LINGER_SECONDS: Final = 0.005

CAPTURES = Counter(
    "tiktok_webhook_captures_total",
    "Verified deliveries written to the capture stream (ok) or dropped (failed: Redis "
    "refused or was unreachable, or the capture buffer was full). Capture never fails a "
    "delivery.",
    ["outcome"],
)

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


class CaptureConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the receiver captures deliveries, and how many / how long it keeps them."""

    enabled: bool = False
    max_entries: int = DEFAULT_MAX_ENTRIES
    max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS

    def __post_init__(self) -> None:
        problems = []
        if self.max_entries < 1:
            problems.append(f"{ENV_MAX_ENTRIES} must be at least 1 (entries kept)")
        if self.max_age_seconds < 1:
            problems.append(f"{ENV_MAX_AGE_SECONDS} must be at least 1 (seconds kept)")
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> CaptureConfig:
        """Read ``WEBHOOK_CAPTURE*``; every problem is reported at once as a ConfigError."""
        problems: list[str] = []
        flag = environ.get(ENV_ENABLED, "").strip().lower()
        enabled = flag in _TRUE
        if not enabled and flag not in _FALSE:
            problems.append(
                f"{ENV_ENABLED} must be 1 (capture verified deliveries) or 0 (off), "
                f"not {environ[ENV_ENABLED]!r}"
            )
        max_entries = _whole_number(
            environ, ENV_MAX_ENTRIES, DEFAULT_MAX_ENTRIES, "entries kept", problems
        )
        max_age = _whole_number(
            environ, ENV_MAX_AGE_SECONDS, DEFAULT_MAX_AGE_SECONDS, "seconds kept", problems
        )
        if problems:
            raise ConfigError(problems)
        return cls(enabled=enabled, max_entries=max_entries, max_age_seconds=max_age)


def _whole_number(
    environ: Mapping[str, str], name: str, default: int, unit: str, problems: list[str]
) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name} must be a whole number of {unit}, at least 1, not {raw!r}")
        return default
    if value < 1:
        problems.append(f"{name} must be at least 1 ({unit}), not {value}")
        return default
    return value


# One call per batch (one reply to parse instead of one per entry). KEYS[1] the stream;
# ARGV[1] MAXLEN, ARGV[2] the trim operator (~ or =), ARGV[3] MINID; then per entry
# body, signature, received_at. Returns how many entries were added.
CAPTURE_SCRIPT: Final = """
local n = 0
for i = 4, #ARGV, 3 do
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], ARGV[1], '*',
             'body', ARGV[i], 'signature', ARGV[i + 1], 'received_at', ARGV[i + 2])
  n = n + 1
end
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[2], ARGV[3])
return n
"""


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class Capture:
    """Buffers verified deliveries and appends them to the stream in the background.

    `record` is the endpoint's hook; it must be called on the event loop that runs the
    endpoint. `aclose` writes what is still buffered.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        config: CaptureConfig,
        *,
        stream: str = keys.CAPTURE_STREAM,
        linger_seconds: float = LINGER_SECONDS,
        max_pending: int = MAX_PENDING,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        clock: Callable[[], float] = time.time,
        name: str = "capture",
        counter: Counter = CAPTURES,
        counter_name: str = "tiktok_webhook_captures_total",
    ) -> None:
        # `name` and `counter` let another bounded stream (the console's recent-delivery
        # index, receiver/ingest/recent.py) reuse this buffer with its own logs and metric.
        self.config = config
        self._name = name
        self._counter_name = counter_name
        self._ok = counter.labels("ok")
        self._failed = counter.labels("failed")
        self._pool = redis.connection_pool
        self._linger = linger_seconds
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        self._clock = clock
        # EVAL script 1 key maxlen op, then minid and the entries per call.
        self._eval_head = (
            _bulk(b"EVAL")
            + _bulk(CAPTURE_SCRIPT.encode())
            + _bulk(b"1")
            + _bulk(stream.encode())
            + _bulk(str(config.max_entries).encode())
            + _bulk(b"~" if config.max_entries >= APPROXIMATE_FROM else b"=")
        )
        self._max_age_ms = config.max_age_seconds * 1000
        self._pending: list[tuple[bytes, bytes | None, float]] = []
        self._pending_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None
        self._closed = False
        self._failing = False

    def record(self, body: bytes, signature: bytes | None, received_at: float) -> None:
        """Buffer one delivery (never raises, never waits)."""
        size = self._pending_bytes + len(body)
        if (
            self._closed
            or len(self._pending) >= self._max_pending
            or size > self._max_pending_bytes
        ):
            self._failed.inc()
            if not self._failing and not self._closed:
                self._failing = True
                logger.warning(
                    "%s: buffer full (Redis too slow or unreachable), deliveries are "
                    "not recorded; deliveries are unaffected, see %s",
                    self._name,
                    self._counter_name,
                )
            return
        self._pending_bytes = size
        self._pending.append((body, signature, received_at))
        if self._timer is None and self._writing is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._linger, self._start_write)

    def _start_write(self) -> None:
        self._timer = None
        if not self._pending or self._writing is not None:
            return
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        task = asyncio.ensure_future(self._write(batch))
        self._writing = task
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writing = None
        if self._pending and not self._closed and self._timer is None:
            self._timer = task.get_loop().call_later(self._linger, self._start_write)

    async def _write(self, batch: list[tuple[bytes, bytes | None, float]]) -> None:
        chunk: list[tuple[bytes, bytes | None, float]] = []
        size = 0
        for entry in batch:
            if chunk and (
                len(chunk) >= MAX_ENTRIES_PER_CALL or size + len(entry[0]) > MAX_BYTES_PER_CALL
            ):
                await self._write_chunk(chunk)
                chunk, size = [], 0
            chunk.append(entry)
            size += len(entry[0])
        if chunk:
            await self._write_chunk(chunk)

    async def _write_chunk(self, chunk: list[tuple[bytes, bytes | None, float]]) -> None:
        try:
            reply = await self._roundtrip(chunk)
        except Exception as exc:  # capture must never disturb the receiver
            self._failed.inc(len(chunk))
            if not self._failing:
                self._failing = True
                logger.warning(
                    "%s: could not write %d deliveries to Redis (%s: %s); "
                    "deliveries are unaffected, see %s",
                    self._name,
                    len(chunk),
                    type(exc).__name__,
                    exc,
                    self._counter_name,
                )
            return
        written = reply if isinstance(reply, int) else 0
        self._ok.inc(written)
        if written < len(chunk):
            self._failed.inc(len(chunk) - written)
        if self._failing:
            self._failing = False
            logger.info("%s: writing to Redis again", self._name)

    async def _roundtrip(self, chunk: list[tuple[bytes, bytes | None, float]]) -> Any:
        """One EVAL for the chunk: its XADDs and the age trim; the number written."""
        min_id = max(0, int(self._clock() * 1000) - self._max_age_ms)
        parts = [b"*%d\r\n" % (7 + 3 * len(chunk)), self._eval_head, _bulk(b"%d" % min_id)]
        for body, signature, received_at in chunk:
            parts += (
                _bulk(body),
                _bulk(signature or b""),
                _bulk(b"%d" % int(received_at * 1000)),
            )
        connection = await self._pool.get_connection()
        try:
            await connection.send_packed_command(b"".join(parts), check_health=False)
            return await connection.read_response()
        finally:
            await self._pool.release(connection)

    async def aclose(self) -> None:
        """Write what is buffered and wait for it; later `record` calls are dropped."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is not None:
            await asyncio.wait([self._writing])
        if self._pending:
            batch, self._pending, self._pending_bytes = self._pending, [], 0
            await self._write(batch)


@contextlib.asynccontextmanager
async def capturing(
    endpoint: WebhookEndpoint, redis: aioredis.Redis, config: CaptureConfig
) -> AsyncIterator[Capture | None]:
    """Attach capture to the endpoint for the lifespan of the app, if `config` enables it.

    Enter it after the queue is attached and leave it before Redis is closed: on the way
    out it detaches the hook and writes what is still buffered.
    """
    if not config.enabled:
        yield None
        return
    capture = Capture(redis, config)
    endpoint.capture = capture.record
    logger.info(
        "capture on: verified deliveries go to the %s stream (at most %d entries, %d s)",
        keys.CAPTURE_STREAM,
        config.max_entries,
        config.max_age_seconds,
    )
    try:
        yield capture
    finally:
        endpoint.capture = None
        await capture.aclose()


async def export_capture(
    redis: aioredis.Redis,
    write: Callable[[bytes], object],
    *,
    stream: str = keys.CAPTURE_STREAM,
    page_size: int = 1000,
) -> int:
    """Write every captured delivery, oldest first, as JSONL lines; return how many."""
    from receiver.ingest.replay import captured_line

    count = 0
    low: bytes | str = "-"
    while True:
        entries = await redis.xrange(stream, min=low, max="+", count=page_size)
        for _entry_id, fields in entries:
            write(captured_line(fields))
            count += 1
        if len(entries) < page_size:
            return count
        low = b"(" + entries[-1][0]

"""Replaying deliveries to any receiver, and the JSONL file format of deliveries.

One delivery per line (capture export, the shipped corpus and `replay` share it)::

    {"body": "<raw body>", "signature": "t=...,s=...", "received_at": 1700000000123,
     "event": "authorization.removed"}

- ``body``: the raw request body as a JSON string; it round-trips byte-exact. A body that
  is not valid UTF-8 is written as ``body_b64`` (standard base64) instead. A line has
  exactly one of the two.
- ``signature``: the ``TikTok-Signature`` header as received. Absent, ``null`` or ``""``
  means unsigned (the shipped corpus): such lines are only sent with ``--resign``.
- ``received_at`` (ms since the epoch) and ``event`` are informational.
- Other keys are ignored.

`replay` sends deliveries with bounded concurrency and an optional token-bucket rate,
either exactly as captured or re-signed with a fresh timestamp, and counts the answers:
200 ``accepted`` / ``duplicate`` (the receiver's JSON answer), other 200s, other statuses
(with the receiver's ``error`` code) and transport errors.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

import httpx
import msgspec

from receiver import __version__
from receiver.corpus import corpus_path as corpus_path  # re-exported for `replay --corpus`
from receiver.ingest.events import MalformedEvent, decode_envelope
from receiver.ingest.signature import (
    HEADER_NAME,
    SignatureError,
    parse_signature_header,
    signature_header,
)

# Failures reported one by one (with their line numbers) before they are only counted.
MAX_REPORTED_FAILURES: Final = 20


_HEADER: Final = HEADER_NAME.lower().encode()


def _header_value(signature: str) -> bytes:
    # Exported headers were decoded as latin-1 (what HTTP carries); hand-written ones may
    # hold anything, and are sent as UTF-8 then.
    try:
        return signature.encode("latin-1")
    except UnicodeEncodeError:
        return signature.encode("utf-8")


# --------------------------------------------------------------------------- format


class _Line(msgspec.Struct):
    body: str | None = None
    body_b64: str | None = None
    signature: str | None = None
    received_at: int | None = None
    event: str | None = None


class _Out(msgspec.Struct, omit_defaults=True):
    body: str | None = None
    body_b64: str | None = None
    signature: str | None = None
    received_at: int | None = None
    event: str | None = None


_line_decoder: Final = msgspec.json.Decoder(_Line)
_encoder: Final = msgspec.json.Encoder()


class Delivery(msgspec.Struct, frozen=True):
    """One line of a deliveries file: the exact body and its signature (or None)."""

    line: int
    body: bytes
    signature: str | None = None
    event: str | None = None
    received_at: int | None = None


class BadLine(msgspec.Struct, frozen=True):
    line: int
    reason: str


def encode_line(
    body: bytes,
    *,
    signature: str | None = None,
    received_at: int | None = None,
    event: str | None = None,
) -> bytes:
    """One JSONL line (with its newline) for a delivery."""
    try:
        out = _Out(body=body.decode("utf-8"))
    except UnicodeDecodeError:
        out = _Out(body_b64=base64.b64encode(body).decode("ascii"))
    out.signature = signature or None
    out.received_at = received_at
    out.event = event
    return _encoder.encode(out) + b"\n"


def event_name(body: bytes) -> str | None:
    """The envelope's event name, or None when the body is not an envelope."""
    try:
        return decode_envelope(body).event
    except MalformedEvent:
        return None


def captured_line(fields: Mapping[bytes, bytes]) -> bytes:
    """The JSONL line of one capture stream entry."""
    body = fields.get(b"body", b"")
    received = fields.get(b"received_at", b"")
    return encode_line(
        body,
        signature=fields.get(b"signature", b"").decode("latin-1") or None,
        received_at=int(received) if received.isdigit() else None,
        event=event_name(body),
    )


def parse_line(raw: bytes, number: int) -> Delivery | BadLine:
    """Decode one non-blank line; a line that is not a delivery gives a BadLine."""
    try:
        line = _line_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        return BadLine(number, f"not a delivery: {exc}")
    except msgspec.DecodeError as exc:
        return BadLine(number, f"not JSON: {exc}")
    if line.body is not None and line.body_b64 is not None:
        return BadLine(number, "has both `body` and `body_b64`")
    if line.body is not None:
        try:
            body = line.body.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (msgspec refuses them as JSON already)
            return BadLine(number, "`body` is not valid Unicode text; use `body_b64`")
    elif line.body_b64 is not None:
        try:
            body = base64.b64decode(line.body_b64, validate=True)
        except (binascii.Error, ValueError):
            return BadLine(number, "`body_b64` is not valid base64")
    else:
        return BadLine(number, "has no `body` (nor `body_b64`)")
    return Delivery(number, body, line.signature or None, line.event, line.received_at)


def read_deliveries(lines: Iterable[bytes]) -> tuple[list[Delivery], list[BadLine]]:
    """Parse a deliveries file's lines (numbered from 1); blank lines are skipped."""
    deliveries: list[Delivery] = []
    bad: list[BadLine] = []
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if number == 1:
            text = text.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
        if not text:
            continue
        parsed = parse_line(text, number)
        if isinstance(parsed, Delivery):
            deliveries.append(parsed)
        else:
            bad.append(parsed)
    return deliveries, bad


def load_deliveries(path: Path | str) -> tuple[list[Delivery], list[BadLine]]:
    with open(path, "rb") as stream:
        return read_deliveries(stream)


def with_client_key(delivery: Delivery, client_key: str) -> Delivery | BadLine:
    """The delivery with the envelope's `client_key` replaced (the body is re-encoded)."""
    try:
        envelope = msgspec.json.decode(delivery.body)
    except msgspec.DecodeError:
        envelope = None
    if not isinstance(envelope, dict):
        return BadLine(delivery.line, "cannot set client_key: the body is not a JSON object")
    envelope["client_key"] = client_key
    return msgspec.structs.replace(delivery, body=_encoder.encode(envelope))


def signed_at(delivery: Delivery) -> int | None:
    """The `t` of the delivery's signature, if it has a readable one."""
    if delivery.signature is None:
        return None
    try:
        return parse_signature_header(delivery.signature)[0]
    except SignatureError:
        return None


# --------------------------------------------------------------------------- rate limit


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; `acquire` waits for one."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError("rate must be a positive number")
        self.rate = rate
        # 50 ms worth of tokens, at least one: smooth, without a sleep per request.
        self.burst = max(1.0, rate / 20) if burst is None else burst
        self._tokens = self.burst
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


# --------------------------------------------------------------------------- results


@dataclass
class ReplayResult:
    """What happened to the deliveries of one replay."""

    total: int
    sent: int = 0
    accepted: int = 0
    duplicate: int = 0
    other_200: int = 0
    # Non-200 answers by status, and by (status, the receiver's `error` code).
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    reasons: collections.Counter[tuple[int, str]] = field(default_factory=collections.Counter)
    # Requests that got no answer, by exception type.
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[tuple[int, str]] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)
    interrupted: bool = False
    elapsed_seconds: float = 0.0

    @property
    def ok(self) -> int:
        return self.accepted + self.duplicate + self.other_200

    @property
    def failed(self) -> int:
        return self.sent - self.ok

    @property
    def succeeded(self) -> bool:
        """Every line of the file was sent and answered 200."""
        return not self.failed and not self.bad_lines and self.sent == self.total

    def add_failure(self, line: int, description: str) -> str | None:
        """Keep the first failures with their line numbers; return it if it was kept."""
        if len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append((line, description))
            return description
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "sent": self.sent,
            "ok": self.ok,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "other_200": self.other_200,
            "failed": self.failed,
            "statuses": {str(s): n for s, n in sorted(self.statuses.items())},
            "reasons": {f"{s} {r}": n for (s, r), n in sorted(self.reasons.items())},
            "errors": dict(sorted(self.errors.items())),
            "bad_lines": [line.line for line in self.bad_lines],
            "interrupted": self.interrupted,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "succeeded": self.succeeded,
        }

    def summary(self) -> str:
        """The human summary printed at the end of a replay."""
        elapsed = self.elapsed_seconds
        rate = self.sent / elapsed if elapsed > 0 else 0.0
        lines = [f"sent       {self.sent:>7} of {self.total} in {elapsed:.2f} s ({rate:.1f}/s)"]
        lines.append(
            f"200        {self.ok:>7} (accepted {self.accepted}, duplicate {self.duplicate}"
            + (f", other {self.other_200})" if self.other_200 else ")")
        )
        for status, count in sorted(self.statuses.items()):
            detail = ", ".join(
                f"{reason} {n}" for (s, reason), n in sorted(self.reasons.items()) if s == status
            )
            lines.append(f"{status:<10} {count:>7}" + (f" ({detail})" if detail else ""))
        if self.errors:
            detail = ", ".join(f"{name} {n}" for name, n in sorted(self.errors.items()))
            lines.append(f"no answer  {sum(self.errors.values()):>7} ({detail})")
        if self.bad_lines:
            numbers = ", ".join(str(b.line) for b in self.bad_lines[:10])
            more = ", ..." if len(self.bad_lines) > 10 else ""
            lines.append(f"bad lines  {len(self.bad_lines):>7} (skipped: {numbers}{more})")
        if self.interrupted:
            lines.append(f"interrupted: {_count(self.total - self.sent, 'delivery')} not sent")
        if self.succeeded:
            lines.append("OK: every delivery was answered 200")
        else:
            problems = []
            if self.failed:
                problems.append(f"{self.failed} not answered 200")
            if self.bad_lines:
                problems.append(_count(len(self.bad_lines), "bad line"))
            if self.sent < self.total:
                problems.append(f"{self.total - self.sent} not sent")
            lines.append("FAILED: " + ", ".join(problems))
        return "\n".join(lines)


def _count(number: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{number} {noun if number == 1 else plural}"


# --------------------------------------------------------------------------- progress


class Progress:
    """A progress line on a terminal (redrawn with ``\\r``), else a line now and then."""

    def __init__(
        self,
        stream: TextIO,
        total: int,
        *,
        tty: bool | None = None,
        interval: float | None = None,
        width: int = 24,
    ) -> None:
        self.stream = stream
        self.total = total
        self.tty = stream.isatty() if tty is None else tty
        self.interval = interval if interval is not None else (0.1 if self.tty else 2.0)
        self.width = width
        self.started = time.monotonic()
        self._shown = ""

    def render(self, done: int, errors: int) -> str:
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        percent = 100 * done // self.total if self.total else 100
        text = f"{done}/{self.total} {percent:3d}%  {rate:.1f}/s  errors {errors}  {elapsed:.1f}s"
        if not self.tty:
            return f"replay: {text}"
        filled = self.width * done // self.total if self.total else self.width
        return f"[{'#' * filled}{'.' * (self.width - filled)}] {text}"

    def draw(self, done: int, errors: int) -> None:
        text = self.render(done, errors)
        if self.tty:
            # Pad over a longer previous line; plain \r, no terminal escape codes.
            self.stream.write("\r" + text.ljust(len(self._shown)))
            self._shown = text
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def log(self, message: str) -> None:
        """Print a line above the progress bar."""
        if self.tty and self._shown:
            self.stream.write("\r" + " " * len(self._shown) + "\r")
        self.stream.write(message + "\n")
        if self.tty and self._shown:
            self.stream.write(self._shown)
        self.stream.flush()

    def finish(self, done: int, errors: int) -> None:
        self.draw(done, errors)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = ""


# --------------------------------------------------------------------------- replay


async def replay(
    deliveries: Sequence[Delivery],
    url: str,
    *,
    rate: float | None = None,
    concurrency: int = 8,
    secret: str | None = None,
    request_timeout: float = 10.0,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
    abandon: asyncio.Event | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ReplayResult:
    """Send `deliveries` to `url`; with `secret`, each is re-signed just before it is sent.

    Setting `stop` ends the replay after the requests in flight (Ctrl-C in the CLI);
    setting `abandon` cancels those too (a second Ctrl-C). Either way the result counts
    what was sent and answered.
    Unsigned deliveries without `secret` are sent without the header (the receiver will
    answer 401); the CLI refuses to start in that case.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    result = ReplayResult(total=len(deliveries))
    bucket = TokenBucket(rate) if rate is not None else None
    stop = stop or asyncio.Event()
    pending = iter(deliveries)
    started = time.monotonic()

    def note(line: int, description: str) -> None:
        reported = result.add_failure(line, description)
        if reported is not None and progress is not None:
            progress.log(f"line {line}: {reported}")
            if len(result.failures) == MAX_REPORTED_FAILURES:
                progress.log("(further failures are only counted)")

    async def send(client: httpx.AsyncClient, delivery: Delivery) -> None:
        headers = {b"content-type": b"application/json"}
        if secret is not None:
            headers[_HEADER] = signature_header(secret, delivery.body).encode()
        elif delivery.signature is not None:
            headers[_HEADER] = _header_value(delivery.signature)
        try:
            response = await client.post(url, content=delivery.body, headers=headers)
        except httpx.HTTPError as exc:
            result.sent += 1
            name = type(exc).__name__
            result.errors[name] += 1
            note(delivery.line, f"no answer: {name}: {exc}")
            return
        result.sent += 1
        answer: Any = None
        with contextlib.suppress(msgspec.DecodeError):
            answer = msgspec.json.decode(response.content)
        if response.status_code == 200:
            status = answer.get("status") if isinstance(answer, dict) else None
            if status == "accepted":
                result.accepted += 1
            elif status == "duplicate":
                result.duplicate += 1
            else:
                result.other_200 += 1
            return
        error = answer.get("error") if isinstance(answer, dict) else None
        reason = error if isinstance(error, str) and error.isidentifier() else "other"
        result.statuses[response.status_code] += 1
        result.reasons[(response.status_code, reason)] += 1
        note(delivery.line, f"{response.status_code} {reason}")

    async def worker(client: httpx.AsyncClient) -> None:
        for delivery in pending:  # shared: each delivery goes to exactly one worker
            if stop.is_set():
                return
            if bucket is not None:
                await bucket.acquire()
                if stop.is_set():
                    return
            await send(client, delivery)

    async def ticker() -> None:
        assert progress is not None
        while True:
            await asyncio.sleep(progress.interval)
            progress.draw(result.sent, result.failed)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    ticking = asyncio.ensure_future(ticker()) if progress is not None else None
    try:
        async with httpx.AsyncClient(
            timeout=request_timeout,
            limits=limits,
            transport=transport,
            headers={"user-agent": f"tiktok-webhooks-replay/{__version__}"},
        ) as client:
            workers = [
                asyncio.ensure_future(worker(client))
                for _ in range(min(concurrency, len(deliveries)))
            ]
            everything = asyncio.gather(*workers, return_exceptions=True)
            try:
                if abandon is not None:
                    watching = asyncio.ensure_future(abandon.wait())
                    either: list[asyncio.Future[Any]] = [everything, watching]
                    try:
                        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        watching.cancel()
                    if not everything.done():  # abandoned: cancel the requests in flight
                        for task in workers:
                            task.cancel()
                outcomes = await everything
            except BaseException:
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                raise
            for outcome in outcomes:
                if isinstance(outcome, Exception):
                    raise outcome
    finally:
        if ticking is not None:
            ticking.cancel()
            await asyncio.gather(ticking, return_exceptions=True)
        stopped = stop.is_set() or (abandon is not None and abandon.is_set())
        result.interrupted = stopped and result.sent < result.total
        result.elapsed_seconds = time.monotonic() - started
        if progress is not None:
            progress.finish(result.sent, result.failed)
    return result

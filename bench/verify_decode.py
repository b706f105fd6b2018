"""Micro-benchmark: the receiver's verify + decode against json + pydantic + hmac.

Same signed bodies as the ingest benchmark (bench/corpus.py). Each side does what its
app does per delivery before touching Redis:

- receiver: `verify_signature` (header parse, HMAC-SHA256, constant-time compare,
  tolerance), `decode_envelope` and `decode_event` (msgspec; typed `content` by event
  name and the dedupe key);
- naive: split the header, `hmac.new(...).hexdigest()`, `hmac.compare_digest`, the
  tolerance, `json.loads` + a pydantic model of the envelope, `json.loads(content)`,
  and `sha256(body)` as the job id (bench/apps/naive_fastapi.py);
- for reference, a better-informed pydantic user: `model_validate_json` instead of
  `json.loads` + the model.

Prints µs per delivery (best and median of several repeats, `time.perf_counter_ns`)
and the ratios. Numbers only; nothing is asserted.

    .venv/bin/python bench/verify_decode.py [--deliveries 20000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import hmac
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import corpus
from pydantic import BaseModel

from receiver.ingest.events import decode_envelope, decode_event
from receiver.ingest.signature import verify_signature
from receiver.secrets import Secret

TOLERANCE = 300
Case = Callable[[bytes, bytes, float], Any]


# ---------------------------------------------------------------- receiver

SECRETS = (Secret(corpus.CLIENT_SECRET),)


def receiver_verify(header: bytes, body: bytes, now: float) -> int:
    return verify_signature(header, body, SECRETS, tolerance_seconds=TOLERANCE, now=now)


def receiver_decode(header: bytes, body: bytes, now: float) -> str:
    return decode_event(decode_envelope(body)).dedupe_key


def receiver_both(header: bytes, body: bytes, now: float) -> str:
    verify_signature(header, body, SECRETS, tolerance_seconds=TOLERANCE, now=now)
    return decode_event(decode_envelope(body)).dedupe_key


# ---------------------------------------------------------------- naive (as in the app)


class TikTokEvent(BaseModel):
    client_key: str
    event: str
    create_time: int
    user_openid: str | None = None
    content: str


SECRET_BYTES = corpus.CLIENT_SECRET.encode()


def naive_verify(header: bytes, body: bytes, now: float) -> int:
    # Starlette hands the app a str header (latin-1), so that is what it parses.
    parts = dict(part.split("=", 1) for part in header.decode("latin-1").split(","))
    timestamp = int(parts["t"])
    if abs(now - timestamp) > TOLERANCE:
        raise ValueError("stale")
    expected = hmac.new(SECRET_BYTES, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts["s"]):
        raise ValueError("bad signature")
    return timestamp


def naive_decode(header: bytes, body: bytes, now: float) -> str:
    event = TikTokEvent(**json.loads(body))
    payload = event.model_dump()
    payload["content"] = json.loads(event.content)
    return hashlib.sha256(body).hexdigest()


def naive_both(header: bytes, body: bytes, now: float) -> str:
    naive_verify(header, body, now)
    return naive_decode(header, body, now)


def pydantic_json_decode(header: bytes, body: bytes, now: float) -> str:
    event = TikTokEvent.model_validate_json(body)
    payload = event.model_dump()
    payload["content"] = json.loads(event.content)
    return hashlib.sha256(body).hexdigest()


def pydantic_json_both(header: bytes, body: bytes, now: float) -> str:
    naive_verify(header, body, now)
    return pydantic_json_decode(header, body, now)


CASES: dict[str, dict[str, Case]] = {
    "verify": {"receiver": receiver_verify, "naive": naive_verify},
    "decode": {
        "receiver": receiver_decode,
        "naive": naive_decode,
        "pydantic model_validate_json": pydantic_json_decode,
    },
    "verify+decode": {
        "receiver": receiver_both,
        "naive": naive_both,
        "pydantic model_validate_json": pydantic_json_both,
    },
}


def time_case(
    case: Case, items: Sequence[tuple[bytes, bytes]], now: float, repeats: int
) -> list[float]:
    """Nanoseconds per delivery for each repeat over all items."""
    per_item: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for header, body in items:
            case(header, body, now)
        per_item.append((time.perf_counter_ns() - started) / len(items))
    return per_item


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="verify+decode micro-benchmark")
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    if args.deliveries < 1 or args.repeats < 1:
        parser.error("--deliveries and --repeats must be positive")

    now = time.time()
    items = [
        (d.header.encode(), d.body)
        for d in corpus.generate(args.deliveries, corpus.new_run_id(), now=int(now))
    ]
    # Every implementation must accept every delivery, or the comparison means nothing
    # (a failure raises here, before any timing).
    for cases in CASES.values():
        for case in cases.values():
            for header, body in items:
                case(header, body, now)

    print(
        f"{args.deliveries:,} deliveries, {args.repeats} repeats, µs per delivery "
        f"(Python {sys.version.split()[0]})"
    )
    print(f"{'stage':<14} {'implementation':<30} {'best':>8} {'median':>8} {'vs receiver':>12}")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, cases in CASES.items():
        results[name] = {}
        for label, case in cases.items():
            time_case(case, items[: min(len(items), 2000)], now, 1)  # warm caches
            gc.collect()
            samples = time_case(case, items, now, args.repeats)
            best, median = min(samples) / 1000, statistics.median(samples) / 1000
            results[name][label] = {"best": best, "median": median}
            base = results[name]["receiver"]["median"]
            ratio = f"{median / base:.1f}x" if label != "receiver" else ""
            print(f"{name:<14} {label:<30} {best:>8.2f} {median:>8.2f} {ratio:>12}")
        print()
    both = results["verify+decode"]
    speedup = both["naive"]["median"] / both["receiver"]["median"]
    print(f"receiver verify+decode is {speedup:.1f}x faster than the naive json+pydantic+hmac")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The shipped corpus: one example delivery per event of the contract, unsigned.

`examples.jsonl` is in the JSONL format of `receiver.ingest.replay` (see docs/replay.md). The
official examples of TikTok's docs are there verbatim, so their `client_key` values are
TikTok's example keys: re-sign them (and set your own key with
`receiver.ingest.replay.with_client_key`, or `replay --resign --client-key K`) before sending.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

CORPUS_FILE: Final = "examples.jsonl"


def corpus_path() -> Path:
    """The corpus file (package data)."""
    return Path(__file__).with_name(CORPUS_FILE)

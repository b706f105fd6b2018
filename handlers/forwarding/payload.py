"""The JSON body a destination receives, and what the event adds to it.

    {"type": "post.publish.publicly_available",
     "timestamp": "2026-12-02T05:25:05Z",
     "data": {"client_key": "...", "user_openid": "...", "create_time": 1764653105,
              "content": {"publish_id": "...", "post_id": "7300000000000000001"},
              "status": {...}, "profile": {...}}}

`content` is TikTok's `content` decoded (not a JSON string inside JSON). Every id TikTok
sends as a number becomes a string with its exact digits: the content is decoded with
msgspec, whose integers are Python ints of any size, and then turned into text, so no
float ever rounds a 19-digit id. `status` and `profile` are what the built-in handlers
had stored when forwarding ran (see docs/forwarding.md); absent when there is none. They
are added by the script that creates the deliveries (handlers/forwarding/store.py), in
the same Redis call that reads them, just before the closing `}}` of the body built here.
"""

from __future__ import annotations

import datetime
from typing import Any, Final

import msgspec

from receiver.ingest.events import Envelope

_decoder: Final = msgspec.json.Decoder()
_encoder: Final = msgspec.json.Encoder()


def _is_id_key(key: object) -> bool:
    return isinstance(key, str) and (key == "id" or key.endswith("_id") or key.endswith("_ids"))


def stringify_ids(value: Any, *, as_id: bool = False) -> Any:
    """A copy of decoded JSON where integers under id keys (`post_id`, `id`, …) are strings."""
    if isinstance(value, dict):
        return {k: stringify_ids(v, as_id=_is_id_key(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [stringify_ids(v, as_id=as_id) for v in value]
    if as_id and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def iso_time(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_payload(envelope: Envelope) -> bytes:
    """The request body of one event, `data.content` last (the store appends after it)."""
    try:
        content: Any = _decoder.decode(envelope.content)
    except msgspec.DecodeError:  # pragma: no cover - the receiver refused such bodies
        content = envelope.content
    data: dict[str, Any] = {
        "client_key": envelope.client_key,
        "user_openid": envelope.user_openid,
        "create_time": envelope.create_time,
        "content": stringify_ids(content),
    }
    return _encoder.encode(
        {"type": envelope.event, "timestamp": iso_time(envelope.create_time), "data": data}
    )

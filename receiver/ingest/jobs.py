"""arq's job format, written with msgpack instead of pickle.

arq stores a job as ``serializer({"t", "f", "a", "k", "et"})`` under ``arq:job:<id>``
and puts ``<id>`` in the queue's sorted set. We write the same structure with
msgpack so a real arq `Worker` configured with `job_serializer`/`job_deserializer`
from this module consumes it, and a Redis that someone else can write to never
becomes code execution (pickle would).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

# Job function names: the receiver and the OAuth routes enqueue them, handlers/ runs them.
PROCESS_EVENT: Final = "process_event"
FETCH_PROFILE: Final = "fetch_profile"
REFRESH_TOKEN: Final = "refresh_token"


def _encode_other(obj: Any) -> Any:
    # arq stores a failed job's exception as its result; keep its class and text only.
    if isinstance(obj, BaseException):
        return f"{type(obj).__qualname__}: {obj}"
    raise NotImplementedError(f"cannot serialize {type(obj).__qualname__} into a job")


_encoder: Final = msgspec.msgpack.Encoder(enc_hook=_encode_other)
_decoder: Final = msgspec.msgpack.Decoder()


def encode_job(
    function: str,
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any],
    *,
    enqueue_time_ms: int,
    job_try: int | None = None,
) -> bytes:
    return _encoder.encode(
        {"t": job_try, "f": function, "a": list(args), "k": kwargs, "et": enqueue_time_ms}
    )


def job_serializer(obj: dict[str, Any]) -> bytes:
    """arq `job_serializer`: msgpack; exceptions in results are stored as text."""
    return _encoder.encode(obj)


def job_deserializer(data: bytes) -> dict[str, Any]:
    """arq `job_deserializer`: msgpack only; anything else is refused."""
    obj = _decoder.decode(data)
    if not isinstance(obj, dict):
        raise ValueError("an arq job must be a msgpack map")
    return obj

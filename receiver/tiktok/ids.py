"""TikTok's numeric ids (post ids, data request ids) as exact decimal strings.

Post ids are 19-digit integers, beyond a double's 53 bits: a float anywhere rounds them
to a different video. msgspec decodes JSON integers exactly, so an id arrives as an int
or a str; it is kept as a decimal string from then on, and a float is refused.
"""

from __future__ import annotations

from typing import Final

MAX_ID_LENGTH: Final = 64


def decimal_id(value: object) -> str | None:
    """`value` as a decimal string if it is an exact integer id (int or digit string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= MAX_ID_LENGTH:
            return text
    return None


def as_json_number(request_id: str) -> int | str:
    """What to send TikTok for a request id: a JSON number when it is one (no rounding in
    msgspec's encoder), else the string as it was given."""
    return int(request_id) if decimal_id(request_id) is not None else request_id

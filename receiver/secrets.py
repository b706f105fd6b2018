"""A string wrapper that keeps secrets out of logs, reprs and tracebacks."""

from __future__ import annotations

import hmac
from typing import Final

_MASK: Final = "********"


class Secret:
    """Holds a secret value; `repr`/`str` never show it, `reveal()` does.

    Equality is constant-time so comparing a presented admin token or similar does
    not leak its prefix through timing.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_MASK})"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, format_spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            other = other._value
        if not isinstance(other, str):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> str:
        raise TypeError("Secret values are not picklable")

"""Which app a request means: records are keyed by client_key as well as by id.

With one app configured the client_key may be left out; with several it is required,
since a publish_id, post id or request_id is only unique within one app.
"""

from __future__ import annotations

from collections.abc import Sequence


class AppChoiceError(ValueError):
    """The client_key is missing (several apps) or names no configured app."""


def choose_app(configured: Sequence[str], given: str | None) -> str:
    if given:
        if given not in configured:
            raise AppChoiceError(f"no app with client_key {given!r} is configured")
        return given
    if len(configured) == 1:
        return configured[0]
    if not configured:
        raise AppChoiceError("no TikTok app is configured")
    raise AppChoiceError(
        f"{len(configured)} apps are configured: name one with client_key ({', '.join(configured)})"
    )

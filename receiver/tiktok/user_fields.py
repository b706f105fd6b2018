"""Which `/v2/user/info/` fields each granted scope allows (tiktok-contract.md §4).

Asking for a field whose scope was not granted may fail the whole call
(scope_permission_missed), so callers request only what the token's scopes allow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

# `profile_web_link` is named in TikTok's scopes reference but not in the field table
# (UNCONFIRMED), so it is left out; opt in through `extra`.
FIELDS_BY_SCOPE: Final[Mapping[str, tuple[str, ...]]] = {
    "user.info.basic": (
        "open_id",
        "union_id",
        "avatar_url",
        "avatar_url_100",
        "avatar_large_url",
        "display_name",
    ),
    "user.info.profile": ("bio_description", "profile_deep_link", "is_verified", "username"),
    "user.info.stats": ("follower_count", "following_count", "likes_count", "video_count"),
}


def fields_for_scopes(
    scopes: Iterable[str], *, extra: Mapping[str, Sequence[str]] | None = None
) -> list[str]:
    """The user-info fields the granted `scopes` allow, in a stable order.

    `extra` adds fields per scope, e.g. ``{"user.info.profile": ["profile_web_link"]}``.
    """
    granted = set(scopes)
    table = dict(FIELDS_BY_SCOPE)
    for scope, names in (extra or {}).items():
        table[scope] = (*table.get(scope, ()), *names)
    fields: list[str] = []
    for scope, names in table.items():
        if scope in granted:
            fields.extend(name for name in names if name not in fields)
    return fields

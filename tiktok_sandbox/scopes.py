"""TikTok's scope names and which scope each `/v2/user/info/` field needs (contract §4)."""

from __future__ import annotations

from typing import Final

KNOWN_SCOPES: Final[tuple[str, ...]] = (
    "user.info.basic",
    "user.info.profile",
    "user.info.stats",
    "video.list",
    "video.upload",
    "video.publish",
    *(
        f"portability.{kind}.{span}"
        for kind in ("all", "activity", "directmessages", "postsandprofile")
        for span in ("single", "ongoing")
    ),
)

# `profile_web_link` is named by the Scopes Reference but absent from the field table
# (UNCONFIRMED in the contract); the sandbox serves it so clients that ask for it work.
USER_FIELD_SCOPES: Final[dict[str, str]] = {
    "open_id": "user.info.basic",
    "union_id": "user.info.basic",
    "avatar_url": "user.info.basic",
    "avatar_url_100": "user.info.basic",
    "avatar_large_url": "user.info.basic",
    "display_name": "user.info.basic",
    "bio_description": "user.info.profile",
    "profile_deep_link": "user.info.profile",
    "profile_web_link": "user.info.profile",
    "is_verified": "user.info.profile",
    "username": "user.info.profile",
    "follower_count": "user.info.stats",
    "following_count": "user.info.stats",
    "likes_count": "user.info.stats",
    "video_count": "user.info.stats",
}


def split_scopes(raw: str) -> list[str]:
    """Split TikTok's comma-separated scope string, dropping blanks and repeats."""
    seen: dict[str, None] = {}
    for part in raw.split(","):
        name = part.strip()
        if name:
            seen.setdefault(name, None)
    return list(seen)

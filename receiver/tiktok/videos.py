"""Display API: `POST /v2/video/query/` and `/v2/video/list/` (followup-apis §2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from receiver.secrets import Secret
from receiver.tiktok.client import TikTokClient
from receiver.tiktok.ids import decimal_id

VIDEO_QUERY_PATH: Final = "/v2/video/query/"
VIDEO_LIST_PATH: Final = "/v2/video/list/"
VIDEO_SCOPE: Final = "video.list"
MAX_IDS_PER_QUERY: Final = 20
# Every field of TikTok's Video Object; all of them need `video.list`, nothing more.
VIDEO_FIELDS: Final = (
    "id",
    "create_time",
    "cover_image_url",
    "share_url",
    "video_description",
    "duration",
    "height",
    "width",
    "title",
    "embed_html",
    "embed_link",
    "like_count",
    "comment_count",
    "share_count",
    "view_count",
)


class VideoPage(msgspec.Struct, frozen=True, kw_only=True):
    videos: list[dict[str, Any]]
    cursor: int | None = None
    has_more: bool = False


def fields_for_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """The video fields a token with `scopes` may ask for (none without video.list)."""
    return VIDEO_FIELDS if VIDEO_SCOPE in scopes else ()


def _videos(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The video objects, known fields only, each with its id as an exact string."""
    raw = data.get("videos")
    videos = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        video_id = decimal_id(item.get("id"))
        if video_id is None:
            continue
        video = {k: v for k, v in item.items() if k in VIDEO_FIELDS and not isinstance(v, float)}
        video["id"] = video_id
        videos.append(video)
    return videos


async def query_videos(
    client: TikTokClient,
    access_token: Secret,
    video_ids: Sequence[str],
    fields: Sequence[str] = VIDEO_FIELDS,
) -> list[dict[str, Any]]:
    """Details of the user's videos among `video_ids` (at most 20); an empty list means
    TikTok shows none of them (unknown, private or removed), not zero counts."""
    if not 0 < len(video_ids) <= MAX_IDS_PER_QUERY:
        raise ValueError(f"query 1 to {MAX_IDS_PER_QUERY} video ids at a time")
    data = await client.api_post(
        "video_query",
        VIDEO_QUERY_PATH,
        access_token,
        {"filters": {"video_ids": [str(v) for v in video_ids]}},
        params={"fields": ",".join(fields)},
    )
    return _videos(data)


async def list_videos(
    client: TikTokClient,
    access_token: Secret,
    *,
    cursor: int | None = None,
    max_count: int = 20,
    fields: Sequence[str] = VIDEO_FIELDS,
) -> VideoPage:
    """One page of the user's public videos, newest first."""
    body: dict[str, Any] = {"max_count": max(1, min(max_count, 20))}
    if cursor is not None:
        body["cursor"] = cursor
    data = await client.api_post(
        "video_list", VIDEO_LIST_PATH, access_token, body, params={"fields": ",".join(fields)}
    )
    next_cursor = data.get("cursor")
    return VideoPage(
        videos=_videos(data),
        cursor=next_cursor if isinstance(next_cursor, int) else None,
        has_more=data.get("has_more") is True,
    )

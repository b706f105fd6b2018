"""Content Posting API: `POST /v2/post/publish/status/fetch/` (followup-apis §1)."""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec

from receiver.secrets import Secret
from receiver.tiktok.client import TikTokClient
from receiver.tiktok.ids import decimal_id

logger = logging.getLogger("tiktok_webhooks.api")

PUBLISH_STATUS_PATH: Final = "/v2/post/publish/status/fetch/"
# Either scope lets a token read the status of its own publishes.
PUBLISH_SCOPES: Final = frozenset({"video.upload", "video.publish"})
# TikTok's spelling first; the other two in case TikTok ever fixes the typo.
POST_ID_KEYS: Final = (
    "publicaly_available_post_id",
    "publicly_available_post_id",
    "publically_available_post_id",
)


class PublishStatus(msgspec.Struct, frozen=True, kw_only=True):
    status: str | None = None
    fail_reason: str | None = None
    post_ids: tuple[str, ...] = ()
    uploaded_bytes: int | None = None
    downloaded_bytes: int | None = None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value[:200] if isinstance(value, str) and value else None


def post_ids_of(data: dict[str, Any]) -> tuple[str, ...]:
    """The public post ids in a status answer, as exact decimal strings."""
    found: dict[str, None] = {}
    for key in POST_ID_KEYS:
        raw = data.get(key)
        values = raw if isinstance(raw, list) else ([] if raw is None else [raw])
        for value in values:
            post_id = decimal_id(value)
            if post_id is None:
                # A float here means the id was already rounded somewhere: never keep it.
                logger.warning("ignored a post id of type %s in %s", type(value).__name__, key)
                continue
            found.setdefault(post_id, None)
    return tuple(found)


def parse_publish_status(data: dict[str, Any]) -> PublishStatus:
    return PublishStatus(
        status=_text(data.get("status")),
        fail_reason=_text(data.get("fail_reason")),
        post_ids=post_ids_of(data),
        uploaded_bytes=_count(data.get("uploaded_bytes")),
        downloaded_bytes=_count(data.get("downloaded_bytes")),
    )


async def fetch_publish_status(
    client: TikTokClient, access_token: Secret, publish_id: str
) -> PublishStatus:
    """The status of a publish, as the token's user sees it (30 calls/min per token)."""
    data = await client.api_post(
        "publish_status", PUBLISH_STATUS_PATH, access_token, {"publish_id": publish_id}
    )
    return parse_publish_status(data)

"""Example `content` for every event of the contract, as TikTok's docs show them.

Used by `tiktok-webhooks send` as the default content, by the example corpus and by
tests. The `post.publish.*` values follow the Content Posting API reference.
"""

from __future__ import annotations

from typing import Any, Final

EXAMPLE_CONTENT: Final[dict[str, dict[str, Any]]] = {
    "authorization.removed": {"reason": 1},
    "video.upload.failed": {"share_id": "video.6974245311675353080.VDCxrcMJ"},
    "video.publish.completed": {"share_id": "video.6974245311675353080.VDCxrcMJ"},
    "portability.download.ready": {"request_id": 123123123123123},
    "post.publish.failed": {
        "publish_id": "v_pub_file~v2-1.123456789",
        "reason": "file_format_check_failed",
        "publish_type": "INBOX_SHARE",
    },
    "post.publish.complete": {
        "publish_id": "v_pub_file~v2-1.123456789",
        "publish_type": "INBOX_SHARE",
    },
    "post.publish.inbox_delivered": {
        "publish_id": "v_pub_file~v2-1.123456789",
        "publish_type": "INBOX_SHARE",
    },
    "post.publish.publicly_available": {
        "publish_id": "v_pub_url~v2-1.123456789",
        "post_id": "7281234567890123456",
        "publish_type": "DIRECT_POST",
    },
    "post.publish.no_longer_publicaly_available": {
        "publish_id": "v_pub_url~v2-1.123456789",
        "post_id": 7281234567890123456,
        "publish_type": "DIRECT_POST",
    },
    # The other spellings of the two events above (an older docs page, a possible fix).
    "post.publish.publicaly_available": {
        "publish_id": "v_inbox_file~v2.7560045831697483798",
        "post_id": 7560045831697483798,
        "publish_type": "INBOX_SHARE",
    },
    "post.publish.no_longer_publicly_available": {
        "publish_id": "v_inbox_file~v2.7560045831697483798",
        "post_id": "7560045831697483798",
        "publish_type": "INBOX_SHARE",
    },
    "tiktok.ping": {"reason": "testing Webhook"},
}

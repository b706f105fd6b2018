"""The `content` the sandbox sends for each event when a test names none.

Taken from TikTok's documentation of each event (Webhooks overview, Content Posting API,
Data Portability API), in the shapes TikTok really uses: share ids as strings, post and
request ids as the bare integers TikTok puts in JSON.
"""

from __future__ import annotations

from typing import Any, Final

_SHARE = {"share_id": "video.6974245311675353080.VDCxrcMJ"}
_INBOX = {"publish_id": "v_pub_file~v2-1.123456789", "publish_type": "INBOX_SHARE"}
_UPLOADED = {"publish_id": "v_inbox_file~v2.7560045831697483798", "publish_type": "INBOX_SHARE"}
_DIRECT = {"publish_id": "v_pub_url~v2-1.123456789", "publish_type": "DIRECT_POST"}

DEFAULT_CONTENT: Final[dict[str, dict[str, Any]]] = {
    "tiktok.ping": {"reason": "testing Webhook"},
    "authorization.removed": {"reason": 1},
    "video.upload.failed": dict(_SHARE),
    "video.publish.completed": dict(_SHARE),
    "portability.download.ready": {"request_id": 123123123123123},
    "post.publish.failed": {**_INBOX, "reason": "file_format_check_failed"},
    "post.publish.complete": dict(_INBOX),
    "post.publish.inbox_delivered": dict(_INBOX),
    "post.publish.publicly_available": {**_DIRECT, "post_id": "7281234567890123456"},
    "post.publish.no_longer_publicaly_available": {**_DIRECT, "post_id": 7281234567890123456},
    # The other spelling of each (an older docs page; a possible fix of TikTok's typo).
    "post.publish.publicaly_available": {**_UPLOADED, "post_id": 7560045831697483798},
    "post.publish.no_longer_publicly_available": {**_UPLOADED, "post_id": "7560045831697483798"},
}

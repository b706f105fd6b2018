"""The sandbox's publishes and videos (the state behind tiktok_sandbox/posting.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated, Literal

import msgspec

from tiktok_sandbox.ids import new_post_id, new_publish_id

FILE_BYTES = 10_000_000
# (client_key, event, open_id or None, content): how a store raises a webhook.
Emit = Callable[[str, str, "str | None", dict[str, object]], object]


class PublishSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    open_id: str
    client_key: str | None = None  # default: the only app, else required
    mode: Literal["inbox", "direct"] = "inbox"
    outcome: Literal["public", "private", "failed"] = "public"
    fail_reason: str = "internal"
    title: Annotated[str, msgspec.Meta(max_length=150)] = "Sandbox video"


class Video(msgspec.Struct, kw_only=True):
    id: int
    open_id: str
    client_key: str
    title: str
    create_time: int
    public: bool = True
    view_count: int = 0
    like_count: int = 0
    comment_count: int = 0
    share_count: int = 0


class Publish(msgspec.Struct, kw_only=True):
    publish_id: str
    client_key: str
    open_id: str
    mode: str
    outcome: str
    fail_reason: str
    title: str
    started_at: float
    status: str = "PROCESSING_UPLOAD"
    steps_done: int = 0
    post_ids: list[int] = msgspec.field(default_factory=list)


# (status, webhook event or None) per step, after the first state.
_STEPS = {
    ("inbox", "public"): [
        ("SEND_TO_USER_INBOX", "post.publish.inbox_delivered"),
        ("PUBLISH_COMPLETE", "post.publish.complete"),
        ("PUBLISH_COMPLETE", "post.publish.publicly_available"),
    ],
    ("inbox", "private"): [
        ("SEND_TO_USER_INBOX", "post.publish.inbox_delivered"),
        ("PUBLISH_COMPLETE", "post.publish.complete"),
    ],
    ("direct", "public"): [
        ("PUBLISH_COMPLETE", "post.publish.complete"),
        ("PUBLISH_COMPLETE", "post.publish.publicly_available"),
    ],
    ("direct", "private"): [("PUBLISH_COMPLETE", "post.publish.complete")],
}


class PostingStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._publishes: dict[str, Publish] = {}
        self._videos: dict[int, Video] = {}

    def clear(self) -> None:
        with self._lock:
            self._publishes = {}
            self._videos = {}

    def start(self, spec: PublishSpec, client_key: str, now: float) -> Publish:
        publish = Publish(
            publish_id=new_publish_id(spec.mode == "inbox"),
            client_key=client_key,
            open_id=spec.open_id,
            mode=spec.mode,
            outcome=spec.outcome,
            fail_reason=spec.fail_reason,
            title=spec.title,
            started_at=now,
        )
        with self._lock:
            self._publishes[publish.publish_id] = publish
        return msgspec.structs.replace(publish)

    def get(self, publish_id: str) -> Publish | None:
        with self._lock:
            publish = self._publishes.get(publish_id)
            return (
                None
                if publish is None
                else msgspec.structs.replace(publish, post_ids=list(publish.post_ids))
            )

    def videos_of(self, client_key: str, open_id: str) -> list[Video]:
        with self._lock:
            return [
                msgspec.structs.replace(v)
                for v in self._videos.values()
                if v.client_key == client_key and v.open_id == open_id
            ]

    def set_public(self, post_id: int, public: bool) -> Video | None:
        with self._lock:
            video = self._videos.get(post_id)
            if video is not None:
                video.public = public
            return None if video is None else msgspec.structs.replace(video)

    def advance(self, now: float, step: float, emit: Emit) -> None:
        """Move every publish whose next step is due, and send its webhook."""
        due: list[tuple[Publish, str, dict[str, object]]] = []
        with self._lock:
            for publish in self._publishes.values():
                while True:
                    steps = self._steps(publish)
                    if publish.steps_done >= len(steps):
                        break
                    if now < publish.started_at + step * (publish.steps_done + 1):
                        break
                    status, event = steps[publish.steps_done]
                    publish.steps_done += 1
                    publish.status = status
                    content: dict[str, object] = {
                        "publish_id": publish.publish_id,
                        "publish_type": "INBOX_SHARE" if publish.mode == "inbox" else "DIRECT_POST",
                    }
                    if event == "post.publish.failed":
                        content["reason"] = publish.fail_reason
                    if event == "post.publish.publicly_available":
                        post_id = new_post_id()
                        publish.post_ids.append(post_id)
                        self._videos[post_id] = Video(
                            id=post_id,
                            open_id=publish.open_id,
                            client_key=publish.client_key,
                            title=publish.title,
                            create_time=int(now),
                            view_count=1234,
                            like_count=56,
                        )
                        content["post_id"] = post_id
                    due.append((publish, event, content))
        for publish, event, content in due:
            emit(publish.client_key, event, publish.open_id, content)

    @staticmethod
    def _steps(publish: Publish) -> list[tuple[str, str]]:
        if publish.outcome == "failed":
            return [("FAILED", "post.publish.failed")]
        return _STEPS[(publish.mode, publish.outcome)]

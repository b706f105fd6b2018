"""TikTok webhook events: the envelope, typed `content` per event, and the dedupe key.

The envelope's `content` is a JSON *string*, so a delivery is decoded twice: the
envelope, then `content` into the struct for its event name. Structs are lenient
exactly where TikTok is known to be inconsistent (see docs/tiktok-contract.md):
`user_openid` may be missing, `post_id` may be a string or a number, the failure
reason may be `reason` or `fail_reason`, and `tiktok.ping`'s fields are guesses.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import msgspec


class MalformedEvent(Exception):
    """The body is not a TikTok envelope, or its `content` does not fit its event."""


class Envelope(msgspec.Struct, frozen=True):
    client_key: str
    event: str
    create_time: int
    content: str
    user_openid: str | None = None


class AuthorizationRemoved(msgspec.Struct, frozen=True):
    # 0 unknown, 1 user disconnected, 2 account deleted, 3 age changed, 4 banned,
    # 5 developer revoked. Kept lenient: an unexpected type must not bounce the event.
    reason: int | str | None = None


class VideoUploadFailed(msgspec.Struct, frozen=True):
    share_id: str


class VideoPublishCompleted(msgspec.Struct, frozen=True):
    share_id: str


class PortabilityDownloadReady(msgspec.Struct, frozen=True):
    request_id: int | str


class PostPublishFailed(msgspec.Struct, frozen=True):
    publish_id: str
    reason: str | None = None
    fail_reason: str | None = None
    publish_type: str | None = None

    @property
    def failure_reason(self) -> str | None:
        """TikTok's docs say `reason`; some integrations read `fail_reason`."""
        return self.reason if self.reason is not None else self.fail_reason


class PostPublishComplete(msgspec.Struct, frozen=True):
    publish_id: str
    publish_type: str | None = None


class PostPublishInboxDelivered(msgspec.Struct, frozen=True):
    publish_id: str
    publish_type: str | None = None


class PostPublishPubliclyAvailable(msgspec.Struct, frozen=True):
    publish_id: str
    post_id: str | int | None = None
    publish_type: str | None = None


class PostPublishNoLongerPubliclyAvailable(msgspec.Struct, frozen=True):
    publish_id: str
    post_id: str | int | None = None
    publish_type: str | None = None


class TikTokPing(msgspec.Struct, frozen=True):
    """The portal's "Test URL" event; not in TikTok's docs, so nothing is required."""

    reason: str | int | None = None


class UnknownContent(msgspec.Struct, frozen=True):
    """`content` of an event this version does not know, kept as decoded JSON."""

    data: Any


EventContent = (
    AuthorizationRemoved
    | VideoUploadFailed
    | VideoPublishCompleted
    | PortabilityDownloadReady
    | PostPublishFailed
    | PostPublishComplete
    | PostPublishInboxDelivered
    | PostPublishPubliclyAvailable
    | PostPublishNoLongerPubliclyAvailable
    | TikTokPing
    | UnknownContent
)

CONTENT_TYPES: Final[dict[str, type[EventContent]]] = {
    "authorization.removed": AuthorizationRemoved,
    "video.upload.failed": VideoUploadFailed,
    "video.publish.completed": VideoPublishCompleted,
    "portability.download.ready": PortabilityDownloadReady,
    "post.publish.failed": PostPublishFailed,
    "post.publish.complete": PostPublishComplete,
    "post.publish.inbox_delivered": PostPublishInboxDelivered,
    "post.publish.publicly_available": PostPublishPubliclyAvailable,
    # TikTok's own spelling ("publicaly") is the event name on the wire; an older copy of
    # the docs spelled the first one that way too. Both spellings of both are accepted.
    "post.publish.publicaly_available": PostPublishPubliclyAvailable,
    "post.publish.no_longer_publicaly_available": PostPublishNoLongerPubliclyAvailable,
    "post.publish.no_longer_publicly_available": PostPublishNoLongerPubliclyAvailable,
    "tiktok.ping": TikTokPing,
}
KNOWN_EVENTS: Final = frozenset(CONTENT_TYPES)
UNKNOWN_EVENT_LABEL: Final = "unknown"

_envelope_decoder: Final = msgspec.json.Decoder(Envelope)
_any_decoder: Final = msgspec.json.Decoder()
_canonical_encoder: Final = msgspec.json.Encoder(order="sorted")


class WebhookEvent(msgspec.Struct, frozen=True):
    """A decoded delivery: the envelope, its typed content, and its dedupe key."""

    envelope: Envelope
    content: EventContent
    dedupe_key: str

    @property
    def name(self) -> str:
        return self.envelope.event

    @property
    def is_known(self) -> bool:
        return self.envelope.event in KNOWN_EVENTS


def event_label(name: str) -> str:
    """A bounded metric label for an event name."""
    return name if name in KNOWN_EVENTS else UNKNOWN_EVENT_LABEL


# Bytes from outside can make a decoder fail in more ways than `DecodeError`: deep
# nesting raises `RecursionError` (how deep depends on the caller's stack), and a
# future msgspec may raise something else again. Each of them means "malformed".
_DECODE_FAILURES: Final = (msgspec.MsgspecError, RecursionError, ValueError, TypeError, MemoryError)


def decode_envelope(body: bytes) -> Envelope:
    try:
        return _envelope_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedEvent(f"not a TikTok webhook envelope: {exc}") from None
    except _DECODE_FAILURES as exc:
        raise MalformedEvent(f"not a TikTok webhook envelope: {type(exc).__name__}") from None


def decode_event(envelope: Envelope) -> WebhookEvent:
    """Decode `content` for the envelope's event and derive the dedupe key."""
    try:
        data = _any_decoder.decode(envelope.content)
    except _DECODE_FAILURES:
        raise MalformedEvent("`content` is not a JSON document") from None
    content_type = CONTENT_TYPES.get(envelope.event)
    content: EventContent
    if content_type is None:
        content = UnknownContent(data)
    else:
        try:
            content = msgspec.convert(data, content_type)
        except msgspec.ValidationError as exc:
            raise MalformedEvent(f"`content` does not fit {envelope.event}: {exc}") from None
        except _DECODE_FAILURES as exc:
            raise MalformedEvent(
                f"`content` does not fit {envelope.event}: {type(exc).__name__}"
            ) from None
    try:
        key = dedupe_key(envelope, data)
    except _DECODE_FAILURES as exc:  # e.g. nesting that decoded but is too deep to re-encode
        raise MalformedEvent(f"`content` cannot be used: {type(exc).__name__}") from None
    return WebhookEvent(envelope, content, key)


def decode_body(body: bytes) -> WebhookEvent:
    return decode_event(decode_envelope(body))


def dedupe_key(envelope: Envelope, content_data: Any) -> str:
    """A key that is the same for every delivery of one event.

    Built from decoded fields in a canonical encoding, not from the raw bytes: a
    retry that re-serializes the JSON (other key order or spacing, inside `content`
    too) is still recognised as the same event.
    """
    canonical = _canonical_encoder.encode(
        [
            envelope.client_key,
            envelope.event,
            envelope.create_time,
            envelope.user_openid,
            content_data,
        ]
    )
    return hashlib.sha256(canonical).hexdigest()[:40]

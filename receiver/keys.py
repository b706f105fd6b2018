"""Every Redis key prefix the service uses, in one place.

arq's own keys (``arq:queue``, ``arq:job:*``, ``arq:in-progress:*``, ``arq:result:*``,
``arq:retry:*``) are arq's; everything of ours lives under ``tiktok:``.
"""

from typing import Final

ARQ_JOB_PREFIX: Final = "arq:job:"
# Set when a delivery was accepted; a later delivery with the same key is a duplicate.
DEDUPE_PREFIX: Final = "tiktok:dedupe:"
# Token vault: one encrypted record per (client_key, open_id).
TOKEN_PREFIX: Final = "tiktok:token:"
# Sorted set of token record names by access-token expiry (ms), for the refresh sweep.
TOKEN_EXPIRY_INDEX: Final = "tiktok:token-expiry"
# Single-flight refresh lock per (client_key, open_id).
REFRESH_LOCK_PREFIX: Final = "tiktok:refresh-lock:"
# Stored user profile snapshots.
PROFILE_PREFIX: Final = "tiktok:profile:"
# OAuth `state` values already used at the callback (the pending ones live in a cookie).
OAUTH_USED_PREFIX: Final = "tiktok:oauth-used:"
# Debounce marker: a profile fetch for this user was enqueued recently.
PROFILE_DEBOUNCE_PREFIX: Final = "tiktok:profile-debounce:"
# When the user last connected through OAuth (a removal event older than this is stale).
CONNECTED_PREFIX: Final = "tiktok:connected:"
# Tombstone of a user whose authorization was removed (reason and time, no tokens).
REMOVED_PREFIX: Final = "tiktok:removed:"
# Latest status per share_id / publish_id / request_id (hash per object).
STATUS_PREFIX: Final = "tiktok:status:"
# Capped list of recent unknown events and pings (name, client_key, create_time).
UNKNOWN_EVENTS_LIST: Final = "tiktok:events:unknown"
# Per handler completion markers, so a retried job skips handlers that already ran.
HANDLED_PREFIX: Final = "tiktok:handled:"
# Dead-letter list: hash id -> record, and a sorted set of ids by time.
DEAD_LETTER_HASH: Final = "tiktok:dlq"
DEAD_LETTER_INDEX: Final = "tiktok:dlq:index"
# Outbound rate-limiter windows per TikTok endpoint.
RATE_LIMIT_PREFIX: Final = "tiktok:ratelimit:"
CAPTURE_STREAM: Final = "tiktok:capture"  # opt-in capture of verified deliveries (a stream)
# Operator console: the bounded recent-delivery index (a stream), per-minute counts by
# outcome (a hash per minute), and the last actions operators took (a capped list).
RECENT_STREAM: Final = "tiktok:console:recent"
RECENT_MINUTE_PREFIX: Final = "tiktok:console:minute:"
CONSOLE_ACTIONS_LIST: Final = "tiktok:console:actions"
CONSOLE_SESSION_PREFIX: Final = "tiktok:console:session:"  # signed-in sessions (until logout)
# What the built-in handlers fetched (receiver/fetched.py), per app: the publish status,
# the video details (+ an index per user), the data requests (+ an index per user).
FETCHED_PUBLISH_PREFIX: Final = "tiktok:fetched:publish:"
VIDEO_PREFIX: Final = "tiktok:video:"
USER_VIDEOS_PREFIX: Final = "tiktok:user-videos:"
DATA_REQUEST_PREFIX: Final = "tiktok:data-request:"
USER_DATA_REQUESTS_PREFIX: Final = "tiktok:user-data-requests:"
# Forwarding to the company's services: deliveries, attempts, indexes, destination state.
FORWARD_PREFIX: Final = "tiktok:fwd:"

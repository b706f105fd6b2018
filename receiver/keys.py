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
# OAuth `state` values waiting for their callback.
OAUTH_STATE_PREFIX: Final = "tiktok:oauth-state:"

"""The records the sandbox keeps in memory, as msgspec Structs so they encode to JSON as-is."""

from __future__ import annotations

import msgspec


class SandboxUser(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A TikTok user; blank fields are filled in when the user is added to the sandbox."""

    open_id: str = ""
    union_id: str = ""
    display_name: str = ""
    avatar_url: str = ""
    avatar_url_100: str = ""
    avatar_large_url: str = ""
    bio_description: str = ""
    profile_deep_link: str = ""
    profile_web_link: str = ""
    is_verified: bool = False
    username: str = ""
    follower_count: int = 0
    following_count: int = 0
    likes_count: int = 0
    video_count: int = 0


class AuthCode(msgspec.Struct, kw_only=True):
    """An authorization code, bound to the app and redirect URI it was issued for."""

    code: str
    client_key: str
    redirect_uri: str
    open_id: str
    scopes: tuple[str, ...]
    expires_at: float
    code_challenge: str | None = None
    used: bool = False


class PendingAuthorization(msgspec.Struct, kw_only=True):
    """A validated authorize request waiting for the user's click on the consent page."""

    request_id: str
    client_key: str
    redirect_uri: str
    open_id: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str | None
    expires_at: float


class Grant(msgspec.Struct, kw_only=True):
    """One user's authorization of one app: what a code exchange creates and refresh renews.

    The refresh token's lifetime is fixed at the first issuance and is not reset by
    refreshing (the one observation in contract §2.3).
    """

    grant_id: int
    client_key: str
    open_id: str
    scopes: tuple[str, ...]
    created_at: float
    refresh_token: str
    refresh_expires_at: float
    revoked_at: float | None = None


class AccessTokenRecord(msgspec.Struct, kw_only=True):
    grant_id: int
    expires_at: float


class TokenSet(msgspec.Struct, kw_only=True):
    """The flat success body of `/v2/oauth/token/`, fields in the contract's order."""

    access_token: str
    expires_in: int
    open_id: str
    refresh_expires_in: int
    refresh_token: str
    scope: str
    token_type: str = "Bearer"


class GrantView(msgspec.Struct, kw_only=True):
    """What the admin API shows of a grant: never the tokens themselves."""

    client_key: str
    open_id: str
    scopes: tuple[str, ...]
    created_at: float
    refresh_expires_at: float
    revoked_at: float | None
    live_access_tokens: int


class CallRecord(msgspec.Struct, kw_only=True):
    """One call of a simulated TikTok endpoint, for tests to assert on; holds no tokens.

    `status` is 0 when the connection was dropped on purpose.
    """

    seq: int
    time: float
    endpoint: str
    method: str
    status: int
    error: str | None
    client_key: str | None
    open_id: str | None
    grant_type: str | None
    fault: str | None
    log_id: str


class SandboxEvent(msgspec.Struct, kw_only=True):
    """A webhook event the sandbox raised, in TikTok's envelope (contract §1.2).

    `user_openid` None leaves the field out of the envelope (as in TikTok's
    `portability.download.ready` example). The webhook sender signs and POSTs it to the
    app's callback URL, if the app has one.
    """

    seq: int
    client_key: str
    event: str
    create_time: int
    user_openid: str | None
    content: str

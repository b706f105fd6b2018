"""Codes, grants and tokens: the OAuth core, with each check-and-change done under one lock.

Holding the lock for a whole redeem or refresh is what makes a code single-use and a
refresh token rotate exactly once even when clients race.
"""

from __future__ import annotations

import hmac
import threading

from tiktok_sandbox.errors import BAD_PKCE, MISMATCHED_REDIRECT, OAuthError, invalid_grant
from tiktok_sandbox.ids import new_access_token, new_code, new_refresh_token, pkce_s256
from tiktok_sandbox.models import (
    AccessTokenRecord,
    AuthCode,
    Grant,
    GrantView,
    PendingAuthorization,
    TokenSet,
)

_PRUNE_AFTER = 3600.0  # keep spent codes a while so reuse says "used", not "invalid"


class TokenStore:
    _codes: dict[str, AuthCode]
    _pending: dict[str, PendingAuthorization]
    _grants: dict[int, Grant]
    _access: dict[str, AccessTokenRecord]
    _refresh: dict[str, int]  # current refresh token -> grant id
    _retired_refresh: set[str]  # rotated out: named as such in the error description
    _next_grant: int

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._codes = {}
            self._pending = {}
            self._grants = {}
            self._access = {}
            self._refresh = {}
            self._retired_refresh = set()
            self._next_grant = 1

    # -- authorize ---------------------------------------------------------------

    def issue_code(
        self,
        *,
        client_key: str,
        redirect_uri: str,
        open_id: str,
        scopes: tuple[str, ...],
        code_challenge: str | None,
        now: float,
        ttl: int,
    ) -> str:
        code = new_code()
        with self._lock:
            self._codes = {
                k: c for k, c in self._codes.items() if c.expires_at + _PRUNE_AFTER > now
            }
            self._codes[code] = AuthCode(
                code=code,
                client_key=client_key,
                redirect_uri=redirect_uri,
                open_id=open_id,
                scopes=scopes,
                expires_at=now + ttl,
                code_challenge=code_challenge,
            )
        return code

    def add_pending(self, pending: PendingAuthorization, now: float) -> None:
        with self._lock:
            self._pending = {k: p for k, p in self._pending.items() if p.expires_at > now}
            self._pending[pending.request_id] = pending

    def take_pending(self, request_id: str, now: float) -> PendingAuthorization | None:
        """Single use, so a double click on the consent page cannot issue two codes."""
        with self._lock:
            pending = self._pending.pop(request_id, None)
        if pending is None or pending.expires_at <= now:
            return None
        return pending

    # -- token endpoint ------------------------------------------------------------

    def redeem_code(
        self,
        *,
        client_key: str,
        code: str,
        redirect_uri: str,
        code_verifier: str | None,
        now: float,
        access_ttl: int,
        refresh_ttl: int,
    ) -> TokenSet:
        with self._lock:
            record = self._codes.get(code)
            if record is None:
                raise invalid_grant("Authorization code is invalid.")
            if record.used:
                raise invalid_grant("Authorization code has already been used.")
            if now >= record.expires_at:
                raise invalid_grant("Authorization code is expired.")
            if record.client_key != client_key:
                raise invalid_grant("Authorization code was issued to another client.")
            if record.redirect_uri != redirect_uri:
                # TikTok's real answer: invalid_request, with this description.
                raise OAuthError("invalid_request", MISMATCHED_REDIRECT)
            if record.code_challenge is not None and not (
                code_verifier
                and hmac.compare_digest(pkce_s256(code_verifier), record.code_challenge)
            ):
                raise OAuthError("invalid_request", BAD_PKCE)
            record.used = True
            grant = Grant(
                grant_id=self._next_grant,
                client_key=client_key,
                open_id=record.open_id,
                scopes=record.scopes,
                created_at=now,
                refresh_token=new_refresh_token(),
                refresh_expires_at=now + refresh_ttl,
            )
            self._next_grant += 1
            self._grants[grant.grant_id] = grant
            self._refresh[grant.refresh_token] = grant.grant_id
            return self._token_set(grant, now, access_ttl)

    def refresh(
        self, *, client_key: str, refresh_token: str, now: float, access_ttl: int
    ) -> TokenSet:
        with self._lock:
            grant_id = self._refresh.get(refresh_token)
            if grant_id is None:
                if refresh_token in self._retired_refresh:
                    raise invalid_grant(
                        "Refresh token has been rotated: use the newest refresh token."
                    )
                raise invalid_grant("Refresh token is invalid or expired.")
            grant = self._grants[grant_id]
            if grant.client_key != client_key:
                raise invalid_grant("Refresh token was issued to another client.")
            if grant.revoked_at is not None:
                raise invalid_grant("Refresh token has been revoked.")
            if now >= grant.refresh_expires_at:
                raise invalid_grant("Refresh token is expired.")
            del self._refresh[refresh_token]
            self._retired_refresh.add(refresh_token)
            grant.refresh_token = new_refresh_token()
            self._refresh[grant.refresh_token] = grant_id
            return self._token_set(grant, now, access_ttl)

    def _token_set(self, grant: Grant, now: float, access_ttl: int) -> TokenSet:
        access_token = new_access_token()
        self._access[access_token] = AccessTokenRecord(
            grant_id=grant.grant_id, expires_at=now + access_ttl
        )
        return TokenSet(
            access_token=access_token,
            expires_in=access_ttl,
            open_id=grant.open_id,
            refresh_expires_in=max(0, int(grant.refresh_expires_at - now)),
            refresh_token=grant.refresh_token,
            scope=",".join(grant.scopes),
        )

    # -- revoke and user info --------------------------------------------------------

    def revoke(self, *, client_key: str, token: str, now: float) -> tuple[str | None, bool]:
        """Revoke the app's authorization by the user who owns `token`.

        Returns (open_id, whether anything was still live); an unknown token is a no-op,
        as RFC 7009 asks, while another app's token is refused.
        """
        with self._lock:
            access = self._access.get(token)
            grant_id = access.grant_id if access is not None else self._refresh.get(token)
            if grant_id is None:
                return None, False
            grant = self._grants[grant_id]
            if grant.client_key != client_key:
                raise OAuthError("invalid_request", "The token was not issued to this client.")
            return grant.open_id, bool(self.revoke_user(grant.open_id, client_key, now))

    def revoke_user(self, open_id: str, client_key: str | None, now: float) -> list[str]:
        """Revoke every live grant of `open_id` (for one app, or all); return those apps."""
        with self._lock:
            apps: dict[str, None] = {}
            for grant in self._matching(open_id, client_key):
                grant.revoked_at = now
                apps.setdefault(grant.client_key, None)
            return list(apps)

    def inspect_access(self, token: str, now: float) -> tuple[str | None, Grant | None]:
        """(the owning app's client_key if the token is known, its grant if still valid)."""
        with self._lock:
            record = self._access.get(token)
            if record is None:
                return None, None
            grant = self._grants[record.grant_id]
            valid = grant.revoked_at is None and now < record.expires_at
            return grant.client_key, (grant if valid else None)

    # -- admin ---------------------------------------------------------------------

    def expire_access(self, open_id: str, client_key: str | None, now: float) -> int:
        with self._lock:
            live = {g.grant_id for g in self._matching(open_id, client_key)}
            count = 0
            for record in self._access.values():
                if record.grant_id in live and record.expires_at > now:
                    record.expires_at = now
                    count += 1
            return count

    def expire_refresh(self, open_id: str, client_key: str | None, now: float) -> int:
        with self._lock:
            count = 0
            for grant in self._matching(open_id, client_key):
                if grant.refresh_expires_at > now:
                    grant.refresh_expires_at = now
                    count += 1
            return count

    def grants_of(self, open_id: str, now: float) -> list[GrantView]:
        with self._lock:
            views = []
            for grant in self._grants.values():
                if grant.open_id != open_id:
                    continue
                live = sum(
                    1
                    for r in self._access.values()
                    if r.grant_id == grant.grant_id and r.expires_at > now
                )
                views.append(
                    GrantView(
                        client_key=grant.client_key,
                        open_id=grant.open_id,
                        scopes=grant.scopes,
                        created_at=grant.created_at,
                        refresh_expires_at=grant.refresh_expires_at,
                        revoked_at=grant.revoked_at,
                        live_access_tokens=live if grant.revoked_at is None else 0,
                    )
                )
            return views

    def _matching(self, open_id: str, client_key: str | None) -> list[Grant]:
        return [
            g
            for g in self._grants.values()
            if g.open_id == open_id
            and g.revoked_at is None
            and (client_key is None or g.client_key == client_key)
        ]

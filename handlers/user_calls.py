"""Calling TikTok's API for one connected user: the app's vault and client, and the one
refresh-and-retry when TikTok calls a token invalid before its expiry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from handlers.context import WorkerState
from receiver.secrets import Secret
from receiver.tiktok.client import TikTokClient
from receiver.tiktok.errors import AccessTokenInvalid
from receiver.vault.vault import TokenNotFound, TokenVault

T = TypeVar("T")
# A token this close to its expiry is refreshed before the call.
MARGIN_SECONDS = 60


def app_of(state: WorkerState, client_key: str) -> tuple[TokenVault, TikTokClient]:
    """The vault and the TikTok client of `client_key`, or TokenNotFound."""
    vault = state.vaults.get(client_key)
    client = state.clients.get(client_key)
    if vault is None or client is None:
        raise TokenNotFound(f"app {client_key!r} is not configured in this worker")
    return vault, client


async def with_user_token(
    vault: TokenVault, open_id: str, call: Callable[[Secret], Awaitable[T]]
) -> T:
    """`call` with the user's valid access token; when TikTok says the token is bad before
    its expiry, refresh once and call once more."""
    token = await vault.get_valid_access_token(open_id, margin_seconds=MARGIN_SECONDS)
    try:
        return await call(token)
    except AccessTokenInvalid:
        await vault.refresh(open_id)
        token = await vault.get_valid_access_token(open_id, margin_seconds=MARGIN_SECONDS)
        return await call(token)

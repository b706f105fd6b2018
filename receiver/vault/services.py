"""What the OAuth routes, the internal API and the token CLI share: clients, vaults, a queue.

The web process builds one `TokenServices` in its lifespan; the CLI builds one per command.
`check_web_features` is the start-up validation for the optional web features, so a
half-configured deployment refuses to start instead of failing at the first request.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Final

import redis.asyncio as aioredis
from arq.connections import ArqRedis

from receiver.ingest.jobs import job_deserializer, job_serializer
from receiver.settings import ConfigError, Settings, redirect_uri_problem
from receiver.tiktok.client import TikTokClient
from receiver.vault.crypto import TokenCipher
from receiver.vault.vault import TokenVault

MIN_ADMIN_TOKEN_LENGTH: Final = 32
# By the characters' frequencies: `keygen` gives ~200, a 32-digit hex token ~110, one
# repeated character 0.
MIN_ADMIN_TOKEN_BITS: Final = 96


def estimated_bits(token: str) -> float:
    """An upper estimate of a token's entropy from its characters' frequencies (Shannon)."""
    counts = Counter(token)
    return -sum(n * math.log2(n / len(token)) for n in counts.values())


def oauth_enabled(settings: Settings) -> bool:
    return settings.tiktok_redirect_uri is not None


def internal_api_enabled(settings: Settings) -> bool:
    return settings.admin_token is not None


def check_web_features(settings: Settings) -> None:
    """Raise ConfigError if the OAuth routes or the internal API are on but cannot work."""
    problems: list[str] = []
    if oauth_enabled(settings):
        try:
            settings.require_oauth()
        except ConfigError as exc:
            problems.extend(exc.problems)
        assert settings.tiktok_redirect_uri is not None
        problem = redirect_uri_problem(
            settings.tiktok_redirect_uri, development=settings.is_development
        )
        if problem:
            problems.append(problem)
    if settings.admin_token is not None:
        if len(settings.admin_token.reveal()) < MIN_ADMIN_TOKEN_LENGTH:
            problems.append(
                f"ADMIN_TOKEN is shorter than {MIN_ADMIN_TOKEN_LENGTH} characters: use a "
                "random value, e.g. the output of `tiktok-webhooks keygen`"
            )
        elif estimated_bits(settings.admin_token.reveal()) < MIN_ADMIN_TOKEN_BITS:
            problems.append(
                "ADMIN_TOKEN looks guessable (too few different characters): use a random "
                "value, e.g. the output of `tiktok-webhooks keygen`"
            )
        if not settings.apps:
            problems.append(
                "ADMIN_TOKEN turns the internal API on, which needs TIKTOK_CLIENT_KEY and "
                "TIKTOK_CLIENT_SECRET"
            )
        if not settings.token_encryption_keys:
            problems.append(
                "ADMIN_TOKEN turns the internal API on, which reads the token vault: set "
                "TOKEN_ENCRYPTION_KEYS (create a key with `tiktok-webhooks keygen`)"
            )
    if settings.token_encryption_keys and (oauth_enabled(settings) or settings.admin_token):
        try:
            TokenCipher(settings.token_encryption_keys)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))


@dataclass
class TokenServices:
    """One TikTok client and vault per configured app, and an arq handle for enqueueing."""

    redis: aioredis.Redis
    queue: ArqRedis
    clients: dict[str, TikTokClient]
    vaults: dict[str, TokenVault]
    primary_client_key: str

    @classmethod
    def open(cls, settings: Settings, redis: aioredis.Redis) -> TokenServices:
        """Build on `redis`'s connection pool (the caller closes `redis`, then `aclose`)."""
        cipher = TokenCipher(settings.token_encryption_keys)
        clients: dict[str, TikTokClient] = {}
        vaults: dict[str, TokenVault] = {}
        for app in settings.apps:
            client = TikTokClient(settings, app=app)
            clients[app.client_key] = client
            vaults[app.client_key] = TokenVault(redis, cipher, client, app.client_key)
        # Shares the pool: no second set of connections, and no ping at start-up, so a
        # Redis outage at boot still gives 503s rather than a crash loop.
        queue = ArqRedis(
            redis.connection_pool,
            job_serializer=job_serializer,
            job_deserializer=job_deserializer,
            default_queue_name=settings.queue_name,
        )
        return cls(redis, queue, clients, vaults, settings.primary_app.client_key)

    def vault(self, client_key: str | None = None) -> TokenVault | None:
        return self.vaults.get(client_key or self.primary_client_key)

    def client(self, client_key: str | None = None) -> TikTokClient | None:
        return self.clients.get(client_key or self.primary_client_key)

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        # The pool belongs to `redis`; closing the queue must not close it.
        await self.queue.aclose(close_connection_pool=False)

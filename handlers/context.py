"""What handlers get besides the event: Redis, the token vaults, TikTok, the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from arq.connections import ArqRedis

from handlers.deadletter import DeadLetterStore
from handlers.ratelimit import RateLimiter
from handlers.registry import HandlerRegistry
from receiver.settings import Settings
from receiver.tiktok.client import TikTokClient
from receiver.vault.vault import TokenVault

if TYPE_CHECKING:
    from handlers.forwarding.forwarder import Forwarder


@dataclass(repr=False)
class WorkerState:
    """Built once per worker process at start-up (see handlers.worker)."""

    settings: Settings
    redis: ArqRedis
    registry: HandlerRegistry
    vaults: dict[str, TokenVault]
    clients: dict[str, TikTokClient]
    limiter: RateLimiter
    dead_letters: DeadLetterStore
    # Results of the latest handler runs, for tests and the replay helper (bounded).
    recorder: list[HandlerOutcome] | None = None
    # Log one line per handler run (`worker --log-handlers`, which `dev` turns on).
    log_outcomes: bool = False
    # Forwarding to the company's services (handlers/forwarding/).
    forwarder: Forwarder | None = None


@dataclass(frozen=True)
class HandlerOutcome:
    job_id: str | None
    event: str
    handler: str
    ok: bool
    result: object = None
    error: str | None = None


@dataclass(repr=False)
class HandlerContext:
    """Passed to every handler with the event."""

    state: WorkerState
    job_id: str | None
    job_try: int
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def redis(self) -> ArqRedis:
        return self.state.redis

    @property
    def limiter(self) -> RateLimiter:
        return self.state.limiter

    def vault(self, client_key: str) -> TokenVault | None:
        """The token vault of the app `client_key`, if that app is configured."""
        return self.state.vaults.get(client_key)

    def client(self, client_key: str) -> TikTokClient | None:
        return self.state.clients.get(client_key)

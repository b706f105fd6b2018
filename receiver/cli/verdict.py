"""Whether `serve` and `worker` accept a configuration: one verdict, used by the commands
themselves and by `doctor`, so that doctor never says OK to what the service refuses."""

from __future__ import annotations

from typing import Final

from receiver.settings import ConfigError, Settings

NO_APP: Final = (
    "no TikTok app configured: set TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET (the app's "
    "Client key and Client secret from the TikTok portal), or add [[apps]] to the --config file"
)


def serve_problems(settings: Settings) -> list[str]:
    from receiver.vault.services import check_web_features

    problems = [] if settings.apps else [NO_APP]
    try:
        check_web_features(settings)
    except ConfigError as exc:
        problems += exc.problems
    return problems


def worker_problems(settings: Settings) -> list[str]:
    try:
        settings.require_worker()
    except ConfigError as exc:
        return exc.problems
    return []


def require_serve(settings: Settings) -> None:
    problems = serve_problems(settings)
    if problems:
        raise ConfigError(problems)

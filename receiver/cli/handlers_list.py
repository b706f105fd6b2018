"""`tiktok-webhooks handlers list`: the handlers a worker with these settings would run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from receiver.cli.worker import add_handlers_path, add_handlers_path_option
from receiver.settings import load_settings_from_env


def cmd_handlers(args: argparse.Namespace) -> int:
    from handlers.registry import ANY, UNKNOWN, registry
    from handlers.worker import import_handler_modules

    settings = load_settings_from_env(args.config)
    add_handlers_path(args.handlers_path)
    import_handler_modules(settings.worker_handler_modules)
    names = {UNKNOWN: "(unknown events)", ANY: "(every event)"}
    rows = [("HANDLER", "MODULE", "EVENTS")]
    rows += [
        (
            handler.name,
            handler.func.__module__,
            ", ".join(names.get(event, event) for event in events),
        )
        for handler, events in registry.entries()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for row in rows:
        print(f"{row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  {row[2]}")
    modules = ", ".join(settings.worker_handler_modules) or "none"
    print(f"\nhandler modules (WORKER_HANDLER_MODULES): {modules}")
    return 0


def register(sub: Any) -> None:
    handlers = sub.add_parser(
        "handlers",
        help="list the handlers a worker with these settings registers",
        description="The built-in handlers and those of WORKER_HANDLER_MODULES, with the "
        "events each listens to.",
    )
    handlers.add_argument("action", choices=["list"], help="list them")
    handlers.add_argument("--config", type=Path, help="TOML settings file (default: none)")
    add_handlers_path_option(handlers)
    handlers.set_defaults(func=cmd_handlers)

"""Files of `tiktok-webhooks dev`: the data directory's lock, the files of
the handler modules it reloads, the ports it needs."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from receiver.cli.failures import EXIT_LOCKED, EXIT_PORT_IN_USE, CommandFailed


@contextlib.contextmanager
def locked_data_dir(data_dir: Path) -> Iterator[IO[str]]:
    """Hold an exclusive lock on `data_dir` (released when the process ends)."""
    path = data_dir / "dev.lock"
    handle = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise CommandFailed(
                f"another `tiktok-webhooks dev` (pid {holder}) runs with {data_dir}: stop it "
                "(Ctrl-C in its shell), or give this one its own --data-dir",
                EXIT_LOCKED,
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield handle
    finally:
        handle.close()


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:`port` now (as uvicorn and Redis do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_ports(wanted: Sequence[tuple[str, int]]) -> None:
    """Raise one line naming every busy port and the option that moves it."""
    busy = [(option, port) for option, port in wanted if port and not port_is_free(port)]
    if not busy:
        return
    named = ", ".join(f"{port} ({option})" for option, port in busy)
    raise CommandFailed(
        f"port{'s' if len(busy) > 1 else ''} already in use on 127.0.0.1: {named}; stop what "
        "uses it (another `dev`?), or move it with that option (0 picks a free port)",
        EXIT_PORT_IN_USE,
    )


def handler_files(modules: Sequence[str], paths: Sequence[Path]) -> list[Path]:
    """The source files to watch for the handler modules: for `a.b`, every .py file of
    the package `a` found in `paths` (or the module file itself)."""
    found: list[Path] = []
    for module in modules:
        top = module.split(".")[0]
        for base in paths:
            package, single = base / top, base / f"{top}.py"
            if package.is_dir():
                found += sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)
                break
            if single.is_file():
                found.append(single)
                break
    return found


def mtimes(files: Sequence[Path]) -> dict[Path, float]:
    stamps: dict[Path, float] = {}
    for path in files:
        with contextlib.suppress(OSError):
            stamps[path] = path.stat().st_mtime
    return stamps

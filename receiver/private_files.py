"""Files only their owner may read: made 0600 from the first byte, not chmod-ed later."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

PRIVATE_MODE = 0o600


def open_private(path: Path | str, *, append: bool = False) -> IO[bytes]:
    """Open `path` for writing (bytes), created 0600; an existing file is made 0600 too."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), PRIVATE_MODE)
    try:
        os.fchmod(fd, PRIVATE_MODE)
        return os.fdopen(fd, "ab" if append else "wb")
    except BaseException:
        os.close(fd)
        raise


def write_private(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path`, readable by its owner only; a reader sees the old
    file or the whole new one, never a part (written aside, then renamed into place)."""
    partial = path.with_name(path.name + ".partial")
    with open_private(partial) as out:
        out.write(text.encode("utf-8"))
    os.replace(partial, path)

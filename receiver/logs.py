"""Log lines for both processes: plain text or JSON (`LOG_FORMAT`), never forgeable.

Messages often carry text from outside (a query parameter, TikTok's error description). In
the text format every control character in the message is escaped (`\\n`, `\\x1b`, ...),
so no outside text can start a line of its own or colour a terminal; a traceback keeps its
lines. In the JSON format each record is one JSON object per line (what most log pipelines
read), whose encoding escapes the same characters.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from receiver.settings import ConfigError

FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _escape_table() -> dict[int, str]:
    table = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
    table.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
    return table


_ESCAPES: Final = _escape_table()


def clean(text: str) -> str:
    """`text` with every control and line-breaking character escaped."""
    return text.translate(_ESCAPES)


class SafeTextFormatter(logging.Formatter):
    """The usual one-line format; the message's control characters are escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = clean(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return msgspec.json.encode(entry).decode("utf-8")


def log_format(environ: Mapping[str, str] = os.environ) -> str:
    """LOG_FORMAT, checked: `text` (the default) or `json`."""
    value = environ.get("LOG_FORMAT", "").strip().lower() or "text"
    if value not in FORMATS:
        raise ConfigError([f"LOG_FORMAT must be `text` or `json`, not {value[:20]!r}"])
    return value


def configure_logging(fmt: str, level: int = logging.INFO) -> None:
    """Send every logger's records to stderr in `fmt`, replacing earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else SafeTextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)

"""The CLI's argument parser: TikTok ids that start with '-' are values, not options.

Real open_ids look like `-000NAdxlHusXRGvLc05cl15y3jnkJg4utC5`. Plain argparse takes
such a word for an unknown option, so `tokens show -000…` and `send --open-id -000…`
failed. Here a word that starts with a single '-', is long and has only id characters,
and is no option this parser knows, is read as a value wherever it appears.
"""

from __future__ import annotations

import argparse
import string
from typing import Any, Final

MIN_ID_LENGTH: Final = 8
_ID_CHARS: Final = frozenset(string.ascii_letters + string.digits + "-_.")


def looks_like_id(word: str) -> bool:
    return (
        len(word) >= MIN_ID_LENGTH
        and word.startswith("-")
        and not word.startswith("--")
        and all(ch in _ID_CHARS for ch in word)
    )


class CliParser(argparse.ArgumentParser):
    """argparse, except for ids with a leading '-' (subcommand parsers inherit it)."""

    def _parse_optional(self, arg_string: str) -> Any:
        if looks_like_id(arg_string) and arg_string not in self._option_string_actions:
            return None  # a positional value, or the value of the option before it
        return super()._parse_optional(arg_string)

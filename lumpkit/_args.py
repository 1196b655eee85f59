"""Argument checks shared by the commands, done before any long computation.

A command that writes files checks every target first (its directory exists,
it is not a directory), so that a mistyped ``-o`` is reported in one line at
once rather than after minutes of work; the writers themselves are atomic.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from lumpcore import LumpkitError

__all__ = ["OutputPathError", "check_output", "seconds"]


class OutputPathError(LumpkitError, ValueError):
    """An output file named on the command line cannot be written there."""


def check_output(path: str | Path, option: str) -> None:
    """Refuse an output ``path`` (given as ``option``) that is a directory or whose
    directory does not exist."""
    target = Path(path)
    if target.is_dir():
        raise OutputPathError(f"{option} {target} is a directory; name a file")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputPathError(
            f"{option} {target}: the directory {parent} does not exist; create it first")


def seconds(text: str) -> float:
    """An argparse ``type``: a time limit in seconds, > 0 (``inf``: no limit)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if math.isnan(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"a time limit must be > 0 seconds, got {text!r}")
    return value

"""``lumpkit nn ...``: the neural-network command group."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``nn`` and its subcommands (reduce, verify, leo) to ``sub``."""
    from . import _cmd_nn_proofs, _cmd_nn_reduce

    p: argparse.ArgumentParser = sub.add_parser(
        "nn", help="reduce, verify and compress neural networks"
    )
    nsub = p.add_subparsers(dest="nn_command", metavar="SUBCOMMAND", required=True)
    _cmd_nn_reduce.register(nsub)
    _cmd_nn_proofs.register(nsub)

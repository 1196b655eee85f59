"""Entry point of the ``lumpkit`` command: builds the parser and dispatches.

Each command group lives in its own module with a ``register(subparsers)``
function that adds its parser and sets ``func`` to a handler returning the
exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn, TextIO

from lumpcore import LumpkitError, LumpkitWarning

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on standard error,
    ``lumpkit: error: ...`` (as every other error of lumpkit), with exit status 2.

    Subcommand parsers are made with the parent's class, so the whole tree
    reports errors this way."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("lumpkit").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"lumpkit: error: {where}{message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser of ``lumpkit``."""
    from . import _cmd_ctmc, _cmd_demo, _cmd_nn

    parser = _Parser(
        prog="lumpkit",
        description=(
            "Exact lumpability for Markov chains and lossless, data-free reduction of "
            "neural networks, with certificates."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _cmd_demo.register(sub)
    _cmd_ctmc.register(sub)
    _cmd_nn.register(sub)
    return parser


_VALUE_OPTIONS = ("--box", "--tolerance")  # options whose value may start with '-'


def _attach_negative_values(argv: list[str]) -> list[str]:
    """``--box -1:1`` as ``--box=-1:1``: argparse would read ``-1:1`` as an option."""
    out: list[str] = []
    k = 0
    while k < len(argv):
        a = argv[k]
        if a in _VALUE_OPTIONS and k + 1 < len(argv) and len(argv[k + 1]) > 1 \
                and argv[k + 1][0] == "-" and (argv[k + 1][1].isdigit() or argv[k + 1][1] == "."):
            out.append(f"{a}={argv[k + 1]}")
            k += 2
            continue
        out.append(a)
        k += 1
    return out


COMPILE_NOTICE = ("lumpkit: compiling kernels with numba on first use (tens of seconds, "
                  "once: the compiled code is cached)")


@contextlib.contextmanager
def compile_notice(stream: TextIO | None = None) -> Iterator[None]:
    """Say once on ``stream`` (default: standard error) when numba starts compiling.

    numba reports a compilation only on a cache miss, so a run that finds
    its kernels in numba's on-disk cache prints nothing; a first run would
    otherwise sit silent for tens of seconds.
    """
    from numba.core import event

    said = False

    class _Notice(event.Listener):
        def on_start(self, ev: Any) -> None:
            nonlocal said
            if not said:
                said = True
                print(COMPILE_NOTICE, file=sys.stderr if stream is None else stream,
                      flush=True)

        def on_end(self, ev: Any) -> None:
            pass

    with event.install_listener("numba:compile", _Notice()):
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lumpkit`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(_attach_negative_values(
        list(sys.argv[1:] if argv is None else argv)))
    caught: list[warnings.WarningMessage] = []
    try:
        try:
            with warnings.catch_warnings(record=True) as recorded:
                warnings.simplefilter("always", LumpkitWarning)
                try:
                    with compile_notice():
                        status: int = args.func(args)
                finally:
                    caught = list(recorded)
        finally:  # shown after the recording ends (inside it, showing records again)
            for w in caught:
                if issubclass(w.category, LumpkitWarning):
                    print(f"lumpkit: warning: {w.message}", file=sys.stderr)
                else:  # others as Python would show them
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    except LumpkitError as exc:
        print(f"lumpkit: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a missing file, a full disk, a directory where a file goes ...
        what = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else exc
        print(f"lumpkit: error: {what}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lumpkit: interrupted", file=sys.stderr)
        return 130
    return status

"""``lumpkit ctmc ...``: the Markov-chain command group (argument parsing and printing only)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from lumpcore import LumpkitError

from ._args import check_output

__all__ = ["register"]


class _UsageError(LumpkitError, ValueError):
    pass


def register(sub: Any) -> None:
    """Add ``ctmc`` and its subcommand ``lump`` to ``sub``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "ctmc", help="lump continuous- and discrete-time Markov chains"
    )
    csub = p.add_subparsers(dest="ctmc_command", metavar="SUBCOMMAND", required=True)
    lp = csub.add_parser(
        "lump",
        help="compute the coarsest lumping of a chain and its quotient",
        description=(
            "Read a chain (PRISM explicit .tra with .lab beside it, Storm .drn, or a "
            "PRISM/JANI model via stormpy), compute its coarsest lumping of the given kind "
            "with the lumpcore engine, and print the sizes before and after."
        ),
    )
    lp.add_argument("model", metavar="MODEL", help="model file: .tra, .drn, .prism/.sm or .jani")
    from markov import KINDS

    lp.add_argument("--kind", choices=KINDS, default="ordinary",
                    help="lumping notion (default: ordinary)")
    lp.add_argument("-c", "--constant", action="append", default=[], metavar="NAME=VALUE",
                    help="value of an undefined PRISM/JANI constant (repeatable)")
    lp.add_argument("--exact", action="store_true",
                    help="read/build the model with exact rationals")
    lp.add_argument("--arithmetic", choices=("exact", "float"), default="exact",
                    help="engine arithmetic (default: exact)")
    lp.add_argument("--tolerance", type=float, default=0.0,
                    help="grid step for --arithmetic float (default: 0, finest safe grid)")
    lp.add_argument("--labels", metavar="A,B,...",
                    help="labels to respect (comma-separated; default: all except init)")
    lp.add_argument("--rewards", metavar="R,S,...",
                    help="reward structures to respect (comma-separated, '' for none; "
                         "default: all)")
    lp.add_argument("--dtmc", action="store_true", help="a .tra file holds a DTMC, not a CTMC")
    lp.add_argument("-o", "--output", metavar="OUT.tra",
                    help="write the quotient chain (.tra with .lab/.srew beside it, or .drn)")
    lp.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    lp.set_defaults(func=_lump)


def _constants(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise _UsageError(f"-c expects NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [x.strip() for x in text.split(",") if x.strip()]


class _Steps:
    """A step progress bar on stderr, shown only on a terminal and only after 2 s."""

    def __init__(self, total: int) -> None:
        self._bar: Any = None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - tqdm is optional
                return
            self._bar = tqdm(total=total, file=sys.stderr, delay=2.0, leave=False,
                             bar_format="{desc} {bar} {n_fmt}/{total_fmt} [{elapsed}]")

    def step(self, desc: str) -> None:
        if self._bar is not None:
            self._bar.set_description_str(desc)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _read_quietly(args: argparse.Namespace, constants: dict[str, str] | None) -> Any:
    """``read_model`` for ``lump``, without the warnings about folded reward structures
    that ``--rewards`` leaves out (nothing of them reaches the lumping)."""
    from markov import RewardFoldingWarning, read_model

    chosen = _names(args.rewards)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        chain = read_model(args.model, constants, exact=args.exact,
                           model_type="dtmc" if args.dtmc else "ctmc")
    if args.dtmc and chain.kind != "dtmc":
        raise _UsageError(f"--dtmc is for .tra files, which do not say their type; "
                          f"{args.model} is a {chain.kind.upper()} by its own declaration")
    for w in got:
        if chosen is not None and isinstance(w.message, RewardFoldingWarning) \
                and not set(w.message.structures) & set(chosen):
            continue
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return chain


def _lump(args: argparse.Namespace) -> int:
    from markov import lump, write_drn, write_prism_explicit

    constants = _constants(args.constant)
    if args.arithmetic == "exact" and args.tolerance:
        raise _UsageError("--tolerance needs --arithmetic float")
    out = Path(args.output) if args.output else None
    if out is not None and out.suffix.lower() not in (".tra", ".drn"):
        raise _UsageError(f"-o must name a .tra or .drn file, got {out}")
    if out is not None:  # checked before the (possibly long) lumping
        check_output(out, "-o")
        if out.resolve() == Path(args.model).resolve():
            raise _UsageError(f"-o {out} would overwrite the input model; choose another name")
    bar = _Steps(3 if out else 2)
    try:
        t0 = time.perf_counter()
        bar.step("reading model")
        chain = _read_quietly(args, constants)
        t1 = time.perf_counter()
        bar.step(f"lumping ({args.kind})")
        res = lump(chain, args.kind, arithmetic=args.arithmetic, tolerance=args.tolerance,
                   labels=_names(args.labels), rewards=_names(args.rewards))
        t2 = time.perf_counter()
        if out is not None:
            bar.step("writing quotient")
            if out.suffix.lower() == ".drn":
                write_drn(res.quotient, out)
            else:
                write_prism_explicit(res.quotient, out)
    finally:
        bar.close()
    q = res.quotient
    info: dict[str, Any] = {
        "model": str(args.model),
        "type": chain.kind,
        "kind": args.kind,
        "arithmetic": args.arithmetic,
        "exact_model": chain.exact,
        "states": chain.n,
        "transitions": chain.num_transitions,
        "blocks": res.num_blocks,
        "quotient_transitions": q.num_transitions,
        "seconds": round(res.seconds, 6),
        "read_seconds": round(t1 - t0, 6),
        "total_seconds": round(t2 - t0, 6),
        "preserves": res.preserves,
    }
    if out is not None:
        info["output"] = str(out)
    if args.json:
        print(json.dumps(info))
        return 0
    ratio = chain.n / max(res.num_blocks, 1)
    print(f"model        {args.model} ({chain.kind.upper()}, "
          f"{'exact' if chain.exact else 'float'} values)")
    print(f"original     {chain.n:,} states, {chain.num_transitions:,} transitions")
    print(f"{args.kind:<12} {res.num_blocks:,} blocks, {q.num_transitions:,} transitions "
          f"({ratio:.2f}x fewer states)")
    print(f"time         {res.seconds:.3f} s lumping ({args.arithmetic}), "
          f"{t1 - t0:.3f} s reading")
    print(f"preserves    {res.preserves}")
    if out is not None:
        print(f"quotient     written to {out}")
    return 0

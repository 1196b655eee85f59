"""``lumpkit nn verify`` and ``lumpkit nn leo``: argument parsing and printing only."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from lumpcore import LumpkitError, SolverUnknownError

from ._args import check_output, seconds

__all__ = ["register"]


class _BoxFileError(LumpkitError, ValueError):
    pass


def register(sub: Any) -> None:
    """Add ``verify`` and ``leo`` to the ``nn`` subcommands ``sub``."""
    v: argparse.ArgumentParser = sub.add_parser(
        "verify",
        help="prove a reduced network equal to the original (certificate and/or z3)",
        description=(
            "Check that REDUCED computes the same function as ORIGINAL. With --certificate the "
            "certificate is checked independently in exact arithmetic; otherwise (or with --smt) "
            "z3 decides the question exactly. Exit status: 0 equivalent, 1 counterexample "
            "found, 2 could not decide (time-out, unknown, rejected certificate, a valid "
            "certificate of a reduction that is not exact) or bad input."
        ),
    )
    v.add_argument("original", help="original model (.onnx, .nnet, .pt, .npz)")
    v.add_argument("reduced", help="reduced model")
    v.add_argument("--certificate", metavar="CERT.json", help="certificate written by nn reduce")
    v.add_argument("--smt", action="store_true",
                   help="with --certificate: also run the z3 equivalence check")
    _box_args(v)
    v.add_argument("--timeout", type=seconds, default=60.0, metavar="S",
                   help="seconds for the SMT check (default 60)")
    v.add_argument("--smtlib", metavar="OUT", help="write the exact SMT-LIB 2 query to OUT")
    v.add_argument("--second-opinion", choices=["cvc5"],
                   help="also decide the exact query with cvc5")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.set_defaults(func=_verify)

    g: argparse.ArgumentParser = sub.add_parser(
        "leo",
        help="remove stably inactive / fold stably active ReLUs on an input box",
        description=(
            "LEO (Serra et al. 2020): decide ReLU stability on an input box with exact interval "
            "bounds, then LP/MILP (HiGHS), remove and fold stable neurons. The result equals "
            "the original on the box only."
        ),
    )
    g.add_argument("model", help="model file (.onnx, .nnet, .pt, .npz)")
    _box_args(g)
    g.add_argument("-o", "--output", metavar="OUT", help="write the reduced model (by extension)")
    g.add_argument("--lump", action="store_true",
                   help="then apply exact lumping (nnreduce) to the LEO result")
    g.add_argument("--no-milp", action="store_true", help="interval bounds only")
    g.add_argument("--milp-time-limit", type=seconds, default=10.0, metavar="S",
                   help="seconds per LP/MILP solve (default 10)")
    g.add_argument("--time-limit", type=seconds, default=600.0, metavar="S",
                   help="seconds for all solves (default 600)")
    g.add_argument("--confirm", choices=["auto", "z3", "none"], default="auto",
                   help="confirm LP/MILP decisions with exact z3 queries (auto: small networks)")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.set_defaults(func=_leo)


def _box_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-shape", metavar="C,H,W",
                   help="shape of one input, for PyTorch models whose file does not record "
                        "it and ONNX models with open input dimensions")
    grp = p.add_mutually_exclusive_group()
    grp.add_argument("--box", metavar="LO:HI,...",
                     help="input box, one LO:HI per input (one for all); numbers may be p/q")
    grp.add_argument("--box-file", metavar="F",
                     help="input box file: one 'LO HI' or 'LO:HI' per line, or a JSON list")


def _read_box(args: argparse.Namespace) -> Any:
    if args.box is not None:
        return args.box
    if args.box_file is None:
        return None
    try:
        with open(args.box_file, encoding="utf-8-sig") as fh:  # a BOM is not part of a number
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise _BoxFileError(f"{args.box_file}: not a text file ({exc.reason} at byte "
                            f"{exc.start}); write one 'LO HI' per line or a JSON list of "
                            "[lo, hi] pairs") from None
    if text.lstrip().startswith("["):
        try:
            return [tuple(p) for p in json.loads(text)]
        except (json.JSONDecodeError, TypeError) as exc:
            raise _BoxFileError(f"{args.box_file}: not a JSON list of [lo, hi] pairs ({exc})"
                                ) from None
    pairs = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace(":", " ").replace(",", " ").split()
        if len(parts) != 2:
            raise _BoxFileError(f"{args.box_file}, line {lineno}: expected 'LO HI', got {line!r}")
        pairs.append((parts[0], parts[1]))
    if not pairs:
        raise _BoxFileError(f"{args.box_file}: no intervals found")
    return pairs


def _load(path: str, args: argparse.Namespace) -> Any:
    from nnreduce import load_network

    from ._cmd_nn_reduce import _parse_shape

    return load_network(path, input_shape=_parse_shape(args.input_shape))


def _verify(args: argparse.Namespace) -> int:
    import proofs

    box = _read_box(args)
    if args.smtlib is not None:
        check_output(args.smtlib, "--smtlib")
    original, reduced = _load(args.original, args), _load(args.reduced, args)
    out: dict[str, Any] = {}
    if args.certificate is not None:
        res = proofs.check_certificate(original, reduced, args.certificate)
        out["certificate"] = res.to_json()
        if not res.valid:
            out.update(verdict="unknown", method="certificate", seconds=res.seconds,
                       reason="certificate rejected: " + res.message)
            _emit(args, out, f"certificate REJECTED: {res.message}")
            return 2
        if not args.smt:
            # the checker decides exactness itself, in exact arithmetic, in either mode
            # (a tolerance-mode reduction whose conditions hold exactly is exact)
            if not res.exact:
                out.update(verdict="unknown", method="certificate", seconds=res.seconds,
                           reason="the certificate is valid but the reduction is only "
                           "approximate (a lumping condition holds only within the "
                           "tolerance, or a reduced weight was rounded); use --smt")
                _emit(args, out, "unknown: " + out["reason"])
                return 2
            out.update(verdict="equivalent", method="certificate", seconds=res.seconds)
            _emit(args, out, f"equivalent (certificate): {res.message}")
            return 0
    started = time.perf_counter()
    try:
        v = proofs.check_equivalence(original, reduced, box=box, timeout=args.timeout,
                                     smtlib=args.smtlib, second_opinion=args.second_opinion)
    except SolverUnknownError as exc:
        out.update(verdict="unknown", method="z3",
                   seconds=round(time.perf_counter() - started, 6), reason=str(exc))
        _emit(args, out, f"unknown: {exc}")
        return 2
    out.update(v.to_json())
    opinion = f"; cvc5 answered {v.second_opinion} too" if v.second_opinion else ""
    if v.equivalent:
        _emit(args, out, f"equivalent ({v.method}, {v.seconds:.3f} s{opinion}): {v.statement}")
        return 0
    assert v.input is not None and v.outputs is not None
    text = (f"counterexample ({v.method}, {v.seconds:.3f} s{opinion})\n"
            f"  input:    {out['input']}\n"
            f"  original: {out['outputs']['original']}\n"
            f"  reduced:  {out['outputs']['reduced']}\n"
            f"  {v.statement}")
    _emit(args, out, text)
    return 1


def _emit(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(obj))
    else:
        print(text)


def _leo(args: argparse.Namespace) -> int:
    import proofs

    box = _read_box(args)
    if args.output is not None:  # before the solves, which can take minutes
        from nnreduce._io import _ext

        _ext(args.output)
        check_output(args.output, "-o")
    net = _load(args.model, args)
    res = proofs.leo_reduce(net, box, milp=not args.no_milp,
                            milp_time_limit=args.milp_time_limit,
                            time_limit=args.time_limit, confirm=args.confirm)
    out = res.to_json()
    result = res.network
    if args.lump:
        from nnreduce import reduce_network

        red = reduce_network(result)
        out["lumping"] = {"neurons_before": red.neurons_before,
                          "neurons_after": red.neurons_after}
        result = red.network
    if args.output is not None:
        from nnreduce import save_network

        save_network(result, args.output)
        out["output"] = args.output
    if args.json:
        print(json.dumps(out))
    else:
        print(f"LEO on the box: {res.neurons_before} -> {res.neurons_after} hidden neurons "
              f"({100 * res.removed_fraction:.1f}% removed; {out['stably_inactive']} stably "
              f"inactive, {out['stably_active']} stably active, {res.folded} folded, "
              f"{res.layers_removed} layers merged; {res.milp_calls} LP/MILP solves, "
              f"{res.seconds:.2f} s)")
        if "lumping" in out:
            print(f"then lumping: {out['lumping']['neurons_before']} -> "
                  f"{out['lumping']['neurons_after']} hidden neurons")
        print(res.guarantee)
    return 0

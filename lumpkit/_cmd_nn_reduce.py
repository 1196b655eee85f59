"""``lumpkit nn reduce``: argument parsing and printing only (the work is in nnreduce)."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from lumpcore import LumpkitError, LumpkitWarning

from ._args import check_output

__all__ = ["register"]


class _ArgumentError(LumpkitError, ValueError):
    pass


def register(nsub: Any) -> None:
    """Add ``reduce`` to the ``nn`` subcommands ``nsub``."""
    p: argparse.ArgumentParser = nsub.add_parser(
        "reduce",
        help="lossless, data-free reduction by proportional exact lumping, with a certificate",
        description=(
            "Merge hidden neurons (and convolution channels) whose scaled incoming weights are "
            "proportional with a factor the activation allows, fold constant neurons, and write "
            "the reduced model in the input's format plus a JSON certificate. Formats by "
            "extension: .onnx, .nnet, .pt (pickled nn.Sequential or TorchScript), .npz."
        ),
    )
    p.add_argument("model", help="the model file")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="reduced model (default: MODEL's name with .reduced before the extension)")
    p.add_argument("--certificate", metavar="CERT.json",
                   help="certificate path (default: next to OUT, OUT's stem + .certificate.json)")
    p.add_argument("--tolerance", type=float, default=0.0, metavar="T",
                   help="0 (default): exact; > 0: merge near-proportional neurons (grid T)")
    p.add_argument("--linear-dependence", action=argparse.BooleanOptionalAction,
                   default=None,
                   help="in linear (identity) hidden layers also drop neurons that are exact "
                        "linear combinations of others; default: where that is cheap (a "
                        "warning names a layer left out), --linear-dependence: on every "
                        "linear layer however long it takes, --no-linear-dependence: never")
    p.add_argument("--input-shape", metavar="C,H,W",
                   help="shape of one input, for PyTorch models whose file does not record "
                        "it and ONNX models with open input dimensions")
    p.add_argument("--dtype", choices=["auto", "float32", "float64"], default="auto",
                   help=".onnx/.pt weight type written (auto: exact; float32 for a float32 "
                        "model whose reduced weights are all float32 values, else float64; "
                        "float32: rounded, and the certificate then rejects the file); inputs "
                        "and outputs keep the input model's type")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_reduce)


def _parse_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(x) for x in text.replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise _ArgumentError(f"--input-shape {text!r}: write positive integers like 1,28,28"
                             ) from None
    if not shape or min(shape) < 1:
        raise _ArgumentError(f"--input-shape {text!r}: write positive integers like 1,28,28")
    return shape


def _reduce(args: argparse.Namespace) -> int:
    from nnreduce import load_network, reduce_network, save_certificate, save_network
    from nnreduce._io import is_torchscript, natural_dtype, stored_dtype

    model = Path(args.model)
    if not model.exists():  # before deriving the output's name from it
        raise FileNotFoundError(f"no such model file: {str(model)!r}")
    if model.is_dir():
        raise IsADirectoryError(f"{str(model)!r} is a directory, not a model file")
    out = Path(args.output) if args.output else model.with_name(
        f"{model.stem}.reduced{model.suffix}")
    if out.suffix.lower() != model.suffix.lower() and not (
            {out.suffix.lower(), model.suffix.lower()} <= {".pt", ".pth"}):
        raise _ArgumentError(
            f"output {str(out)!r} must have the input's extension {model.suffix!r} "
            "(the reduced model is written in the same format)"
        )
    if out.resolve() == model.resolve():
        raise _ArgumentError(f"output {str(out)!r} would overwrite the input; choose another -o")
    cert = Path(args.certificate) if args.certificate else out.with_name(
        f"{out.stem}.certificate.json")
    if cert.resolve() in (out.resolve(), model.resolve()):
        raise _ArgumentError(f"--certificate {str(cert)!r} would overwrite a model; "
                             "choose another path")
    check_output(out, "-o")  # before the reduction, which can take minutes
    check_output(cert, "--certificate")
    net = load_network(model, input_shape=_parse_shape(args.input_shape))
    red = reduce_network(net, tolerance=args.tolerance,
                         linear_dependence=args.linear_dependence)
    # the reduced model takes and gives the data type of the original (a drop-in
    # replacement), even where its weights need float64 to stay exact
    # (--dtype float32: float32 data, or the 16-bit data of a half-precision model)
    io_dtype = net.data_dtype or stored_dtype(net)
    if args.dtype == "float32" and io_dtype == "float64":
        io_dtype = "float32"
    save_network(red.network, out, torchscript=model.suffix.lower() in (".pt", ".pth")
                 and is_torchscript(model), dtype=args.dtype, io_dtype=io_dtype)
    if args.dtype == "float32" and out.suffix.lower() in (".onnx", ".pt", ".pth") \
            and natural_dtype(red.network) != "float32":
        warnings.warn(
            f"{out}: --dtype float32 rounded reduced weights that are not float32 values; the "
            "file is not the certified network, so 'lumpkit nn verify --certificate' rejects "
            "it (--dtype auto writes it exactly)", LumpkitWarning, stacklevel=1)
    try:
        save_certificate(red, cert)
    except BaseException:  # no reduced model without its certificate
        out.unlink(missing_ok=True)
        raise
    summary: dict[str, Any] = red.summary()
    summary.update({"model": str(model), "output": str(out), "certificate": str(cert)})
    if args.json:
        print(json.dumps(summary))
        return 0
    w = sys.stdout.write
    w(f"{'layer':>5}  {'kind':<6}  {'factors':<8}  {'before':>7}  {'after':>7}  removed\n")
    for lr in summary["layers"]:
        w(f"{lr['layer']:>5}  {lr['kind']:<6}  {lr['factors']:<8}  {lr['before']:>7}  "
          f"{lr['after']:>7}  {lr['removed']}"
          + ("" if not lr["placeholder"] else " (all removed: one placeholder kept)"
             if lr["unused"] else " (all constant: one placeholder kept)")
          + (f"; {lr['unused']} unused" if lr["unused"] else "")
          + (f"; {lr['combined']} combined" if lr["combined"] else "") + "\n")
    w(f"hidden neurons: {summary['neurons_before']} -> {summary['neurons_after']}\n")
    w(f"parameters:     {summary['params_before']} -> {summary['params_after']}\n")
    mode = "exact" if red.mode == "exact" else (
        f"tolerance {red.tolerance:g}, largest accepted deviation {red.max_weight_deviation:.3g}")
    w(f"mode: {mode}; {summary['seconds']:.3f} s"
      + ("; note: some reduced weights were rounded to float64" if red.rounded else "") + "\n")
    w(f"wrote {out}\nwrote {cert}\n")
    return 0

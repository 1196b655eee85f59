"""The NNet text format (sisl/NNet): dense ReLU networks with input/output normalisation."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from lumpcore import ModelFormatError, UnsupportedLayerError
from lumpcore._atomic import atomic_write_text

from ._network import Activation, Dense, Network, Normalization, as_float

__all__ = ["read_nnet", "write_nnet"]


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)",
                     re.IGNORECASE | re.ASCII)  # (ASCII: no full-width or other digits)
_DBL_MAX = 1.7976931348623157e308  # what write_nnet writes for "no clipping"


def _floats(line: str, path: str, lineno: int) -> list[float]:
    """The numbers of a line separated by commas and/or white space (a trailing comma is
    optional); anything else (``1_0``, ``0x10``, text) is refused with the token named."""
    parts = [p for p in line.replace(",", " ").split() if p]
    for k, part in enumerate(parts):
        if not _NUMBER.fullmatch(part):
            raise ModelFormatError(
                f"{path}:{lineno}: entry {k + 1} ({part!r}) is not a number; expected "
                f"comma-separated decimal numbers, got {line.strip()[:80]!r}")
    return [float(p) for p in parts]


def _finite(values: list[float], where: str) -> None:
    """Refuse a NaN or an infinity among weights, biases, means or ranges, naming the line
    and entry (the input minimums and maximums may be infinite: no clipping)."""
    for k, v in enumerate(values):
        if not math.isfinite(v):
            raise ModelFormatError(f"{where}: entry {k + 1} is {v!r}; NaN/inf values are not "
                                   "allowed there")


def _counts(values: list[float], what: str, path: str, lineno: int) -> list[int]:
    """Layer counts/sizes: whole numbers >= 1, else a clear error naming the entry."""
    out = []
    for k, v in enumerate(values):
        if not (math.isfinite(v) and v == int(v) and v >= 1):
            raise ModelFormatError(
                f"{path}:{lineno}: {what} entry {k + 1} is {v!r}; expected a whole number >= 1")
        out.append(int(v))
    return out


def read_nnet(path: str | os.PathLike[str]) -> Network:
    """Read a ``.nnet`` file: hidden layers ReLU, output linear, normalisation kept.

    The NNet normalisation (input clip to min/max, mean, range; output mean,
    range) becomes the network's :class:`Normalization`; the one
    :func:`write_nnet` writes for a network without any (bounds of +-DBL_MAX,
    means 0, ranges 1) is read as none, and bounds of +-DBL_MAX on every input
    as no clipping on that side.

    Comment lines (``//``, also indented), blank lines, a trailing comma or
    none, white space as separator, CR/CRLF line ends, a byte-order mark and any
    text on the unused flag line are accepted, as the NNet tools write them.

    Raises
    ------
    ModelFormatError
        Naming the file and line: a token that is not a decimal number, sizes
        that are not whole numbers >= 1 or that contradict the header, rows of
        the wrong length, an input minimum above its maximum, lines after the
        last bias, a file that ends early.
    """
    p = str(path)
    with open(p, "rb") as fh:
        data = fh.read()
    try:
        raw = data.decode("utf-8-sig").splitlines()  # a BOM (Windows editors) is not text
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ModelFormatError(
            f"{p}:{line}: byte {exc.start} (0x{data[exc.start]:02x}) is not text; "
            "an .nnet file is UTF-8/ASCII text"
        ) from None
    lines = [(k + 1, ln) for k, ln in enumerate(raw)
             if ln.strip() and not ln.lstrip().startswith("//")]
    pos = 0

    def nxt_text() -> tuple[int, str]:
        nonlocal pos
        if pos >= len(lines):
            last = lines[-1][0] if lines else 0
            raise ModelFormatError(f"{p}: file ends early (after line {last})")
        pos += 1
        return lines[pos - 1]

    def nxt() -> tuple[int, list[float]]:
        lineno, text = nxt_text()
        return lineno, _floats(text, p, lineno)

    ln_h, head = nxt()
    if len(head) < 3:
        raise ModelFormatError(f"{p}:{ln_h}: expected 'numLayers, inputSize, outputSize, "
                               "maxSize'")
    n_layers, n_in_h, n_out_h = _counts(head[:3], "header", p, ln_h)
    ln, sizes_f = nxt()
    sizes = _counts(sizes_f, "layer size", p, ln)
    if len(sizes) != n_layers + 1:
        raise ModelFormatError(
            f"{p}:{ln}: {len(sizes)} layer sizes for {n_layers} layers (need {n_layers + 1})"
        )
    if (sizes[0], sizes[-1]) != (n_in_h, n_out_h):
        raise ModelFormatError(
            f"{p}:{ln}: the layer sizes give {sizes[0]} inputs and {sizes[-1]} outputs, the "
            f"header (line {ln_h}) {n_in_h} and {n_out_h}; make them agree")
    nxt_text()  # the unused flag line: other tools write anything there ("0," or text)
    ln_lo, mins = nxt()
    _, maxs = nxt()
    ln_m, means = nxt()
    ln_r, ranges = nxt()
    n_in = sizes[0]
    if len(means) != n_in + 1 or len(ranges) != n_in + 1 or len(mins) != n_in or len(maxs) != n_in:
        raise ModelFormatError(
            f"{p}:{ln_m}-{ln_r}: normalisation lines must have {n_in} (min/max) and "
            f"{n_in + 1} (mean/range) entries"
        )
    _finite(means, f"{p}:{ln_m}: the input means and output mean")
    _finite(ranges, f"{p}:{ln_r}: the input ranges and output range")
    for i, (lo, hi) in enumerate(zip(mins, maxs, strict=True)):
        if lo > hi:  # NNet tools clip x < min to min first; lumpkit clips max(x, min) first
            raise ModelFormatError(
                f"{p}:{ln_lo}: input {i} has minimum {lo!r} above its maximum {hi!r}; the "
                "clipping box is empty: fix the input minimums and maximums")
    layers: list[Dense | Activation] = []
    for k in range(n_layers):
        rows = []
        for _ in range(sizes[k + 1]):
            ln, row = nxt()
            if len(row) != sizes[k]:
                raise ModelFormatError(
                    f"{p}:{ln}: layer {k} weight row has {len(row)} entries, expected {sizes[k]}"
                )
            _finite(row, f"{p}:{ln}: layer {k} weight row")
            rows.append(row)
        bias = []
        for _ in range(sizes[k + 1]):
            ln, b = nxt()
            if len(b) != 1:
                raise ModelFormatError(f"{p}:{ln}: expected one bias value, got {len(b)}")
            _finite(b, f"{p}:{ln}: layer {k} bias")
            bias.append(b[0])
        layers.append(Dense(np.array(rows, dtype=np.float64), np.array(bias)))
        if k < n_layers - 1:
            layers.append(Activation("relu"))
    if pos < len(lines):
        raise ModelFormatError(
            f"{p}:{lines[pos][0]}: {len(lines) - pos} more line(s) after the last bias of the "
            f"{n_layers} layers the header declares; the header or the layer sizes do not "
            "match the weights")
    no_min = all(v == -_DBL_MAX for v in mins)  # write_nnet's "no clipping"
    no_max = all(v == _DBL_MAX for v in maxs)
    nrm: Normalization | None = None
    if not (no_min and no_max and all(v == 0 for v in means) and all(v == 1 for v in ranges)):
        nrm = Normalization(
            input_mean=np.array(means[:n_in]), input_range=np.array(ranges[:n_in]),
            output_mean=np.array([means[n_in]]), output_range=np.array([ranges[n_in]]),
            input_min=None if no_min else np.array(mins),
            input_max=None if no_max else np.array(maxs),
        )
    return Network(tuple(layers), (n_in,), nrm)


def _fmt(x: float) -> str:
    return repr(float(x))


def write_nnet(net: Network, path: str | os.PathLike[str]) -> None:
    """Write ``net`` as ``.nnet`` (atomically).  Exact weights are rounded to float64.

    Raises
    ------
    UnsupportedLayerError
        Unless the network is Dense layers with ReLU between them and none after
        the last (the only form NNet can express).
    """
    netf = as_float(net)
    dense: list[Dense] = []
    for i, layer in enumerate(netf.layers):
        want_dense = len(dense) == 0 or (i > 0 and isinstance(netf.layers[i - 1], Activation))
        if isinstance(layer, Dense) and (want_dense or i == 0):
            dense.append(layer)
        elif isinstance(layer, Activation) and layer.kind == "relu" and i % 2 == 1:
            continue
        else:
            raise UnsupportedLayerError(
                f"layer {i} ({type(layer).__name__}"
                f"{'/' + layer.kind if isinstance(layer, Activation) else ''}): NNet holds only "
                "Dense layers with ReLU between them"
            )
    if len(netf.layers) != 2 * len(dense) - 1 or len(netf.input_shape) != 1:
        raise UnsupportedLayerError("NNet needs Dense, ReLU, Dense, ..., Dense on a vector input")
    sizes = [netf.input_shape[0]] + [d.weight.shape[0] for d in dense]
    n_in = sizes[0]
    nrm = netf.normalization
    def vals(a: np.ndarray | None, n: int, default: float) -> list[float]:
        if a is None:
            return [default] * n
        v = [float(x) for x in a]
        return v * n if len(v) == 1 else v
    if nrm is not None and (len({float(x) for x in nrm.output_mean}) > 1
                            or len({float(x) for x in nrm.output_range}) > 1):
        raise UnsupportedLayerError("NNet holds one output mean and range for all outputs; "
                                    "this network's differ between outputs: export to .onnx "
                                    "or .npz")
    mins = vals(nrm.input_min if nrm else None, n_in, -1.7976931348623157e308)
    maxs = vals(nrm.input_max if nrm else None, n_in, 1.7976931348623157e308)
    out_mean = float(nrm.output_mean[0]) if nrm else 0.0
    out_range = float(nrm.output_range[0]) if nrm else 1.0
    means = [*vals(nrm.input_mean if nrm else None, n_in, 0.0), out_mean]
    ranges = [*vals(nrm.input_range if nrm else None, n_in, 1.0), out_range]
    out = ["// Written by lumpkit (nnreduce)",
           f"{len(dense)},{n_in},{sizes[-1]},{max(sizes)},",
           ",".join(str(s) for s in sizes) + ",",
           "0,",
           ",".join(_fmt(x) for x in mins) + ",",
           ",".join(_fmt(x) for x in maxs) + ",",
           ",".join(_fmt(x) for x in means) + ",",
           ",".join(_fmt(x) for x in ranges) + ","]
    for d in dense:
        for row in d.weight:
            out.append(",".join(_fmt(x) for x in row) + ",")
        for b in d.bias:
            out.append(_fmt(b) + ",")
    atomic_write_text(Path(path), "\n".join(out) + "\n")

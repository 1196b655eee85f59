"""Independent checker of ``nnreduce`` certificates (docs/certificate-format.md).

Written from the format document alone: it imports nnreduce's network model,
evaluators and hash (the *inputs*), never its reduction code.  Everything is
exact.  Columns of the grouped weight tensor that belong to an unmerged
neuron with factor 1 are compared as stored numbers (float64 equality is
exact).  Merged columns and factors are computed in float64 where every
product and sum is proved exact (the factors scaled to integers below
``2**53``, each product's significand bits counted, each sum checked by
TwoSum), else in Python integers over a common denominator and power of two;
:class:`fractions.Fraction` values are made to report a violation (and for
rational networks and linear combinations).  Each weight is visited a
bounded number of times: linear time.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from lumpcore import CertificateError, rational_to_str, to_rational

from ._verdict import CheckResult

__all__ = ["check_certificate"]

_HOMOGENEOUS = {"relu", "leaky_relu", "prelu", "identity", "maxpool2d", "avgpool2d",
                "flatten", "permute"}
_KINKED = {"relu", "leaky_relu", "prelu", "maxpool2d"}
_LINEAR = {"identity", "avgpool2d", "flatten", "permute"}
_ONE = Fraction(1)
_ZERO = Fraction(0)
#: tolerance mode: a merged weight computed in float64 is within this much of the
#: exact value, relative to the sum of the absolute values of its terms, plus
#: _MERGE_ABS per term (operations that underflow)
_MERGE_REL = Fraction(1, 2**40)
_MERGE_ABS = Fraction(1, 2**1073)

#: an exact number of the certificate: "p" or "p/q" (section 1)
_RATIONAL = re.compile(r"-?(0|[1-9][0-9]*)(/[1-9][0-9]*)?")
#: longest number string read (Python's int() refuses more than 4300 digits anyway)
_MAX_NUMBER_CHARS = 4000


def _stores_rationals(net: Any) -> bool:
    """Whether the network stores any parameter as exact rationals (an ``object`` array):
    a weight, a bias, or any other array of a layer (a batch norm's, PReLU slopes)."""
    return any(isinstance(v, np.ndarray) and v.dtype == object
               for layer in net.layers for v in vars(layer).values())


class _Violation(Exception):
    def __init__(self, condition: str, location: dict[str, Any], values: dict[str, Any]) -> None:
        super().__init__(condition)
        self.condition = condition
        self.location = location
        self.values = {k: (rational_to_str(v) if isinstance(v, Fraction) else str(v))
                       for k, v in values.items()}


@dataclass
class _Part:
    """The partition of one linear layer's neurons (from the certificate)."""

    n: int
    blocks: list[list[int]]
    rho: list[list[Fraction]]
    removed: dict[int, Fraction]
    # blocks dropped as linear combinations: (members, factors, [(rep, a), ...])
    combined: list[tuple[list[int], list[Fraction], list[tuple[int, Fraction]]]]
    # every neuron removed: the reduced layer holds this one as a placeholder (version 3)
    placeholder: int | None = None
    # neurons nothing reads: zero weights to every read neuron of the next layer (version 4)
    unused: list[int] = field(default_factory=list)

    def kept(self) -> list[int]:
        """The neurons the reduced layer holds, in order."""
        if self.placeholder is not None:
            return [self.placeholder]
        return [blk[0] for blk in self.blocks]


def _fr(x: Any) -> Fraction:
    return x if isinstance(x, Fraction) else Fraction(float(x)) if isinstance(
        x, float | np.floating) else to_rational(x)


def _exact(a: np.ndarray) -> np.ndarray:
    if a.dtype == object:
        return a
    out = np.empty(a.shape, dtype=object)
    out.reshape(-1)[:] = [Fraction(x) for x in a.reshape(-1).tolist()]
    return out


def _round(e: Fraction) -> float | None:
    """``e`` rounded to the nearest float64, or None when that overflows (no finite
    stored float can equal it)."""
    try:
        return float(e)
    except OverflowError:
        return None


def _add_exact(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """``a + b`` in float64 when every sum is exact (Knuth's TwoSum error is zero)."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow: None below
        s = a + b
        bb = s - a
        err = (a - (s - bb)) + (b - bb)
    if not np.all(np.isfinite(s)) or np.any(err != 0):
        return None
    return s


#: integers that float64 holds exactly, and products of them with floats that it may
_INT53 = 2**53
#: prove merged columns in float64 (scaled to integers) and in Python integers where that
#: applies; False leaves everything but plain equal columns to Fractions (the tests' reference)
_FAST = True


def _odd_significand(x: np.ndarray) -> np.ndarray:
    """The odd part of each finite float's 53-bit significand (0 for 0), as int64."""
    with np.errstate(invalid="ignore"):
        m, _ = np.frexp(np.abs(x))
        sig = np.ldexp(m, 53).astype(np.int64)
    return _odd_int(sig)


def _odd_int(k: np.ndarray) -> np.ndarray:
    """``|k|`` without its factors of two (0 for 0), for int64 ``k`` below ``2**53``."""
    k = np.abs(k)
    low = k & -k
    return np.where(k != 0, k // np.where(low == 0, 1, low), 0)


def _int_products(x: np.ndarray, k: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """``x * k`` in float64 (``k`` integers below ``2**53`` in size, broadcast against
    ``x``) and, per entry, whether that product is exact.

    ``x = a * 2**e`` and ``k = c * 2**f`` with ``a``, ``c`` odd: the product
    ``a * c * 2**(e + f)`` is a float64 value exactly when ``a * c < 2**53``
    and it lies in the normal range (or is 0 because a factor is).
    """
    x = np.asarray(x, dtype=np.float64)
    ki = np.asarray(k, dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        y = x * ki.astype(np.float64)
    ox = _odd_significand(x)
    ok = _odd_int(ki)
    fits = ox <= (_INT53 - 1) // np.maximum(ok, 1)
    zero = (x == 0) | (ki == 0)
    with np.errstate(invalid="ignore"):
        normal = np.isfinite(y) & (np.abs(y) >= np.finfo(np.float64).tiny)
    return y, fits & (zero | normal)


def _float_ints(x: np.ndarray) -> tuple[np.ndarray, int]:
    """``(I, s)`` with ``x == I * 2**s`` exactly: ``I`` Python integers (an object array),
    ``s`` the smallest binary exponent of the non-zero entries (0 when there are none)."""
    x = np.asarray(x, dtype=np.float64)
    m, e = np.frexp(x)
    sig = np.ldexp(m, 53).astype(np.int64)  # exact: 53-bit significands
    e = e.astype(np.int64) - 53
    nz = sig != 0
    if not nz.any():
        return np.zeros(x.shape, dtype=np.int64).astype(object), 0
    low = int(e[nz].min())
    return sig.astype(object) << np.where(nz, e - low, 0).astype(object), low


def _ratio_ints(factors: list[Fraction]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numerators, denominators (int64) and whether both are below ``2**53``."""
    fine = np.array([abs(f.numerator) < _INT53 and f.denominator < _INT53 for f in factors],
                    dtype=bool)
    num = np.array([f.numerator if g else 1 for f, g in zip(factors, fine, strict=True)],
                   dtype=np.int64)
    den = np.array([f.denominator if g else 1 for f, g in zip(factors, fine, strict=True)],
                   dtype=np.int64)
    return num, den, fine


def _rows_ratio_equal(a: np.ndarray, factors: list[Fraction], b: np.ndarray) -> np.ndarray:
    """Per row ``m``: whether ``factors[m] * a[m] == b[m]`` is proved in float64, as
    ``p * a[m] == q * b[m]`` (``factors[m] = p / q``) with both products exact.

    False means "not proved here" (the caller then checks it with Fractions).
    """
    num, den, fine = _ratio_ints(factors)
    shape = (-1,) + (1,) * (a.ndim - 1)
    ya, ea = _int_products(a, num.reshape(shape))
    yb, eb = _int_products(b, den.reshape(shape))
    axes = tuple(range(1, a.ndim))
    return fine & np.all(ea & eb & (ya == yb), axis=axes)


def _load(certificate: Any) -> dict[str, Any]:
    if isinstance(certificate, dict):
        return certificate
    for name in ("to_dict", "to_json"):
        meth = getattr(certificate, name, None)
        if callable(meth):
            got = meth()
            return got if isinstance(got, dict) else json.loads(got)
    if isinstance(certificate, str) and certificate.lstrip().startswith("{"):
        text = certificate
    elif isinstance(certificate, str | os.PathLike):
        try:
            with open(certificate, encoding="utf-8") as fh:
                text = fh.read()
        except UnicodeDecodeError as exc:
            raise CertificateError(f"{os.fspath(certificate)}: certificate is not UTF-8 text "
                                   f"({exc.reason} at byte {exc.start})") from None
    else:
        raise CertificateError(
            f"cannot read a certificate from {type(certificate).__name__}; pass a dict, "
            "JSON text or a path")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CertificateError(f"certificate is not valid JSON: {exc}") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise CertificateError(f"certificate is not usable JSON: {exc}") from None
    except RecursionError:
        raise CertificateError("certificate is not usable JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise CertificateError("certificate must be a JSON object")
    return obj


def _num(x: Any, what: str) -> Fraction:
    """A number of the certificate: the string ``"p/q"`` or ``"p"`` of section 1 (``q > 1``,
    lowest terms); decimal and exponent forms are refused (``"1e999999999"`` would make
    Fraction build a billion-digit integer)."""
    if not isinstance(x, str):
        raise CertificateError(f"{what}: exact numbers are JSON strings 'p/q', got {x!r}")
    if len(x) > _MAX_NUMBER_CHARS or not _RATIONAL.fullmatch(x):
        raise CertificateError(
            f"{what}: {x[:40]!r}{'...' if len(x) > 40 else ''} is not a rational 'p/q' "
            f"(integers, q > 1, at most {_MAX_NUMBER_CHARS} characters)")
    q = Fraction(x)
    if rational_to_str(q) != x:
        raise CertificateError(f"{what}: {x!r} is not in lowest terms with q > 1; "
                               f"write {rational_to_str(q)!r}")
    return q


def _int(x: Any, what: str) -> int:
    if not isinstance(x, int) or isinstance(x, bool):
        raise CertificateError(f"{what}: expected an integer, got {x!r}")
    return x


def _parse_layer(entry: Any, k: int) -> tuple[dict[str, Any], _Part]:
    where = f"certificate layers[{k}]"
    if not isinstance(entry, dict):
        raise CertificateError(f"{where} must be an object")
    for key in ("layer", "reduced_layer", "factors", "neurons_before", "neurons_after",
                "blocks", "rho"):
        if key not in entry:
            raise CertificateError(f"{where}: missing field {key!r}")
    blocks_raw, rho_raw = entry["blocks"], entry["rho"]
    if not isinstance(blocks_raw, list) or not isinstance(rho_raw, list) \
            or len(blocks_raw) != len(rho_raw):
        raise CertificateError(f"{where}: 'blocks' and 'rho' must be lists of the same length")
    blocks: list[list[int]] = []
    rho: list[list[Fraction]] = []
    for K, (blk, rh) in enumerate(zip(blocks_raw, rho_raw, strict=True)):
        if not isinstance(blk, list) or not isinstance(rh, list) or len(blk) != len(rh) \
                or not blk:
            raise CertificateError(f"{where}: block {K} and its rho must be non-empty lists "
                                   "of equal length")
        blocks.append([_int(v, f"{where} block {K}") for v in blk])
        rho.append([_num(r, f"{where} rho of block {K}") for r in rh])
    removed: dict[int, Fraction] = {}
    removed_raw = entry.get("removed", [])  # (absent: none; anything but a list: refused)
    if not isinstance(removed_raw, list):
        raise CertificateError(f"{where}: 'removed' must be a list, got {removed_raw!r}")
    for item in removed_raw:
        if not isinstance(item, dict) or "neuron" not in item or "value" not in item:
            raise CertificateError(f"{where}: removed entries need 'neuron' and 'value'")
        j = _int(item["neuron"], f"{where} removed neuron")
        if j in removed:
            raise CertificateError(f"{where}: neuron {j} is removed twice")
        removed[j] = _num(item["value"], f"{where} removed value")
    combined: list[tuple[list[int], list[Fraction], list[tuple[int, Fraction]]]] = []
    combined_raw = entry.get("combined", [])  # (absent: none; anything but a list: refused)
    if not isinstance(combined_raw, list):
        raise CertificateError(f"{where}: 'combined' must be a list, got {combined_raw!r}")
    for j, item in enumerate(combined_raw):
        if not isinstance(item, dict) or not all(k in item for k in
                                                 ("block", "rho", "coefficients")):
            raise CertificateError(
                f"{where}: combined entry {j} needs 'block', 'rho' and 'coefficients'")
        blk, rh, co = item["block"], item["rho"], item["coefficients"]
        if not isinstance(blk, list) or not isinstance(rh, list) or len(blk) != len(rh) \
                or not blk or not isinstance(co, list):
            raise CertificateError(f"{where}: combined entry {j}: 'block' and 'rho' must be "
                                   "non-empty lists of equal length, 'coefficients' a list")
        coeffs: list[tuple[int, Fraction]] = []
        for c in co:
            if not isinstance(c, list) or len(c) != 2:
                raise CertificateError(
                    f"{where}: combined entry {j}: a coefficient is [representative, 'a']")
            coeffs.append((_int(c[0], f"{where} combined {j} representative"),
                           _num(c[1], f"{where} combined {j} coefficient")))
        combined.append(([_int(v, f"{where} combined {j}") for v in blk],
                         [_num(r, f"{where} combined {j} rho") for r in rh], coeffs))
    n = _int(entry["neurons_before"], f"{where} neurons_before")
    _int(entry["neurons_after"], f"{where} neurons_after")
    if n < 0:
        raise CertificateError(f"{where}: neurons_before must be >= 0, got {n}")
    for key in ("layer", "reduced_layer"):  # (0.0 == 0 in Python, not in the format)
        _int(entry[key], f"{where} {key}")
    placeholder = None
    if entry.get("placeholder") is not None:
        placeholder = _int(entry["placeholder"], f"{where} placeholder")
    unused_raw = entry.get("unused", [])  # (absent: none; anything but a list: refused)
    if not isinstance(unused_raw, list):
        raise CertificateError(f"{where}: 'unused' must be a list, got {unused_raw!r}")
    unused = [_int(v, f"{where} unused neuron") for v in unused_raw]
    return entry, _Part(n, blocks, rho, removed, combined, placeholder, unused)


def _op_kind(op: Any) -> str:
    from nnreduce import Activation
    if isinstance(op, Activation):
        return str(op.kind)
    return type(op).__name__.lower()


def _factors(ops: list[Any]) -> str:
    kinds = [_op_kind(op) for op in ops]
    if all(k in _HOMOGENEOUS for k in kinds) and any(k in _KINKED for k in kinds):
        return "positive"
    if all(k in _LINEAR for k in kinds):
        return "nonzero"
    return "one"


def _channel_map(net: Any, lin_pos: int, ops_end: int) -> np.ndarray:
    """Channel index of every input of the layer after ``lin_pos`` (section 2.1)."""
    from nnreduce import Flatten, Permute

    shape = net.shapes[lin_pos + 1]
    ch = np.broadcast_to(np.arange(shape[0]).reshape((-1,) + (1,) * (len(shape) - 1)),
                         shape)
    for pos in range(lin_pos + 1, ops_end):
        op = net.layers[pos]
        out_shape = net.shapes[pos + 1]
        if isinstance(op, Flatten):
            ch = np.asarray(ch).reshape(-1)
        elif isinstance(op, Permute):
            ch = np.transpose(ch, op.perm)
        elif tuple(out_shape) != tuple(np.shape(ch)):  # pooling: channel kept
            ch = np.broadcast_to(
                np.arange(out_shape[0]).reshape((-1,) + (1,) * (len(out_shape) - 1)), out_shape)
    return np.asarray(ch).reshape(-1)


def _grouped(net: Any, lin: list[int], i: int) -> np.ndarray:
    """``Wr_i`` of shape ``(n_i, n_{i-1}, P)`` (for ``i = 0``: the input features)."""
    from nnreduce import Conv2d

    layer = net.layers[lin[i]]
    W = layer.weight
    if isinstance(layer, Conv2d):
        O, C, kh, kw = W.shape
        return W.reshape(O, C, kh * kw)
    if i == 0:
        return W.reshape(W.shape[0], W.shape[1], 1)
    ch = _channel_map(net, lin[i - 1], lin[i])
    n_ch = int(ch.max()) + 1 if ch.size else 0
    order = np.argsort(ch, kind="stable")
    counts = np.bincount(ch, minlength=n_ch)
    if counts.size and (counts != counts[0]).any():
        raise CertificateError(f"layer {lin[i]}: channels own different numbers of inputs")
    P = int(counts[0]) if counts.size else 0
    return W[:, order.reshape(n_ch, P)]


#: exact values at 0 of the activations that are not rational functions
_AT_ZERO = {"tanh": _ZERO, "sigmoid": Fraction(1, 2), "gelu": _ZERO, "gelu_tanh": _ZERO,
            "elu": _ZERO, "selu": _ZERO, "celu": _ZERO, "silu": _ZERO, "mish": _ZERO,
            "softsign": _ZERO}


def _post_value(ops: list[Any], b: Fraction, channel: int) -> Fraction | None:
    """The post-ops applied to the constant ``b`` (channel ``channel``), exactly; None
    when that value is not a rational number this checker knows."""
    from nnreduce import Activation, AvgPool2d, BatchNorm, Flatten, MaxPool2d, Permute
    v = b
    for op in ops:
        if isinstance(op, AvgPool2d) and any(op.padding) and op.count_include_pad and v != 0:
            return None  # the padding's zeros enter the border windows: not constant there
        if isinstance(op, MaxPool2d | AvgPool2d | Flatten | Permute):
            continue
        if isinstance(op, Activation):
            if op.kind == "identity":
                continue
            if op.kind == "relu":
                v = v if v > 0 else _ZERO
                continue
            if op.kind == "leaky_relu":
                assert op.alpha is not None
                v = v if v > 0 else _fr(op.alpha) * v
                continue
            if op.kind == "prelu":
                assert op.slopes is not None
                s = op.slopes[channel if op.slopes.shape[0] > 1 else 0]
                v = v if v > 0 else _fr(s) * v
                continue
            if op.kind == "clip":
                assert op.bounds is not None
                lo, hi = (None if x is None else _fr(x) for x in op.bounds)
                v = max(v, lo) if lo is not None else v
                v = min(v, hi) if hi is not None else v
                continue
            if op.kind in ("hard_sigmoid", "hard_swish"):  # x clip(a x + b, 0, 1), rational
                assert op.alpha is not None and op.beta is not None
                hs = min(max(_fr(op.alpha) * v + _fr(op.beta), _ZERO), Fraction(1))
                v = hs if op.kind == "hard_sigmoid" else v * hs
                continue
            if v == 0 and op.kind in _AT_ZERO:
                v = _AT_ZERO[op.kind]
                continue
            if (op.kind in ("elu", "celu") and v > 0) or (
                    op.kind == "softplus" and op.threshold is not None and v > _fr(op.threshold)):
                continue  # the identity there
        if isinstance(op, BatchNorm):
            v = _fr(op.scale[channel]) * v + _fr(op.shift[channel])
            continue
        return None
    return v


def _param_arrays(op: Any) -> dict[str, np.ndarray]:
    """The parameter arrays of a non-linear layer (PReLU slopes, batch norm)."""
    from nnreduce import Activation, BatchNorm
    if isinstance(op, BatchNorm):
        return {"scale": op.scale, "shift": op.shift}
    if isinstance(op, Activation) and op.slopes is not None:
        return {"slopes": op.slopes}
    return {}


def _per_channel(op: Any) -> bool:
    """Whether ``op`` treats the channels (axis 0) differently or mixes positions."""
    from nnreduce import AvgPool2d, BatchNorm, MaxPool2d
    return isinstance(op, BatchNorm | MaxPool2d | AvgPool2d) or any(
        a.shape[0] > 1 for a in _param_arrays(op).values())


def _channel_axis_kept(net: Any, lin_pos: int, q: int) -> bool:
    """Whether axis 0 of the input of layer ``q`` is still the neuron (channel) axis of the
    linear layer at ``lin_pos``, position for position (section 2.1's channel map)."""
    shape = net.shapes[q]
    ch = _channel_map(net, lin_pos, q).reshape(shape)
    n = net.shapes[lin_pos + 1][0]
    return bool(shape[0] == n and np.all(
        ch == np.arange(n).reshape((-1,) + (1,) * (len(shape) - 1))))


def _constant_passes(ops: list[Any], nxt: Any) -> bool:
    from nnreduce import AvgPool2d, Conv2d
    if isinstance(nxt, Conv2d) and any(nxt.padding):
        return False
    return not any(isinstance(op, AvgPool2d) and any(op.padding) for op in ops)


class _Checker:
    def __init__(self, original: Any, reduced: Any, cert: dict[str, Any]) -> None:
        self.orig = original
        self.red = reduced
        self.cert = cert
        #: tolerance mode: some condition held only within max_weight_deviation
        self.deviated = False
        #: after :meth:`run`: the reduced network computes the original's function exactly
        #: (no deviation accepted, no stored weight or bias differs from its derived value)
        self.exact = False

    def run(self) -> str:
        from nnreduce import Activation, Conv2d, Dense, Network, network_sha256

        cert, orig, red = self.cert, self.orig, self.red
        if not isinstance(orig, Network) or not isinstance(red, Network):
            raise CertificateError("check_certificate needs two nnreduce.Network objects")
        version = cert.get("version")
        if cert.get("format") != "lumpkit-nn-certificate" or type(version) is not int \
                or version not in (1, 2, 3, 4, 5):
            raise CertificateError(
                "not a lumpkit-nn-certificate version 1 to 5 (fields 'format' and "
                "'version'), "
                f"got format {cert.get('format')!r}, version {version!r}")
        mode = cert.get("mode")
        if mode not in ("exact", "tolerance"):
            raise CertificateError(f"mode must be 'exact' or 'tolerance', got {mode!r}")
        if "max_weight_deviation" not in cert:
            raise CertificateError("certificate needs 'max_weight_deviation' (\"0\" in exact "
                                   "mode)")
        dev = _num(cert["max_weight_deviation"], "max_weight_deviation")
        if mode == "exact" and dev != 0:
            raise _Violation("exact mode needs max_weight_deviation 0", {}, {"deviation": dev})
        if not isinstance(cert.get("original"), dict) or not isinstance(cert.get("reduced"), dict):
            raise CertificateError("certificate needs 'original' and 'reduced' objects")
        if not isinstance(cert["reduced"].get("rounded"), bool):
            # the format makes the flag required (a reader may take "exact and not
            # rounded" as equality): it must be there and be checked
            raise CertificateError("certificate needs 'reduced.rounded', true or false, got "
                                   f"{cert['reduced'].get('rounded')!r}")
        h = network_sha256(orig)
        if cert["original"].get("sha256") != h:
            raise _Violation("original network hash", {"network": "original"},
                             {"certificate": cert["original"].get("sha256"), "computed": h})
        h = network_sha256(red)
        if cert["reduced"].get("sha256") != h:
            raise _Violation("reduced network hash", {"network": "reduced"},
                             {"certificate": cert["reduced"].get("sha256"), "computed": h})

        lin = [p for p, lyr in enumerate(orig.layers) if isinstance(lyr, Dense | Conv2d)]
        rlin = [p for p, lyr in enumerate(red.layers) if isinstance(lyr, Dense | Conv2d)]
        for key, net in (("original", orig), ("reduced", red)):
            counts = [int(lyr.weight.shape[0]) for lyr in net.layers
                      if isinstance(lyr, Dense | Conv2d)]
            if "neurons" not in cert[key]:
                continue  # optional; checked when given
            listed = cert[key]["neurons"]
            if not isinstance(listed, list) or any(type(x) is not int for x in listed):
                raise CertificateError(f"'{key}.neurons' must be a list of integers, got "
                                       f"{listed!r}")
            if listed != counts:
                raise _Violation("neurons per linear layer", {"network": key},
                                 {"certificate": listed, "computed": counts})
        if len(orig.layers) != len(red.layers) or [type(x) for x in orig.layers] != \
                [type(x) for x in red.layers]:
            raise _Violation("layer list", {"network": "reduced"},
                             {"original": repr(orig), "reduced": repr(red)})
        pairs: list[tuple[Any, Any]] = list(zip(orig.layers, red.layers, strict=True))
        for p, (a, b) in enumerate(pairs):
            if isinstance(a, Activation):
                if a.kind != b.kind or any(getattr(a, f) != getattr(b, f) for f in
                                           ("alpha", "bounds", "beta", "threshold")):
                    raise _Violation("unchanged activation", {"layer": p},
                                     {"original": a.kind, "reduced": b.kind})
            elif not isinstance(a, Dense | Conv2d):
                for attr in ("kernel", "stride", "padding", "perm", "count_include_pad"):
                    if getattr(a, attr, None) != getattr(b, attr, None):
                        raise _Violation("unchanged layer", {"layer": p, "attribute": attr},
                                         {"original": getattr(a, attr),
                                          "reduced": getattr(b, attr)})
            elif isinstance(a, Conv2d) and (a.stride != b.stride or a.padding != b.padding
                                            or a.weight.shape[2:] != b.weight.shape[2:]):
                raise _Violation("unchanged convolution geometry", {"layer": p},
                                 {"original": (a.weight.shape[2:], a.stride, a.padding),
                                  "reduced": (b.weight.shape[2:], b.stride, b.padding)})
        if tuple(orig.input_shape) != tuple(red.input_shape):
            raise _Violation("unchanged input shape", {"network": "reduced"},
                             {"original": tuple(orig.input_shape),
                              "reduced": tuple(red.input_shape)})
        if not _same_norm(orig.normalization, red.normalization):
            raise _Violation("unchanged normalisation", {"network": "reduced"}, {})
        entries = cert.get("layers")
        if not isinstance(entries, list):
            raise CertificateError("certificate needs a 'layers' list")
        k = max(len(lin) - 1, 0)  # (a network without linear layers: none)
        if len(entries) != k:
            raise _Violation("one entry per hidden linear layer", {},
                             {"entries": len(entries), "hidden layers": k})
        parts: list[_Part] = []
        for idx, entry in enumerate(entries):
            info, part = _parse_layer(entry, idx)
            if info["layer"] != lin[idx] or info["reduced_layer"] != rlin[idx]:
                raise _Violation("layer index", {"entry": idx},
                                 {"layer": info["layer"], "expected": lin[idx],
                                  "reduced_layer": info["reduced_layer"],
                                  "expected reduced": rlin[idx]})
            self._partition(info, part, idx, version)
            parts.append(part)

        for i, part in enumerate(parts):  # (before anything indexes a layer by them)
            linear: Any = orig.layers[lin[i]]  # (a Dense or Conv2d: lin lists those)
            width = linear.weight.shape[0]  # neurons (output channels)
            if part.n != width:
                raise _Violation("neurons_before", {"layer": lin[i]},
                                 {"certificate": part.n, "network": width})
        self._channel_params(lin, parts)

        rounded_any = False
        exact_red = _stores_rationals(red)
        if cert["reduced"].get("number_type") not in (None, "rational" if exact_red
                                                      else "float64"):
            raise _Violation("reduced number type", {},
                             {"certificate": cert["reduced"].get("number_type"),
                              "stored": "rational" if exact_red else "float64"})
        for i in range(len(lin)):  # (k + 1 but for a network without linear layers)
            prev = parts[i - 1] if i > 0 else None
            cur = parts[i] if i < k else None
            ops = list(orig.layers[lin[i] + 1: lin[i + 1] if i < k else len(orig.layers)])
            if cur is not None:
                factors = _factors(ops)
                if entries[i]["factors"] != factors:
                    raise _Violation("factor set", {"layer": lin[i]},
                                     {"certificate": entries[i]["factors"], "post-ops": factors})
                if factors == "one" and cur.removed and version < 2:
                    raise _Violation("no removal under factors 'one' (version 1)",
                                     {"layer": lin[i]}, {})
                if cur.placeholder is not None and version < 3:
                    raise _Violation("no placeholder before version 3", {"layer": lin[i]}, {})
                if cur.unused and version < 4:
                    raise _Violation("no unused neurons before version 4", {"layer": lin[i]},
                                     {})
                if cur.combined and (factors != "nonzero" or mode != "exact"):
                    raise _Violation("combined blocks only on linear layers in exact mode",
                                     {"layer": lin[i]}, {"factors": factors, "mode": mode})
            rounded_any |= self._layer(i, lin, rlin, prev, cur, ops, mode, dev)
        # every condition held with deviation 0 and every stored value equals its derived
        # value (rounded_any is recomputed from the stored values, before the flag rule below)
        exact = not self.deviated and not rounded_any
        if mode == "tolerance" and not exact_red and any(
                len(b) > 1 for p in parts for b in p.blocks):
            rounded_any = True  # merged in float64 arithmetic: flagged whether or not exact
        flag = cert["reduced"]["rounded"]
        if flag != rounded_any:
            raise _Violation("reduced.rounded flag", {}, {"certificate": flag,
                                                           "recomputed": rounded_any})
        self.exact = exact
        merged = sum(p.n - len(p.kept()) for p in parts)
        return (f"{mode} certificate: {len(parts)} hidden layers, {merged} neurons merged or "
                "removed; scaled lumping conditions, reduced weights and both hashes confirmed")

    def _partition(self, info: dict[str, Any], part: _Part, idx: int, version: int) -> None:
        seen: dict[int, str] = {}
        layer = info["layer"]
        for K, blk in enumerate(part.blocks):
            # the representative first, the other members increasing; up to version 4 the
            # representative is the smallest member
            if len(set(blk)) != len(blk) or blk[1:] != sorted(blk[1:]) or (
                    version < 5 and blk != sorted(blk)):
                raise _Violation("blocks sorted", {"layer": layer, "block": K}, {"block": blk})
            if K and blk[0] <= part.blocks[K - 1][0]:
                raise _Violation("blocks ordered by first element", {"layer": layer, "block": K},
                                 {"first": blk[0]})
            if part.rho[K][0] != 1:
                raise _Violation("representative factor 1", {"layer": layer, "block": K},
                                 {"rho": part.rho[K][0]})
            for v in blk:
                if v in seen or not 0 <= v < part.n:
                    raise _Violation("partition", {"layer": layer, "neuron": v},
                                     {"problem": "repeated or out of range"})
                seen[v] = "block"
        reps = {blk[0] for blk in part.blocks}
        for j, (blk, rh, co) in enumerate(part.combined):
            if blk != sorted(blk) or rh[0] != 1:
                raise _Violation("combined block sorted, first factor 1",
                                 {"layer": layer, "combined": j}, {"block": blk})
            for v in blk:
                if v in seen or not 0 <= v < part.n:
                    raise _Violation("partition", {"layer": layer, "neuron": v},
                                     {"problem": "combined neuron repeated or out of range"})
                seen[v] = "combined"
            for r, _a in co:
                if r not in reps:
                    raise _Violation("combined coefficient names a kept representative",
                                     {"layer": layer, "combined": j}, {"representative": r})
        for v in part.removed:
            if v in seen or not 0 <= v < part.n:
                raise _Violation("partition", {"layer": layer, "neuron": v},
                                 {"problem": "removed neuron repeated or out of range"})
            seen[v] = "removed"
        for v in part.unused:
            if v in seen or not 0 <= v < part.n:
                raise _Violation("partition", {"layer": layer, "neuron": v},
                                 {"problem": "unused neuron repeated or out of range"})
            seen[v] = "unused"
        if len(seen) != part.n:
            missing = next(v for v in range(part.n) if v not in seen)
            raise _Violation("partition", {"layer": layer, "neuron": missing},
                             {"problem": "in no block and not removed"})
        if part.placeholder is not None and (
                part.blocks or part.combined
                or (part.placeholder not in part.removed
                    and part.placeholder not in part.unused)):
            raise _Violation("placeholder only for a layer whose neurons are all removed",
                             {"layer": layer}, {"placeholder": part.placeholder})
        if info["neurons_after"] != len(part.kept()):
            raise _Violation("neurons_after", {"layer": layer},
                             {"certificate": info["neurons_after"], "kept": len(part.kept())})

    def _layer(self, i: int, lin: list[int], rlin: list[int], prev: _Part | None,
               cur: _Part | None, ops: list[Any], mode: str, dev: Fraction) -> bool:
        orig, red = self.orig, self.red
        layer = orig.layers[lin[i]]
        where = lin[i]
        Wr = _grouped(orig, lin, i)
        n_out = Wr.shape[0]
        if cur is not None and cur.n != n_out:
            raise _Violation("neurons_before", {"layer": where},
                             {"certificate": cur.n, "network": n_out})
        if prev is None:
            blocks = [[u] for u in range(Wr.shape[1])]
            rho = [[_ONE] for _ in range(Wr.shape[1])]
            removed: dict[int, Fraction] = {}
        else:
            blocks, rho, removed = prev.blocks, prev.rho, prev.removed
            if prev.n != Wr.shape[1]:
                raise _Violation("neurons of the previous layer", {"layer": where},
                                 {"certificate": prev.n, "network": Wr.shape[1]})
            if prev.unused:
                # 4.4 of the format: nothing reads an unused neuron: its weights to every
                # neuron of this layer that is itself read (not unused; all of the output
                # layer) are zero
                read = np.ones(n_out, dtype=bool)
                if cur is not None and cur.unused:
                    read[cur.unused] = False
                cols = Wr[read][:, prev.unused, :]
                nonzero = np.argwhere(np.asarray(cols != 0, dtype=bool)) if cols.size \
                    else np.zeros((0, 3), dtype=np.int64)
                if nonzero.size:
                    r, u, p = (int(x) for x in nonzero[0])
                    raise _Violation("unused neuron's outgoing weights are zero",
                                     {"layer": where, "neuron": int(np.flatnonzero(read)[r]),
                                      "unused neuron": prev.unused[u], "position": p},
                                     {"weight": _fr(cols[r, u, p])})
        # 4.1 step 3: a kept block K receives a * (merged column) of every combined block
        # whose coefficients name its representative
        extra: dict[int, list[tuple[list[int], list[Fraction], Fraction]]] = {}
        if prev is not None and prev.combined:
            index = {blk[0]: K for K, blk in enumerate(blocks)}
            for cb, cr, co in prev.combined:
                for r, a in co:
                    extra.setdefault(index[r], []).append((cb, cr, a))
        plain = [K for K, blk in enumerate(blocks)
                 if len(blk) == 1 and rho[K][0] == 1 and K not in extra]
        plain_cols = np.array([blocks[K][0] for K in plain], dtype=np.int64)
        merged = [K for K in range(len(blocks)) if K not in set(plain)]

        # exact b_eff for every row
        bias = _exact(layer.bias)
        b_eff = list(bias)
        if removed:
            for j, val in removed.items():
                if val:
                    col = _exact(Wr[:, j, :]).sum(axis=1)
                    b_eff = [b + val * c for b, c in zip(b_eff, col, strict=True)]

        def m_exact(rows: np.ndarray, K: int, absolute: bool = False) -> np.ndarray:
            """Exact M[rows, K, :] as an object array (len(rows), P); with
            ``absolute`` the sum of the absolute values of its terms instead."""
            terms = [(u, 1 / r) for u, r in zip(blocks[K], rho[K], strict=True)]
            terms += [(u, a / r) for cb, cr, a in extra.get(K, ())
                      for u, r in zip(cb, cr, strict=True)]
            acc: Any = None
            for u, f in terms:
                term = _exact(Wr[rows, u, :]) * f
                term = abs(term) if absolute else term
                acc = term if acc is None else acc + term
            return np.asarray(acc, dtype=object)

        def m_scaled(rows: np.ndarray, K: int) -> tuple[np.ndarray, int] | None:
            """``(A, L)`` with ``M[rows, K, :] == A / L`` exactly: ``L`` the least common
            multiple of the denominators of the block's ``1 / rho`` (below ``2**53``), ``A``
            in float64 when every term ``W * L / rho`` and every sum is exact (else None)."""
            if K in extra or Wr.dtype == object or not _FAST:
                return None  # combined columns added, or rational weights: Fractions
            inv = [1 / r for r in rho[K]]
            scale = math.lcm(*(f.denominator for f in inv))
            if scale >= _INT53:
                return None
            acc: np.ndarray | None = None
            for u, f in zip(blocks[K], inv, strict=True):
                k = (f * scale).numerator  # an integer: scale is a multiple of f's denominator
                if abs(k) >= _INT53:
                    return None
                term, exact = _int_products(Wr[rows, u, :], k)
                if not exact.all():
                    return None
                acc = term if acc is None else _add_exact(acc, term)
                if acc is None:
                    return None
            return (acc, scale) if acc is not None else None

        def m_ints(rows: np.ndarray, K: int, absolute: bool = False
                   ) -> tuple[np.ndarray, np.ndarray | None, int, int] | None:
            """``(A, B, s, D)`` with ``M[rows, K, :] == A * 2**s / D`` exactly (``A``
            Python integers, ``D`` the least common multiple of the denominators of the
            terms' factors) and, with ``absolute``, ``B`` the same for the sum of the
            absolute values of the terms: :func:`m_exact` without a Fraction per value."""
            if Wr.dtype == object or not _FAST:
                return None
            terms = [(u, 1 / r) for u, r in zip(blocks[K], rho[K], strict=True)]
            terms += [(u, a / r) for cb, cr, a in extra.get(K, ())
                      for u, r in zip(cb, cr, strict=True)]
            den = math.lcm(*(f.denominator for _, f in terms))
            parts = []
            for u, f in terms:
                ints, shift = _float_ints(Wr[rows, u, :])
                parts.append((ints, shift, (f * den).numerator))
            live = [shift for ints, shift, _ in parts if np.any(ints != 0)]
            low = min(live) if live else 0
            acc: Any = 0
            mag: Any = 0
            for ints, shift, c in parts:
                if shift > low:
                    ints = ints << (shift - low)
                acc = acc + ints * c
                if absolute:
                    mag = mag + np.abs(ints) * abs(c)
            shape = (len(rows), Wr.shape[2])
            a = np.asarray(acc, dtype=object).reshape(shape) if parts else \
                np.zeros(shape, dtype=np.int64).astype(object)
            b = np.asarray(mag, dtype=object).reshape(shape) if absolute else None
            return a, b, (low if live else 0), den

        if cur is not None:
            self._conditions(where, Wr, cur, plain, plain_cols, merged, m_exact, b_eff, ops,
                             mode, dev, lin, i, m_scaled, m_ints)
            rep_rows = np.array(cur.kept(), dtype=np.int64)
        else:
            rep_rows = np.arange(n_out, dtype=np.int64)
        # derived reduced weights (4.3)
        Wr_red = _grouped(red, rlin, i)
        if prev is not None and prev.placeholder is not None:
            # the previous layer's placeholder feeds nothing: its weights here are zero
            if Wr_red.shape[:2] != (len(rep_rows), 1) or Wr_red.shape[2] != Wr.shape[2]:
                raise _Violation("reduced layer shape", {"layer": where},
                                 {"reduced": Wr_red.shape,
                                  "expected": (len(rep_rows), 1, Wr.shape[2])})
            nonzero = np.argwhere(Wr_red != 0)
            if nonzero.size:
                r, _, p = (int(x) for x in nonzero[0])
                raise _Violation("placeholder's outgoing weight is zero",
                                 {"layer": where, "reduced neuron": r, "position": p},
                                 {"stored": _fr(Wr_red[r, 0, p])})
            Wr_red = Wr_red[:, :0, :]
        if not blocks and Wr_red.shape[:2] == (len(rep_rows), 0):
            Wr_red = Wr_red.reshape(len(rep_rows), 0, Wr.shape[2])  # no inputs: any P
        if Wr_red.shape != (len(rep_rows), len(blocks), Wr.shape[2]):
            raise _Violation("reduced layer shape", {"layer": where},
                             {"reduced": Wr_red.shape,
                              "expected": (len(rep_rows), len(blocks), Wr.shape[2])})
        exact_store = Wr_red.dtype == object
        rounded = False
        if plain:
            got = Wr_red[:, plain, :]
            want = Wr[rep_rows][:, plain_cols, :]
            bad = got != want
            if exact_store and Wr.dtype != object:
                bad = np.array([_fr(g) != _fr(w) for g, w in
                                zip(got.reshape(-1), want.reshape(-1), strict=True)],
                               dtype=bool).reshape(got.shape)
            if np.any(bad):
                r, c, p = (int(x) for x in np.argwhere(bad)[0])
                raise _Violation("reduced weight", {"layer": where, "reduced neuron": r,
                                                    "block": plain[c], "position": p},
                                 {"stored": _fr(got[r, c, p]), "derived": _fr(want[r, c, p])})
        for K in merged:
            got = Wr_red[:, K, :]
            scaled = None if exact_store else m_scaled(rep_rows, K)
            if scaled is not None:
                # M = A / L exactly; float64 division rounds it correctly, so a stored weight
                # equal to A / L is M rounded to float64 (which tolerance mode's bound
                # allows too); it is M itself when W * L gives back A exactly
                acc, scale = scaled
                if np.array_equal(got, acc / scale):
                    back, exact = _int_products(got, scale)
                    rounded |= not bool(np.all(exact & (back == acc)))
                    continue
            verdict = None if exact_store else self._stored_ints(
                got, m_ints(rep_rows, K, absolute=mode == "tolerance"), mode,
                len(blocks[K]))
            if verdict is not None:  # proved in integers (else: Fractions, which say where)
                rounded |= verdict
                continue
            exact_vals = m_exact(rep_rows, K)
            # tolerance mode: merged in float64 arithmetic, within 2^-40 of the terms' size
            # (and 2^-1073 per term for underflow)
            bound = (m_exact(rep_rows, K, absolute=True) * _MERGE_REL
                     + _MERGE_ABS * len(blocks[K])
                     if mode == "tolerance" and not exact_store else None)
            for r in range(exact_vals.shape[0]):
                for p in range(exact_vals.shape[1]):
                    e = exact_vals[r, p]
                    g = got[r, p]
                    if exact_store:
                        ok = _fr(g) == e
                    elif bound is not None:
                        ok = abs(_fr(g) - e) <= bound[r, p]
                        rounded |= ok and _fr(g) != e
                    else:
                        ok = float(g) == _round(e)
                        rounded |= ok and Fraction(float(g)) != e
                    if not ok:
                        raise _Violation("reduced weight",
                                         {"layer": where, "reduced neuron": r, "block": K,
                                          "position": p}, {"stored": _fr(g), "derived": e})
        rb = red.layers[rlin[i]].bias
        for r, row in enumerate(rep_rows):
            e = b_eff[row]
            g = rb[r]
            ok = (_fr(g) == e) if rb.dtype == object else float(g) == _round(e)
            if not ok:
                raise _Violation("reduced bias", {"layer": where, "reduced neuron": r},
                                 {"stored": _fr(g), "derived": e})
            if rb.dtype != object and Fraction(float(g)) != e:
                rounded = True
        return rounded

    def _ratio_rows(self, a: np.ndarray, b: np.ndarray, low: int, den: int,
                    factors: list[Fraction], mode: str, dev: Fraction) -> np.ndarray:
        """Per row ``m``: whether ``factors[m] * x[m] = y[m]`` for ``x = a 2^low / den``
        and ``y = b 2^low / den`` (``a``, ``b`` Python integers, rows first), exactly, or
        in tolerance mode within ``dev`` in every entry (noting an accepted deviation)."""
        nums = np.array([f.numerator for f in factors], dtype=object)
        dens = np.array([f.denominator for f in factors], dtype=object)
        shape = (-1,) + (1,) * (a.ndim - 1)
        axes = tuple(range(1, a.ndim))
        # factor * x - y = (p a - q b) 2^low / (q den)
        diff = nums.reshape(shape) * a - dens.reshape(shape) * b
        zero = np.all(diff == 0, axis=axes)
        if mode == "exact":
            return np.asarray(zero, dtype=bool)
        lhs = np.abs(diff) * dev.denominator
        rhs = dens.reshape(shape) * (dev.numerator * den)
        if low >= 0:
            lhs = lhs << low
        else:
            rhs = rhs << -low
        ok = np.asarray(np.all(lhs <= rhs, axis=axes), dtype=bool)
        if np.any(ok & ~zero):
            self.deviated = True  # accepted within max_weight_deviation: not exact
        return ok

    @staticmethod
    def _stored_ints(got: np.ndarray, ints: tuple[np.ndarray, Any, int, int] | None,
                     mode: str, n_terms: int) -> bool | None:
        """Whether float weights ``got`` are the stored values of ``M = A 2^s / D`` (from
        ``m_ints``): the correctly rounded ``M`` in exact mode, within ``2^-40 B 2^s / D``
        plus ``2^-1073`` per term of ``M`` in tolerance mode.  Returns whether any of them
        differs from ``M`` (rounded), or None when that is not so for every one of them
        (the caller then finds which, in Fractions)."""
        if ints is None:
            return None
        a, b, low, den = ints
        g, g_low = _float_ints(got)
        # in units of 2^t / D: g = g D 2^(g_low - t), M = A 2^(s - t)
        t = min(low, g_low)
        x = (g * den) << (g_low - t)
        y = a << (low - t)
        equal = x == y
        if mode == "tolerance":
            # |x - y| <= B 2^(s - t - 40) + n D 2^(-1073 - t), all times 2^u (u makes the
            # exponents non-negative)
            u = max(0, 40 - (low - t), 1073 + t)
            lhs = np.abs(x - y) << u
            rhs = (b << (low - t - 40 + u)) + n_terms * den * (1 << (u - 1073 - t))
            if not bool(np.all(lhs <= rhs)):
                return None
        else:
            try:
                want = (a << low) / den if low >= 0 else a / (den << -low)  # correctly rounded
            except OverflowError:
                return None
            if not np.array_equal(np.asarray(want, dtype=np.float64), got):
                return None
        return not bool(np.all(equal))

    def _channel_params(self, lin: list[int], parts: list[_Part]) -> None:
        """Per-channel parameters (PReLU slopes, batch norm) and pooling in the post-ops of
        a hidden layer act on its neurons (no flatten or permute moved the channel axis
        before them, nor before a convolution that follows); the reduced network holds
        the representatives' parameters there and every other parameter unchanged."""
        from nnreduce import Conv2d

        owner: dict[int, int] = {}  # layer position -> hidden linear layer it follows
        for i in range(len(parts)):
            for q in range(lin[i] + 1, lin[i + 1] + 1):
                op = self.orig.layers[q]
                if q < lin[i + 1] and not _per_channel(op):
                    continue
                if q == lin[i + 1] and not isinstance(op, Conv2d):
                    continue
                if not _channel_axis_kept(self.orig, lin[i], q):
                    raise _Violation("channel axis of a per-channel layer is the neuron axis",
                                     {"layer": q, "after linear layer": lin[i]},
                                     {"layer type": _op_kind(op)})
                if q < lin[i + 1]:
                    owner[q] = i
        for q, (a, b) in enumerate(zip(self.orig.layers, self.red.layers, strict=True)):
            hidden = owner.get(q)
            keep = None if hidden is None else np.array(parts[hidden].kept(), dtype=np.int64)
            for name, want_arr in _param_arrays(a).items():
                got_arr = _param_arrays(b).get(name)
                want = [_fr(x) for x in (want_arr if keep is None or want_arr.shape[0] == 1
                                         else want_arr[keep])]
                got = None if got_arr is None else [_fr(x) for x in got_arr]
                if want != got:
                    raise _Violation(
                        f"{_op_kind(a)} {name} " + ("unchanged" if keep is None or
                                                    want_arr.shape[0] == 1
                                                    else "restricted to representatives"),
                        {"layer": q}, {"stored": got, "expected": want})

    def _conditions(self, where: int, Wr: np.ndarray, cur: _Part, plain: list[int],
                    plain_cols: np.ndarray, merged: list[int], m_exact: Any,
                    b_eff: list[Fraction], ops: list[Any], mode: str, dev: Fraction,
                    lin: list[int], i: int, m_scaled: Any, m_ints: Any) -> None:
        factors = _factors(ops)
        per_channel = [(f"{_op_kind(op)} {name}", arr) for op in ops
                       for name, arr in _param_arrays(op).items() if arr.shape[0] > 1]
        members: list[tuple[Any, int, int, Fraction]] = []
        labelled: list[tuple[Any, list[int], list[Fraction]]] = [
            (K, blk, rh) for K, (blk, rh) in enumerate(zip(cur.blocks, cur.rho, strict=True))]
        labelled += [(f"combined {j}", cb, cr) for j, (cb, cr, _) in enumerate(cur.combined)]
        for K, blk, rh in labelled:
            r = blk[0]
            for v, rv in zip(blk, rh, strict=True):
                if (factors == "positive" and rv <= 0) or (factors == "nonzero" and rv == 0) \
                        or (factors == "one" and rv != 1):
                    raise _Violation(f"factor allowed by the post-ops ({factors})",
                                     {"layer": where, "block": K, "neuron": v}, {"rho": rv})
                for what, arr in per_channel:
                    if _fr(arr[v]) != _fr(arr[r]):
                        raise _Violation(f"equal {what} in a block",
                                         {"layer": where, "block": K, "neuron": v,
                                          "representative": r},
                                         {"v": _fr(arr[v]), "r": _fr(arr[r])})
                if v != r:
                    members.append((K, v, r, rv))

        def fail(K: Any, v: int, r: int, coord: Any, lhs: Fraction, rhs: Fraction) -> None:
            raise _Violation("scaled lumping condition rho(v)*c(v) = c(r)"
                             + (" within max_weight_deviation" if mode == "tolerance" else ""),
                             {"layer": where, "block": K, "neuron": v, "representative": r,
                              "coordinate": coord},
                             {"rho(v)*c(v)": lhs, "c(r)": rhs})

        def differ(a: Fraction, b: Fraction) -> bool:
            if a == b:
                return False
            if mode == "exact" or abs(a - b) > dev:
                return True
            self.deviated = True  # accepted within max_weight_deviation: not exact
            return False

        for K, v, r, rv in members:
            if differ(rv * b_eff[v], b_eff[r]):
                fail(K, v, r, "bias", rv * b_eff[v], b_eff[r])
        if members and plain:
            unit = [(K, v, r) for K, v, r, rv in members if rv == 1]
            other = [(K, v, r, rv) for K, v, r, rv in members if rv != 1]
            if unit and mode == "exact":
                vs = np.array([v for _, v, _ in unit], dtype=np.int64)
                rs = np.array([r for _, _, r in unit], dtype=np.int64)
                a = Wr[vs][:, plain_cols, :]
                b = Wr[rs][:, plain_cols, :]
                bad = a != b
                if np.any(bad):
                    m, c, p = (int(x) for x in np.argwhere(bad)[0])
                    K, v, r = unit[m]
                    fail(K, v, r, {"block": plain[c], "position": p}, _fr(a[m, c, p]),
                         _fr(b[m, c, p]))
            else:
                other += [(K, v, r, _ONE) for K, v, r in unit]
            if mode == "exact" and Wr.dtype != object and other:
                ov = np.array([v for _, v, _, _ in other], dtype=np.int64)
                orr = np.array([r for _, _, r, _ in other], dtype=np.int64)
                a, b = Wr[ov][:, plain_cols, :], Wr[orr][:, plain_cols, :]
                # p * a == q * b (rho(v) = p / q: 2, 1/4, 3, 5/7 ...) with exact products
                ok = (_rows_ratio_equal(a, [rv for *_, rv in other], b) if _FAST
                      else np.zeros(len(other), dtype=bool))
                other = [o for o, good in zip(other, ok, strict=True) if not good]
            if Wr.dtype != object and other and _FAST:  # the rest in integers
                ov = np.array([v for _, v, _, _ in other], dtype=np.int64)
                orr = np.array([r for _, _, r, _ in other], dtype=np.int64)
                ints, low = _float_ints(np.concatenate([Wr[ov][:, plain_cols, :],
                                                        Wr[orr][:, plain_cols, :]]))
                ok = self._ratio_rows(ints[:len(other)], ints[len(other):], low, 1,
                                      [rv for *_, rv in other], mode, dev)
                other = [o for o, good in zip(other, ok.tolist(), strict=True) if not good]
            for K, v, r, rv in other:
                a = _exact(Wr[v][plain_cols, :]) * rv
                b = _exact(Wr[r][plain_cols, :])
                for c in range(a.shape[0]):
                    for p in range(a.shape[1]):
                        if differ(a[c, p], b[c, p]):
                            fail(K, v, r, {"block": plain[c], "position": p}, a[c, p], b[c, p])
        if members and merged:
            vs = np.array([v for _, v, _, _ in members], dtype=np.int64)
            rs = np.array([r for _, _, r, _ in members], dtype=np.int64)
            for Kp in merged:
                todo = list(range(len(members)))
                if mode == "exact":
                    # M = A / L for both rows (the same L): rho(v) M(v) = M(r) iff
                    # rho(v) A(v) = A(r)
                    sv, sr = m_scaled(vs, Kp), m_scaled(rs, Kp)
                    if sv is not None and sr is not None:
                        ok = _rows_ratio_equal(sv[0], [m[3] for m in members], sr[0])
                        todo = [int(m) for m in np.flatnonzero(~ok)]
                if todo:
                    # exactly, in integers: rho(v) M(v) - M(r) = (p A(v) - q A(r)) 2^s / (q D)
                    sel = np.array(todo, dtype=np.int64)
                    both = m_ints(np.concatenate([vs[sel], rs[sel]]), Kp)
                    if both is not None:
                        a, _, low, den = both
                        ok = self._ratio_rows(a[:len(todo)], a[len(todo):], low, den,
                                              [members[m][3] for m in todo], mode, dev)
                        todo = [m for m, good in zip(todo, ok.tolist(), strict=True)
                                if not good]
                if not todo:
                    continue
                sel = np.array(todo, dtype=np.int64)
                mv, mr = m_exact(vs[sel], Kp), m_exact(rs[sel], Kp)
                for m_local, m in enumerate(todo):
                    K, v, r, rv = members[m]
                    for p in range(mv.shape[1]):
                        if differ(rv * mv[m_local, p], mr[m_local, p]):
                            fail(K, v, r, {"block": Kp, "position": p}, rv * mv[m_local, p],
                                 mr[m_local, p])
        # combined blocks: c(t) = sum a * c(rep), exactly (4.2)
        for j, (cb, _, co) in enumerate(cur.combined):
            t = cb[0]
            reps = np.array([r for r, _ in co], dtype=np.int64)
            coeffs = [a for _, a in co]
            parts: list[tuple[Any, Any, np.ndarray]] = [
                ("bias", None, np.array([[b_eff[t]], *[[b_eff[r]] for r in reps]],
                                        dtype=object))]
            if plain:
                rows = np.concatenate([[t], reps]).astype(np.int64)
                parts.append(("plain", None, _exact(Wr[rows][:, plain_cols, :]).reshape(
                    len(rows), -1)))
            for Kp in merged:
                rows = np.concatenate([[t], reps]).astype(np.int64)
                parts.append(("block", Kp, m_exact(rows, Kp).reshape(len(rows), -1)))
            for what, Kp, vals in parts:
                for q in range(vals.shape[1]):
                    lhs = vals[0, q]
                    rhs = sum((a * vals[1 + m, q] for m, a in enumerate(coeffs)), _ZERO)
                    if lhs != rhs:
                        raise _Violation(
                            "combined block c(t) = sum a * c(rep)",
                            {"layer": where, "combined": j, "neuron": t,
                             "coordinate": what if Kp is None else {"block": Kp, "index": q}},
                            {"c(t)": lhs, "sum a * c(rep)": rhs})
        # removed neurons: zero merged weights, value = post-ops(b_eff)
        if cur.removed:
            rows = np.array(sorted(cur.removed), dtype=np.int64)
            for j in rows:
                row = Wr[j][plain_cols, :] if plain else np.zeros((0, 1))
                if np.any(row != 0):
                    raise _Violation("removed neuron has zero incoming weights",
                                     {"layer": where, "neuron": int(j)},
                                     {"weight": _fr(row[row != 0][0])})
            for Kp in merged:
                mv = m_exact(rows, Kp)
                nz = [(m, p) for m in range(mv.shape[0]) for p in range(mv.shape[1])
                      if mv[m, p] != 0]
                if nz:
                    m, p = nz[0]
                    raise _Violation("removed neuron has zero incoming weights",
                                     {"layer": where, "neuron": int(rows[m]), "block": Kp},
                                     {"merged weight": mv[m, p]})
            nxt = self.orig.layers[lin[i + 1]]
            for j, val in cur.removed.items():
                want = _post_value(ops, b_eff[j], j)
                if want is None or want != val:
                    raise _Violation("removed neuron value", {"layer": where, "neuron": j},
                                     {"certificate": val,
                                      "post-ops(b_eff)": "not constant" if want is None
                                      else want})
                if val != 0 and not _constant_passes(ops, nxt):
                    raise _Violation("constant reaches the next layer unchanged",
                                     {"layer": where, "neuron": j}, {"value": val})


def _same_norm(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    for name in ("input_mean", "input_range", "output_mean", "output_range",
                 "input_min", "input_max"):
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None):
            return False
        if x is not None and list(x) != list(y):
            return False
    return True


def check_certificate(original: Any, reduced: Any, certificate: Any) -> CheckResult:
    """Check an ``nnreduce`` certificate independently, in exact arithmetic.

    Re-derives the reduced weights and biases from the partition,
    representatives and factors of the certificate (the *scaled* condition of
    THEORY section 3), confirms the lumping conditions for every hidden
    layer, the factor set allowed by its post-ops, the removed constant
    neurons, that input and output neurons are untouched, and both network
    hashes.  Does not import nnreduce's reduction code.

    Parameters
    ----------
    original, reduced : nnreduce.Network
    certificate : dict, JSON text, or path to the JSON file

    Returns
    -------
    CheckResult
        ``valid`` True when everything holds; otherwise the first violated
        condition with its location (layer, block, neurons) and the exact
        values that disagree.  ``exact`` True when moreover every condition
        holds with deviation 0 and no stored reduced weight or bias is
        rounded: the reduced network computes exactly the original's
        function (in exact and in tolerance mode).

    Raises
    ------
    lumpcore.CertificateError
        When the certificate is not a well-formed certificate (version 1 to 5).

    Examples
    --------
    >>> import numpy as np
    >>> from nnreduce import Activation, Dense, Network, network_sha256
    >>> net = Network((Dense([[1.0], [2.0]], [0.0, 0.0]), Activation("relu"),
    ...                Dense([[1.0, 1.0]], [0.0])), (1,))
    >>> red = Network((Dense([[1.0]], [0.0]), Activation("relu"), Dense([[3.0]], [0.0])), (1,))
    >>> cert = {"format": "lumpkit-nn-certificate", "version": 1, "mode": "exact",
    ...         "max_weight_deviation": "0",
    ...         "original": {"sha256": network_sha256(net)},
    ...         "reduced": {"sha256": network_sha256(red), "rounded": False},
    ...         "layers": [{"layer": 0, "reduced_layer": 0, "factors": "positive",
    ...                     "neurons_before": 2, "neurons_after": 1,
    ...                     "blocks": [[0, 1]], "rho": [["1", "1/2"]], "removed": []}]}
    >>> check_certificate(net, red, cert).valid
    True
    >>> check_certificate(net, red, cert).exact
    True
    >>> cert["layers"][0]["rho"] = [["1", "1/3"]]
    >>> check_certificate(net, red, cert).condition
    'scaled lumping condition rho(v)*c(v) = c(r)'
    """
    start = time.perf_counter()
    cert = _load(certificate)
    checker = _Checker(original, reduced, cert)
    try:
        checked = checker.run()
    except _Violation as v:
        return CheckResult(False, "nnreduce certificate", v.condition, v.location, v.values,
                           time.perf_counter() - start, exact=False)
    return CheckResult(True, checked, seconds=time.perf_counter() - start, exact=checker.exact)


"""Exact ReLU form of networks with pooling, for the SMT checker.

A network whose layers include pooling has no plain ``(W, b, activation)``
view.  This module rewrites it, exactly, into such layers with ReLU,
leaky-ReLU or no activation only:

* linear layers (dense, convolution, average pooling, batch norm, flatten,
  permute) are composed as sparse affine forms into the next emitted layer;
* ``max(x, y) = x + relu(y - x)`` and ``x = relu(x) - relu(-x)``: a
  max-pooling window becomes a tree of such ReLU layers, ``ceil(log2 k)``
  of them for a window of ``k`` elements;
* a clip ``min(max(h, lo), hi) = lo + relu(h - lo) - relu(h - hi)``, and a
  hard sigmoid ``min(max(a h + b, 0), 1) = relu(a h + b) - relu(a h + b - 1)``.

The result computes the same function on every input, in exact arithmetic
(the tests compare it with :func:`nnreduce.evaluate_exact`).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from lumpcore import UnsupportedLayerError

__all__ = ["relu_form_triples"]

Form = tuple[dict[int, Fraction], Fraction]  # sum_k c_k v_k + const over the last layer's values
_ONE = Fraction(1)
_ZERO = Fraction(0)


def _add(acc: dict[int, Fraction], form: dict[int, Fraction], c: Fraction) -> None:
    for k, v in form.items():
        s = acc.get(k, _ZERO) + c * v
        if s:
            acc[k] = s
        else:
            acc.pop(k, None)


def _combine(terms: list[tuple[Fraction, Form]], const: Fraction) -> Form:
    acc: dict[int, Fraction] = {}
    for c, (coef, b) in terms:
        if c:
            _add(acc, coef, c)
            const += c * b
    return acc, const


class _Builder:
    """The layers emitted so far and the current tensor as forms over the last of them."""

    def __init__(self, n_inputs: int) -> None:
        self.triples: list[tuple[list[list[Fraction]], list[Fraction], Any]] = []
        self.width = n_inputs  # values the forms refer to
        self.forms: list[Form] = [({i: _ONE}, _ZERO) for i in range(n_inputs)]

    def emit(self, rows: list[Form], act: Any) -> list[Form]:
        """Add the layer ``act(rows)``; return forms for its outputs (the new values)."""
        W = [[coef.get(k, _ZERO) for k in range(self.width)] for coef, _ in rows]
        self.triples.append((W, [b for _, b in rows], act))
        self.width = len(rows)
        return [({i: _ONE}, _ZERO) for i in range(len(rows))]


def relu_form_triples(net: Any) -> list[tuple[list[list[Fraction]], list[Fraction], Any]]:
    """``(W, b, activation)`` triples of ReLU / leaky-ReLU / identity layers computing
    ``net`` (an nnreduce network without its normalisation) exactly."""
    from nnreduce import (
        Activation,
        AvgPool2d,
        BatchNorm,
        Conv2d,
        Dense,
        Flatten,
        MaxPool2d,
        Permute,
        as_exact,
    )

    net = as_exact(net)  # every weight as a Fraction (floats at their binary value)
    b = _Builder(math.prod(net.input_shape))
    for pos, layer in enumerate(net.layers):
        shape = tuple(net.shapes[pos])
        out_shape = tuple(net.shapes[pos + 1])
        forms = b.forms
        if isinstance(layer, Dense):
            W, bias = layer.weight, layer.bias
            b.forms = [_combine([(W[j, i], forms[i]) for i in range(W.shape[1]) if W[j, i]],
                                bias[j]) for j in range(W.shape[0])]
        elif isinstance(layer, Conv2d | AvgPool2d | MaxPool2d):
            windows = _windows(layer, shape, out_shape)
            if isinstance(layer, Conv2d):
                W, bias = layer.weight, layer.bias
                b.forms = [_combine([(W[o][c][ky][kx], forms[e]) for c, ky, kx, e in win],
                                    bias[o]) for o, win in windows]
            elif isinstance(layer, AvgPool2d):
                k = layer.kernel[0] * layer.kernel[1]
                b.forms = [_combine([(Fraction(1, k if layer.count_include_pad else len(win)),
                                      forms[e]) for _, _, _, e in win], _ZERO)
                           for _, win in windows]
            else:
                b.forms = _max_tree(b, [[forms[e] for _, _, _, e in win] for _, win in windows])
        elif isinstance(layer, Flatten):
            pass  # C order on both sides
        elif isinstance(layer, Permute):
            idx = np.transpose(np.arange(len(forms)).reshape(shape), layer.perm).reshape(-1)
            b.forms = [forms[int(i)] for i in idx]
        elif isinstance(layer, BatchNorm):
            scale, shift = layer.scale, layer.shift
            per = math.prod(shape[1:])
            b.forms = [_combine([(scale[i // per], f)], shift[i // per])
                       for i, f in enumerate(forms)]
        elif isinstance(layer, Activation):
            b.forms = _activation(b, layer, pos)
        else:  # pragma: no cover - every layer type is handled above
            raise UnsupportedLayerError(f"layer {pos} ({type(layer).__name__})")
    b.emit(b.forms, "identity")
    return b.triples


def _windows(layer: Any, shape: tuple[int, ...], out_shape: tuple[int, ...]
             ) -> list[tuple[int, list[tuple[int, int, int, int]]]]:
    """Per output element (C order): its channel and ``(c, ky, kx, input index)`` terms.

    For a convolution every input channel ``c`` is in the window; for pooling
    only the output's own channel.  Padded positions are left out.
    """
    from nnreduce import Conv2d

    c_in, h, w = shape
    kh, kw = (layer.weight.shape[2:] if isinstance(layer, Conv2d) else layer.kernel)
    sh, sw = layer.stride
    top, left = layer.padding[0], layer.padding[1]
    out: list[tuple[int, list[tuple[int, int, int, int]]]] = []
    for o in range(out_shape[0]):
        chans = range(c_in) if isinstance(layer, Conv2d) else (o,)
        for oy in range(out_shape[1]):
            for ox in range(out_shape[2]):
                terms = []
                for c in chans:
                    for ky in range(kh):
                        y = oy * sh + ky - top
                        if not 0 <= y < h:
                            continue
                        for kx in range(kw):
                            x = ox * sw + kx - left
                            if 0 <= x < w:
                                terms.append((c, ky, kx, (c * h + y) * w + x))
                out.append((o, terms))
    return out


def _max_tree(b: _Builder, groups: list[list[Form]]) -> list[Form]:
    """The maximum of each group, through ReLU layers: a level pairs the members,
    ``max(x, y) = relu(x) - relu(-x) + relu(y - x)``, and passes an odd one on as
    ``relu(z) - relu(-z)``."""
    while any(len(g) > 1 for g in groups):
        rows: list[Form] = []
        shapes: list[list[tuple[int, bool]]] = []  # per group: (first row, paired) per value
        for g in groups:
            spec = []
            for i in range(0, len(g), 2):
                x = g[i]
                spec.append((len(rows), i + 1 < len(g)))
                rows += [x, _combine([(-_ONE, x)], _ZERO)]
                if i + 1 < len(g):
                    rows.append(_combine([(_ONE, g[i + 1]), (-_ONE, x)], _ZERO))
            shapes.append(spec)
        outs = b.emit(rows, "relu")
        groups = [[_combine([(_ONE, outs[r]), (-_ONE, outs[r + 1])]
                            + ([(_ONE, outs[r + 2])] if paired else []), _ZERO)
                   for r, paired in spec] for spec in shapes]
    return [g[0] for g in groups]


def _activation(b: _Builder, act: Any, pos: int) -> list[Form]:
    from ._mlp import activation_spec

    kind = act.kind
    if kind == "identity":
        return b.forms
    if kind in ("relu", "leaky_relu", "prelu"):
        return b.emit(b.forms, activation_spec(act, f"layer {pos}"))
    if kind == "clip":
        lo, hi = act.bounds
        forms = b.forms
        if lo is not None and hi is not None:  # lo + relu(h - lo) - relu(h - hi)
            outs = b.emit([_combine([(_ONE, f)], -lo) for f in forms]
                          + [_combine([(_ONE, f)], -hi) for f in forms], "relu")
            n = len(forms)
            return [_combine([(_ONE, outs[i]), (-_ONE, outs[n + i])], lo) for i in range(n)]
        if lo is not None:  # lo + relu(h - lo)
            outs = b.emit([_combine([(_ONE, f)], -lo) for f in forms], "relu")
            return [_combine([(_ONE, o)], lo) for o in outs]
        outs = b.emit([_combine([(-_ONE, f)], hi) for f in forms], "relu")  # hi - relu(hi - h)
        return [_combine([(-_ONE, o)], hi) for o in outs]
    if kind == "hard_sigmoid":  # clip(a h + b, 0, 1) = relu(a h + b) - relu(a h + b - 1)
        a, c = act.alpha, act.beta
        forms = b.forms
        outs = b.emit([_combine([(a, f)], c) for f in forms]
                      + [_combine([(a, f)], c - 1) for f in forms], "relu")
        n = len(forms)
        return [_combine([(_ONE, outs[i]), (-_ONE, outs[n + i])], _ZERO) for i in range(n)]
    raise UnsupportedLayerError(
        f"layer {pos}: activation {kind!r} is not supported by the exact checkers (they "
        "take piecewise-linear activations only); use one of relu, leaky_relu, prelu "
        "(one slope), identity, clip, hard_sigmoid")

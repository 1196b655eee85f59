"""Maximum proportional exact lumping of a network (THEORY section 3, scaled condition).

Every refinement is done by :func:`lumpcore.coarsest_lumping`: for each
linear layer we build one weighted graph whose sources are a bias node and
the (block, position) pairs of the previous layer, whose targets are the
layer's neurons, with the *scaled* sums ``sum_{u in S'} W(u, v) / rho(u)`` as
edge weights, and ask for the coarsest backward (proportional) lumping.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import math
import mmap
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from lumpcore import (
    LumpkitError,
    LumpkitWarning,
    UnsupportedLayerError,
    WeightedGraph,
    coarsest_lumping,
    rational_to_str,
    to_rational,
)
from lumpcore._atomic import atomic_write_text
from lumpcore._dense import (
    SIGNATURE_VERSION,
    Signatures,
    signature_coefficients,
    with_signatures,
)
from lumpcore._threads import threads_for  # lumpcore's thread policy for compiled passes

from ._hash import network_sha256
from ._kernels import (
    compact_rows,
    deviation_bound,
    merge_columns,
    merge_columns_integer,
    nonzero_columns,
    runs,
    take_rows,
    take_rows_divided,
)
from ._network import (
    Activation,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dense,
    Flatten,
    Layer,
    MaxPool2d,
    Network,
    Permute,
    _output_shape,
    is_exact_array,
    trusted_layer,
)

__all__ = ["LayerReduction", "Reduction", "reduce_network", "save_certificate"]

Factors = Literal["positive", "nonzero", "one"]


def _beyond_float64(what: str) -> _ReductionInputError:
    """The error for a reduction that needs a value float64 cannot hold (``what``)."""
    return _ReductionInputError(
        f"the reduction needs a value beyond float64's range: {what}; lumpkit does not "
        "reduce such networks: rescale their weights")


class _ReductionInputError(LumpkitError, ValueError):
    pass


@dataclass(frozen=True, eq=False)
class LayerReduction:
    """What happened to one hidden linear layer.

    Attributes
    ----------
    layer : int
        Index of the linear layer in the original network's ``layers``.
    reduced_layer : int
        Index of its image in the reduced network's ``layers``.
    kind : {'dense', 'conv2d'}
    post_ops : tuple of str
        Kinds of the layers between this linear layer and the next one.
    factors : {'positive', 'nonzero', 'one'}
        The factor set the post-ops allow (THEORY section 3).
    neurons_before, neurons_after : int
    blocks : tuple of tuple of int
        Kept neurons partitioned; the first element of a block is its
        representative, the others follow in increasing order, and the blocks
        are ordered by their representatives.  The representative is the
        smallest member, except in exact mode on a float network where
        another member makes the next layer's merged weights float sums (a
        neuron ``u`` represents a copy ``(3/2) u`` placed before it: relative
        to the copy, the merged weights would take ``2/3`` of ``u``'s outgoing
        weights, which no float holds).
    rho : tuple of tuple of Fraction
        Factor of every block member (representative: 1).
    removed : tuple of (int, Fraction)
        Constant neurons removed, with their constant output value (folded
        into the next layer's bias).
    combined : tuple of (block, rho, coefficients)
        Linear layers with ``linear_dependence=True`` only: blocks removed
        because their representative's scaled incoming vector is the linear
        combination ``sum a * c(rep_k)`` of kept representatives
        (``coefficients`` = ``((rep_k, a), ...)``); their outgoing weights
        were added to those of ``rep_k`` times ``a``.
    placeholder : int or None
        Set when every neuron of the layer is constant and removed (the
        network's output is then constant): the reduced layer still holds one
        neuron, a copy of neuron ``placeholder`` (which is also in
        ``removed``), because no file format holds a layer of width 0. Its
        outgoing weights are zero, so it changes nothing; ``blocks`` is empty
        and ``neurons_after`` is 1.
    unused : tuple of int
        Neurons removed because nothing reads them: every weight from them to
        a neuron of the next linear layer that is itself read (every neuron
        of the output layer is) is zero, so their values change no output
        (the neurons a structured pruning zeroed the outgoing weights of).
    """

    layer: int
    reduced_layer: int
    kind: str
    post_ops: tuple[str, ...]
    factors: Factors
    neurons_before: int
    neurons_after: int
    blocks: tuple[tuple[int, ...], ...]
    rho: tuple[tuple[Fraction, ...], ...]
    removed: tuple[tuple[int, Fraction], ...]
    combined: tuple[
        tuple[tuple[int, ...], tuple[Fraction, ...], tuple[tuple[int, Fraction], ...]], ...
    ] = ()
    placeholder: int | None = None
    unused: tuple[int, ...] = ()

    @property
    def representatives(self) -> tuple[int, ...]:
        """The representative (first member) of every block."""
        return tuple(b[0] for b in self.blocks)

    def block_of(self) -> dict[int, int]:
        """Map kept neuron -> index of its block (= its neuron in the reduced layer)."""
        return {v: k for k, b in enumerate(self.blocks) for v in b}


@dataclass(frozen=True, eq=False)
class Reduction:
    """The result of :func:`reduce_network`.

    Attributes
    ----------
    network : Network
        The reduced network: exact rationals if the original had any, else
        floats (float32 for a float32 layer whose weights were not merged,
        float64 for merged sums).
    original : Network
    layers : tuple of LayerReduction
        One entry per hidden linear layer.
    mode : {'exact', 'tolerance'}
    tolerance : float
    max_weight_deviation : float
        An upper bound of the largest ``|rho(v) c_j(v) - c_j(rep)|`` accepted,
        over every block member ``v`` and coordinate ``j`` of the scaled
        incoming vector (bias included); 0 in exact mode.
    rounded : bool
        Whether a reduced weight had to be rounded to float64 (the reduced
        network then equals the exact Def. 7 network only up to that rounding).
    seconds : float
        Wall-clock time of the reduction (excluding the certificate hashes).
    certificate : dict or None
        The JSON certificate (docs/certificate-format.md), ``None`` when
        ``certify=False``.
    """

    network: Network
    original: Network
    layers: tuple[LayerReduction, ...]
    mode: Literal["exact", "tolerance"]
    tolerance: float
    max_weight_deviation: float
    rounded: bool
    seconds: float
    certificate: dict[str, Any] | None = field(default=None)

    @property
    def neurons_before(self) -> int:
        """Hidden neurons before (sum over hidden linear layers)."""
        return sum(lr.neurons_before for lr in self.layers)

    @property
    def neurons_after(self) -> int:
        """Hidden neurons after."""
        return sum(lr.neurons_after for lr in self.layers)

    @property
    def params_before(self) -> int:
        """Parameters of the original network."""
        return self.original.num_params

    @property
    def params_after(self) -> int:
        """Parameters of the reduced network."""
        return self.network.num_params

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``lumpkit nn reduce --json`` prints)."""
        return {
            "neurons_before": self.neurons_before,
            "neurons_after": self.neurons_after,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "layers": [
                {"layer": lr.layer, "kind": lr.kind, "factors": lr.factors,
                 "before": lr.neurons_before, "after": lr.neurons_after,
                 "removed": len(lr.removed), "unused": len(lr.unused),
                 "placeholder": lr.placeholder is not None,
                 "combined": sum(len(cb) for cb, _, _ in lr.combined)}
                for lr in self.layers
            ],
            "mode": self.mode,
            "tolerance": self.tolerance,
            "max_weight_deviation": self.max_weight_deviation,
            "rounded": self.rounded,
            "seconds": self.seconds,
        }


# ------------------------------------------------------------------ helpers
_HOM = ("relu", "leaky_relu", "prelu", "maxpool2d")
_LIN = ("identity", "avgpool2d", "flatten", "permute")


def _op_kind(layer: Layer) -> str:
    if isinstance(layer, Activation):
        return layer.kind
    return {MaxPool2d: "maxpool2d", AvgPool2d: "avgpool2d", Flatten: "flatten",
            Permute: "permute", BatchNorm: "batchnorm"}[type(layer)]


def _factors(ops: list[Layer]) -> Factors:
    kinds = [_op_kind(op) for op in ops]
    if any(k not in _HOM and k not in _LIN for k in kinds):
        return "one"
    if any(k in _HOM for k in kinds):
        return "positive"
    return "nonzero"


def _channel_map(ops: list[Layer], shape: tuple[int, ...]) -> np.ndarray:
    """Channel index of every element after ``ops``, for an output of ``shape``."""
    ch = np.broadcast_to(
        np.arange(shape[0]).reshape((-1,) + (1,) * (len(shape) - 1)), shape
    ).copy()
    cur = shape
    for i, op in enumerate(ops):
        if isinstance(op, MaxPool2d | AvgPool2d):
            cur = _output_shape(op, cur, i)
            ch = np.broadcast_to(ch[:, :1, :1], cur).copy()
        elif isinstance(op, Flatten):
            ch = ch.reshape(-1)
            cur = ch.shape
        elif isinstance(op, Permute):
            ch = np.transpose(ch, op.perm)
            cur = ch.shape
    return ch


def _grouping(ch: np.ndarray, n_channels: int, where: str) -> np.ndarray:
    """``cols[c, p]`` = the p-th flat input index holding channel ``c``."""
    flat = ch.reshape(-1)
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=n_channels)
    if n_channels and not np.all(counts == counts[0]):
        raise UnsupportedLayerError(f"{where}: channels feed unequal numbers of inputs")
    p = int(counts[0]) if n_channels else 0
    return order.reshape(n_channels, p)


def _exact_obj(a: np.ndarray) -> np.ndarray:
    if is_exact_array(a):
        return a
    out = np.empty(a.shape, dtype=object)
    out.reshape(-1)[:] = [Fraction(x) for x in a.reshape(-1).tolist()]
    return out


def _frac(x: Fraction | float) -> Fraction:
    return x if type(x) is Fraction else Fraction(x)


def _pow2(q: Fraction) -> bool:
    n, d = abs(q.numerator), q.denominator
    return q > 0 and (n & (n - 1)) == 0 and (d & (d - 1)) == 0


_NORMAL_LO, _NORMAL_HI = Fraction(2) ** -1022, Fraction(2) ** 1023


def _normal_float(q: Fraction) -> bool:
    """Whether ``|q|`` lies in float64's normal range (its float neither overflows nor
    underflows)."""
    return _NORMAL_LO <= abs(q) < _NORMAL_HI


def _dyadic(q: Fraction) -> bool:
    """Whether ``q``'s denominator is a power of two (``q`` an integer times one)."""
    d = q.denominator
    return d & (d - 1) == 0


def _merge(wr: np.ndarray, blocks: Sequence[Sequence[int]], rho: Any,
           exact: bool) -> np.ndarray:
    """Merged tensor ``M[:, K, :] = sum_{u in blocks[K]} Wr[:, u, :] / rho(u)``.

    Exact mode: the result is float64 only when every entry is exactly the
    rational value (checked), else an object array of Fractions.
    """
    n_out, _, p = wr.shape
    if all(len(b) == 1 for b in blocks) and all(rho[b[0]] == 1 for b in blocks):
        idx = [b[0] for b in blocks]
        if idx == list(range(wr.shape[1])):
            return wr
        return wr[:, idx, :]
    if is_exact_array(wr):
        out = np.empty((n_out, len(blocks), p), dtype=object)
        for k, b in enumerate(blocks):
            acc = wr[:, b[0], :] * (1 / Fraction(rho[b[0]]))
            for u in b[1:]:
                acc = acc + wr[:, u, :] * (1 / Fraction(rho[u]))
            out[:, k, :] = acc
        return out
    # float weights: the compiled pass of _merged_columns (exactness checked in exact mode)
    n_ch = wr.shape[1]
    pos = np.arange(n_ch * p)
    chans = _Channels.of(n_ch, blocks, [_frac(r) for r in rho])
    # exact mode with a factor that is no power of two: 1 / rho is no float, and the compiled
    # pass would build columns times integers (for _rebuild_fast to divide back): merge
    # exactly instead
    merged = None if exact and not chans.pow2 else _merged_columns(
        wr.reshape(n_out, n_ch * p), pos // p, pos % p, p, np.zeros(n_out), chans, exact, 0.0,
        None, _Workspace())
    if merged is None:
        exact_sums = _merge(_exact_obj(wr), blocks, [Fraction(x) for x in rho], True)
        if not exact and any(abs(x) >= _FLOAT_MAX_EXCL for x in exact_sums.reshape(-1)):
            raise _beyond_float64("a merged weight of 2^1024 or more")
        # tolerance mode: a float sum overflowed in the order of its additions, but the exact
        # sums fit float64 (the reduced weights are these, rounded)
        return exact_sums
    return merged.mb[:, 1:].reshape(n_out, len(blocks), p)


#: exact values at 0 of the activations that are not rational functions (tanh(0) = 0, ...);
#: softplus(0) = log 2 is not rational
_AT_ZERO = {"tanh": Fraction(0), "sigmoid": Fraction(1, 2), "gelu": Fraction(0),
            "gelu_tanh": Fraction(0), "elu": Fraction(0), "selu": Fraction(0),
            "celu": Fraction(0), "silu": Fraction(0), "mish": Fraction(0),
            "softsign": Fraction(0)}


def _post_value(ops: list[Layer], b: Fraction, channel: int) -> Fraction | None:
    """Constant output of a neuron with constant pre-activation ``b``, or None if unknown.

    Known exactly: the piecewise-linear activations, clips, hard sigmoid and
    hard swish, and batch norm at any rational ``b``; the smooth activations
    but softplus at ``b = 0``; ELU and CELU at ``b > 0``, a softplus with a
    threshold above it (the identity there).
    """
    v = b
    for op in ops:
        if isinstance(op, Activation):
            if op.kind == "relu":
                v = v if v > 0 else Fraction(0)
            elif op.kind == "leaky_relu":
                assert op.alpha is not None
                v = v if v > 0 else op.alpha * v
            elif op.kind == "prelu":
                assert op.slopes is not None
                s = op.slopes[channel] if op.slopes.shape[0] > 1 else op.slopes[0]
                v = v if v > 0 else to_rational(s) * v
            elif op.kind == "identity":
                pass
            elif op.kind == "clip":
                assert op.bounds is not None
                lo, hi = op.bounds
                v = v if lo is None or v >= lo else lo
                v = v if hi is None or v <= hi else hi
            elif op.kind in ("hard_sigmoid", "hard_swish"):
                assert op.alpha is not None and op.beta is not None
                hs = min(max(op.alpha * v + op.beta, Fraction(0)), Fraction(1))
                v = hs if op.kind == "hard_sigmoid" else v * hs
            elif v == 0 and op.kind in _AT_ZERO:
                v = _AT_ZERO[op.kind]
            elif (op.kind in ("elu", "celu") and v > 0) or (
                    op.kind == "softplus" and op.threshold is not None and v > op.threshold):
                pass  # the identity there
            else:
                return None  # not a rational constant we know exactly
        elif isinstance(op, BatchNorm):
            v = to_rational(op.scale[channel]) * v + to_rational(op.shift[channel])
        elif isinstance(op, AvgPool2d) and any(op.padding) and op.count_include_pad:
            if v != 0:
                return None
    return v


def _next_column_sum(ops: list[Layer], nxt: Layer, shape: tuple[int, ...], channel: int
                     ) -> np.ndarray:
    """Per output of the next linear layer, the exact sum of its weights on ``channel``
    (what a constant 1 on that channel adds to its pre-activation; no padding)."""
    if isinstance(nxt, Conv2d):
        w = nxt.weight[:, channel]
    else:
        assert isinstance(nxt, Dense)
        cols = _grouping(_channel_map(ops, shape), shape[0], "")[channel]
        w = nxt.weight[:, cols]
    return _exact_obj(np.asarray(w).reshape(w.shape[0], -1)).sum(axis=1)


def _folded_bias(bias: np.ndarray, constants: list[tuple[int, Fraction]],
                 sums: dict[int, np.ndarray]) -> np.ndarray:
    """The next layer's exact bias with every constant folded in (``sums`` as for
    :func:`_exact_folds`)."""
    total = bias
    for v, val in constants:
        if val != 0:
            total = total + val * sums[v]
    return total


def _exact_folds(constants: list[tuple[int, Fraction]], bias: np.ndarray,
                 sums: dict[int, np.ndarray]) -> list[tuple[int, Fraction]]:
    """The constants whose folds keep the float next bias exact (the others stay).

    Exact mode on a float network: the next layer's bias after the folds must
    still be float64 values (``sums[v]``: per next neuron, the sum of its
    weights on constant ``v``).  All folds together are tried first, then single
    folds in sweeps until none fits any more (a fold that rounds alone may fit
    after another, so one pass in neuron order is not enough).
    """
    if _float64_values(_folded_bias(bias, constants, sums)):
        return constants
    done = {v for v, val in constants if val == 0}
    cur, progress = bias, True
    while progress:
        progress = False
        for v, val in constants:
            if v not in done:
                trial = cur + val * sums[v]
                if _float64_values(trial):
                    cur, progress = trial, True
                    done.add(v)
    return [(v, val) for v, val in constants if v in done]


def _channel_axis_kept(ops: list[Layer], shape: tuple[int, ...]) -> bool:
    """Whether the output of ``ops`` on a ``(C, H, W)`` tensor still has the channels on
    axis 0 (what a convolution after them needs: its input channels are the neurons)."""
    ch = _channel_map(ops, shape)
    return ch.ndim == 3 and ch.shape[0] == shape[0] and bool(
        np.all(ch == np.arange(shape[0]).reshape(-1, 1, 1)))


def _unused_neurons(net: Network, lin: list[int]) -> list[np.ndarray]:
    """Per hidden linear layer (position in ``lin``), which neurons nothing reads: every
    weight from them to a read neuron of the next linear layer is zero (every neuron of
    the output layer is read).  Found from the output backwards, so that a neuron read
    only by unread ones is unread too."""
    layers = net.layers
    out: list[np.ndarray] = [np.zeros(0, dtype=bool)] * max(len(lin) - 1, 0)
    read: np.ndarray | None = None  # read neurons of the next linear layer (None: all)
    for li in range(len(lin) - 2, -1, -1):
        idx, nidx = lin[li], lin[li + 1]
        layer, nxt = layers[idx], layers[nidx]
        assert isinstance(layer, Dense | Conv2d) and isinstance(nxt, Dense | Conv2d)
        n = layer.weight.shape[0]
        rows = np.ones(nxt.weight.shape[0], dtype=bool) if read is None else read
        w = nxt.weight.reshape(nxt.weight.shape[0], -1)
        if is_exact_array(w):
            col_read = np.asarray(w[rows] != 0, dtype=bool).any(axis=0)
        else:
            col_read = nonzero_columns(np.ascontiguousarray(w), rows)
        is_read: np.ndarray
        if isinstance(nxt, Conv2d):
            if not _channel_axis_kept(list(layers[idx + 1: nidx]), net.shapes[idx + 1]):
                is_read = np.ones(n, dtype=bool)  # (the main loop refuses the network)
            else:
                is_read = np.asarray(col_read.reshape(n, -1).any(axis=1), dtype=bool)
        else:
            try:
                ch = _channel_map(list(layers[idx + 1: nidx]), net.shapes[idx + 1]).reshape(-1)
            except LumpkitError:  # (the main loop names the unsupported layer)
                ch = None
            if ch is None or ch.shape[0] != w.shape[1]:
                is_read = np.ones(n, dtype=bool)
            else:
                is_read = np.zeros(n, dtype=bool)
                is_read[ch[col_read]] = True
        out[li] = np.logical_not(is_read)
        read = np.asarray(is_read, dtype=bool)
    return out


def _constant_foldable(ops: list[Layer], nxt: Layer) -> bool:
    if any(isinstance(op, AvgPool2d) and any(op.padding) for op in ops):
        return False
    return isinstance(nxt, Dense) or (isinstance(nxt, Conv2d) and not any(nxt.padding))


def _check_channel_params(ops: list[Layer], shape: tuple[int, ...], first: int) -> None:
    """Per-channel parameters (PReLU slopes, batch norm) and pooling must act per neuron."""
    for k, op in enumerate(ops):
        per_channel = isinstance(op, BatchNorm | MaxPool2d | AvgPool2d) or (
            isinstance(op, Activation) and op.slopes is not None and op.slopes.shape[0] > 1)
        if not per_channel:
            continue
        ch = _channel_map(ops[:k], shape)
        if ch.shape[0] != shape[0] or not np.all(
                ch == np.arange(shape[0]).reshape((-1,) + (1,) * (ch.ndim - 1))):
            raise UnsupportedLayerError(
                f"layer {first + k} ({_op_kind(op)}): its channel axis is not the neuron axis "
                "of the layer before (a flatten or permute lies in between); "
                "lumpkit cannot reduce this layer soundly"
            )


def _labels(ops: list[Layer], n: int) -> list[tuple[Any, ...]]:
    if not any(isinstance(op, BatchNorm) or (isinstance(op, Activation) and op.kind == "prelu")
               for op in ops):
        return [()] * n
    labels: list[list[Any]] = [[] for _ in range(n)]
    for op in ops:
        if isinstance(op, Activation) and op.kind == "prelu":
            assert op.slopes is not None
            if op.slopes.shape[0] > 1:
                for c in range(n):
                    labels[c].append(to_rational(op.slopes[c]))
        elif isinstance(op, BatchNorm):
            for c in range(n):
                labels[c].append((to_rational(op.scale[c]), to_rational(op.shift[c])))
    return [tuple(x) for x in labels]


def _restrict_op(op: Layer, keep: list[int]) -> Layer:
    if isinstance(op, Activation) and op.kind == "prelu":
        assert op.slopes is not None
        if op.slopes.shape[0] > 1:
            return Activation("prelu", slopes=op.slopes[keep])
    if isinstance(op, BatchNorm):
        return BatchNorm(op.scale[keep], op.shift[keep])
    return op


def _to_float(a: np.ndarray) -> tuple[np.ndarray, bool]:
    """Round an exact array to float64; also say whether any value changed."""
    if not is_exact_array(a):
        return a, False
    flat = a.reshape(-1)
    if any(abs(x) >= _FLOAT_MAX_EXCL for x in flat):
        return a, False  # beyond float64's range: the values stay exact rationals
    f = np.array([float(x) for x in flat], dtype=np.float64)
    changed = any(Fraction(float(x)) != x for x in flat)
    return f.reshape(a.shape), changed


#: values of at least this size round to infinity in float64 (max float + half an ulp)
_FLOAT_MAX_EXCL = Fraction(2) ** 1024 - Fraction(2) ** 970


def _float64_values(a: np.ndarray) -> bool:
    """Whether every exact value of ``a`` is a float64 value (float arrays: trivially)."""
    if not is_exact_array(a):
        return True
    flat = a.reshape(-1).tolist()
    return all(abs(x) < _FLOAT_MAX_EXCL and Fraction(float(x)) == x for x in flat)


# ------------------------------------------------------------------ reduction
def reduce_network(
    net: Network,
    *,
    tolerance: float = 0.0,
    certify: bool = True,
    linear_dependence: bool | None = None,
) -> Reduction:
    """Reduce a network by maximum proportional exact lumping of its hidden layers.

    Input and output neurons are never merged.  Hidden neurons ``v, t`` of a
    layer are merged when their scaled incoming vectors (bias and
    ``sum_{u in S'} W(u, v) / rho(u)`` for every block ``S'`` of the previous
    layer) are multiples with a factor the layer's activation allows:
    ``rho > 0`` for positively homogeneous post-ops (ReLU, LeakyReLU, PReLU
    with equal slopes, max-pooling), ``rho != 0`` for linear ones (identity,
    average pooling), ``rho = 1`` otherwise (tanh, sigmoid, GELU, batch norm).
    Convolution output channels are neurons.  Constant neurons (all scaled
    incoming weights zero) with a rational constant output are removed and
    folded into the next bias (any constant through piecewise-linear
    activations, clips, hard sigmoid/swish and batch norm; the smooth
    activations at 0, ...).  In exact mode a non-zero constant is removed only
    when the next bias (float64 for a float network) holds the fold exactly;
    otherwise the neuron stays, so the reduced network stays exact.  The reduced
    weights follow
    Def. 7: ``W'([v], [u]) = sum_{w in [u]} W(v_r, w) / rho(w)``, ``b' = b(v_r)``.

    Parameters
    ----------
    net : Network
    tolerance : float
        0 (default): exact mode; float weights are taken at their exact
        binary value and every merge is exact.  > 0: tolerance mode; each
        neuron's scaled incoming vector is normalised by its largest absolute
        entry and lumped in float arithmetic on the grid ``tolerance * Z``;
        the largest accepted deviation is reported.
    certify : bool
        Build the JSON certificate (hashes both networks).  Default True.
    linear_dependence : bool or None
        Exact mode, linear layers (identity post-ops, factor set ``nonzero``)
        only: also remove blocks whose scaled incoming vector is a linear
        combination of the kept ones, and add their outgoing weights to those
        neurons times the coefficients (the certificate then has
        ``combined`` entries).  ``None`` (default): wherever it is cheap. A
        float64 singular-value test with a wide margin proves most layers'
        vectors independent (nothing to find); the others go through exact
        Gaussian elimination within a work budget, and a layer over the
        budget is left with its proportional merges only and named in a
        :class:`lumpcore.LumpkitWarning`.  ``True``: exact elimination on
        every linear layer, however long it takes.  ``False``: never.  In a
        float network a combination is used only where the next layer's
        weights it changes stay float64 values exactly.

    Returns
    -------
    Reduction

    Raises
    ------
    ValueError
        For a negative or non-finite tolerance, and when the reduction needs a
        value beyond float64's range (a factor or a folded constant of 2^1024
        or more).
    UnsupportedLayerError
        When the layers between two linear layers move the channel axis of a
        convolution.

    Examples
    --------
    >>> import numpy as np
    >>> from nnreduce import Activation, Dense, Network
    >>> w1 = np.array([[1.0, -2.0], [2.0, -4.0], [0.5, 3.0]])   # neuron 1 = 2 * neuron 0
    >>> net = Network((Dense(w1, [1.0, 2.0, 0.0]), Activation("relu"),
    ...                Dense([[1.0, 1.0, 1.0]], [0.0])), (2,))
    >>> red = reduce_network(net)
    >>> red.layers[0].blocks, red.layers[0].rho
    (((0, 1), (2,)), ((Fraction(1, 1), Fraction(1, 2)), (Fraction(1, 1),)))
    >>> red.network.layers[2].weight
    array([[3., 1.]])
    """
    t0 = time.perf_counter()
    try:
        tol = float(tolerance)
    except (TypeError, ValueError):
        raise _ReductionInputError(f"tolerance must be a number, got {tolerance!r}") from None
    if not math.isfinite(tol) or tol < 0:
        raise _ReductionInputError(f"tolerance must be finite and >= 0, got {tolerance!r}")
    with _cyclic_gc_paused():
        try:
            return _reduce(net, tol, certify, linear_dependence, t0)
        except OverflowError as exc:
            # a factor rho or a folded constant beyond float64's range (weights near 2^+-1024
            # in the same block or fold): the float fast paths and the float64 reduced
            # network cannot hold it
            raise _beyond_float64("a factor between merged neurons or a folded constant of "
                                  f"2^1024 or more ({exc})") from exc


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (restored on exit).

    A reduction creates tens of thousands of small acyclic objects (the
    block tuples, the factors); on a large network the collector's full
    passes triggered by them cost up to a few tens of milliseconds and find
    nothing to free.  Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _reduce(net: Network, tol: float, certify: bool, linear_dependence: bool | None,
            t0: float) -> Reduction:
    """:func:`reduce_network` after its argument checks."""
    exact = tol == 0
    exact_net = net.exact
    layers = list(net.layers)
    lin = [i for i, lyr in enumerate(layers) if isinstance(lyr, Dense | Conv2d)]
    new_layers: list[Layer] = list(layers)
    results: list[LayerReduction] = []
    rounded = False
    max_dev = 0.0

    if len(lin) < 2:
        red_net = net
        return _finish(net, red_net, results, exact, tol, 0.0, False, t0, certify)

    # state of the previous layer: blocks of channels, rho per channel, removed constants
    first = layers[lin[0]]
    assert isinstance(first, Dense | Conv2d)
    n_in = first.weight.shape[1]
    prev = _Channels.singletons(n_in)
    prev_removed: list[tuple[int, Fraction]] = []
    prev_combined: list[tuple[list[int], list[tuple[int, Fraction]]]] = []
    prev_placeholder = False  # the previous layer is all constant: one placeholder neuron
    prev_cols: np.ndarray | None = None  # grouping of this layer's dense inputs (original)
    new_cols: np.ndarray | None = None  # the same grouping in the reduced shapes

    unused_of = _unused_neurons(net, lin)
    # the merged layers of the compiled path, one after another (a layer's kept rows stay):
    # at most every row of each layer, with a column per input (channel x position) and
    # the bias (virtual memory: only the pages written become resident)
    sizes = [lyr.weight.size + lyr.weight.shape[0] for lyr in layers
             if isinstance(lyr, Dense | Conv2d)]
    # (capped: a full arena is followed by another, and address space is not free either)
    work = _Workspace(min(sum(sizes), 4 * max(sizes)), max(sizes))
    for li, idx in enumerate(lin):
        layer = layers[idx]
        assert isinstance(layer, Dense | Conv2d)
        # grouped weights Wr (out, C_in, P): a view, except below a flatten that reorders
        plain_cols = li == 0 or _in_order(prev_cols)
        if isinstance(layer, Conv2d):
            o, c, kh, kw = layer.weight.shape
            wr = layer.weight.reshape(o, c, kh * kw)
        elif plain_cols:
            wr = layer.weight[:, :, None]
        else:
            assert prev_cols is not None
            wr = _LazyGrouped(layer.weight, prev_cols)  # type: ignore[assignment]
        bias = layer.bias
        # fold removed constants of the previous layer into the bias (exactly)
        b_eff: np.ndarray = bias
        if any(v != 0 for _, v in prev_removed):
            b_obj = _exact_obj(bias).copy()
            for j, val_j in prev_removed:
                if val_j != 0:
                    col = _exact_obj(wr[:, j, :])
                    b_obj = b_obj + val_j * col.sum(axis=1)
            b_eff = b_obj
            if not exact_net:
                bf, changed = _to_float(b_obj)
                if not changed:
                    b_eff = bf
        fast: _Merged | None = None
        attempted = (not prev_combined and not prev_placeholder and not exact_net
                     and not is_exact_array(b_eff))
        if attempted:
            upcoming = None if li == len(lin) - 1 else _factors(layers[idx + 1: lin[li + 1]])
            fast = _fast_merge(layer, plain_cols, prev_cols, b_eff, prev, exact, tol, upcoming,
                               work)
        mb: np.ndarray | None = None
        fast_zero: np.ndarray | None = None
        merge_err: np.ndarray | None = None  # tolerance mode: float merge error bound per row
        if fast is not None:
            mb, fast_zero, merge_err = fast.mb, fast.zero, fast.err
            p_width = wr.shape[2]
            m = mb[:, 1:].reshape(mb.shape[0], len(prev.blocks), p_width)
        elif prev_placeholder:
            # every neuron of the previous layer was constant and is folded into b_eff: its
            # placeholder feeds nothing, so every merged weight is zero
            m = np.zeros((wr.shape[0], 1, wr.shape[2]), dtype=np.float64)
            if exact_net:
                m = _exact_obj(m)
        else:
            if isinstance(wr, _LazyGrouped):
                wr = wr.materialise()
            if (attempted and exact) or (exact_net and not exact):
                # the compiled pass could not be exact, or the reduced network stores
                # rationals, which must be the exact merged sums (tolerance mode included)
                wr = _exact_obj(wr)
            prev_rho = prev.rho_list()
            m = _merge(wr, prev.blocks, prev_rho, exact)
            if not exact and not exact_net and not is_exact_array(wr):
                merge_err = _float_merge_error(wr, prev)
            if prev_combined:
                m = _fold_combined(wr, m, prev.blocks, prev_combined, prev_rho, exact_net)
        if not exact and not exact_net and any(len(blk) > 1 for blk in prev.blocks):
            rounded = True  # tolerance mode merges in float64 arithmetic (rationals: exactly)
        n_out = m.shape[0]
        is_output = li == len(lin) - 1
        if is_output:
            keep_rows = list(range(n_out))
            if fast is not None and fast.col_div is not None:
                out_layer, changed = _rebuild_fast(layer, fast, b_eff, keep_rows, new_cols)
            else:
                out_layer, changed = _rebuild(layer, m, b_eff, keep_rows, exact_net, new_cols)
            new_layers[idx] = out_layer
            rounded = rounded or changed
            break

        ops = layers[idx + 1: lin[li + 1]]
        nxt = layers[lin[li + 1]]
        _check_channel_params(ops, net.shapes[idx + 1], idx + 1)
        factors = _factors(ops)
        flat_m = m.reshape(n_out, m.shape[1] * m.shape[2])
        if fast_zero is not None:
            zero_rows = fast_zero
        elif is_exact_array(flat_m):
            zero_rows = np.array([all(x == 0 for x in row) for row in flat_m], dtype=bool)
        else:
            zero_rows = ~np.any(flat_m != 0, axis=1)
        removed: list[tuple[int, Fraction]] = []
        keep = np.ones(n_out, dtype=bool)
        # constants are removed under every factor set, when their value is known exactly;
        # in exact mode only when the next layer's bias holds the fold exactly (else the
        # reduced network would be rounded: the neuron stays)
        foldable = _constant_foldable(ops, nxt)
        constants: list[tuple[int, Fraction]] = []
        unused = unused_of[li]
        for v in np.flatnonzero(zero_rows & ~unused).tolist():
            if not exact and not exact_net and not prev_placeholder \
                    and any(len(blk) > 1 for blk in prev.blocks) \
                    and not _merged_row_zero(wr, v, prev):
                continue  # zero only after rounding (the float merge cancelled): not constant
            val = _post_value(ops, to_rational(b_eff[v]), v)
            if val is not None and (val == 0 or foldable):
                constants.append((v, val))
        if not exact_net and any(val != 0 for _, val in constants):
            assert isinstance(nxt, Dense | Conv2d)
            sums = {v: _next_column_sum(ops, nxt, net.shapes[idx + 1], v)
                    for v, val in constants if val != 0}
            next_bias = _exact_obj(np.asarray(nxt.bias))
            if exact:
                constants = _exact_folds(constants, next_bias, sums)
            elif any(abs(x) >= _FLOAT_MAX_EXCL
                     for x in _folded_bias(next_bias, constants, sums)):
                # tolerance mode rounds folds into a float bias, but one beyond float64's
                # range has no float value: then the non-zero constants stay
                constants = [(v, val) for v, val in constants if val == 0]
        for v, val in constants:
            removed.append((v, val))
            keep[v] = False
        keep &= ~unused  # nothing reads them: dropped, whatever their values
        # every neuron constant or unused (so is the network's output): a layer of width 0 is
        # no model the formats hold, so one of them stays as a placeholder that feeds nothing
        # (a constant's value is folded like the others', its outgoing weights become zero)
        placeholder = None
        if n_out and not keep.any():
            placeholder = removed[0][0] if removed else int(np.flatnonzero(unused)[0])
        candidates = np.flatnonzero(keep)
        labels = _labels(ops, n_out)
        if fast is not None:
            lumped = _lump_layer_dense(fast, flat_m, b_eff, candidates, labels, factors,
                                       exact, tol, merge_err)
        else:
            lumped = _lump_layer(flat_m, b_eff, candidates, labels, factors, exact, tol,
                                 merge_err)
        max_dev = max(max_dev, lumped.dev)
        combined: list[tuple[list[int], list[tuple[int, Fraction]]]] = []
        if linear_dependence is not False and exact and factors == "nonzero" \
                and len(lumped.blocks) > 1:
            found = _linear_combinations(flat_m, b_eff, lumped.blocks, linear_dependence, idx)
            if found is not None:
                kept, combined = found
                if not exact_net:  # float weights: only folds that float64 holds exactly
                    checked = _float_exact_combinations(
                        combined, lumped, _next_grouped(ops, nxt, net.shapes[idx + 1], n_out),
                        linear_dependence is None)
                    if checked is None:
                        _warn_dependence(idx, f"{len(combined)} linear combinations found, but "
                                         "checking that the next layer's float weights hold "
                                         "their folds exactly is too costly at its size")
                    combined = checked or []
                    dropped = {tuple(cb) for cb, _ in combined}
                    kept = [list(b) for b in lumped.blocks if tuple(b) not in dropped]
                if combined:
                    lumped = lumped.restricted(kept)
        if exact and not exact_net and not combined:
            # a float network's merged weights: float sums where a representative allows
            lumped = lumped.with_exact_representatives()
        blocks = lumped.blocks
        reps = [b[0] for b in blocks] if placeholder is None else [placeholder]
        if mb is not None:
            assert fast is not None
            # the merged rows are not used again: the reduced weights stay in the arena
            rebuilt, ch = _rebuild_fast(layer, fast, b_eff, reps, new_cols, work)
            # (the arena beyond the kept rows is the next layer's: no view of it is used again)
            fast = mb = m = flat_m = None  # type: ignore[assignment]
        else:
            rebuilt, ch = _rebuild(layer, m, b_eff, reps, exact_net, new_cols)
        rounded = rounded or ch
        new_layers[idx] = rebuilt
        for j in range(idx + 1, lin[li + 1]):
            new_layers[j] = _restrict_op(layers[j], reps)
        kind = "dense" if isinstance(layer, Dense) else "conv2d"
        results.append(LayerReduction(
            layer=idx, reduced_layer=idx, kind=kind,
            post_ops=tuple(_op_kind(op) for op in ops), factors=factors,
            neurons_before=n_out, neurons_after=len(reps),
            blocks=blocks,
            rho=lumped.rho,
            removed=tuple(removed),
            combined=tuple((tuple(cb), tuple(lumped.factor(v) for v in cb), tuple(co))
                           for cb, co in combined),
            placeholder=placeholder,
            unused=tuple(np.flatnonzero(unused).tolist()),
        ))
        # grouping of the next layer's inputs, in the original and the reduced shapes
        out_shape = net.shapes[idx + 1]
        if isinstance(nxt, Dense):
            ch_old = _channel_map(ops, out_shape)
            prev_cols = _grouping(ch_old, n_out, f"layer {lin[li + 1]}")
            ch_new = _channel_map(ops, (len(reps), *out_shape[1:]))
            new_cols = _grouping(ch_new, len(reps), f"layer {lin[li + 1]}")
        else:
            if not _channel_axis_kept(ops, out_shape):
                raise UnsupportedLayerError(
                    f"layer {lin[li + 1]} (Conv2d): the layers before it move the channel axis; "
                    "lumpkit cannot group its input channels"
                )
            prev_cols = None
            new_cols = None
        if placeholder is None:
            prev = _Channels(blocks, lumped.block_of, lumped.rho_f, lumped.pow2,
                             [*zip(blocks, lumped.rho),
                              *((cb, [lumped.factor(v) for v in cb]) for cb, _ in combined)])
        else:
            prev = _Channels.of(n_out, [[placeholder]], [Fraction(1)] * n_out)
        prev_placeholder = placeholder is not None
        prev_removed = removed
        prev_combined = combined

    work.release()  # (the output layer's merged matrix and rows dropped: not kept)
    red_net = Network(tuple(new_layers), net.input_shape, net.normalization, net.data_dtype,
                      net.io_names)
    return _finish(net, red_net, results, exact, tol, max_dev, rounded, t0, certify)


class _LazyGrouped:
    """``weight[:, cols]`` (shape ``(out, C, P)``), copied only when all of it is needed."""

    def __init__(self, weight: np.ndarray, cols: np.ndarray) -> None:
        self.weight, self.cols = weight, cols
        self.shape = (weight.shape[0], cols.shape[0], cols.shape[1])

    def __getitem__(self, key: tuple[Any, int, Any]) -> np.ndarray:
        rows, j, rest = key
        return self.weight[rows, self.cols[j]][:, rest]

    def materialise(self) -> np.ndarray:
        return self.weight[:, self.cols]


class _Merged(NamedTuple):
    """The output of :func:`_fast_merge`."""

    mb: np.ndarray  # merged layer, bias in column 0
    zero: np.ndarray  # rows whose weights (bias excluded) are all zero
    normed: np.ndarray | None  # tolerance mode: rows times sign over their largest |entry|
    scale: np.ndarray | None  # those largest |entries| (1 for all-zero rows)
    sign: np.ndarray  # +-1 per row (first non-zero entry's sign for linear layers)
    dtype: np.dtype[Any]  # float32 when every weight is one of a float32 layer's own
    sig: Signatures | None  # lumpcore's signatures of the rows to be lumped (None: output)
    col_div: np.ndarray | None = None  # merged column k of mb is col_div[k] times the true one
    err: np.ndarray | None = None  # tolerance mode: bound of |mb - exact merged row| per row


class _Channels(NamedTuple):
    """The previous layer's channels as the next layer's merge sees them."""

    blocks: Sequence[Sequence[int]]  # kept blocks in order, first member = representative
    block_of: np.ndarray  # channel -> index of its kept block, -1 (removed, combined)
    rho_f: np.ndarray  # float64 value of every channel's factor (1 for removed ones)
    pow2: bool  # every factor is a positive power of two, so rho_f is exact
    groups: Sequence[tuple[Sequence[int], Sequence[Fraction]]]  # (members, factors) != 1

    @staticmethod
    def singletons(n: int) -> _Channels:
        """``n`` channels, each a block of its own with factor 1."""
        return _Channels(tuple((c,) for c in range(n)), np.arange(n, dtype=np.int64),
                         np.ones(n, dtype=np.float64), True, ())

    @staticmethod
    def of(n: int, blocks: Sequence[Sequence[int]], rho: Sequence[Fraction]) -> _Channels:
        """From a block list and a factor per channel."""
        block_of = np.full(n, -1, dtype=np.int64)
        for k, b in enumerate(blocks):
            block_of[list(b)] = k
        rho_f = np.array([float(r) for r in rho], dtype=np.float64).reshape(n)
        return _Channels(blocks, block_of, rho_f, all(r == 1 or _pow2(r) for r in rho),
                         [(range(n), rho)])

    def rho_list(self) -> list[Fraction]:
        """The exact factor of every channel."""
        out = [Fraction(1)] * self.block_of.shape[0]
        for members, factors in self.groups:
            for v, r in zip(members, factors, strict=True):
                out[v] = r
        return out


class _Lumped:
    """One layer's lumping: blocks and factors as the public tuples and as arrays."""

    def __init__(self, blocks: tuple[tuple[int, ...], ...],
                 rho: tuple[tuple[Fraction, ...], ...], block_of: np.ndarray,
                 rho_f: np.ndarray, pow2: bool, dev: float) -> None:
        self.blocks = blocks  # first member = representative, in order of it
        self.rho = rho  # exact factor of every block member
        self.block_of = block_of  # neuron -> block index, -1 when not lumped
        self.rho_f = rho_f  # float64 factor per neuron (exact when pow2), 1 when not lumped
        self.pow2 = pow2  # every factor is a positive power of two
        self.dev = dev  # tolerance mode: bound of the accepted deviation
        self._factor: dict[int, Fraction] | None = None

    def _factors(self) -> dict[int, Fraction]:
        if self._factor is None:
            self._factor = {u: r for b, rs in zip(self.blocks, self.rho, strict=True)
                            for u, r in zip(b, rs, strict=True)}
        return self._factor

    def factor(self, v: int) -> Fraction:
        """The exact factor of neuron ``v``."""
        return self._factors()[v]

    def restricted(self, kept: Sequence[Sequence[int]]) -> _Lumped:
        """The same lumping with only the blocks ``kept`` (others are combined away)."""
        factors = self._factors()
        index = {b[0]: k for k, b in enumerate(self.blocks)}
        kept_t = tuple(tuple(b) for b in kept)
        block_of = np.full_like(self.block_of, -1)
        for k, b in enumerate(kept_t):
            block_of[list(b)] = k
        out = _Lumped(kept_t, tuple(self.rho[index[b[0]]] for b in kept_t), block_of,
                      self.rho_f, self.pow2, self.dev)
        out._factor = factors  # combined blocks keep their factors
        return out

    def with_exact_representatives(self) -> _Lumped:
        """The same partition, each block's representative chosen so that the next
        layer's merged weights are float sums where that is possible.

        The next layer's merged column of a block is ``sum_v W(:, v) / rho(v)``
        with the factors relative to the representative.  With the smallest
        member as representative, ``1 / rho`` may be no float (a copy
        ``(3/2) u`` placed before ``u``: relative to the copy, ``u``'s
        ``1 / rho`` is ``2/3``), and the float network's reduction is then
        rounded; relative to ``u`` the copy's is ``3/2``.
        A block whose factors are not all powers of two gets as representative
        its smallest member ``t`` for which every ``rho(t) / rho(v)`` has a
        power of two as denominator, if there is one (certificate version 5);
        the other members follow in increasing order, and the blocks are
        ordered by their representatives.
        """
        if self.pow2:
            return self
        blocks: list[tuple[int, ...]] = []
        rho: list[tuple[Fraction, ...]] = []
        changed = False
        for blk, rs in zip(self.blocks, self.rho, strict=True):
            t = next((k for k in range(len(blk))
                      if all(_dyadic(rs[k] / r) and _normal_float(r / rs[k]) for r in rs)),
                     0) if any(not (r == 1 or _pow2(abs(r))) for r in rs) else 0
            if t:  # (a block comes sorted: the others stay in increasing order)
                changed = True
                order = [t] + [k for k in range(len(blk)) if k != t]
                blk = tuple(blk[k] for k in order)
                rs = tuple(rs[k] / rs[t] for k in order)
            blocks.append(blk)
            rho.append(rs)
        if not changed:
            return self
        order = sorted(range(len(blocks)), key=lambda k: blocks[k][0])
        blocks_t = tuple(blocks[k] for k in order)
        rho_t = tuple(rho[k] for k in order)
        block_of = np.full_like(self.block_of, -1)
        rho_f = self.rho_f.copy()
        for k, (b, rs) in enumerate(zip(blocks_t, rho_t, strict=True)):
            block_of[list(b)] = k
            rho_f[list(b)] = [float(r) for r in rs]
        return _Lumped(blocks_t, rho_t, block_of, rho_f, False, self.dev)


#: largest arena taken from the heap (glibc serves larger allocations by fresh mappings)
_HEAP_ARENA_BYTES = 32 << 20


class _Workspace:
    """Float64 memory for the merged matrices of a reduction (fresh pages cost page faults).

    Buffer 0 is an arena: one anonymous mapping of ``capacity`` entries (up to
    ``_HEAP_ARENA_BYTES``, an array from the heap), of which only the pages
    written ever become resident.  Each layer's merged
    matrix is placed at ``top``.  When the reduced layer's weights are rows
    of it, :meth:`keep` compacts them there in place (rows already in place
    are not moved) and hands them out as views; ``top`` moves past them, so
    the next layer's matrix reuses the pages of the rows dropped, and no
    reduced weight is copied into fresh memory.  :meth:`release` gives the
    pages beyond ``top`` back.  Buffer 1 (tolerance mode's normalised rows)
    is reused from layer to layer.
    """

    def __init__(self, capacity: int = 0, normed_capacity: int = 0) -> None:
        self.capacity = capacity
        self.normed_capacity = normed_capacity
        self._map: mmap.mmap | None = None
        self.arena = np.empty(0)
        self.top = 0  # entries below are reduced layers' weights
        self.touched = 0  # entries below may be resident
        self.normed = np.empty(0)

    def _new_arena(self, size: int) -> None:
        self.top = self.touched = 0
        nbytes = max(size, self.capacity, 1) * 8
        self._map = None
        if nbytes <= _HEAP_ARENA_BYTES:
            # from the heap, whose freed memory the C library hands out again (warm): a
            # mapping's pages are fresh each time (page faults), and what a small arena
            # keeps resident beyond its rows is small
            self.arena = np.empty(nbytes // 8, dtype=np.float64)
            return
        try:
            if hasattr(mmap, "MAP_PRIVATE"):
                # private: a shared anonymous mapping is shared memory: no huge pages for it
                self._map = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            else:  # (Windows)
                self._map = mmap.mmap(-1, nbytes)
        except OSError:  # no address space for the reserve: just this matrix
            self.arena = np.empty(size, dtype=np.float64)
            return
        if hasattr(mmap, "MADV_HUGEPAGE"):  # as numpy asks for its own large arrays
            self._map.madvise(mmap.MADV_HUGEPAGE)
        self.arena = np.frombuffer(self._map, dtype=np.float64)

    def get(self, which: int, shape: tuple[int, int]) -> np.ndarray:
        size = shape[0] * shape[1]
        if which == 1:
            if self.normed.size < size:
                self.normed = np.empty(max(size, self.normed_capacity), dtype=np.float64)
            return self.normed[:size].reshape(shape)
        if self.top + size > self.arena.size:
            self._new_arena(size)  # (the old arena lives on in the views handed out)
        self.touched = max(self.touched, self.top + size)
        return self.arena[self.top:self.top + size].reshape(shape)

    def keep(self, mb: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
        """The rows ``rows`` (increasing) of ``mb`` without its column 0, as a view of
        the arena that stays valid (``None`` when ``mb`` is not the arena's last matrix).

        The rows are compacted in place, keeping their length (each row of the
        view is contiguous; a bias entry lies between two), so rows already in
        place are not moved.
        """
        row_len = mb.shape[1]
        at = self.arena[self.top:]
        if (mb.size == 0 or not mb.flags.c_contiguous or mb.size > at.size
                or mb.ctypes.data != at.ctypes.data):
            return None
        compact_rows(self.arena[self.top:], rows, row_len)
        size = rows.shape[0] * row_len
        kept = self.arena[self.top:self.top + size].reshape(rows.shape[0], row_len)[:, 1:]
        self.top += size
        return kept

    def release(self) -> None:
        """Give the pages beyond the reduced layers' weights back to the system."""
        if self._map is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        page = mmap.PAGESIZE
        start = -(-self.top * 8 // page) * page
        end = min(self.touched * 8, len(self._map))
        if end > start:
            self._map.madvise(mmap.MADV_DONTNEED, start, end - start)
        self.touched = min(self.touched, start // 8)


def _fast_merge(layer: Dense | Conv2d, plain_cols: bool, prev_cols: np.ndarray | None,
                b_eff: np.ndarray, prev: _Channels, exact: bool, tol: float,
                factors: Factors | None, work: _Workspace) -> _Merged | None:
    """The merged layer with its bias as column 0, in one compiled pass over float weights.

    ``mb[:, 1:]`` is the merged tensor of :func:`_merge` flattened.  Returns
    ``None`` when this pass does not apply (exact mode with a factor that is
    not a power of two, an inexact sum, an overflow): the caller then uses
    :func:`_merge`.  ``factors`` (``None`` for the output layer) says how
    the rows will be lumped: tolerance mode normalises them in the same pass.
    """
    w = layer.weight
    if isinstance(layer, Conv2d):
        o, c, kh, kw = w.shape
        p = kh * kw
        w2 = w.reshape(o, c * p)
        pos = np.arange(c * p)
        ch, pp = pos // p, pos % p
    elif plain_cols:
        w2, p = w, 1
        ch, pp = np.arange(w.shape[1]), np.zeros(w.shape[1], dtype=np.int64)
    else:
        assert prev_cols is not None
        w2, p = w, prev_cols.shape[1]
        ch = np.empty(w.shape[1], dtype=np.int64)
        pp = np.empty(w.shape[1], dtype=np.int64)
        ch[prev_cols] = np.arange(prev_cols.shape[0])[:, None]
        pp[prev_cols] = np.arange(p)[None, :]
    return _merged_columns(w2, ch, pp, p, np.asarray(b_eff, dtype=np.float64), prev, exact,
                           tol, factors, work)


def _merged_columns(w2: np.ndarray, ch: np.ndarray, pp: np.ndarray, p: int, bias: np.ndarray,
                    prev: _Channels, exact: bool, tol: float, factors: Factors | None,
                    work: _Workspace) -> _Merged | None:
    """The compiled pass of :func:`_fast_merge`: column ``f`` of ``w2`` belongs to
    channel ``ch[f]`` at position ``pp[f]`` (of ``p``); ``None`` when it does not apply.

    When the rows will be lumped (``factors`` given), the pass also computes
    their lumpcore signatures (as :func:`_lump_layer_dense` will lump them).
    """
    kb = prev.block_of[ch]
    dest = np.where(kb >= 0, kb * p + pp, -1).astype(np.int64)
    width = len(prev.blocks) * p
    col_div: np.ndarray | None = None
    product_check = 0  # the scales are powers of two: products checked by scaling back
    if exact and not prev.pow2:
        # 1 / rho is not an exact float: every merged column is built times the lcm of its
        # factors' numerators instead, from integer multiples of the weights (exact, checked);
        # proportionality of rows (and equality) is the same for columns scaled by constants
        ints = _integer_scales(prev)
        if ints is None:
            return None
        mult, block_div = ints
        # float32 weights (24-bit mantissas) times integers below 2**29: exact in float64
        product_check = 2 if w2.dtype == np.float32 else 1
        scale = mult[ch]
        inv_scale = scale  # (unused by the integer pass)
        col_div = np.repeat(block_div, p)
    else:
        # tolerance mode: rho came from floats, so 1.0 / rho_f is the rounded 1 / rho
        inv = 1.0 / prev.rho_f
        scale = inv[ch]
        inv_scale = prev.rho_f[ch]  # the reciprocal: products are checked by scaling back
    # the first input feeding each merged column, then the others (added exactly)
    live = np.flatnonzero(dest >= 0)
    order = live[np.argsort(dest[live], kind="stable")]
    d_sorted = dest[order]
    is_first = np.ones(order.size, dtype=bool)
    is_first[1:] = d_sorted[1:] != d_sorted[:-1]
    first_src = order[is_first]
    rest_src = order[~is_first]
    w2 = np.ascontiguousarray(w2)
    mb = work.get(0, (w2.shape[0], 1 + width))
    normalise = not exact and factors is not None and factors != "one"
    normed = work.get(1, mb.shape if normalise else (0, 0))
    rest_dst = dest[rest_src]
    n_sig = w2.shape[0] if factors is not None else 0
    proportional = factors != "one"
    step = 0.0 if exact else tol
    sig = Signatures(np.zeros(n_sig, dtype=np.float64), np.zeros(n_sig, dtype=np.float64),
                     np.full(n_sig, -1, dtype=np.int64),
                     np.zeros(n_sig, dtype=np.float64), np.zeros(n_sig, dtype=np.int8),
                     np.zeros(n_sig, dtype=np.bool_), proportional, step)
    # what the pass checks: products and sums; sums only where every product is exact
    # (float32 weights, 24-bit significands from 2^-149 up, times powers of two within
    # 2^+-800 stay inside float64's normal range); nothing in tolerance mode, which
    # rounds anyway (its error bound below covers the roundings)
    if not exact:
        check = 0
    elif not product_check and w2.dtype == np.float32 and _powers_of_two_within(
            scale[live], 800):
        check = 1
    else:
        check = 2
    err_scale = 0.0 if exact else _merge_error_scale(prev, scale[live])
    # each row's largest term |w * scale| (computed in the pass), for the error bound
    term_max = np.zeros(w2.shape[0] if err_scale else 0, dtype=np.float64)
    abs_scale = np.where(dest >= 0, np.abs(scale), 0.0) if err_scale else np.zeros(0)
    with threads_for(w2.size):
        if product_check:
            zero, ok, row_scale, row_sign, version = merge_columns_integer(
                w2, bias, runs(first_src, np.arange(width)), scale[first_src],
                runs(rest_src, rest_dst), scale[rest_src], product_check == 2, mb,
                factors == "nonzero", signature_coefficients(1 + width), proportional,
                *sig[:6])
        else:
            zero, ok, row_scale, row_sign, version = merge_columns(
                w2, bias, runs(first_src, np.arange(width)),
                scale[first_src], inv_scale[first_src], runs(rest_src, rest_dst),
                scale[rest_src], inv_scale[rest_src], exact, mb, normed, factors == "nonzero",
                signature_coefficients(1 + width), proportional, step, *sig[:6], term_max,
                abs_scale, check)
    if not ok:
        return None
    # every merged column one input column times 1: the weights are the layer's own
    own = rest_src.size == 0 and bool(np.all(scale[first_src] == 1.0))
    # signatures from a cached pass compiled against another lumpcore are not used
    fresh = factors is not None and version == SIGNATURE_VERSION
    return _Merged(mb, zero, normed if normalise else None, row_scale if normalise else None,
                   row_sign.astype(np.int64), w2.dtype if own else np.dtype(np.float64),
                   sig if fresh else None, col_div,
                   _merge_error(term_max, err_scale, max(map(len, prev.blocks), default=1))
                   if err_scale else None)


def _powers_of_two_within(x: np.ndarray, k: int) -> bool:
    """Whether every entry of ``x`` is ``+-2^e`` with ``|e| <= k``."""
    mant, exp = np.frexp(x)
    return bool(np.all((np.abs(mant) == 0.5) & (np.abs(exp.astype(np.int64) - 1) <= k)))


def _merge_error_scale(prev: _Channels, scales: np.ndarray) -> float:
    """``c`` such that a float64 merge (tolerance mode) of a row whose terms
    ``w * fl(1 / rho)`` are at most ``T`` in size is within ``c * T`` of the exact merged
    row (0: the merge is a copy; ``scales`` are the merge's ``fl(1 / rho)``).

    A merged entry sums at most ``K`` (the largest block) terms; two roundings per
    product (``fl(1 / rho)`` and the product) and ``K - 1`` additions put the float sum
    within ``gamma_{K+1}`` times the sum of the terms' sizes, at most ``K T``, of the
    exact value.  The merged values themselves may be far smaller (terms that cancel),
    so a bound relative to them, as the deviation bound's own margin, would not do.
    """
    k = max(map(len, prev.blocks), default=1)
    if k == 1 and (scales.size == 0 or bool(np.all(scales == 1.0))):
        return 0.0
    return (k + 3) * 2.0**-53 * k * (1 + 2.0**-30)


def _merge_error(term_max: np.ndarray, c: float, k: int) -> np.ndarray:
    """The bound of :func:`_merge_error_scale` for rows whose largest terms are
    ``term_max``, plus ``2^-1073`` per term of an entry for operations that underflow."""
    return term_max * c + (k + 2) * 2.0**-1073


#: integer column multipliers must stay below this (exact floats, and with float32 weights
#: of 24-bit mantissas exact products)
_INT_SCALE_MAX = 2.0**29


def _integer_scales(prev: _Channels) -> tuple[np.ndarray, np.ndarray] | None:
    """Per channel an integer ``m(u)``, per kept block ``S`` an integer ``d(S)``, with
    ``m(u) / d(S) = 1 / rho(u)`` for every member ``u`` of ``S`` (``d`` the lcm of the
    numerators of the block's factors); ``None`` when they would be too large."""
    rho = prev.rho_list()
    mult = np.ones(len(rho), dtype=np.float64)
    block_div = np.ones(len(prev.blocks), dtype=np.float64)
    for k, members in enumerate(prev.blocks):
        d = 1
        for u in members:
            d = math.lcm(d, abs(rho[u].numerator))
        if d >= _INT_SCALE_MAX:
            return None
        block_div[k] = d
        for u in members:
            m_u = d * rho[u].denominator // rho[u].numerator  # exact: numerator divides d
            if abs(m_u) >= _INT_SCALE_MAX:
                return None
            mult[u] = m_u
    return mult, block_div


def _lump_layer_dense(
    merged: _Merged,
    flat_m: np.ndarray,
    b_eff: np.ndarray,
    candidates: np.ndarray,
    labels: list[tuple[Any, ...]],
    factors: Factors,
    exact: bool,
    tol: float,
    merge_err: np.ndarray | None = None,
) -> _Lumped:
    """:func:`_lump_layer` for the float matrix ``mb`` (bias = column 0), as a dense graph."""
    mb = merged.mb
    n_src = mb.shape[1] - 1
    m = candidates.shape[0]
    if m == 0:
        return _nothing_lumped(mb.shape[0])
    subset = None if m == mb.shape[0] else candidates
    # rho may be negative for linear layers: the first non-zero coordinate is made positive
    sign = merged.sign if subset is None else merged.sign[subset]
    scale: np.ndarray | None = None
    if merged.normed is not None:
        assert merged.scale is not None
        vec = merged.normed if subset is None else merged.normed[subset]
        scale = merged.scale if subset is None else merged.scale[subset]
    else:
        vec = mb if subset is None else mb[subset]
        if factors == "nonzero" and (sign < 0).any():
            vec = vec * sign[:, None].astype(np.float64)
    sig = merged.sig
    if sig is not None:
        if subset is not None:
            sig = sig._replace(**{f: getattr(sig, f)[subset]
                                  for f in ("key", "radius", "pivot", "pval", "status",
                                            "short")})
        if merged.normed is None and factors == "nonzero":
            sig = sig._replace(pval=sig.pval * sign)  # the key (S / pivot) is the same for -row
    # initial labels: every source alone; the neurons by their per-neuron parameters
    init = np.empty(1 + n_src + m, dtype=np.int64)
    init[: 1 + n_src] = np.arange(1 + n_src)
    if not any(labels):  # every label the empty tuple
        init[1 + n_src:] = 1 + n_src
    else:
        index: dict[tuple[Any, ...], int] = {}
        init[1 + n_src:] = [1 + n_src + index.setdefault(labels[v], len(index))
                            for v in candidates.tolist()]
    g = WeightedGraph.from_biadjacency(vec.T)
    if sig is not None:
        g = with_signatures(g, sig)
    lump = coarsest_lumping(g, init, direction="backward", proportional=factors != "one",
                            arithmetic="exact" if exact else "float", tolerance=tol)
    return _collect(lump, candidates, mb.shape[0], n_src, sign, scale, exact, flat_m, b_eff,
                    mb, merge_err)


#: the most exact operations (an upper bound: vectors x rank x coordinates) that
#: ``linear_dependence=None`` lets the elimination of one layer take (about a second)
_DEPENDENCE_BUDGET = 100_000

#: largest ``n^2 m`` for which the float screen of :func:`_independent_rows` runs (~0.5 s)
_SVD_WORK = 400_000_000

_Combined = list[tuple[list[int], list[tuple[int, Fraction]]]]


def _linear_combinations(flat_m: np.ndarray, b_eff: np.ndarray,
                         blocks: Sequence[Sequence[int]], mode: bool | None, where: int
                         ) -> tuple[list[list[int]], _Combined] | None:
    """:func:`_dependent_blocks` as ``linear_dependence`` asks (``None``: when cheap);
    ``None`` when nothing is combined."""
    reps = [b[0] for b in blocks]
    if mode is None:
        if _independent_rows(flat_m, b_eff, reps):
            return None
        n, m = len(reps), flat_m.shape[1] + 1
        size = max(1.0, _entry_bits(flat_m, b_eff, reps) / 53) ** 2  # longer numbers cost more
        if n * min(n, m) * (m + min(n, m)) * size > _DEPENDENCE_BUDGET:
            _warn_dependence(where, f"not searched ({n} neurons after proportional merges, "
                             f"{m} coordinates: exact elimination too costly at this size)", 1)
            return None
    kept, combined = _dependent_blocks(flat_m, b_eff, blocks)
    return (kept, combined) if combined else None


def _warn_dependence(where: int, what: str, depth: int = 0) -> None:
    """Warn the caller of :func:`reduce_network` (``depth``: frames between it and
    :func:`_reduce`)."""
    warnings.warn(
        f"layer {where} (linear): no neuron removed as a linear combination of others: "
        f"{what}; pass linear_dependence=True (--linear-dependence) to do it anyway",
        LumpkitWarning, stacklevel=4 + depth)


def _entry_bits(flat_m: np.ndarray, b_eff: np.ndarray, rows: list[int]) -> int:
    """About how many bits the exact values of these vectors take: 53 plus the spread of
    the binary exponents for floats, numerator and denominator lengths for rationals."""
    vals = [b_eff[r] for r in rows]
    sub = flat_m[rows]
    if not is_exact_array(sub) and not any(type(v) is Fraction for v in vals):
        a = np.abs(np.concatenate([np.asarray(sub, dtype=np.float64).reshape(-1),
                                   np.asarray(vals, dtype=np.float64)]))
        a = a[(a != 0) & np.isfinite(a)]
        if not a.size:
            return 53
        e = np.frexp(a)[1]
        return 53 + int(e.max() - e.min())
    bits = 0
    for x in [*sub.reshape(-1).tolist(), *vals]:
        q = to_rational(x)
        bits = max(bits, q.numerator.bit_length() + q.denominator.bit_length())
    return max(bits, 53)


def _independent_rows(flat_m: np.ndarray, b_eff: np.ndarray, rows: list[int]) -> bool:
    """True when the scaled incoming vectors of ``rows`` are certainly linearly independent.

    Each vector is scaled by a power of two (exactly) and rounded to float64
    (relative error ``2^-53`` per entry); the smallest singular value of that
    matrix, as LAPACK computes it (backward error ``O(n eps)`` of the
    largest), above ``1e-8`` times the largest proves the exact matrix of full
    row rank for any size this code meets.  False means "not proved", not
    "dependent".
    """
    n, m = len(rows), flat_m.shape[1] + 1
    if n > m:
        return False  # more vectors than coordinates: dependent
    if n * n * m > _SVD_WORK:
        return False  # an SVD of this size would take longer than the reduction itself
    a = np.empty((n, m), dtype=np.float64)
    try:
        with np.errstate(all="ignore"):
            a[:, 0] = [float(x) for x in np.asarray(b_eff)[rows]]
            a[:, 1:] = np.asarray(flat_m[rows], dtype=np.float64)
    except OverflowError:
        return False
    if not np.all(np.isfinite(a)):
        return False
    big = np.abs(a).max(axis=1)
    if np.any(big == 0) or np.any(big < np.finfo(np.float64).tiny * 2.0**60):
        return False  # a zero vector, or one whose entries may have underflowed
    a *= np.ldexp(1.0, -np.frexp(big)[1])[:, None]  # exact: powers of two
    s = np.linalg.svd(a, compute_uv=False)
    return bool(s[-1] > 1e-8 * s[0])


def _merged_row_zero(wr: Any, v: int, prev: _Channels) -> bool:
    """Whether neuron ``v``'s merged incoming weights are exactly zero (tolerance mode
    merges in float64, where a sum such as ``w / 3 - w / 3`` can cancel to 0 inexactly)."""
    row = wr.weight[v][wr.cols] if isinstance(wr, _LazyGrouped) else np.asarray(wr[v])
    merged = _merge(_exact_obj(row[None]), prev.blocks, prev.rho_list(), True)
    return all(x == 0 for x in merged.reshape(-1).tolist())


def _next_grouped(ops: list[Layer], nxt: Layer, shape: tuple[int, ...], n: int) -> np.ndarray:
    """The next linear layer's weights grouped by this layer's ``n`` neurons,
    ``(out, n, P)`` (section 2.1 of the certificate format)."""
    if isinstance(nxt, Conv2d):
        o, c, kh, kw = nxt.weight.shape
        return nxt.weight.reshape(o, c, kh * kw)
    assert isinstance(nxt, Dense)
    return nxt.weight[:, _grouping(_channel_map(ops, shape), n, "")]


def _float_exact_combinations(combined: _Combined, lumped: _Lumped, wr_next: np.ndarray,
                              bounded: bool) -> _Combined | None:
    """The combinations whose folds into the next layer's float weights are exact.

    Removing a combined block adds ``a`` times its merged column to the column
    of every representative it names.  With a coefficient such as ``1/3`` or
    ``2^60`` the sum is generally no float64, and the rounded weight would
    multiply values that then cancel: the reduced network could be far off,
    not just rounded.  Each combination (in order) is kept only when every
    column it changes stays a float64 value, exactly; the others' blocks stay.
    ``bounded``: ``None`` when that check would exceed the work budget.
    """
    index = {b[0]: k for k, b in enumerate(lumped.blocks)}
    # rational arithmetic on the next layer's columns: bounded like the elimination
    touched = {u for cb, co in combined
               for u in [*cb, *(v for rep, _ in co for v in lumped.blocks[index[rep]])]}
    if bounded and len(touched) * wr_next.shape[0] * wr_next.shape[2] > _DEPENDENCE_BUDGET:
        return None

    def merged(members: Sequence[int]) -> np.ndarray:
        return _merged_exact(wr_next, members, lumped.factor)

    columns: dict[int, np.ndarray] = {}

    def fold(block: Sequence[int], coeffs: list[tuple[int, Fraction]]) -> bool:
        """Fold ``block`` into the named representatives' columns if float64 holds
        every result exactly (then commit it)."""
        extra = merged(block)
        trial: dict[int, np.ndarray] = {}
        for rep, a in coeffs:
            k = index[rep]
            if k not in columns:
                columns[k] = merged(lumped.blocks[k])
            trial[k] = trial.get(k, columns[k]) + a * extra
        if all(_float64_values(columns[k]) and _float64_values(col)
               for k, col in trial.items()):
            columns.update(trial)
            return True
        return False

    out: _Combined = []
    for j, (cb, coeffs) in enumerate(combined):
        if fold(cb, coeffs):
            out.append((cb, coeffs))
            continue
        # c(t) = sum a_k c(r_k) also says c(r_i) = (c(t) - sum_{k != i} a_k c(r_k)) / a_i:
        # remove r_i instead (t stays) when no other combination names r_i and that fold is
        # exact (t = r0 / 3 + r1 does not fold in floats, r0 = 3 t - 3 r1 may)
        others = {rep for i, (_, co) in enumerate(combined) if i != j for rep, _ in co}
        t = cb[0]
        for r_i, a_i in coeffs:
            if r_i in others:  # (then no fold so far changed its column either)
                continue
            alt = [(t, 1 / a_i)] + [(r, -a / a_i) for r, a in coeffs if r != r_i]
            block_i = list(lumped.blocks[index[r_i]])
            if fold(block_i, alt):
                out.append((block_i, sorted(alt)))
                break
    return sorted(out, key=lambda c: c[0][0])


def _dependent_blocks(
    flat_m: np.ndarray, b_eff: np.ndarray, blocks: Sequence[Sequence[int]]
) -> tuple[list[list[int]], _Combined]:
    """Split blocks into kept ones and ones whose representative vector depends linearly
    on earlier kept representatives (exact Gaussian elimination)."""
    basis: list[tuple[list[Fraction], int, dict[int, Fraction]]] = []
    kept: list[list[int]] = []
    combined: _Combined = []
    for b in blocks:
        r = b[0]
        x = [to_rational(b_eff[r])] + [to_rational(v) for v in flat_m[r]]
        expr: dict[int, Fraction] = {r: Fraction(1)}
        for vec, piv, comb in basis:
            if x[piv] != 0:
                f = x[piv] / vec[piv]
                x = [a - f * c for a, c in zip(x, vec, strict=True)]
                for k, c in comb.items():
                    expr[k] = expr.get(k, Fraction(0)) - f * c
        pivot = next((j for j, a in enumerate(x) if a != 0), None)
        if pivot is None:
            # 0 = c(r) - sum_k (-expr[k]) c(k)  ->  c(r) = sum_k -expr[k] c(k)
            coeffs = [(k, -c) for k, c in sorted(expr.items()) if k != r and c != 0]
            combined.append((list(b), coeffs))
        else:
            basis.append((x, pivot, expr))
            kept.append(list(b))
    return kept, combined


def _fold_combined(wr: np.ndarray, m: np.ndarray, blocks: Sequence[Sequence[int]],
                   combined: list[tuple[list[int], list[tuple[int, Fraction]]]],
                   rho: list[Fraction], exact_net: bool) -> np.ndarray:
    """Add the merged columns of combined blocks to their kept blocks (exactly); only the
    columns involved are computed in rationals."""
    index = {b[0]: k for k, b in enumerate(blocks)}
    cols: dict[int, np.ndarray] = {}
    for cb, coeffs in combined:
        extra = _merged_exact(wr, cb, lambda u: rho[u])
        for rep, a in coeffs:
            k = index[rep]
            base = cols[k] if k in cols else _exact_obj(np.asarray(m[:, k, :]))
            cols[k] = base + a * extra
    if not exact_net and not is_exact_array(m):
        as_float = {k: _to_float(c) for k, c in cols.items()}
        if not any(changed for _, changed in as_float.values()):
            out = np.array(m, dtype=np.float64, copy=True)
            for k, (f, _) in as_float.items():
                out[:, k, :] = f
            return out
    out = _exact_obj(m).copy()
    for k, c in cols.items():
        out[:, k, :] = c
    return out


def _merged_exact(wr: np.ndarray, members: Sequence[int],
                  factor: Callable[[int], Fraction]) -> np.ndarray:
    """``sum_{u in members} Wr[:, u, :] / rho(u)`` in rationals, shape ``(out, P)``:
    :func:`_merge` of one block, converting only its members' columns."""
    sub = _exact_obj(np.asarray(wr[:, list(members), :]))
    merged = _merge(sub, [range(len(members))], [factor(u) for u in members], True)
    return np.asarray(merged[:, 0, :], dtype=object)


def _rebuild_fast(layer: Dense | Conv2d, merged: _Merged, b_eff: np.ndarray, rows: list[int],
                  new_cols: np.ndarray | None, work: _Workspace | None = None
                  ) -> tuple[Layer, bool]:
    """:func:`_rebuild` for the float matrix of :func:`_fast_merge` (finite, checked).

    Float32 layers whose weights were not merged stay float32 (the values
    are their own); merged sums are float64.  Also says whether a weight was
    rounded (columns built times an integer, divided back inexactly).

    With ``work`` (the workspace whose arena holds ``merged.mb``, not needed
    afterwards), a dense layer's float64 reduced weights stay in the arena as views
    (:meth:`_Workspace.keep`): no copy into fresh pages (page faults cost more
    than the copy).
    """
    mb = merged.mb
    # (dense layers only: numpy's convolution sums a strided kernel in another order, so a
    # convolution's weights are copied into contiguous memory below)
    if (work is not None and isinstance(layer, Dense) and merged.col_div is None
            and _in_order(new_cols) and merged.dtype == np.float64 and len(rows) > 0):
        idx = np.asarray(rows, dtype=np.int64)
        if bool(np.all(np.diff(idx) > 0)):
            kept = work.keep(mb, idx)
            if kept is not None:
                return _fast_layer(layer, kept, np.ascontiguousarray(np.asarray(b_eff)[rows]),
                                   new_cols), False
    wq = np.empty((len(rows), mb.shape[1] - 1), dtype=merged.dtype)
    changed = False
    with threads_for(wq.size):
        if merged.col_div is None:
            take_rows(mb, np.asarray(rows, dtype=np.int64), 1, wq)
        else:  # columns built times an integer: divided back, rounded when inexact
            changed = take_rows_divided(mb, np.asarray(rows, dtype=np.int64), 1,
                                        merged.col_div, wq)
    bq = np.ascontiguousarray(np.asarray(b_eff)[rows])
    return _fast_layer(layer, wq, bq, new_cols), changed


def _in_order(cols: np.ndarray | None) -> bool:
    """Whether a grouping of a dense layer's inputs (channel x position) is the inputs in
    their own order, one per channel (``None``: no grouping)."""
    return cols is None or (cols.shape[1] == 1
                            and np.array_equal(cols[:, 0], np.arange(cols.shape[0])))


def _fast_layer(layer: Dense | Conv2d, wq: np.ndarray, bq: np.ndarray,
                new_cols: np.ndarray | None) -> Layer:
    """The reduced layer of :func:`_rebuild_fast` from its merged weights (kept rows)."""
    if isinstance(layer, Conv2d):
        kh, kw = layer.weight.shape[2:]
        return trusted_layer(Conv2d, weight=wq.reshape(wq.shape[0], -1, kh, kw), bias=bq,
                             stride=layer.stride, padding=layer.padding)
    if new_cols is not None and not np.array_equal(new_cols.reshape(-1),
                                                   np.arange(new_cols.size)):
        # the merged columns are (channel, position); a plain flatten of (C, H, W) keeps
        # that order (no copy), others scatter them to their places
        w = np.empty((wq.shape[0], new_cols.size), dtype=wq.dtype)
        w[:, new_cols] = wq.reshape(wq.shape[0], new_cols.shape[0], new_cols.shape[1])
        wq = w
    return trusted_layer(Dense, weight=wq, bias=bq)


def _rebuild(layer: Dense | Conv2d, m: np.ndarray, b_eff: np.ndarray, rows: list[int],
             exact_net: bool, new_cols: np.ndarray | None) -> tuple[Layer, bool]:
    """The reduced linear layer from the merged tensor (rows = kept neurons)."""
    wq = m[rows]
    bq = b_eff[rows]
    changed = False
    if not exact_net:
        wq, c1 = _to_float(wq)
        bq, c2 = _to_float(bq)
        changed = c1 or c2
    else:
        wq = _exact_obj(wq)
        bq = _exact_obj(bq)
    if isinstance(layer, Conv2d):
        o, k, _ = wq.shape
        kh, kw = layer.weight.shape[2:]
        return Conv2d(wq.reshape(o, k, kh, kw), bq, layer.stride, layer.padding), changed
    if new_cols is None:
        return Dense(wq.reshape(wq.shape[0], wq.shape[1] * wq.shape[2]), bq), changed
    w = np.empty((wq.shape[0], new_cols.size), dtype=wq.dtype)
    w[:, new_cols] = wq
    return Dense(w, bq), changed


def _lump_layer(
    flat_m: np.ndarray,
    b_eff: np.ndarray,
    candidates: np.ndarray,
    labels: list[tuple[Any, ...]],
    factors: Factors,
    exact: bool,
    tol: float,
    merge_err: np.ndarray | None = None,
) -> _Lumped:
    """Coarsest lumping of the candidate neurons of one layer via lumpcore.

    ``merge_err`` (tolerance mode) bounds, per neuron, how far ``flat_m``'s float
    merged row lies from the exact one; the deviation bound adds it.
    """
    n_src = flat_m.shape[1]
    m = candidates.shape[0]
    if m == 0:
        return _nothing_lumped(flat_m.shape[0])
    if m == flat_m.shape[0]:
        sub, bsub = flat_m, b_eff
    else:
        sub, bsub = flat_m[candidates], b_eff[candidates]
    obj = is_exact_array(sub) or is_exact_array(bsub)
    if obj:
        sub = _exact_obj(sub)
        bsub = _exact_obj(bsub)
    labels_init: list[Any] = ["bias"] + [("src", j) for j in range(n_src)]
    labels_init += [("neuron", labels[v]) for v in candidates.tolist()]
    if not obj:  # float arrays: lumpcore's dense path, as for the compiled merge
        merged = _merged_columns(
            np.ascontiguousarray(flat_m, dtype=np.float64), np.arange(n_src),
            np.zeros(n_src, dtype=np.int64), 1, np.asarray(b_eff, dtype=np.float64),
            _Channels.singletons(n_src), exact, tol, factors, _Workspace())
        if merged is not None:  # None only for non-finite entries (not in a valid network)
            return _lump_layer_dense(merged, flat_m, b_eff, candidates, labels, factors,
                                     exact, tol, merge_err)
    # full incoming vector: column 0 = bias, then the scaled block sums
    vec = np.concatenate([bsub.reshape(m, 1), sub], axis=1) if n_src else bsub.reshape(m, 1)
    scale: np.ndarray | None = None
    if factors == "nonzero":
        # rho may be negative: make the first non-zero coordinate positive
        nz = vec != 0
        first = np.argmax(nz, axis=1)
        sign_src = vec[np.arange(m), first]
        sign = np.array([1 if s >= 0 else -1 for s in sign_src], dtype=np.int64)
        vec = vec * sign.reshape(m, 1)
    else:
        sign = np.ones(m, dtype=np.int64)
    exact_scale: list[Fraction] | None = None
    if not exact:
        if obj and factors != "one":  # the rows' largest entries, exactly (see _collect)
            exact_scale = [max((abs(x) for x in row), default=Fraction(0)) or Fraction(1)
                           for row in vec.tolist()]
        vec = vec.astype(np.float64) if obj else vec
        if factors != "one":
            scale = np.max(np.abs(vec), axis=1)
            scale[scale == 0] = 1.0
            vec = vec / scale.reshape(m, 1)
    rows, cols = np.nonzero(vec != 0) if not obj else np.nonzero(
        np.vectorize(lambda x: x != 0, otypes=[bool])(vec))
    weights = vec[rows, cols]
    n_nodes = 1 + n_src + m
    g = WeightedGraph.from_edges(n_nodes, cols, 1 + n_src + rows, weights)
    lump = coarsest_lumping(
        g, initial=labels_init, direction="backward", proportional=factors != "one",
        arithmetic="exact" if exact else "float", tolerance=tol,
    )
    return _collect(lump, candidates, flat_m.shape[0], n_src, sign, scale, exact, flat_m,
                    b_eff, None, merge_err, exact_scale)


def _nothing_lumped(n: int) -> _Lumped:
    return _Lumped((), (), np.full(n, -1, dtype=np.int64), np.ones(n, dtype=np.float64), True,
                   0.0)


def _collect(lump: Any, cand: np.ndarray, n_out: int, n_src: int, sign: np.ndarray,
             scale: np.ndarray | None, exact: bool, flat_m: np.ndarray, b_eff: np.ndarray,
             mb: np.ndarray | None = None, merge_err: np.ndarray | None = None,
             exact_scale: list[Fraction] | None = None) -> _Lumped:
    """Blocks and factors of the neurons from lumpcore's answer (undoing sign/scale).

    ``cand`` (increasing) are the lumped neurons of a layer of ``n_out``;
    ``merge_err`` as for :func:`_lump_layer`.  In tolerance mode ``scale`` are
    the rows' largest absolute entries (as floats; ``exact_scale``: exactly,
    for rows of rationals): a neuron whose normalised row is its
    representative's gets the ratio of the two largest entries as its factor,
    exactly (3, not the float nearest 3, for a row three times another).
    """
    m = cand.shape[0]
    tb = np.asarray(lump.block_of[1 + n_src:])
    # blocks in the order of their smallest member (the representative)
    _, first, inv = np.unique(tb, return_index=True, return_inverse=True)
    nb = first.shape[0]
    rank = np.empty(nb, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(nb)
    local = rank[inv.reshape(-1)]
    rep_local = np.sort(first)[local]
    order = np.argsort(local, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(local, minlength=nb))].tolist()
    is_rep = rep_local == np.arange(m)
    flip = sign != sign[rep_local]
    one = Fraction(1)
    fr: list[Fraction] | None  # exact factor per candidate (None: all 1)
    lrho = lump.rho
    rounded_f: np.ndarray | None = None  # tolerance mode: factors made exact ratios
    if lrho is None:
        fr, rf, pow2 = None, np.ones(m, dtype=np.float64), True
    elif exact and lump.rho_ratio is not None:
        num, den = (a[1 + n_src:] for a in lump.rho_ratio)
        rf = num / den
        mn, en = np.frexp(num)
        md, ed = np.frexp(den)
        pow2 = bool(np.all((mn == md) & (np.abs(en.astype(np.int64) - ed) < 1000)))
        fr = list(lrho[1 + n_src:])
    elif exact:
        fr = list(lrho[1 + n_src:])
        rf = np.array([float(x) for x in fr], dtype=np.float64)
        pow2 = all(x == 1 or _pow2(x) for x in fr)
    else:
        assert scale is not None
        with np.errstate(over="ignore", under="ignore"):  # (refused just below)
            rf = np.asarray(lrho[1 + n_src:], dtype=np.float64) * scale[rep_local] / scale
        rf[is_rep] = 1.0
        if not np.all(np.isfinite(rf) & (rf != 0)):
            # rows of sizes 2^-449 and 2^716 grouped: their factor has no float64 value
            raise _beyond_float64("a factor between two merged neurons below 2^-1074 or of "
                                  "2^1024 or more (rows of very different sizes)")
        cache = {x: Fraction(x) for x in set(rf.tolist())}
        fr = [cache[x] for x in rf.tolist()]
        rounded_f = _exact_factors(fr, rf, np.asarray(lrho[1 + n_src:], dtype=np.float64)
                                   == 1.0, is_rep, rep_local, scale, exact_scale)
        pow2 = False  # not needed: tolerance mode merges in float arithmetic
    if flip.any():
        rf = np.where(flip, -rf, rf)
        if fr is not None:
            fr = [-x if f else x for x, f in zip(fr, flip.tolist(), strict=True)]
        pow2 = False
    members = cand[order].tolist()
    # one tuple per block, built by C-level iteration (thousands of blocks per layer)
    cuts = list(map(slice, bounds[:-1], bounds[1:]))
    blocks = tuple(map(tuple, map(members.__getitem__, cuts)))
    if fr is None:
        rho = tuple((one,) * (b - a) for a, b in itertools.pairwise(bounds))
    else:
        fs = list(map(fr.__getitem__, order.tolist()))
        rho = tuple(map(tuple, map(fs.__getitem__, cuts)))
    block_of = np.full(n_out, -1, dtype=np.int64)
    block_of[cand] = local
    rho_f = np.ones(n_out, dtype=np.float64)
    rho_f[cand] = rf
    dev = 0.0
    if not exact:
        nonrep = np.flatnonzero(~is_rep)
        pv, pr, rv = cand[nonrep], cand[rep_local[nonrep]], rf[nonrep]
        if mb is not None:
            with threads_for(pv.shape[0] * mb.shape[1]):
                dev = deviation_bound(mb, pv, pr, rv)
        else:
            dev = _deviation_bound(pv, pr, rv, np.asarray(flat_m, dtype=np.float64),
                                   np.asarray(b_eff, dtype=np.float64))
        if rounded_f is not None and rounded_f.size:
            # these factors are exact ratios, their floats within a relative 2^-53: the
            # bound above is of |rv x - y|, the factor's rounding adds up to 2^-53 |rv x|
            assert scale is not None
            dev += 2.0**-51 * float(np.max(np.abs(rf[rounded_f]) * scale[rounded_f]))
        if merge_err is not None and pv.size:
            # the merged rows are float sums: their distance from the exact ones (which the
            # certificate's conditions are about) adds, scaled like the rows
            dev += float(np.max(np.abs(rv) * merge_err[pv] + merge_err[pr]))
        dev *= 1 + 2.0**-40
        if not math.isfinite(dev):
            raise _beyond_float64("the deviation of a merge in tolerance mode (weights of "
                                  "2^1000 or more)")
    return _Lumped(blocks, rho, block_of, rho_f, pow2, dev)


def _exact_factors(fr: list[Fraction], rf: np.ndarray, same: np.ndarray,
                   is_rep: np.ndarray, rep_local: np.ndarray, scale: np.ndarray,
                   exact_scale: list[Fraction] | None) -> np.ndarray | None:
    """In place: the factor of every non-representative whose normalised row is its
    representative's (``same``) becomes the exact ratio of the two rows' largest
    entries (``fr``; ``rf`` its nearest float).  Ratios of floats with equal
    significands are powers of two, exact as floats already: only the others are
    divided as rationals.  Returns the (local) indices whose factor changed."""
    todo = same & ~is_rep
    if exact_scale is None:
        mant_v = np.frexp(scale)[0]
        todo &= mant_v != mant_v[rep_local]
    idx = np.flatnonzero(todo)
    if not idx.size:
        return None
    if exact_scale is None:
        conv = {x: Fraction(x) for x in set(scale[idx].tolist())
                | set(scale[rep_local[idx]].tolist())}
        num = [conv[x] for x in scale[rep_local[idx]].tolist()]
        den = [conv[x] for x in scale[idx].tolist()]
    else:
        num = [exact_scale[r] for r in rep_local[idx].tolist()]
        den = [exact_scale[k] for k in idx.tolist()]
    for k, a, b in zip(idx.tolist(), num, den, strict=True):
        q = a / b
        fr[k] = q
        rf[k] = float(q)
    return idx


def _deviation_bound(pv: np.ndarray, pr: np.ndarray, rv: np.ndarray, w: np.ndarray,
                     b: np.ndarray, chunk: int = 256) -> float:
    """Upper bound of ``max |rho(v) c_j(v) - c_j(rep)|`` over merged members ``v``.

    ``pv[k]`` is merged into ``pr[k]`` with factor ``rv[k]``.  The float
    difference plus a relative margin of 2^-40 that covers the roundings of
    the product, of the difference and of rows converted from rationals, and
    an absolute one of ``2^-1073 (|rho| + 1)`` for values that underflowed;
    the caller adds the error of float merged sums (:func:`_collect`).
    """
    if not pv.size:
        return 0.0
    dev = 0.0
    for lo in range(0, pv.shape[0], chunk):
        sl = slice(lo, lo + chunk)
        r = rv[sl, None]
        for part in (b[:, None], w):
            scaled = r * part[pv[sl]]
            ref = part[pr[sl]]
            bound = np.abs(scaled - ref) + 2.0**-40 * (np.abs(scaled) + np.abs(ref)) \
                + 2.0**-1073 * (np.abs(r) + 1)
            if bound.size:
                dev = max(dev, float(bound.max()))
    return dev


def _float_merge_error(wr: np.ndarray, prev: _Channels) -> np.ndarray | None:
    """:func:`_merge_error_scale` times each row's largest term ``|w * fl(1 / rho)|``,
    for the float merge of ``wr`` (out, C, P) by ``prev``'s blocks in :func:`_merge`
    (``None``: a copy)."""
    live = prev.block_of >= 0
    scales = 1.0 / prev.rho_f
    c = _merge_error_scale(prev, scales[live])
    if not c or wr.shape[0] == 0:
        return None
    terms = np.abs(np.asarray(wr, dtype=np.float64)[:, live, :]) * np.abs(scales[live])[
        None, :, None]
    return _merge_error(terms.reshape(terms.shape[0], -1).max(axis=1, initial=0.0), c,
                        max(map(len, prev.blocks), default=1))


def _finish(net: Network, red_net: Network, results: list[LayerReduction], exact: bool,
            tol: float, max_dev: float, rounded: bool, t0: float, certify: bool) -> Reduction:
    seconds = time.perf_counter() - t0
    cert = _certificate(net, red_net, results, exact, tol, max_dev, rounded) if certify else None
    return Reduction(network=red_net, original=net, layers=tuple(results),
                     mode="exact" if exact else "tolerance", tolerance=tol,
                     max_weight_deviation=max_dev, rounded=rounded, seconds=seconds,
                     certificate=cert)


def _neurons(net: Network) -> list[int]:
    return [int(lyr.weight.shape[0]) for lyr in net.layers if isinstance(lyr, Dense | Conv2d)]


def _certificate(net: Network, red: Network, results: list[LayerReduction], exact: bool,
                 tol: float, max_dev: float, rounded: bool) -> dict[str, Any]:
    return {
        "format": "lumpkit-nn-certificate",
        # the lowest version that can say it: 2 for removals under factors "one", 3 for a
        # placeholder (a layer whose neurons are all removed), 4 for unused neurons, 5 for
        # a representative that is not its block's smallest member
        "version": 5 if any(b[0] != min(b) for r in results for b in r.blocks)
        else 4 if any(r.unused for r in results)
        else 3 if any(r.placeholder is not None for r in results)
        else 2 if any(r.factors == "one" and r.removed for r in results) else 1,
        "mode": "exact" if exact else "tolerance",
        "tolerance": rational_to_str(Fraction(tol)),
        "max_weight_deviation": rational_to_str(Fraction(max_dev)),
        "original": {"sha256": network_sha256(net), "num_params": net.num_params,
                     "neurons": _neurons(net)},
        "reduced": {"sha256": network_sha256(red), "num_params": red.num_params,
                    "neurons": _neurons(red),
                    "number_type": "rational" if red.exact else "float64",
                    "rounded": rounded},
        "layers": [
            {"layer": lr.layer, "reduced_layer": lr.reduced_layer, "kind": lr.kind,
             "post_ops": list(lr.post_ops), "factors": lr.factors,
             "neurons_before": lr.neurons_before, "neurons_after": lr.neurons_after,
             "blocks": [list(b) for b in lr.blocks],
             "rho": [[rational_to_str(r) for r in rs] for rs in lr.rho],
             "removed": [{"neuron": j, "value": rational_to_str(v),
                          "reason": "dead" if v == 0 else "constant"} for j, v in lr.removed],
             **({"combined": [
                 {"block": list(cb), "rho": [rational_to_str(r) for r in cr],
                  "coefficients": [[k, rational_to_str(a)] for k, a in co]}
                 for cb, cr, co in lr.combined]} if lr.combined else {}),
             **({"placeholder": lr.placeholder} if lr.placeholder is not None else {}),
             **({"unused": list(lr.unused)} if lr.unused else {})}
            for lr in results
        ],
    }


def save_certificate(reduction: Reduction, path: str | os.PathLike[str]) -> None:
    """Write the reduction's certificate as JSON (atomically).

    Parameters
    ----------
    reduction : Reduction
        Made with ``certify=True`` (the default).
    path : str or path-like

    Raises
    ------
    ValueError
        If the reduction carries no certificate.

    Examples
    --------
    >>> import json, os, tempfile, numpy as np
    >>> from nnreduce import Activation, Dense, Network
    >>> net = Network((Dense([[1.0], [2.0]], [0.0, 0.0]), Activation("relu"),
    ...                Dense([[1.0, 1.0]], [0.0])), (1,))
    >>> path = os.path.join(tempfile.mkdtemp(), "cert.json")
    >>> save_certificate(reduce_network(net), path)
    >>> json.load(open(path))["layers"][0]["rho"]
    [['1', '1/2']]
    """
    if reduction.certificate is None:
        raise _ReductionInputError(
            "this reduction has no certificate; call reduce_network(..., certify=True)"
        )
    atomic_write_text(Path(path), json.dumps(reduction.certificate, indent=1) + "\n")

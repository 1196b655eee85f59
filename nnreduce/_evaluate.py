"""Float and exact evaluation of a :class:`Network`, and its dense (MLP) view.

Both evaluators share one implementation over numpy arrays: ``float64``
arrays for :func:`evaluate`, ``object`` arrays of ``Fraction`` for
:func:`evaluate_exact`.  The non-rational activations (tanh, sigmoid, gelu,
gelu_tanh, elu, selu, celu, silu, softplus, mish, softmax) cannot be
evaluated in rational arithmetic; the exact evaluator applies them to the
correctly rounded float of the exact pre-activation and takes the float
result exactly.  That is a deterministic function of the exact
pre-activation, so two networks whose pre-activations agree exactly still
agree exactly after such an activation.  Where such a function is the
identity (elu and celu for ``x > 0``, softplus above its threshold) the
exact evaluator returns ``x`` itself; the rational activations
(hard_sigmoid, hard_swish, softsign, clip, ...) are evaluated exactly.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lumpcore import ModelFormatError, UnsupportedLayerError, to_rational

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
    Normalization,
    Permute,
    _exact,
    float_array,
    is_exact_array,
)

__all__ = ["dense_layers", "evaluate", "evaluate_exact"]

_ZERO = Fraction(0)


def _cast(a: np.ndarray, exact: bool) -> np.ndarray:
    if exact:
        return _exact(a)
    return float_array(a, "evaluate it with evaluate_exact")


def _prepare_input(net: Network, x: Any, exact: bool) -> tuple[np.ndarray, bool]:
    shape = net.input_shape
    if exact:
        arr = np.asarray(x, dtype=object)
        flat = arr.reshape(-1)
        out = np.empty(arr.shape, dtype=object)
        of = out.reshape(-1)
        for k in range(flat.shape[0]):
            try:
                of[k] = to_rational(flat[k])
            except ValueError as exc:
                raise ModelFormatError(f"input entry {k}: {exc}") from None
        arr = out
    else:
        arr = np.asarray(x, dtype=np.float64)
    if arr.shape == shape:
        return arr[None], True
    if arr.shape[1:] != shape:
        raise ModelFormatError(
            f"input has shape {arr.shape}; expected {shape} or (batch, *{shape})"
        )
    return arr, False


def _normalize_input(nrm: Normalization, x: np.ndarray, exact: bool) -> np.ndarray:
    flat = x.reshape(x.shape[0], -1)
    lo, hi = nrm.input_min, nrm.input_max
    mean = _cast(nrm.input_mean, exact)
    rng = _cast(nrm.input_range, exact)
    if lo is not None:
        flat = np.maximum(flat, _cast(lo, exact)) if not exact else _clip_lo(flat, lo)
    if hi is not None:
        flat = np.minimum(flat, _cast(hi, exact)) if not exact else _clip_hi(flat, hi)
    return ((flat - mean) / rng).reshape(x.shape)


def _clip_lo(flat: np.ndarray, lo: np.ndarray) -> np.ndarray:
    b = np.broadcast_to(lo, flat.shape)
    return np.where(flat < b, b, flat)


def _clip_hi(flat: np.ndarray, hi: np.ndarray) -> np.ndarray:
    b = np.broadcast_to(hi, flat.shape)
    return np.where(flat > b, b, flat)


def _conv(x: np.ndarray, layer: Conv2d, exact: bool) -> np.ndarray:
    w = _cast(layer.weight, exact)
    b = _cast(layer.bias, exact)
    t, left, bot, r = layer.padding
    if any(layer.padding):
        pad_val: Any = _ZERO if exact else 0.0
        x = np.pad(x, ((0, 0), (0, 0), (t, bot), (left, r)), constant_values=pad_val)
    _, _, kh, kw = w.shape
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))  # (N, C, OH', OW', kh, kw)
    win = win[:, :, :: layer.stride[0], :: layer.stride[1]]
    # contract over C, kh, kw -> (N, OH, OW, O)
    out = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))
    out = out + b
    return np.ascontiguousarray(np.moveaxis(out, 3, 1))


def _pool(x: np.ndarray, layer: MaxPool2d | AvgPool2d, exact: bool) -> np.ndarray:
    t, left, bot, r = layer.padding
    kh, kw = layer.kernel
    is_max = isinstance(layer, MaxPool2d)
    if any(layer.padding):
        if is_max:
            pad_val: Any = -math.inf
        else:
            pad_val = _ZERO if exact else 0.0
        x = np.pad(x, ((0, 0), (0, 0), (t, bot), (left, r)), constant_values=pad_val)
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))
    win = win[:, :, :: layer.stride[0], :: layer.stride[1]]
    if is_max:
        return np.max(win, axis=(4, 5))
    assert isinstance(layer, AvgPool2d)
    s = np.sum(win, axis=(4, 5))
    if layer.count_include_pad or not any(layer.padding):
        return s * Fraction(1, kh * kw) if exact else s / float(kh * kw)
    ones = np.ones(x.shape[2:], dtype=np.int64)
    ones = np.pad(np.ones((x.shape[2] - t - bot, x.shape[3] - left - r), dtype=np.int64),
                  ((t, bot), (left, r))) if any(layer.padding) else ones
    cnt = sliding_window_view(ones, (kh, kw))[:: layer.stride[0], :: layer.stride[1]].sum(
        axis=(2, 3))
    if exact:
        inv = np.vectorize(lambda c: Fraction(1, int(c)), otypes=[object])(cnt)
        return s * inv
    return s / cnt


def _channel_param(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Broadcast a per-channel parameter along axis 1 of a batch ``x``."""
    return p.reshape((1, -1) + (1,) * (x.ndim - 2))


def _activation(x: np.ndarray, layer: Activation, exact: bool) -> np.ndarray:
    kind = layer.kind
    if kind == "identity":
        return x
    zero: Any = _ZERO if exact else 0.0
    if kind == "relu":
        return np.where(x > 0, x, zero)
    if kind == "leaky_relu":
        assert layer.alpha is not None
        a: Any = layer.alpha if exact else float(layer.alpha)
        return np.where(x > 0, x, x * a)
    if kind == "prelu":
        assert layer.slopes is not None
        s = _channel_param(_cast(layer.slopes, exact), x)
        return np.where(x > 0, x, x * s)
    if kind == "clip":
        assert layer.bounds is not None
        lo, hi = layer.bounds
        out = x
        if lo is not None:
            lo_v: Any = lo if exact else float(lo)
            out = np.where(out > lo_v, out, lo_v)
        if hi is not None:
            hi_v: Any = hi if exact else float(hi)
            out = np.where(out < hi_v, out, hi_v)
        return out
    if kind in ("softmax", "log_softmax"):
        return _softmax(x, kind == "log_softmax", exact)
    if kind in _SMOOTH:
        return _smooth(x, layer, exact)
    if kind in ("hard_sigmoid", "hard_swish", "softsign"):
        return _rational_activation(x, layer, exact)
    fn = {"tanh": math.tanh,
          "sigmoid": _sigmoid,
          "gelu": _gelu}[kind]
    if exact:
        flat = x.reshape(-1)
        out = np.empty(flat.shape, dtype=object)
        out[:] = [Fraction(fn(float(v))) for v in flat]
        return out.reshape(x.shape)
    if kind == "tanh":
        return np.tanh(x)
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    return np.vectorize(_gelu, otypes=[np.float64])(x) if x.size else x


def _softmax(x: np.ndarray, log: bool, exact: bool) -> np.ndarray:
    """(Log-)softmax over the features of a batch ``(N, n)``.

    Exact input is rounded to float64 first and the float result taken
    exactly (a deterministic function of the exact input, as for tanh).
    """
    xf = np.array([[float(v) for v in row] for row in x], dtype=np.float64).reshape(x.shape) \
        if exact else x
    shifted = xf - np.max(xf, axis=1, keepdims=True) if xf.size else xf
    e = np.exp(shifted)
    total = np.sum(e, axis=1, keepdims=True)
    out = shifted - np.log(total) if log else e / total
    if not exact:
        return out
    res = np.empty(out.shape, dtype=object)
    res.reshape(-1)[:] = [Fraction(float(v)) for v in out.reshape(-1)]
    return res


#: SELU's fixed constants (PyTorch's, to float64 precision).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
#: The constants of GELU's tanh approximation.
GELU_TANH_C = math.sqrt(2.0 / math.pi)
GELU_TANH_CUBIC = 0.044715
#: The element-wise kinds computed by :func:`_smooth_float`.
_SMOOTH = ("elu", "selu", "celu", "silu", "softplus", "mish", "gelu_tanh")


def _smooth_float(x: np.ndarray, layer: Activation) -> np.ndarray:
    """A smooth activation of :data:`_SMOOTH` on a float64 array (as PyTorch computes it).

    Every branch is evaluated on values where it cannot overflow (``exp`` of
    ``min(x, 0)``), so that no floating-point warning is raised.
    """
    kind = layer.kind
    alpha = float(layer.alpha) if layer.alpha is not None else 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        if kind == "elu":
            return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))
        if kind == "selu":
            return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))
        if kind == "celu":  # x / alpha <= 0 where it is used if alpha > 0
            neg = np.minimum(x, 0.0) / alpha
            return np.where(x > 0, x, alpha * np.expm1(neg))
        if kind == "silu":
            return x / (1.0 + np.exp(-x))
        if kind == "softplus":
            sp = np.logaddexp(0.0, x)  # log(1 + exp(x)) without overflow
            if layer.threshold is None:
                return sp
            return np.where(x > float(layer.threshold), x, sp)
        if kind == "mish":
            return x * np.tanh(np.logaddexp(0.0, x))
        assert kind == "gelu_tanh"
        # (1 + tanh(u)) / 2 = sigmoid(2 u): no cancellation where tanh(u) is near -1
        u = GELU_TANH_C * (x + GELU_TANH_CUBIC * x * x * x)
        return x / (1.0 + np.exp(-2.0 * u))


def _smooth(x: np.ndarray, layer: Activation, exact: bool) -> np.ndarray:
    """A smooth activation; exactly: of the rounded pre-activation (module notes), and
    ``x`` itself where the function is the identity."""
    if not exact:
        return _smooth_float(x, layer) if x.size else x
    flat = x.reshape(-1)
    vals = _smooth_float(np.array([float(v) for v in flat], dtype=np.float64), layer)
    if not np.all(np.isfinite(vals)):
        k = int(np.flatnonzero(~np.isfinite(vals))[0])
        raise ModelFormatError(
            f"activation {layer.kind} (alpha {layer.alpha}) is {vals[k]} at the pre-activation "
            f"{float(flat[k])!r}; exact evaluation needs finite values")
    kind = layer.kind
    if kind in ("elu", "celu"):
        ident = [v > 0 for v in flat]
    elif kind == "softplus" and layer.threshold is not None:
        ident = [v > layer.threshold for v in flat]
    else:
        ident = [False] * flat.shape[0]
    out = np.empty(flat.shape, dtype=object)
    out[:] = [v if keep else Fraction(float(f))
              for v, f, keep in zip(flat, vals.tolist(), ident, strict=True)]
    return out.reshape(x.shape)


def _rational_activation(x: np.ndarray, layer: Activation, exact: bool) -> np.ndarray:
    """hard_sigmoid, hard_swish and softsign: rational functions, exact on Fractions."""
    if layer.kind == "softsign":
        return x / (1 + np.abs(x)) if x.size else x
    assert layer.alpha is not None and layer.beta is not None
    zero: Any = _ZERO if exact else 0.0
    one: Any = Fraction(1) if exact else 1.0
    a: Any = layer.alpha if exact else float(layer.alpha)
    b: Any = layer.beta if exact else float(layer.beta)
    y = x * a + b
    hs = np.where(y > zero, y, zero)
    hs = np.where(hs < one, hs, one)
    return x * hs if layer.kind == "hard_swish" else hs


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v)) if v >= -700 else 0.0


def _gelu(v: float) -> float:
    return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))


def _apply(layer: Layer, x: np.ndarray, exact: bool) -> np.ndarray:
    if isinstance(layer, Dense):
        return x @ _cast(layer.weight, exact).T + _cast(layer.bias, exact)
    if isinstance(layer, Conv2d):
        return _conv(x, layer, exact)
    if isinstance(layer, MaxPool2d | AvgPool2d):
        return _pool(x, layer, exact)
    if isinstance(layer, Flatten):
        return x.reshape(x.shape[0], -1)
    if isinstance(layer, Permute):
        return np.ascontiguousarray(np.transpose(x, (0, *(p + 1 for p in layer.perm))))
    if isinstance(layer, BatchNorm):
        return x * _channel_param(_cast(layer.scale, exact), x) + _channel_param(
            _cast(layer.shift, exact), x)
    if isinstance(layer, Activation):
        return _activation(x, layer, exact)
    raise UnsupportedLayerError(f"cannot evaluate {type(layer).__name__}")  # pragma: no cover


def _run(net: Network, x: Any, exact: bool, normalize: bool) -> np.ndarray:
    arr, single = _prepare_input(net, x, exact)
    nrm = net.normalization if normalize else None
    if nrm is not None:
        arr = _normalize_input(nrm, arr, exact)
    for layer in net.layers:
        arr = _apply(layer, arr, exact)
    if nrm is not None:
        flat = arr.reshape(arr.shape[0], -1)
        flat = flat * _cast(nrm.output_range, exact) + _cast(nrm.output_mean, exact)
        arr = flat.reshape(arr.shape)
    return arr[0] if single else arr


def evaluate(net: Network, x: Any, *, normalize: bool = True) -> np.ndarray:
    """Evaluate ``net`` in float64 arithmetic.

    Parameters
    ----------
    net : Network
    x : array_like
        One input of shape ``net.input_shape`` or a batch ``(N, *net.input_shape)``.
    normalize : bool
        Apply the network's :class:`Normalization` (if any).  Default True.

    Returns
    -------
    numpy.ndarray of float64
        Shape ``net.output_shape`` (single input) or ``(N, *net.output_shape)``.

    Raises
    ------
    ModelFormatError
        If ``x`` has the wrong shape.

    Examples
    --------
    >>> import numpy as np
    >>> net = Network((Dense([[1.0, -1.0]], [0.5]), Activation("relu")), (2,))
    >>> evaluate(net, [[3.0, 1.0], [0.0, 2.0]])
    array([[2.5],
           [0. ]])
    """
    return _run(net, x, exact=False, normalize=normalize)


def evaluate_exact(net: Network, x: Any, *, normalize: bool = True) -> np.ndarray:
    """Evaluate ``net`` in exact rational arithmetic (float weights at their binary value).

    Parameters
    ----------
    net : Network
    x : array_like
        Numbers accepted by :func:`lumpcore.to_rational` (floats exactly,
        ``Fraction``, ``'p/q'`` strings); one input or a batch.
    normalize : bool
        Apply the network's :class:`Normalization` (if any).  Default True.

    Returns
    -------
    numpy.ndarray of object (Fraction)
        Shape ``net.output_shape`` (single input) or ``(N, *net.output_shape)``.
        tanh, sigmoid, gelu, softmax and the other non-rational activations
        are applied to the rounded pre-activation (see the module notes).

    Raises
    ------
    ModelFormatError
        If ``x`` has the wrong shape or holds NaN/inf.

    Examples
    --------
    >>> from fractions import Fraction
    >>> net = Network((Dense([[Fraction(1, 3), 1]], [0]), Activation("relu")), (2,))
    >>> evaluate_exact(net, [1, "1/3"])
    array([Fraction(2, 3)], dtype=object)
    """
    return _run(net, x, exact=True, normalize=normalize)


def _unroll_conv(layer: Conv2d, in_shape: tuple[int, ...]) -> Dense:
    """The dense matrix of a convolution on inputs of ``in_shape`` (C-order flattening)."""
    exact = is_exact_array(layer.weight)
    n_in = math.prod(in_shape)
    nobias = Conv2d(layer.weight, np.array([_ZERO] * layer.bias.shape[0], dtype=object)
                    if exact else np.zeros(layer.bias.shape[0]), layer.stride, layer.padding)
    eye = np.eye(n_in, dtype=np.int64).reshape((n_in, *in_shape))
    basis = _exact(eye) if exact else eye.astype(np.float64)
    cols = _conv(basis, nobias, exact).reshape(n_in, -1)  # (n_in, n_out)
    per_pos = cols.shape[1] // layer.bias.shape[0]
    bias = np.repeat(layer.bias, per_pos)
    return Dense(cols.T.copy(), bias)


def dense_layers(net: Network) -> list[tuple[np.ndarray, np.ndarray, Activation]]:
    """View a network as a list of dense layers ``(W, b, activation)``.

    ``x_{l} = activation(W x_{l-1} + b)``, ``W`` of shape ``(out, in)``,
    weights in the network's own number type (float64 or Fraction objects).
    Convolutions are unrolled into dense matrices (inputs and outputs flattened
    in C order ``(channel, row, column)``); Flatten and Permute are absorbed.
    A dense layer followed by no activation gets ``Activation('identity')``;
    consecutive activations are not merged (an error is raised).  The
    network's :class:`Normalization` is NOT included.

    Raises
    ------
    UnsupportedLayerError
        For pooling, batch-norm, or two activations in a row (name and position).

    Examples
    --------
    >>> net = Network((Dense([[1.0, 2.0]], [0.0]), Activation("relu"), Dense([[3.0]], [1.0])),
    ...               (2,))
    >>> [(w.shape, a.kind) for w, b, a in dense_layers(net)]
    [((1, 2), 'relu'), ((1, 1), 'identity')]
    """
    out: list[tuple[np.ndarray, np.ndarray, Activation]] = []
    shape = net.input_shape
    idx = np.arange(math.prod(shape)).reshape(shape)
    permuted = False
    for i, layer in enumerate(net.layers):
        in_shape = net.shapes[i]
        if isinstance(layer, Flatten):
            idx = idx.reshape(-1)
            continue
        if isinstance(layer, Permute):
            idx = np.transpose(idx, layer.perm)
            permuted = True
            continue
        if isinstance(layer, Dense | Conv2d):
            d = layer if isinstance(layer, Dense) else _unroll_conv(layer, in_shape)
            # the layer reads element idx.flat[j] of the previous (C-order) output at input j
            order = np.asarray(idx).reshape(-1)
            w = d.weight
            if not np.array_equal(order, np.arange(order.shape[0])):
                w2 = np.empty_like(w)
                w2[:, order] = w
                w = w2
            out.append((w, d.bias, Activation("identity")))
            permuted = False
            idx = np.arange(math.prod(net.shapes[i + 1])).reshape(net.shapes[i + 1])
            continue
        if isinstance(layer, Activation):
            if not out or out[-1][2].kind != "identity" or _consumed(net, i):
                raise UnsupportedLayerError(
                    f"layer {i} ({layer.kind}): dense view needs exactly one activation after "
                    "each dense/conv layer"
                )
            w, b, _ = out[-1]
            if layer.kind == "prelu" and permuted and layer.slopes is not None and (
                    layer.slopes.shape[0] > 1):
                raise UnsupportedLayerError(
                    f"layer {i} (prelu): per-channel slopes after a permute have no dense view"
                )
            if layer.kind == "prelu" and len(in_shape) == 3:
                assert layer.slopes is not None
                per = math.prod(in_shape[1:])
                slopes = np.repeat(layer.slopes, per) if layer.slopes.shape[0] > 1 else layer.slopes
                layer = Activation("prelu", slopes=slopes)
            out[-1] = (w, b, layer)
            continue
        raise UnsupportedLayerError(
            f"layer {i} ({type(layer).__name__}) has no dense form; dense_layers supports "
            "Dense, Conv2d, Flatten, Permute and element-wise activations"
        )
    if not out:
        raise UnsupportedLayerError("the network has no dense or convolutional layer")
    return out


def _consumed(net: Network, i: int) -> bool:
    """Whether an activation already follows the last linear layer before position ``i``."""
    j = i - 1
    while j >= 0 and isinstance(net.layers[j], Flatten | Permute):
        j -= 1
    return j < 0 or isinstance(net.layers[j], Activation)

"""The network model: a frozen sequence of layers with float or exact weights.

Conventions
-----------
* Tensors are batch-first; images are channel-first (``(C, H, W)``, as in
  PyTorch).  ``Network.input_shape`` excludes the batch dimension.
* ``Dense.weight`` has shape ``(out, in)``; the layer computes ``W x + b``.
* ``Conv2d.weight`` has shape ``(out_channels, in_channels, kh, kw)``;
  ``padding`` is ``(top, left, bottom, right)`` zero padding.
* Weights are float arrays or ``object`` arrays of
  :class:`fractions.Fraction` (exact), validated once here.  Float arrays
  are ``float32`` when given as ``float32`` (or ``float16``, widened
  exactly): a float32 model is held at its own size; any other numeric
  input becomes ``float64``.  Every float is taken at its exact binary
  value; lumpkit computes in float64 (or exactly) whatever the storage.
* Input/output normalisation (NNet) is kept as metadata
  (:class:`Normalization`) applied by the evaluators, never merged into a
  layer: a reduction copies it unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, TypeVar

import numpy as np

from lumpcore import ModelFormatError, UnsupportedLayerError, to_rational

__all__ = [
    "ACTIVATION_KINDS",
    "Activation",
    "AvgPool2d",
    "BatchNorm",
    "Conv2d",
    "Dense",
    "Flatten",
    "Layer",
    "MaxPool2d",
    "Network",
    "Normalization",
    "Permute",
    "as_exact",
    "as_float",
    "clip_activation",
    "fold_batchnorm",
    "is_exact_array",
    "pads_below_kernel",
]

#: Activation kinds understood by lumpkit.
ACTIVATION_KINDS = ("relu", "leaky_relu", "prelu", "identity", "clip", "tanh", "sigmoid",
                    "gelu", "softmax", "log_softmax", "elu", "selu", "celu", "silu", "softplus",
                    "softsign", "hard_sigmoid", "hard_swish", "mish", "gelu_tanh")
#: Float types of a model's input and output data (:attr:`Network.data_dtype`).
DATA_DTYPES = ("float16", "bfloat16", "float32", "float64")
#: Activations of the whole output vector (not element-wise): only as the last layer.
OUTPUT_KINDS = ("softmax", "log_softmax")
#: Positively homogeneous activations (``f(r y) = r f(y)`` for ``r > 0``).
HOMOGENEOUS_KINDS = ("relu", "leaky_relu", "prelu", "identity")
#: Default ``alpha`` of the kinds that take one besides leaky_relu (PyTorch's and ONNX's
#: ELU/CELU; the slope 1/6 of ``hard_sigmoid`` and ``hard_swish`` is PyTorch's).
_ALPHA_DEFAULTS = {"elu": Fraction(1), "celu": Fraction(1), "hard_sigmoid": Fraction(1, 6),
                   "hard_swish": Fraction(1, 6)}
#: Default ``beta`` (the offset of ``hard_sigmoid`` and ``hard_swish``).
_BETA_DEFAULTS = {"hard_sigmoid": Fraction(1, 2), "hard_swish": Fraction(1, 2)}


# --------------------------------------------------------------------- arrays
def is_exact_array(a: np.ndarray) -> bool:
    """Whether ``a`` holds exact rationals (``object`` dtype)."""
    return bool(a.dtype == object)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


_L = TypeVar("_L")


def trusted_layer(cls: type[_L], **fields: Any) -> _L:
    """A layer built from arrays lumpkit computed itself (float, finite): no copy, no checks."""
    obj = object.__new__(cls)
    for name, value in fields.items():
        if isinstance(value, np.ndarray):
            value = _readonly(value)
        object.__setattr__(obj, name, value)
    return obj


def _to_exact_array(a: Any, what: str) -> np.ndarray:
    arr = np.asarray(a, dtype=object)
    out = np.empty(arr.shape, dtype=object)
    flat_in = arr.reshape(-1)
    flat_out = out.reshape(-1)
    for k in range(flat_in.shape[0]):
        try:
            flat_out[k] = to_rational(flat_in[k])
        except ValueError as exc:
            raise ModelFormatError(
                f"{what}: entry {k} ({flat_in[k]!r}) is not usable: {exc}"
            ) from None
    return out


def _weight_array(a: Any, what: str, ndim: int) -> np.ndarray:
    """Validate a weight array: float32/float64 (finite) or object array of Fractions."""
    if isinstance(a, np.ndarray) and a.dtype == object:
        arr = _to_exact_array(a, what)
    elif isinstance(a, list | tuple) and _has_exact(a):
        arr = _to_exact_array(a, what)
    else:
        narrow = isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float16)
        try:
            arr = np.array(a, dtype=np.float32 if narrow else np.float64)
        except (TypeError, ValueError) as exc:
            raise ModelFormatError(f"{what}: not a numeric array ({exc})") from None
        if arr.size and not np.all(np.isfinite(arr)):
            k = int(np.flatnonzero(~np.isfinite(arr.reshape(-1)))[0])
            raise ModelFormatError(
                f"{what}: entry {k} is {float(arr.reshape(-1)[k])!r}; "
                "NaN/inf weights are not allowed"
            )
    if arr.ndim != ndim:
        raise ModelFormatError(f"{what}: expected a {ndim}-D array, got shape {arr.shape}")
    return _readonly(arr)


def _has_exact(values: Any) -> bool:
    if isinstance(values, list | tuple):
        return any(_has_exact(v) for v in values)
    return isinstance(values, Fraction | str)


def _pair(v: Any, what: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int | np.integer) else tuple(v)
    if len(t) != 2 or any(int(x) != x or int(x) < 0 for x in t):
        raise ModelFormatError(f"{what}: expected two non-negative integers, got {v!r}")
    return int(t[0]), int(t[1])


def _quad(v: Any, what: str) -> tuple[int, int, int, int]:
    if isinstance(v, int | np.integer):
        t: tuple[Any, ...] = (v, v, v, v)
    else:
        t = tuple(v)
        if len(t) == 2:
            t = (t[0], t[1], t[0], t[1])
    if len(t) != 4 or any(int(x) != x or int(x) < 0 for x in t):
        raise ModelFormatError(
            f"{what}: expected padding (top, left, bottom, right) of non-negative ints, got {v!r}"
        )
    return int(t[0]), int(t[1]), int(t[2]), int(t[3])


# --------------------------------------------------------------------- layers
@dataclass(frozen=True, eq=False)
class Dense:
    """Fully connected layer ``y = W x + b``.

    Attributes
    ----------
    weight : numpy.ndarray, shape (out, in)
    bias : numpy.ndarray, shape (out,)
    """

    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _weight_array(self.weight, "Dense.weight", 2))
        object.__setattr__(self, "bias", _weight_array(self.bias, "Dense.bias", 1))
        if self.bias.shape[0] != self.weight.shape[0]:
            raise ModelFormatError(
                f"Dense: weight has {self.weight.shape[0]} rows but bias has "
                f"{self.bias.shape[0]} entries; they must match"
            )


@dataclass(frozen=True, eq=False)
class Conv2d:
    """2-D convolution (cross-correlation, as in PyTorch/ONNX), groups = 1, dilation = 1.

    The importers read a grouped (or depthwise) or dilated convolution as the
    plain one it equals: zero weights outside each output channel's group and
    between the dilated taps.  The ONNX and PyTorch exporters write such a
    weight back with ``group``/``dilations`` (``groups``/``dilation``).

    Attributes
    ----------
    weight : numpy.ndarray, shape (out_channels, in_channels, kh, kw)
    bias : numpy.ndarray, shape (out_channels,)
    stride : tuple of int (sh, sw)
    padding : tuple of int (top, left, bottom, right), zero padding
    """

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _weight_array(self.weight, "Conv2d.weight", 4))
        object.__setattr__(self, "bias", _weight_array(self.bias, "Conv2d.bias", 1))
        object.__setattr__(self, "stride", _pair(self.stride, "Conv2d.stride"))
        object.__setattr__(self, "padding", _quad(self.padding, "Conv2d.padding"))
        if self.bias.shape[0] != self.weight.shape[0]:
            raise ModelFormatError(
                f"Conv2d: {self.weight.shape[0]} output channels but bias has "
                f"{self.bias.shape[0]} entries"
            )
        if min(self.stride) < 1:
            raise ModelFormatError(f"Conv2d: stride must be >= 1, got {self.stride}")


def pads_below_kernel(padding: tuple[int, ...], kernel: tuple[int, ...], what: str) -> None:
    """Refuse a pooling whose padding (top, left, bottom, right) is not below its kernel: a
    window would then lie in the padding alone (a maximum of nothing, a mean of no value;
    ONNX, onnxruntime and PyTorch refuse such pools too)."""
    if any(p >= kernel[j % 2] for j, p in enumerate(padding)):
        raise ModelFormatError(
            f"{what}: padding {padding} (top, left, bottom, right) not smaller than the "
            f"kernel {kernel}: a window would cover padding only")


@dataclass(frozen=True, eq=False)
class MaxPool2d:
    """Max pooling over ``kernel`` windows (padding counts as -infinity).

    Attributes
    ----------
    kernel, stride : tuple of int
    padding : tuple of int (top, left, bottom, right)
    """

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _pair(self.kernel, "MaxPool2d.kernel"))
        object.__setattr__(self, "stride", _pair(self.stride, "MaxPool2d.stride"))
        object.__setattr__(self, "padding", _quad(self.padding, "MaxPool2d.padding"))
        if min(self.kernel) < 1 or min(self.stride) < 1:
            raise ModelFormatError("MaxPool2d: kernel and stride must be >= 1")
        pads_below_kernel(self.padding, self.kernel, "MaxPool2d")


@dataclass(frozen=True, eq=False)
class AvgPool2d:
    """Average pooling; with ``count_include_pad`` the padded zeros count in the mean.

    Attributes
    ----------
    kernel, stride : tuple of int
    padding : tuple of int (top, left, bottom, right)
    count_include_pad : bool
    """

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    count_include_pad: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _pair(self.kernel, "AvgPool2d.kernel"))
        object.__setattr__(self, "stride", _pair(self.stride, "AvgPool2d.stride"))
        object.__setattr__(self, "padding", _quad(self.padding, "AvgPool2d.padding"))
        if min(self.kernel) < 1 or min(self.stride) < 1:
            raise ModelFormatError("AvgPool2d: kernel and stride must be >= 1")
        pads_below_kernel(self.padding, self.kernel, "AvgPool2d")
        flag = self.count_include_pad
        if not isinstance(flag, bool | np.bool_) and flag not in (0, 1):
            raise ModelFormatError(f"AvgPool2d.count_include_pad: expected true or false, "
                                   f"got {flag!r}")
        object.__setattr__(self, "count_include_pad", bool(flag))


@dataclass(frozen=True, eq=False)
class Flatten:
    """Flatten everything but the batch dimension (C-order)."""


@dataclass(frozen=True, eq=False)
class Permute:
    """Permute the non-batch dimensions: output dim ``i`` is input dim ``perm[i]``.

    Used for the NHWC/NCHW transposes of Keras exports.
    """

    perm: tuple[int, ...]

    def __post_init__(self) -> None:
        p = tuple(int(x) for x in self.perm)
        if sorted(p) != list(range(len(p))):
            raise ModelFormatError(f"Permute: {self.perm!r} is not a permutation of 0..{len(p)-1}")
        object.__setattr__(self, "perm", p)


@dataclass(frozen=True, eq=False)
class BatchNorm:
    """Batch normalisation in inference form: ``y[c] = scale[c] * x[c] + shift[c]``.

    Importers fold it into the preceding Dense/Conv2d when there is one
    (``scale = gamma / sqrt(var + eps)``, ``shift = beta - mean * scale``).

    Attributes
    ----------
    scale, shift : numpy.ndarray, shape (channels,)
    """

    scale: np.ndarray
    shift: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _weight_array(self.scale, "BatchNorm.scale", 1))
        object.__setattr__(self, "shift", _weight_array(self.shift, "BatchNorm.shift", 1))
        if self.scale.shape != self.shift.shape:
            raise ModelFormatError("BatchNorm: scale and shift must have the same length")


@dataclass(frozen=True, eq=False)
class Activation:
    """Element-wise activation (or softmax of the output vector).

    Attributes
    ----------
    kind : str
        One of ``relu, leaky_relu, prelu, identity, clip, tanh, sigmoid,
        gelu, gelu_tanh, elu, selu, celu, silu, softplus, softsign,
        hard_sigmoid, hard_swish, mish`` (element-wise), or ``softmax,
        log_softmax`` (over the features of a vector; only as the network's
        last layer, which a reduction never changes).  The functions (as in
        PyTorch and ONNX):

        * ``gelu``: ``x Phi(x)`` (erf form); ``gelu_tanh``:
          ``x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2``;
        * ``elu``: ``x`` for ``x > 0``, else ``alpha (exp(x) - 1)``;
          ``celu``: ``x`` for ``x > 0``, else ``alpha (exp(x / alpha) - 1)``;
          ``selu``: ``scale * elu`` with SELU's fixed ``alpha = 1.6732632...``
          and ``scale = 1.0507009...`` (torch's constants);
        * ``silu`` (swish): ``x sigmoid(x)``; ``mish``: ``x tanh(softplus(x))``;
        * ``softplus``: ``log(1 + exp(x))`` (beta 1), or ``x`` where
          ``x > threshold`` when a ``threshold`` is given (PyTorch's
          ``nn.Softplus``; ONNX's ``Softplus`` has none);
        * ``softsign``: ``x / (1 + |x|)``;
        * ``hard_sigmoid``: ``min(max(alpha x + beta, 0), 1)`` (PyTorch's
          ``Hardsigmoid`` is ``alpha = 1/6, beta = 1/2``, ONNX's default
          ``alpha = 0.2``); ``hard_swish``: ``x * hard_sigmoid(x)``.
    alpha : Fraction or None
        Stored exactly as a Fraction (a float at its binary value):
        the negative slope of ``leaky_relu`` (required); the ``alpha`` of
        ``elu`` and ``celu`` (default 1; non-zero for ``celu``); the slope of
        ``hard_sigmoid`` and ``hard_swish`` (default 1/6).  ``None`` for the
        other kinds.
    slopes : numpy.ndarray or None
        ``prelu`` only: one slope per channel (axis 0 of the non-batch
        shape), or a single shared slope.
    bounds : tuple of (Fraction or None, Fraction or None), or None
        ``clip`` only: ``(lo, hi)`` of ``min(max(x, lo), hi)`` (ReLU6 is
        ``(0, 6)``, hardtanh ``(-1, 1)``), stored exactly; ``None`` for no
        bound on that side, ``lo < hi``.
    beta : Fraction or None
        ``hard_sigmoid`` and ``hard_swish`` only: the offset (default 1/2),
        stored exactly.
    threshold : Fraction or None
        ``softplus`` only: above it (compared exactly) the output is ``x``
        itself (PyTorch's ``nn.Softplus(threshold=20)``); ``None`` (the
        default, ONNX's ``Softplus``): ``log(1 + exp(x))`` everywhere.

    Raises
    ------
    UnsupportedLayerError
        For an unknown ``kind``.
    ModelFormatError
        For a missing, superfluous or unusable parameter (NaN, infinite,
        ``alpha = 0`` for ``celu``), naming the value.

    Examples
    --------
    >>> Activation("hard_sigmoid").alpha, Activation("elu", alpha=0.5).alpha
    (Fraction(1, 6), Fraction(1, 2))
    """

    kind: str
    alpha: Fraction | None = None
    slopes: np.ndarray | None = None
    bounds: tuple[Fraction | None, Fraction | None] | None = None
    beta: Fraction | None = None
    threshold: Fraction | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTIVATION_KINDS:
            raise UnsupportedLayerError(
                f"activation {self.kind!r} is not supported; "
                f"use one of {', '.join(ACTIVATION_KINDS)}"
            )
        if self.kind == "leaky_relu":
            if self.alpha is None:
                raise ModelFormatError("Activation('leaky_relu') needs alpha")
            object.__setattr__(self, "alpha", to_rational(self.alpha))
        elif self.kind in _ALPHA_DEFAULTS:
            alpha = _ALPHA_DEFAULTS[self.kind] if self.alpha is None else _parameter(
                self.kind, "alpha", self.alpha)
            if self.kind == "celu" and alpha == 0:
                raise ModelFormatError(
                    "Activation('celu'): alpha = 0 divides by zero in alpha (exp(x / alpha) - 1); "
                    "give a non-zero alpha (PyTorch's and ONNX's default is 1)")
            object.__setattr__(self, "alpha", alpha)
        elif self.alpha is not None:
            raise ModelFormatError(f"Activation({self.kind!r}) takes no alpha")
        if self.kind in _BETA_DEFAULTS:
            object.__setattr__(self, "beta", _BETA_DEFAULTS[self.kind] if self.beta is None
                               else _parameter(self.kind, "beta", self.beta))
        elif self.beta is not None:
            raise ModelFormatError(f"Activation({self.kind!r}) takes no beta")
        if self.kind == "softplus":
            if self.threshold is not None:
                object.__setattr__(self, "threshold",
                                   _parameter(self.kind, "threshold", self.threshold))
        elif self.threshold is not None:
            raise ModelFormatError(f"Activation({self.kind!r}) takes no threshold")
        if self.kind == "prelu":
            if self.slopes is None:
                raise ModelFormatError("Activation('prelu') needs slopes")
            s = np.asarray(self.slopes, dtype=object if _has_exact(self.slopes) else None)
            object.__setattr__(self, "slopes", _weight_array(s.reshape(-1), "PReLU.slopes", 1))
        elif self.slopes is not None:
            raise ModelFormatError(f"Activation({self.kind!r}) takes no slopes")
        if self.kind == "clip":
            bounds = self.bounds
            if not isinstance(bounds, tuple | list) or len(bounds) != 2:
                raise ModelFormatError(
                    f"Activation('clip') needs bounds=(lo, hi), got {bounds!r}")
            lo, hi = (None if v is None else to_rational(v) for v in bounds)
            if lo is None and hi is None:
                raise ModelFormatError("Activation('clip') needs at least one bound; "
                                       "without bounds use Activation('identity')")
            if lo is not None and hi is not None and not lo < hi:
                raise ModelFormatError(f"Activation('clip'): lo = {lo} must be below hi = {hi}")
            object.__setattr__(self, "bounds", (lo, hi))
        elif self.bounds is not None:
            raise ModelFormatError(f"Activation({self.kind!r}) takes no bounds")

    @property
    def positively_homogeneous(self) -> bool:
        """``f(r y) = r f(y)`` for every ``r > 0``."""
        return self.kind in HOMOGENEOUS_KINDS


def _parameter(kind: str, name: str, value: Any) -> Fraction:
    """An activation parameter as an exact rational, or a ModelFormatError naming it."""
    try:
        return to_rational(value)
    except ValueError as exc:
        raise ModelFormatError(
            f"Activation({kind!r}): {name} = {value!r} is not usable ({exc}); give a finite "
            "number (int, float, Fraction or a 'p/q' string)") from None


Layer = Dense | Conv2d | MaxPool2d | AvgPool2d | Flatten | Permute | BatchNorm | Activation


def clip_activation(lo: Fraction | None, hi: Fraction | None) -> Activation:
    """``min(max(x, lo), hi)`` as the simplest activation: relu for ``(0, None)``,
    identity without bounds, else ``Activation('clip')``."""
    if lo == 0 and hi is None:
        return Activation("relu")
    if lo is None and hi is None:
        return Activation("identity")
    return Activation("clip", bounds=(lo, hi))


def fold_batchnorm(layer: Dense | Conv2d, s: np.ndarray, t: np.ndarray) -> Dense | Conv2d:
    """``layer`` followed by the batch norm ``y -> y s + t`` (per output), as one layer.

    Float products are made free of negative zeros: the zero taps of an expanded
    grouped or dilated convolution times a negative scale would be ``-0.0``,
    which the exporters' compact form writes back as ``+0.0`` (the same
    network, another hash).
    """
    scale = s.reshape((-1,) + (1,) * (layer.weight.ndim - 1))
    weight = layer.weight * scale
    if weight.dtype.kind == "f":
        weight += 0.0  # -0.0 + 0.0 is +0.0; every other value stays
    bias = layer.bias * s + t
    if isinstance(layer, Conv2d):
        return Conv2d(weight, bias, layer.stride, layer.padding)
    return Dense(weight, bias)


@dataclass(frozen=True, eq=False)
class Normalization:
    """NNet-style input/output normalisation, applied by the evaluators.

    ``x -> (clip(x, input_min, input_max) - input_mean) / input_range`` before
    the first layer and ``y -> y * output_range + output_mean`` after the
    last.  ``input_min``/``input_max`` may be ``None`` (no clipping).  All
    arrays are exact rationals (object arrays of Fraction).
    """

    input_mean: np.ndarray
    input_range: np.ndarray
    output_mean: np.ndarray
    output_range: np.ndarray
    input_min: np.ndarray | None = None
    input_max: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("input_mean", "input_range", "output_mean", "output_range",
                     "input_min", "input_max"):
            v = getattr(self, name)
            if v is None:
                continue
            object.__setattr__(
                self, name, _readonly(_to_exact_array(np.asarray(v, dtype=object).reshape(-1),
                                                      f"Normalization.{name}"))
            )
        for name in ("input_range", "output_range"):
            if any(r == 0 for r in getattr(self, name)):
                raise ModelFormatError(f"Normalization.{name} contains 0; ranges must be non-zero")
        lo, hi = self.input_min, self.input_max
        if lo is not None and hi is not None and (len(lo) == len(hi) or 1 in (len(lo), len(hi))):
            for k in range(max(len(lo), len(hi))):
                a, b = lo[k if len(lo) > 1 else 0], hi[k if len(hi) > 1 else 0]
                if a > b:
                    raise ModelFormatError(
                        f"Normalization: input {k} has minimum {a} above its maximum {b}; the "
                        "clipping box is empty")


@dataclass(frozen=True, eq=False)
class Network:
    """A feed-forward network: a tuple of layers applied in order.

    Attributes
    ----------
    layers : tuple of Layer
    input_shape : tuple of int
        Shape of one input (no batch dimension), e.g. ``(784,)`` or ``(1, 28, 28)``.
    normalization : Normalization or None
        NNet input/output normalisation (metadata, applied by the evaluators).
    data_dtype : {'float16', 'bfloat16', 'float32', 'float64'} or None
        The float type of the input and output data of the model file the
        network was read from (metadata, not part of the function or its
        hash); :func:`save_network` writes that interface by default, so that
        a reduced model is a drop-in replacement.  None when not known.
    io_names : (str, str) or None
        The names of the input and the output tensor of the ONNX model the
        network was read from (metadata like ``data_dtype``): ONNX files are
        written with them, so that code that feeds the model by name runs the
        reduced one unchanged.  None: ``"input"`` and a generated name.

    Examples
    --------
    >>> import numpy as np
    >>> net = Network((Dense(np.eye(2), np.zeros(2)), Activation("relu")), (2,))
    >>> net.output_shape, net.num_params
    ((2,), 6)
    """

    layers: tuple[Layer, ...]
    input_shape: tuple[int, ...]
    normalization: Normalization | None = field(default=None)
    data_dtype: str | None = field(default=None, repr=False)
    io_names: tuple[str, str] | None = field(default=None, repr=False)
    shapes: tuple[tuple[int, ...], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.data_dtype not in (None, *DATA_DTYPES):
            raise ModelFormatError(
                f"data_dtype must be one of {', '.join(map(repr, DATA_DTYPES))} or None, got "
                f"{self.data_dtype!r}")
        if self.io_names is not None:
            names = tuple(self.io_names)
            if len(names) != 2 or not all(isinstance(x, str) and x for x in names) \
                    or names[0] == names[1]:
                raise ModelFormatError(
                    "io_names must be two different non-empty names (input, output), got "
                    f"{self.io_names!r}")
            object.__setattr__(self, "io_names", names)
        layers = tuple(self.layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Dense | Conv2d | MaxPool2d | AvgPool2d | Flatten | Permute
                              | BatchNorm | Activation):
                raise UnsupportedLayerError(
                    f"layer {i}: {type(layer).__name__} is not a lumpkit layer"
                )
        object.__setattr__(self, "layers", layers)
        try:
            shape = tuple(int(s) for s in self.input_shape)
        except (TypeError, ValueError):
            shape = ()
        if any(isinstance(s, bool) or s != d for s, d in zip(self.input_shape, shape)):
            raise ModelFormatError(  # 3.5 was read as 3, True as 1
                f"input_shape must be non-empty positive ints, got {tuple(self.input_shape)}")
        if not shape or min(shape) < 1:
            raise ModelFormatError(f"input_shape must be non-empty positive ints, got {shape}")
        object.__setattr__(self, "input_shape", shape)
        shapes = [shape]
        for i, layer in enumerate(layers):
            shape = _output_shape(layer, shape, i)
            shapes.append(shape)
            if isinstance(layer, Activation) and layer.kind in OUTPUT_KINDS:
                if i != len(layers) - 1:
                    raise ModelFormatError(
                        f"layer {i} ({layer.kind}): a softmax acts on the whole output vector; "
                        "lumpkit takes it only as the network's last layer"
                    )
                if len(shape) != 1:
                    raise ModelFormatError(
                        f"layer {i} ({layer.kind}): needs a vector input, gets shape {shape}; "
                        "insert a Flatten before it"
                    )
        object.__setattr__(self, "shapes", tuple(shapes))
        if self.normalization is not None:
            nrm = self.normalization
            n_in, n_out = math.prod(self.input_shape), math.prod(shapes[-1])
            for name, arr, n in (("input_mean", nrm.input_mean, n_in),
                                 ("input_range", nrm.input_range, n_in),
                                 ("input_min", nrm.input_min, n_in),
                                 ("input_max", nrm.input_max, n_in),
                                 ("output_mean", nrm.output_mean, n_out),
                                 ("output_range", nrm.output_range, n_out)):
                if arr is not None and arr.shape[0] not in (1, n):
                    raise ModelFormatError(
                        f"Normalization.{name} has {arr.shape[0]} entries; expected 1 or {n}"
                    )

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one output (no batch dimension)."""
        return self.shapes[-1]

    @property
    def num_params(self) -> int:
        """Number of weights and biases (and PReLU slopes, batch-norm parameters).

        A convolution counts the weights of its smallest grouped/dilated form
        (as the exporters write it and as PyTorch counts a depthwise layer),
        not the zeros of the plain form lumpkit holds it in.
        """
        from ._conv import compact_conv_weight

        total = 0
        for layer in self.layers:
            if isinstance(layer, Conv2d):
                total += compact_conv_weight(layer.weight)[0].size + layer.bias.size
            elif isinstance(layer, Dense):
                total += layer.weight.size + layer.bias.size
            elif isinstance(layer, BatchNorm):
                total += 2 * layer.scale.size
            elif isinstance(layer, Activation) and layer.slopes is not None:
                total += layer.slopes.size
        return int(total)

    @property
    def exact(self) -> bool:
        """Whether any parameter is stored as an exact rational."""
        for layer in self.layers:
            for arr in _layer_arrays(layer):
                if is_exact_array(arr):
                    return True
        return False

    def __repr__(self) -> str:
        names = ", ".join(_layer_name(layer) for layer in self.layers)
        return f"Network(input {self.input_shape}: {names})"


def _layer_name(layer: Layer) -> str:
    if isinstance(layer, Dense):
        return f"Dense({layer.weight.shape[1]}->{layer.weight.shape[0]})"
    if isinstance(layer, Conv2d):
        return f"Conv2d({layer.weight.shape[1]}->{layer.weight.shape[0]})"
    if isinstance(layer, Activation):
        return layer.kind
    return type(layer).__name__


def _layer_arrays(layer: Layer) -> list[np.ndarray]:
    if isinstance(layer, Dense | Conv2d):
        return [layer.weight, layer.bias]
    if isinstance(layer, BatchNorm):
        return [layer.scale, layer.shift]
    if isinstance(layer, Activation) and layer.slopes is not None:
        return [layer.slopes]
    return []


def _pool_out(n: int, k: int, s: int, p0: int, p1: int, what: str) -> int:
    m = (n + p0 + p1 - k) // s + 1
    if m < 1:
        raise ModelFormatError(f"{what}: window {k} does not fit input size {n} (+padding)")
    return m


def _output_shape(layer: Layer, shape: tuple[int, ...], i: int) -> tuple[int, ...]:
    where = f"layer {i} ({_layer_name(layer)})"
    if isinstance(layer, Dense):
        if len(shape) != 1 or shape[0] != layer.weight.shape[1]:
            raise ModelFormatError(
                f"{where}: expects a vector of {layer.weight.shape[1]} inputs, gets shape {shape}"
                + ("; insert a Flatten before it" if len(shape) != 1 else "")
            )
        return (layer.weight.shape[0],)
    if isinstance(layer, Conv2d):
        if len(shape) != 3 or shape[0] != layer.weight.shape[1]:
            raise ModelFormatError(
                f"{where}: expects (C={layer.weight.shape[1]}, H, W) input, gets shape {shape}"
            )
        _, _, kh, kw = layer.weight.shape
        t, left, b, r = layer.padding
        return (layer.weight.shape[0],
                _pool_out(shape[1], kh, layer.stride[0], t, b, where),
                _pool_out(shape[2], kw, layer.stride[1], left, r, where))
    if isinstance(layer, MaxPool2d | AvgPool2d):
        if len(shape) != 3:
            raise ModelFormatError(f"{where}: expects (C, H, W) input, gets shape {shape}")
        t, left, b, r = layer.padding
        return (shape[0],
                _pool_out(shape[1], layer.kernel[0], layer.stride[0], t, b, where),
                _pool_out(shape[2], layer.kernel[1], layer.stride[1], left, r, where))
    if isinstance(layer, Flatten):
        return (math.prod(shape),)
    if isinstance(layer, Permute):
        if len(layer.perm) != len(shape):
            raise ModelFormatError(f"{where}: permutation {layer.perm} does not fit shape {shape}")
        return tuple(shape[p] for p in layer.perm)
    if isinstance(layer, BatchNorm):
        if layer.scale.shape[0] != shape[0]:
            raise ModelFormatError(
                f"{where}: {layer.scale.shape[0]} channels, input has {shape[0]}"
            )
        return shape
    if isinstance(layer, Activation):
        if layer.slopes is not None and layer.slopes.shape[0] not in (1, shape[0]):
            raise ModelFormatError(
                f"{where}: PReLU has {layer.slopes.shape[0]} slopes, input has {shape[0]} channels"
            )
        return shape
    raise UnsupportedLayerError(f"{where} is not supported")  # pragma: no cover


# ---------------------------------------------------------------- conversions
def _map_arrays(layer: Layer, fn: Any) -> Layer:
    if isinstance(layer, Dense):
        return Dense(fn(layer.weight), fn(layer.bias))
    if isinstance(layer, Conv2d):
        return Conv2d(fn(layer.weight), fn(layer.bias), layer.stride, layer.padding)
    if isinstance(layer, BatchNorm):
        return BatchNorm(fn(layer.scale), fn(layer.shift))
    if isinstance(layer, Activation) and layer.slopes is not None:
        return Activation("prelu", slopes=fn(layer.slopes))
    return layer


def _exact(a: np.ndarray) -> np.ndarray:
    if is_exact_array(a):
        return a
    out = np.empty(a.shape, dtype=object)
    out.reshape(-1)[:] = [Fraction(x) for x in a.reshape(-1).tolist()]
    return out


_KEEP_EXACT = "keep it exact (save it as .npz, which stores exact rationals)"


def float_array(a: np.ndarray, fix: str = _KEEP_EXACT) -> np.ndarray:
    """An exact array rounded to float64 (float arrays as they are); a value beyond
    float64's range is a :class:`ModelFormatError` that names it and says ``fix``."""
    if not is_exact_array(a):
        return a
    out = []
    for x in a.reshape(-1).tolist():
        try:
            out.append(float(x))
        except OverflowError:
            raise ModelFormatError(
                f"the value {_short(x)} is beyond float64's range, so this network cannot be "
                f"held in floats; {fix}") from None
    return np.array(out, dtype=np.float64).reshape(a.shape)



def _short(x: Any) -> str:
    """A rational for a message: itself, or its order of magnitude when it is long."""
    text = str(x)
    if len(text) <= 40:
        return text
    q = Fraction(x)
    digits = len(str(abs(q.numerator))) - len(str(q.denominator))
    return f"{'-' if q < 0 else ''}~1e{digits}"


def _narrow(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.float64 and np.array_equal(a.astype(np.float32), a):
        return a.astype(np.float32)
    return a


def narrowed_to_float32(net: Network) -> Network:
    """The same network with every float64 parameter array whose values are all
    float32 values stored as float32 (for importers of float32 models: folded
    or otherwise computed arrays keep their float64 values)."""
    return Network(tuple(_map_arrays(lyr, _narrow) for lyr in net.layers), net.input_shape,
                   net.normalization, net.data_dtype, net.io_names)


def as_exact(net: Network) -> Network:
    """The same network with every parameter as an exact rational (floats at their binary value).

    Examples
    --------
    >>> import numpy as np
    >>> net = as_exact(Network((Dense([[0.5]], [0.25]),), (1,)))
    >>> net.layers[0].weight[0, 0]
    Fraction(1, 2)
    """
    return Network(tuple(_map_arrays(lyr, _exact) for lyr in net.layers), net.input_shape,
                   net.normalization, net.data_dtype, net.io_names)


def as_float(net: Network) -> Network:
    """The same network with every parameter rounded to the nearest float64.

    Examples
    --------
    >>> from fractions import Fraction
    >>> as_float(Network((Dense([[Fraction(1, 3)]], [0]),), (1,))).layers[0].weight.dtype
    dtype('float64')
    """
    return Network(tuple(_map_arrays(lyr, float_array) for lyr in net.layers), net.input_shape,
                   net.normalization, net.data_dtype, net.io_names)

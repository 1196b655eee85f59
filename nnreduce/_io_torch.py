"""PyTorch ``nn.Sequential`` import/export: pickled modules (``torch.save``) and TorchScript.

Loading a pickled module runs Python code from the file (``weights_only=False``):
only load files you trust.  lumpkit writes the input shape next to the
module (attribute ``lumpkit_input_shape`` for pickles, the extra file
``lumpkit_input_shape`` for TorchScript) so that convolutional models load
without ``input_shape``.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from lumpcore import LumpkitWarning, ModelFormatError, UnsupportedLayerError, to_rational
from lumpcore._atomic import atomic_write_bytes as atomic_write

from ._conv import ceil_mode_changes_nothing, compact_conv_weight, expand_conv_weight
from ._input_norm import fold_input_op, normalization_of
from ._io_fx import InputOp, traced_chain
from ._io_traced import needs_traced_view, traced_view
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
    _output_shape,
    as_float,
    clip_activation,
    fold_batchnorm,
    narrowed_to_float32,
)

__all__ = ["from_torch", "read_torch", "to_torch", "write_torch"]

# skipped: no-ops, and lumpkit's casts around float64 layers (exact semantics: no rounding)
_SKIP = ("Identity", "Dropout", "Dropout1d", "Dropout2d", "CastFloat64", "CastFloat32",
         "CastFloat16", "CastBFloat16")
#: the data type that lumpkit's last cast module gives a model (a reduced half-precision one)
_CAST_TO = {"CastFloat16": "float16", "CastBFloat16": "bfloat16"}
#: layers that compute differently in training mode
_MODE_DEPENDENT = ("BatchNorm1d", "BatchNorm2d", "Dropout", "Dropout1d", "Dropout2d",
                   "AlphaDropout", "FeatureAlphaDropout")


def _warn_training_mode(module: Any) -> None:
    """Warn when layers whose values depend on the mode are in training mode, the model's
    own or a child's (lumpkit reads them as in eval mode, as an ONNX export in eval mode
    computes)."""
    try:
        # (a child in training mode inside a model in eval mode computes in training mode)
        kinds = sorted({_kind(m) for m in module.modules()
                        if getattr(m, "training", False)} & set(_MODE_DEPENDENT))
    except (AttributeError, TypeError):
        return
    if kinds:
        warnings.warn(
            f"the module has layers in training mode ({', '.join(kinds)}): lumpkit reads "
            "them as in eval mode (batch norm with its running statistics, dropout as the "
            "identity), which is not what this module computes now; call module.eval() "
            "before converting it to silence this warning", LumpkitWarning, stacklevel=3)


#: lumpkit's modules whose float64 buffers say nothing about the model's type
_OWN_FLOAT64 = ("InputNormalization", "OutputNormalization")


def _np(t: Any) -> np.ndarray:
    return np.asarray(t.detach().cpu().double().numpy(), dtype=np.float64)


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    t = tuple(int(x) for x in v)
    return (t[0], t[0]) if len(t) == 1 else (t[0], t[1])


def _flat_children(mod: Any, prefix: str = "", sizes: list[tuple[int, int]] | None = None
                   ) -> tuple[list[tuple[str, Any]], list[tuple[int, int]]]:
    """The modules of a (nested) ``nn.Sequential`` in order; a custom child module is
    replaced by the chain its forward applies (torch.fx), with its reshape checks."""
    out: list[tuple[str, Any]] = []
    sizes = [] if sizes is None else sizes
    for name, child in mod.named_children():
        kind = _kind(child)
        if kind == "Sequential":
            out.extend(_flat_children(child, f"{prefix}{name}.", sizes)[0])
        elif _custom_module(child):
            chain, more = traced_chain(child)
            flats = sum(_kind(m) == "Flatten" for _, m in out)
            sizes.extend((flats + k, n) for k, n in more)
            out.extend((f"{prefix}{name}.{sub}", m) for sub, m in chain)
        else:
            out.append((f"{prefix}{name}", child))
    return out, sizes


def _adaptive_pool(kind: str, m: Any, layers: list[Layer],
                   input_shape: tuple[int, ...] | None, where: str) -> Layer:
    """An adaptive pooling as the fixed pooling it is on the known input size.

    Output ``(oh, ow)`` of an ``(h, w)`` map with ``oh | h``, ``ow | w``
    (a global pooling when the output is 1 x 1): windows of ``h / oh`` by
    ``w / ow`` with the same stride, exactly PyTorch's windows then.
    """
    if input_shape is None:
        raise ModelFormatError(
            f"{where}: an adaptive pooling needs the input shape; pass input_shape "
            "(CLI: --input-shape C,H,W)")
    shape = tuple(input_shape)
    for i, lyr in enumerate(layers):
        shape = _output_shape(lyr, shape, i)
    if len(shape) != 3:
        raise UnsupportedLayerError(f"{where}: pools a tensor of shape {shape}, not (C, H, W)")
    out = m.output_size
    oh, ow = (out, out) if isinstance(out, int) else tuple(out)
    oh = shape[1] if oh is None else int(oh)
    ow = shape[2] if ow is None else int(ow)
    if shape[1] % oh or shape[2] % ow:
        raise UnsupportedLayerError(
            f"{where}: output {oh}x{ow} of a {shape[1]}x{shape[2]} map has windows of "
            "different sizes; lumpkit takes sizes that divide the map")
    ks = (shape[1] // oh, shape[2] // ow)
    return (MaxPool2d(ks, ks, (0, 0, 0, 0)) if kind == "AdaptiveMaxPool2d"
            else AvgPool2d(ks, ks, (0, 0, 0, 0), False))


def _custom_module(mod: Any) -> bool:
    """A user-defined ``nn.Module`` (not TorchScript, not one of torch's own layers)."""
    import torch

    return (isinstance(mod, torch.nn.Module) and not isinstance(mod, torch.jit.ScriptModule)
            and not type(mod).__module__.startswith("torch.")
            and type(mod).__module__ != "nnreduce._torch_modules")


#: qualified type names of TorchScript modules whose classes are torch's own (or lumpkit's)
_OWN_SCRIPT_TYPE = re.compile(r"__torch__\.(?:torch\.nn\.|nnreduce\._torch_modules\.)")
#: the kind of a module whose class only shares a name with one of torch's
USER_CLASS = "user class"


def _kind(mod: Any) -> str:
    """The module's layer kind: the name of torch's own class, or :data:`USER_CLASS` for
    a user class (which may be named ``ReLU`` or ``Sequential`` and compute anything)."""
    import torch

    name = getattr(mod, "original_name", None)
    if name is None:
        return USER_CLASS if _custom_module(mod) else type(mod).__name__
    if not isinstance(mod, torch.jit.ScriptModule):
        return str(name)  # (a traced layer's settings, read by lumpkit: _io_traced)
    try:  # TorchScript: torch's own class has torch's qualified name
        qualified = mod._c._type().qualified_name()
    except (AttributeError, RuntimeError):
        return USER_CLASS
    return str(name) if _OWN_SCRIPT_TYPE.match(qualified) else USER_CLASS


#: torch.nn activation modules read by :func:`_smooth_activation`, with their kinds.
_SMOOTH_MODULES = {"ELU": "elu", "SELU": "selu", "CELU": "celu", "SiLU": "silu",
                   "Softplus": "softplus", "Softsign": "softsign", "Hardsigmoid": "hard_sigmoid",
                   "Hardswish": "hard_swish", "Mish": "mish"}


def _parameter(m: Any, name: str, where: str) -> Fraction:
    """A module's number parameter, exactly (NaN and infinities refused, by name)."""
    value = getattr(m, name)
    try:
        return to_rational(float(value))
    except ValueError as exc:
        raise ModelFormatError(f"{where}: {name} = {value!r} is not usable ({exc})") from None


def _smooth_activation(kind: str, m: Any, where: str) -> Activation:
    """The activation of an ``nn.ELU``, ``nn.Softplus``, ... module (its parameters exact)."""
    if kind in ("ELU", "CELU"):
        alpha = _parameter(m, "alpha", where)
        try:
            return Activation(_SMOOTH_MODULES[kind], alpha=alpha)
        except ModelFormatError as exc:  # CELU's alpha = 0
            raise ModelFormatError(f"{where}: {exc}") from None
    if kind == "Softplus":
        if float(m.beta) != 1.0:
            raise UnsupportedLayerError(
                f"{where}: Softplus(beta={float(m.beta)!r}); lumpkit takes beta = 1 only "
                "(log(1 + exp(beta x)) / beta is not one of its activations)")
        return Activation("softplus", threshold=_parameter(m, "threshold", where))
    # Hardsigmoid is relu6(x + 3) / 6 = min(max(x / 6 + 1/2, 0), 1): the defaults 1/6, 1/2
    return Activation(_SMOOTH_MODULES[kind])


def from_torch(module: Any, input_shape: tuple[int, ...] | None = None) -> Network:
    """Convert an ``nn.Sequential`` (or TorchScript of one) to a :class:`Network`.

    Batch norm is folded into the preceding Linear/Conv2d when there is one.
    A custom ``nn.Module`` is read through its ``forward``, traced by
    ``torch.fx``, when that applies supported layers one after the other
    (modules, ``F.relu``, ``torch.flatten(x, 1)``, ``x.view(x.size(0), -1)``,
    ``F.max_pool2d``, ``F.softmax(x, dim=1)``, ...).

    Parameters
    ----------
    module : torch.nn.Module (nn.Sequential, a custom chain) or torch.jit.ScriptModule
    input_shape : tuple of int, optional
        Shape of one input; inferred when the first layer is Linear.

    Returns
    -------
    Network
        Exactly the module's values: float32 arrays for a float32 model
        (float64 where batch-norm folding made a value that is not a
        float32), float64 arrays otherwise.

    Raises
    ------
    UnsupportedLayerError
        Naming the module type and its position for anything unsupported
        (e.g. ``Softplus(beta=2)``: only beta 1 is read).
    ModelFormatError
        When the input shape cannot be inferred (give ``input_shape``), or
        for an unusable activation parameter (a NaN ``alpha``).

    Examples
    --------
    >>> import torch
    >>> net = from_torch(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()))
    >>> net
    Network(input (3,): Dense(3->2), relu)
    """
    _warn_training_mode(module)
    sizes: list[tuple[int, int]] = []
    if _kind(module) == "Sequential":
        children, sizes = _flat_children(module)
    elif _custom_module(module):  # its forward, traced by torch.fx
        children, sizes = traced_chain(module)
    else:
        children = [("0", module)]
    layers: list[Layer] = []
    open_linear = False
    # leading arithmetic with constants ((x - mean) / std) and lumpkit's own normalisation
    # modules, folded into the input normalisation once the input shape is known
    norm_ops: list[tuple[str, Any, str, int]] = []
    out_norm: Any = None
    zero_pad: tuple[int, int, int, int] | None = None  # an nn.ZeroPad2d waiting for its conv
    ceiled: list[tuple[int, str]] = []  # poolings with ceil_mode: (layer, where)
    for pos, (name, m) in enumerate(children):
        kind = "arithmetic" if isinstance(m, InputOp) else _kind(m)
        where = f"module {pos} ({kind} {name!r})"
        if kind == USER_CLASS:  # (a pickled one is traced by torch.fx above)
            cls = getattr(m, "original_name", type(m).__name__)
            raise UnsupportedLayerError(
                f"module {pos} ({cls} {name!r}): TorchScript of the user class {cls!r}; "
                "lumpkit reads TorchScript of torch's own layers only (a user class's "
                "forward is not read, even under a torch layer's name): save the model "
                "pickled (torch.save(model)), or export it to ONNX")
        if kind in _SKIP:
            continue
        if needs_traced_view(m, kind):  # torch.jit.trace: the settings are in the graph only
            m = traced_view(m, kind, where)
        if out_norm is not None:
            raise UnsupportedLayerError(f"{where}: a layer after the output normalisation")
        if isinstance(m, InputOp) or kind == "InputNormalization":
            if any(not isinstance(lyr, Flatten) for lyr in layers) or zero_pad is not None or (
                    kind == "InputNormalization" and norm_ops):
                raise UnsupportedLayerError(
                    f"{where}: arithmetic on the data after the first layer (lumpkit reads "
                    "constants added, subtracted, multiplied or divided before it, as the "
                    "input normalisation); fold it into a layer before exporting")
            norm_ops.append((kind, m, where, len(layers)))
            continue
        if kind == "OutputNormalization":
            out_norm = m
            continue
        if kind == "Linear":
            b_t = getattr(m, "bias", None)  # a traced Linear(bias=False) has no attribute
            bias = _np(b_t) if b_t is not None else np.zeros(int(m.weight.shape[0]))
            layers.append(Dense(_np(m.weight), bias))
            open_linear = True
            continue
        if kind == "Conv2d":
            if str(getattr(m, "padding_mode", "zeros")) != "zeros":
                raise UnsupportedLayerError(f"{where}: padding_mode {m.padding_mode!r}")
            pad = m.padding
            groups, dil = int(m.groups), _pair(m.dilation)
            if pad == "same":  # stride 1: PyTorch pads d (k - 1), the odd one at the end
                kh0, kw0 = (int(k) for k in m.weight.shape[2:])
                th, tw = dil[0] * (kh0 - 1), dil[1] * (kw0 - 1)
                padding = (th // 2, tw // 2, th - th // 2, tw - tw // 2)
            elif isinstance(pad, str):
                if pad != "valid":
                    raise UnsupportedLayerError(f"{where}: padding={pad!r}; use explicit padding")
                padding = (0, 0, 0, 0)
            else:
                ph, pw = _pair(pad)
                padding = (ph, pw, ph, pw)
            if zero_pad is not None:  # an nn.ZeroPad2d just before: part of this padding
                padding = (padding[0] + zero_pad[0], padding[1] + zero_pad[1],
                           padding[2] + zero_pad[2], padding[3] + zero_pad[3])
                zero_pad = None
            w = _np(m.weight)
            if groups != 1 or dil != (1, 1):  # the plain convolution it equals (exact)
                w = expand_conv_weight(w, groups, dil, int(m.in_channels), where)
            bias = _np(m.bias) if m.bias is not None else np.zeros(int(m.weight.shape[0]))
            layers.append(Conv2d(w, bias, _pair(m.stride), padding))
            open_linear = True
            continue
        if zero_pad is not None:
            raise UnsupportedLayerError(
                f"{where}: follows a zero padding (nn.ZeroPad2d), which lumpkit reads only "
                "just before a Conv2d")
        if kind in ("ZeroPad2d", "ConstantPad2d"):
            left_, right_, top_, bottom_ = (int(v) for v in m.padding)
            if kind == "ConstantPad2d" and float(m.value) != 0.0:
                raise UnsupportedLayerError(f"{where}: padding with {float(m.value)}, not 0")
            if min(left_, right_, top_, bottom_) < 0:
                raise UnsupportedLayerError(f"{where}: negative padding (a crop)")
            zero_pad = (top_, left_, bottom_, right_)
            open_linear = False
            continue
        if kind.startswith("BatchNorm"):
            if m.running_mean is None or m.running_var is None or getattr(
                    m, "batch_statistics", False):
                raise UnsupportedLayerError(
                    f"{where}: normalises each batch by its own statistics "
                    "(track_running_stats=False, or traced in training mode); lumpkit reads "
                    "batch norm with running statistics only (call model.eval() before "
                    "tracing, and keep track_running_stats=True)")
            mean, var = _np(m.running_mean), _np(m.running_var)
            w = _np(m.weight) if m.weight is not None else np.ones_like(mean)
            b = _np(m.bias) if m.bias is not None else np.zeros_like(mean)
            eps = float(m.eps)
            with np.errstate(invalid="ignore"):
                bad = ~(var + eps > 0)  # (NaN too)
            if np.any(bad):
                c0 = int(np.flatnonzero(bad)[0])
                raise ModelFormatError(
                    f"{where}: {kind} of channel {c0}: running variance {float(var[c0])!r} + "
                    f"eps {eps!r} is not positive, so the channel is divided by zero (or a "
                    "square root of a negative number); the checkpoint is damaged")
            s = w / np.sqrt(var + eps)
            t = b - mean * s
            last = layers[-1] if layers else None
            if open_linear and isinstance(last, Dense | Conv2d):
                # (the layer stays open: a second batch norm folds too, as in ONNX)
                layers[-1] = fold_batchnorm(last, s, t)
            else:
                layers.append(BatchNorm(s, t))
                open_linear = False
            continue
        open_linear = False
        if kind in ("MaxPool2d", "AvgPool2d"):
            if kind == "MaxPool2d" and _pair(m.dilation) != (1, 1):
                raise UnsupportedLayerError(f"{where}: dilation")
            if bool(m.ceil_mode):  # checked once the input shape is known
                ceiled.append((len(layers), where))
            k = _pair(m.kernel_size)
            st = _pair(m.stride if m.stride is not None else m.kernel_size)
            ph, pw = _pair(m.padding)
            if kind == "MaxPool2d":
                layers.append(MaxPool2d(k, st, (ph, pw, ph, pw)))
            else:
                if getattr(m, "divisor_override", None) is not None:
                    raise UnsupportedLayerError(f"{where}: divisor_override")
                layers.append(AvgPool2d(k, st, (ph, pw, ph, pw), bool(m.count_include_pad)))
        elif kind in ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d"):
            if input_shape is not None:  # (its window follows from the shapes before it)
                _check_ceiled(layers, ceiled, input_shape)
            layers.append(_adaptive_pool(kind, m, layers, input_shape, where))
        elif kind == "Flatten":
            if int(m.start_dim) != 1 or int(m.end_dim) != -1:
                raise UnsupportedLayerError(f"{where}: only Flatten(1, -1)")
            layers.append(Flatten())
        elif kind == "ReLU":
            layers.append(Activation("relu"))
        elif kind == "LeakyReLU":
            slope = float(m.negative_slope)
            if not math.isfinite(slope):
                raise ModelFormatError(f"{where}: LeakyReLU negative_slope {slope}; it must be "
                                       "a finite number")
            layers.append(Activation("leaky_relu", alpha=to_rational(slope)))
        elif kind == "PReLU":
            layers.append(Activation("prelu", slopes=_np(m.weight).reshape(-1)))
        elif kind == "Tanh":
            layers.append(Activation("tanh"))
        elif kind == "Sigmoid":
            layers.append(Activation("sigmoid"))
        elif kind in ("ReLU6", "Hardtanh"):
            lo, hi = (0.0, 6.0) if kind == "ReLU6" else (float(m.min_val), float(m.max_val))
            layers.append(clip_activation(None if lo == float("-inf") else to_rational(lo),
                                          None if hi == float("inf") else to_rational(hi)))
        elif kind in ("Softmax", "LogSoftmax"):
            dim = getattr(m, "dim", None)
            if dim not in (1, -1, None):
                raise UnsupportedLayerError(
                    f"{where}: {kind}(dim={dim}); lumpkit takes a softmax over the features "
                    "(dim=1) only")
            layers.append(Activation("softmax" if kind == "Softmax" else "log_softmax"))
        elif kind == "GELU":
            approx = str(getattr(m, "approximate", "none"))
            if approx not in ("none", "tanh"):
                raise UnsupportedLayerError(f"{where}: GELU(approximate={approx!r})")
            layers.append(Activation("gelu" if approx == "none" else "gelu_tanh"))
        elif kind in _SMOOTH_MODULES:
            layers.append(_smooth_activation(kind, m, where))
        else:
            raise UnsupportedLayerError(f"{where}: {kind} is not supported by lumpkit")
    if zero_pad is not None:
        raise UnsupportedLayerError("the model ends with a zero padding (nn.ZeroPad2d); lumpkit "
                                    "reads one only just before a Conv2d")
    if input_shape is None:
        first = next((lyr for lyr in layers if isinstance(lyr, Dense | Conv2d)), None)
        if isinstance(first, Dense) and (not layers or isinstance(layers[0], Dense)):
            input_shape = (int(first.weight.shape[1]),)
        else:
            raise ModelFormatError(
                "cannot infer the input shape of this PyTorch model; pass input_shape "
                "(CLI: --input-shape C,H,W)"
            )
    _check_ceiled(layers, ceiled, input_shape)
    net = Network(tuple(layers), tuple(input_shape))
    if norm_ops or out_norm is not None:
        net = Network(net.layers, net.input_shape,
                      _normalization(norm_ops, out_norm, net))
    flats = [i for i, lyr in enumerate(net.layers) if isinstance(lyr, Flatten)]
    for nth, want in sizes:  # x.view(batch, n) must be a flatten
        got = math.prod(net.shapes[flats[nth] + 1])
        if got != want:
            raise UnsupportedLayerError(
                f"reshape number {nth + 1} of the forward asks for (batch, {want}), but an "
                f"example has {got} values there: it would change the batch size")
    # a float32 model is held as float32 (lumpkit's own normalisation modules hold float64
    # buffers whatever the model's type; its CastFloat64 first marks float32 data)
    tensors = [t for m in module.modules() if _kind(m) not in _OWN_FLOAT64
               for t in (*m.parameters(recurse=False), *m.buffers(recurse=False))]
    narrow = all(not t.is_floating_point() or t.element_size() <= 4 for t in tensors)
    if narrow:
        net = narrowed_to_float32(net)
    lead = next((_kind(m) for _, m in children if _kind(m) not in _SKIP[:4]), None)
    tail = next((_kind(m) for _, m in reversed(children) if _kind(m) not in _SKIP[:4]), None)
    kinds = {str(t.dtype) for t in tensors if t.is_floating_point()}
    if tail in _CAST_TO:
        data = _CAST_TO[tail]
    elif kinds in ({"torch.float16"}, {"torch.bfloat16"}):
        data = "float16" if kinds == {"torch.float16"} else "bfloat16"  # a half model's data
    else:
        data = "float32" if narrow or lead == "CastFloat64" else "float64"
    return Network(net.layers, net.input_shape, net.normalization, data)


def _normalization(norm_ops: list[tuple[str, Any, str, int]], out_norm: Any, net: Network
                   ) -> Normalization | None:
    """The input normalisation of the leading arithmetic (or lumpkit's module), and
    lumpkit's output normalisation module, exactly."""
    norm: dict[str, np.ndarray] = {}
    n_in = math.prod(net.input_shape)
    for kind, m, where, before in norm_ops:
        if kind == "InputNormalization":
            lo, hi = _np(m.lo), _np(m.hi)
            norm["input_mean"], norm["input_range"] = _np(m.mean), _np(m.range)
            if np.any(lo != -np.inf):
                norm["input_min"] = lo
            if np.any(hi != np.inf):
                norm["input_max"] = hi
            if any(a.shape != (n_in,) for a in norm.values()) or any(
                    not np.all(np.isfinite(norm[k])) for k in norm):
                raise ModelFormatError(
                    f"{where}: parameters of {n_in} finite values expected (partly clipped "
                    "inputs are not supported)")
            continue
        shape = net.input_shape if before == 0 else (n_in,)  # only flattens before it
        try:
            vals = np.broadcast_to(m.value, (1, *shape)).reshape(-1)
        except ValueError:
            raise UnsupportedLayerError(
                f"{where}: a constant of shape {m.value.shape} does not broadcast to the data "
                f"shape (batch, {', '.join(map(str, shape))})") from None
        fold_input_op(norm, m.op, np.ascontiguousarray(vals), where)
    if out_norm is not None:
        n_out = math.prod(net.shapes[-1])
        norm["output_mean"], norm["output_range"] = _np(out_norm.mean), _np(out_norm.range)
        if norm["output_mean"].shape != (n_out,) or norm["output_range"].shape != (n_out,):
            raise ModelFormatError(f"OutputNormalization: {n_out} values expected")
    return normalization_of(norm, n_in, math.prod(net.shapes[-1]))


def _check_ceiled(layers: list[Layer], ceiled: list[tuple[int, str]],
                  input_shape: tuple[int, ...]) -> None:
    """Refuse, in order, the poolings with ``ceil_mode`` (at ``layers[i]``) whose rounding
    up adds a partial window: before any shape after them is computed, which a partial
    window would change."""
    for i, where in ceiled:
        pool = layers[i]
        assert isinstance(pool, MaxPool2d | AvgPool2d)
        shape = Network(tuple(layers[:i]), tuple(input_shape)).output_shape if i else \
            tuple(input_shape)
        ceil_mode_changes_nothing(shape, pool.kernel, pool.stride, pool.padding, where)


def read_torch(path: str | os.PathLike[str], input_shape: tuple[int, ...] | None = None
               ) -> Network:
    """Read a ``.pt`` file: a TorchScript module or a pickled ``nn.Sequential``."""
    import torch

    p = str(path)
    extra = {"lumpkit_input_shape": ""}
    module: Any
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated but still a shipped format
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(p, map_location="cpu", _extra_files=extra)
    except Exception:
        try:
            with warnings.catch_warnings():  # (torch warns of a zip that looks like TorchScript)
                warnings.simplefilter("ignore", UserWarning)
                module = torch.load(p, map_location="cpu", weights_only=False)
        except Exception as exc:
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ModelFormatError(f"{p}: neither TorchScript nor a pickled module ({why})"
                                   ) from None
        extra["lumpkit_input_shape"] = ",".join(
            str(x) for x in getattr(module, "lumpkit_input_shape", ()) or ())
    if not hasattr(module, "named_children"):
        raise ModelFormatError(f"{p}: holds a {type(module).__name__}, not an nn.Module "
                               "(a state_dict needs its model class)")
    text = extra["lumpkit_input_shape"]
    text = text.decode() if isinstance(text, bytes) else text
    if input_shape is None and text:
        input_shape = tuple(int(x) for x in text.split(","))
    try:
        return from_torch(module, input_shape)
    except AttributeError as exc:  # a pickle of another torch version, or a tampered one
        raise ModelFormatError(
            f"{p}: a module in the file lacks what this torch's class has ({exc}); re-save the "
            "model with this torch version, or export it to ONNX") from None


def to_torch(net: Network, dtype: str = "float32", io_dtype: str | None = None) -> Any:
    """Build an ``nn.Sequential`` computing ``net``.

    A normalisation becomes lumpkit's ``InputNormalization`` module first
    (and ``OutputNormalization`` last, when the output is scaled), with
    float64 buffers holding the exact values.

    Parameters
    ----------
    net : Network
    dtype : {'float32', 'float64'}
        The type of the weights.
    io_dtype : {'float16', 'bfloat16', 'float32', 'float64'}, optional
        The type of the inputs and outputs, when it is not ``dtype``: float32
        data around float64 weights go through lumpkit's ``CastFloat64``
        module first and ``CastFloat32`` last; float16 (bfloat16) data
        through the cast to ``dtype`` first and ``CastFloat16``
        (``CastBFloat16``) last.

    Returns
    -------
    torch.nn.Sequential
        In evaluation mode.

    Raises
    ------
    UnsupportedLayerError
        For asymmetric pooling padding or a Permute (no ``nn`` module holds them;
        a convolution's asymmetric padding becomes an ``nn.ZeroPad2d`` before it),
        and for a hard_sigmoid or hard_swish with another slope or offset
        than PyTorch's 1/6 and 1/2.

    Notes
    -----
    A softplus without threshold (ONNX's) becomes ``nn.Softplus`` with the
    threshold 20 (float32) or 40 (float64), above which ``log(1 + exp(x))``
    rounds to ``x`` in that precision anyway.

    Examples
    --------
    >>> import numpy as np
    >>> from nnreduce import Dense, Network
    >>> to_torch(Network((Dense(np.eye(2), np.zeros(2)),), (2,)))
    Sequential(
      (0): Linear(in_features=2, out_features=2, bias=True)
    )
    """
    import torch
    from torch import nn

    netf = as_float(net)
    tdt = torch.float32 if dtype == "float32" else torch.float64
    mods: list[Any] = []
    for i, layer in enumerate(netf.layers):
        shape = netf.shapes[i]
        if isinstance(layer, Dense):
            m = nn.Linear(layer.weight.shape[1], layer.weight.shape[0], dtype=tdt)
            with torch.no_grad():
                m.weight.copy_(torch.tensor(layer.weight))
                assert m.bias is not None
                m.bias.copy_(torch.tensor(layer.bias))
            mods.append(m)
        elif isinstance(layer, Conv2d):
            t, left, b, r = layer.padding
            if t != b or left != r:  # nn.Conv2d pads symmetrically: the rest before it
                mods.append(nn.ZeroPad2d((left - min(left, r), r - min(left, r),
                                          t - min(t, b), b - min(t, b))))
                t, left = min(t, b), min(left, r)
            # the smallest equal convolution: groups / dilation where the weight has them
            w, groups, dil = compact_conv_weight(layer.weight)
            o, c, kh, kw = layer.weight.shape[0], layer.weight.shape[1], *w.shape[2:]
            conv = nn.Conv2d(c, o, (kh, kw), stride=layer.stride, padding=(t, left),
                             dilation=dil, groups=groups, dtype=tdt)
            with torch.no_grad():
                conv.weight.copy_(torch.tensor(w))
                assert conv.bias is not None
                conv.bias.copy_(torch.tensor(layer.bias))
            mods.append(conv)
        elif isinstance(layer, MaxPool2d | AvgPool2d):
            t, left, b, r = layer.padding
            if t != b or left != r:
                raise UnsupportedLayerError(f"layer {i}: asymmetric pooling padding")
            if isinstance(layer, MaxPool2d):
                mods.append(nn.MaxPool2d(layer.kernel, layer.stride, (t, left)))
            else:
                mods.append(nn.AvgPool2d(layer.kernel, layer.stride, (t, left),
                                         count_include_pad=layer.count_include_pad))
        elif isinstance(layer, Flatten):
            mods.append(nn.Flatten())
        elif isinstance(layer, BatchNorm):
            bn = (nn.BatchNorm2d(layer.scale.shape[0], dtype=tdt) if len(shape) == 3
                  else nn.BatchNorm1d(layer.scale.shape[0], dtype=tdt))
            assert bn.running_mean is not None and bn.running_var is not None
            with torch.no_grad():
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
                bn.weight.copy_(torch.tensor(layer.scale))
                bn.bias.copy_(torch.tensor(layer.shift))
            mods.append(bn)
        elif isinstance(layer, Activation):
            if layer.kind == "relu":
                mods.append(nn.ReLU())
            elif layer.kind == "leaky_relu":
                mods.append(nn.LeakyReLU(float(layer.alpha or 0)))
            elif layer.kind == "prelu":
                assert layer.slopes is not None
                pm = nn.PReLU(layer.slopes.shape[0], dtype=tdt)
                with torch.no_grad():
                    pm.weight.copy_(torch.tensor(layer.slopes))
                mods.append(pm)
            elif layer.kind == "tanh":
                mods.append(nn.Tanh())
            elif layer.kind == "sigmoid":
                mods.append(nn.Sigmoid())
            elif layer.kind in ("gelu", "gelu_tanh"):
                mods.append(nn.GELU(approximate="tanh" if layer.kind == "gelu_tanh" else "none"))
            elif layer.kind in _TORCH_SMOOTH:
                mods.append(_torch_activation(layer, i, dtype, nn))
            elif layer.kind == "softmax":
                mods.append(nn.Softmax(dim=1))
            elif layer.kind == "log_softmax":
                mods.append(nn.LogSoftmax(dim=1))
            elif layer.kind == "clip":
                assert layer.bounds is not None
                lo, hi = layer.bounds
                mods.append(nn.Hardtanh(float("-inf") if lo is None else float(lo),
                                        float("inf") if hi is None else float(hi)))
            elif layer.kind == "identity":
                mods.append(nn.Identity())
            else:  # pragma: no cover - every kind is handled above
                raise UnsupportedLayerError(f"activation {layer.kind!r} has no PyTorch form here")
        else:
            raise UnsupportedLayerError(
                f"layer {i} ({type(layer).__name__}) has no nn.Sequential equivalent"
            )
    # lumpkit's modules are added after .to(): their float64 buffers keep the exact values
    from ._torch_modules import (
        CastBFloat16,
        CastFloat16,
        CastFloat32,
        CastFloat64,
        InputNormalization,
        OutputNormalization,
    )

    first: list[Any] = []
    last: list[Any] = []
    nrm = net.normalization
    if nrm is not None:
        def buf(a: np.ndarray | None, fill: float, n: int) -> Any:
            if a is None:
                return torch.full((n,), fill, dtype=torch.float64)
            vals = np.array([float(v) for v in np.asarray(a).reshape(-1)], dtype=np.float64)
            return torch.tensor(np.broadcast_to(vals, (n,)).copy())

        n_in, n_out = math.prod(net.input_shape), math.prod(net.shapes[-1])
        first = [InputNormalization(buf(nrm.input_mean, 0.0, n_in),
                                    buf(nrm.input_range, 1.0, n_in),
                                    buf(nrm.input_min, -math.inf, n_in),
                                    buf(nrm.input_max, math.inf, n_in))]
        if any(v != 0 for v in nrm.output_mean) or any(v != 1 for v in nrm.output_range):
            last = [OutputNormalization(buf(nrm.output_mean, 0.0, n_out),
                                        buf(nrm.output_range, 1.0, n_out))]
    if io_dtype not in (None, dtype):  # the data changes type around the layers
        first.insert(0, CastFloat64() if dtype == "float64" else CastFloat32())
        last.append({"float16": CastFloat16, "bfloat16": CastBFloat16, "float32": CastFloat32,
                     "float64": CastFloat64}[io_dtype]())
    seq = nn.Sequential(*mods).to(tdt)
    return nn.Sequential(*first, *seq, *last).eval() if first or last else seq.eval()


#: The kinds :func:`_torch_activation` writes.
_TORCH_SMOOTH = frozenset(_SMOOTH_MODULES.values())
#: PyTorch's Hardsigmoid and Hardswish: slope 1/6, offset 1/2.
_HARD = (Fraction(1, 6), Fraction(1, 2))
#: The threshold of an ``nn.Softplus`` standing for a softplus without one: above it
#: log(1 + exp(x)) rounds to x in that precision (17 would do for float32, 37 for float64).
_SOFTPLUS_THRESHOLD = {"float32": 20.0, "float64": 40.0}


def _torch_activation(layer: Activation, i: int, dtype: str, nn: Any) -> Any:
    """The ``torch.nn`` module of an activation of :data:`_TORCH_SMOOTH`."""
    kind = layer.kind
    if kind in ("elu", "celu"):
        return (nn.ELU if kind == "elu" else nn.CELU)(alpha=float(layer.alpha or 0))
    if kind in ("hard_sigmoid", "hard_swish"):
        if (layer.alpha, layer.beta) != _HARD:
            raise UnsupportedLayerError(
                f"layer {i}: {kind} with slope {layer.alpha} and offset {layer.beta}; PyTorch's "
                "Hardsigmoid/Hardswish have 1/6 and 1/2 only; export to .onnx or .npz")
        return nn.Hardsigmoid() if kind == "hard_sigmoid" else nn.Hardswish()
    if kind == "softplus":
        t = layer.threshold
        return nn.Softplus(beta=1.0, threshold=_SOFTPLUS_THRESHOLD[dtype] if t is None
                           else float(t))
    return {"selu": nn.SELU, "silu": nn.SiLU, "softsign": nn.Softsign, "mish": nn.Mish}[kind]()


def write_torch(net: Network, path: str | os.PathLike[str], *, torchscript: bool = False,
                dtype: str = "float32", io_dtype: str | None = None) -> None:
    """Write ``net`` as a pickled ``nn.Sequential`` or TorchScript (atomically).

    A normalisation (NNet's, or a ``(x - mean) / std`` read from a model) is
    written as lumpkit's ``InputNormalization``/``OutputNormalization``
    modules: TorchScript carries their code, a pickle needs lumpkit to load.
    """
    import torch

    seq = to_torch(net, dtype, io_dtype)
    shape = ",".join(str(s) for s in net.input_shape)
    buf = io.BytesIO()
    if torchscript:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(torch.jit.script(seq), buf,
                           _extra_files={"lumpkit_input_shape": shape})
    else:
        seq.lumpkit_input_shape = tuple(net.input_shape)
        torch.save(seq, buf)
    data = buf.getvalue()

    def _write(fh: Any) -> None:
        fh.write(data)

    atomic_write(Path(path), _write)

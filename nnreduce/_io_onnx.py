"""ONNX import and export (the ``onnx`` extra; run with onnxruntime in the tests).

Supported operators (a single chain from the one graph input to the one
output): Gemm, MatMul (+ Add), Add/Sub of constants (folded into the bias,
or an input shift before the first layer), Relu, LeakyRelu, PRelu, Sigmoid,
Tanh, Gelu (opset 20, both forms), Elu, Selu, Celu, Softplus, Softsign,
HardSigmoid, HardSwish, Mish, Swish (alpha 1), the activations that
exporters write as several operators (SiLU, Mish, Hardswish, Softsign and
both GELUs: :mod:`nnreduce._onnx_patterns`), Conv, MaxPool,
AveragePool, Flatten, Reshape to 2-D (or to 1-D with a batch of 1),
Transpose (keeping the batch axis first; constant transposes are folded),
BatchNormalization, Identity, Dropout, Constant, and leading Max/Min/Sub/Div
plus trailing Mul/Add as written by :func:`write_onnx` for a normalisation.

The exporter styles read besides (Squeeze/Unsqueeze, MatMul on padded axes or with the
weight first, Cast, scalings inside the network, ...) are listed in docs/formats-nn.md.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from numpy.exceptions import AxisError

from lumpcore import ModelFormatError, UnsupportedLayerError, to_rational
from lumpcore._atomic import atomic_write_bytes as atomic_write

from ._conv import ceil_mode_changes_nothing, compact_conv_weight, expand_conv_weight
from ._evaluate import SELU_ALPHA, SELU_SCALE
from ._input_norm import fold_input_op, normalization_of
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
    as_float,
    clip_activation,
    fold_batchnorm,
    narrowed_to_float32,
    pads_below_kernel,
)
from ._onnx_patterns import match_activation

__all__ = ["read_onnx", "write_onnx"]


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _tensor_array(tensor: Any, where: str) -> np.ndarray:
    """An ONNX tensor's values; a corrupt tensor (data not matching its dims, an unknown
    type, missing external data) is a :class:`ModelFormatError` naming it."""
    from onnx import numpy_helper

    try:
        return np.asarray(numpy_helper.to_array(tensor))
    except Exception as exc:  # onnx raises ValueError, TypeError, KeyError, OSError, ...
        raise ModelFormatError(f"{where}: its data cannot be read ({type(exc).__name__}: "
                               f"{exc}); the file is corrupt or incomplete") from None


def _exact_float_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """``a + b`` when float64 holds every sum exactly (TwoSum error zero), else None."""
    x, y = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    total = x + y
    back = total - x
    if not np.all(np.isfinite(total)) or np.any((x - (total - back)) + (y - back) != 0):
        return None
    return total


def _dead_nodes(nodes: list[Any], output: str) -> set[int]:
    """Positions of the nodes on no path to ``output`` (their results are never read)."""
    live = {output}
    dead: set[int] = set()
    for k in range(len(nodes) - 1, -1, -1):
        if any(o in live for o in nodes[k].output):
            live.update(i for i in nodes[k].input if i)
        else:
            dead.add(k)
    return dead


def _fused_parallel(nodes: list[Any], consts: dict[str, np.ndarray]) -> list[Any]:
    """Replace ``Add(L(x, W1, b1), L(x, W2, b2))`` by ``L(x, W1 + W2, b1 + b2)`` for linear
    nodes ``L`` (Gemm, Conv, MatMul) of one input with equal attributes and initializer
    weights, when float64 holds the sums exactly: the form in which :func:`write_onnx`
    writes float64 weights as float32 parts.  Repeated until nothing changes."""
    from onnx import helper

    nodes = list(nodes)
    while True:
        made = {o: k for k, n in enumerate(nodes) for o in n.output}
        readers: dict[str, int] = {}
        for n in nodes:
            for i in n.input:
                readers[i] = readers.get(i, 0) + 1
        for k, add in enumerate(nodes):
            if add.op_type != "Add" or len(add.input) != 2:
                continue
            ia, ib = (made.get(i) for i in add.input)
            if ia is None or ib is None or ia == ib:
                continue
            na, nb = nodes[ia], nodes[ib]
            if na.op_type != nb.op_type or na.op_type not in ("Gemm", "Conv", "MatMul") \
                    or na.input[0] != nb.input[0] or _attrs(na) != _attrs(nb) \
                    or any(readers.get(n.output[0], 0) != 1 for n in (na, nb)):
                continue
            at = _attrs(na)
            if na.op_type == "Gemm" and (at.get("alpha", 1.0) != 1.0 or at.get("beta", 1.0)
                                         != 1.0 or at.get("transA", 0)):
                continue
            parts = [list(na.input[1:]), list(nb.input[1:])]
            if any(not p or any(i and i not in consts for i in p) for p in parts):
                continue
            w = _exact_float_sum(consts[parts[0][0]], consts[parts[1][0]])
            bias: list[np.ndarray] = [consts[p[1]] for p in parts if len(p) > 1 and p[1]]
            b = bias[0] if len(bias) == 1 else (
                _exact_float_sum(bias[0], bias[1]) if bias else None)
            if w is None or (len(bias) == 2 and b is None) or (
                    w.shape != consts[parts[0][0]].shape):
                continue
            names = [f"{add.output[0]}__fused_W", f"{add.output[0]}__fused_b"]
            consts[names[0]] = w
            ins = [na.input[0], names[0]]
            if b is not None:
                consts[names[1]] = b
                ins.append(names[1])
            fused = helper.make_node(na.op_type, ins, [add.output[0]], name=add.name, **at)
            nodes = [fused if j == k else n for j, n in enumerate(nodes) if j not in (ia, ib)]
            break
        else:
            return nodes


def _same_pads(n: int, k: int, s: int, upper: bool) -> tuple[int, int]:
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    small = total // 2
    return (small, total - small) if upper else (total - small, small)


class _Builder:
    def __init__(self, path: str, input_shape: tuple[int, ...]) -> None:
        self.path = path
        self.layers: list[Layer] = []
        self.input_shape = input_shape
        self.shape = input_shape
        self.open_linear = False  # last layer is Dense/Conv with nothing after it
        self.norm: dict[str, np.ndarray] = {}
        self.after_last = False
        # the ONNX tensor's own shape (batch left out): `shape` with axes of size 1 added or
        # removed (by Squeeze/Unsqueeze, a Reshape or a MatMul on padded axes), same values
        self.real = input_shape

    def where(self, k: int, node: Any) -> str:
        return f"{self.path}: node {k} ({node.op_type} {node.name!r})"

    def add(self, layer: Layer) -> None:
        # keep the running shape (validates the layer against it as we go)
        shape = _output_shape(layer, self.shape, len(self.layers))
        if shape != self.shape or self.real == self.shape:
            self.real = shape  # a layer keeping the shape (an activation) keeps padded axes
        self.shape = shape
        self.layers.append(layer)
        self.open_linear = isinstance(layer, Dense | Conv2d)

    def set_real(self, real: tuple[int, ...]) -> None:
        """The tensor now has the shape ``real`` (same values in C order); held as a vector
        when at most one axis is longer than 1."""
        if sum(d > 1 for d in real) <= 1 and len(self.shape) > 1:
            self.add(Flatten())
        self.real = real


_FLOAT_TYPES = {1: np.float32, 10: np.float16, 11: np.float64}  # TensorProto codes
# a model's data type (Network.data_dtype) by TensorProto code, and back
_DATA_DTYPE = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}
_DATA_CODE = {v: k for k, v in _DATA_DTYPE.items()}
_INT_TYPES = {6, 7}  # int32, int64
# the batch size in the values of a Shape node (symbolic: the model's batch is dynamic)
_BATCH = np.int64(-(2**62))
# casts of the data that keep every value: float16 and bfloat16 to float, any of them to double
_WIDENING = {(10, 1), (16, 1), (10, 11), (16, 11), (1, 11)}
# operators that act on the values whatever the rank of the tensor: read also where the ONNX
# tensor has axes of size 1 that lumpkit's network does not (after Squeeze/Unsqueeze, ...)
_SHAPE_FREE = {"Identity", "Dropout", "Cast", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Gelu",
               "Clip", "Squeeze", "Unsqueeze", "Flatten", "Reshape", "MatMul", "Gemm", "Add",
               "Sub", "Mul", "Div", "Max", "Min", "ArgMax", "ArgMin", "Elu", "Selu", "Celu",
               "Softplus", "Softsign", "HardSigmoid", "HardSwish", "Mish", "Swish"}


def _fold_constant(op: str, ins: list[np.ndarray | None], at: dict[str, Any]
                   ) -> np.ndarray | None:
    """The value of ``op`` on constant inputs, for ops that only move or keep values."""
    x = ins[0] if ins else None
    if x is None:
        return None
    if op == "Identity":
        return x
    if op == "Transpose":
        return np.transpose(x, at.get("perm"))
    if op == "Reshape" and len(ins) > 1 and ins[1] is not None:
        shape = [int(d) for d in np.asarray(ins[1]).reshape(-1)]
        if not at.get("allowzero", 0):
            if any(d == 0 and j >= x.ndim for j, d in enumerate(shape)):
                return None  # 0 copies a dimension the input does not have
            shape = [x.shape[j] if d == 0 else d for j, d in enumerate(shape)]
        try:
            return x.reshape(shape)
        except ValueError:
            return None
    if op in ("Squeeze", "Unsqueeze"):
        axes_in = ins[1] if len(ins) > 1 else None
        axes = at.get("axes") if axes_in is None else np.asarray(axes_in).reshape(-1).tolist()
        if op == "Squeeze":
            return np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(axes))
        if axes is None:
            return None
        out = x
        for ax in sorted(int(a) % (x.ndim + len(axes)) for a in axes):
            out = np.expand_dims(out, ax)
        return out
    if op == "Cast" and at.get("to") in _FLOAT_TYPES and x.dtype.kind == "f":
        return x.astype(_FLOAT_TYPES[at["to"]]).astype(np.float64)  # rounds like ONNX
    if op == "Cast" and at.get("to") in _INT_TYPES and x.dtype.kind in "iu":
        return x.astype(np.int64)
    if op == "ConstantOfShape" and x.dtype.kind in "iu" and x.ndim == 1 and not np.any(
            x == _BATCH) and np.all(x >= 0) and int(np.prod(x)) <= 2**20:
        value = at.get("value")
        fill = (_tensor_array(value, "ConstantOfShape value").reshape(-1)[:1]
                if value is not None else np.zeros(1, dtype=np.float32))
        if fill.size != 1:
            return None
        out = np.full(tuple(int(d) for d in x), fill[0], dtype=fill.dtype)
        return out.astype(np.float64) if out.dtype.kind == "f" else out
    if any(a is not None and a.dtype.kind not in "iu" for a in ins):
        return None  # the index and shape arithmetic below is for integers only
    if op == "Gather" and len(ins) > 1 and ins[1] is not None:
        try:
            return np.take(x, ins[1].astype(np.int64), axis=int(at.get("axis", 0)))
        except (IndexError, ValueError, AxisError):
            return None
    parts = [a for a in ins if a is not None]
    if op == "Concat" and len(parts) == len(ins):
        try:
            return np.concatenate([np.atleast_1d(a) for a in parts], axis=int(at.get("axis", 0)))
        except (ValueError, AxisError):
            return None
    if op == "Slice" and x.ndim >= 1:
        if len(ins) >= 3:  # opset 10+: starts, ends, axes, steps as inputs
            bounds = [None if a is None else a.reshape(-1).tolist() for a in ins[1:5]]
            bounds += [None] * (4 - len(bounds))
            starts, ends, axes, steps = bounds
        else:
            starts, ends, axes, steps = at.get("starts"), at.get("ends"), at.get("axes"), None
        if starts is None or ends is None or len(starts) != len(ends):
            return None
        axes = list(range(len(starts))) if axes is None else axes
        steps = [1] * len(starts) if steps is None else steps
        if not len(axes) == len(steps) == len(starts):
            return None
        cut: list[slice] = [slice(None)] * x.ndim
        for a, lo, hi, step in zip(axes, starts, ends, steps, strict=True):
            if int(step) == 0 or not -x.ndim <= int(a) < x.ndim:
                return None
            # (Python's slices clamp out-of-range bounds as ONNX specifies)
            cut[int(a) % x.ndim] = slice(int(lo), int(hi), int(step))
        return x[tuple(cut)]
    if op == "Mul" and len(ins) == 2 and ins[1] is not None and not (
            np.any(x == _BATCH) or np.any(ins[1] == _BATCH)):
        return x * ins[1]
    return None


def _check_node(node: Any, opset: int, where: str) -> None:
    """Refuse a node of another domain, or one that breaks its operator's ONNX schema (too
    few or too many inputs, a required attribute missing), naming it: the reader below
    trusts the schema."""
    import onnx

    if node.domain not in ("", "ai.onnx"):
        raise UnsupportedLayerError(
            f"{where}: operator {node.op_type} of the domain {node.domain!r}; lumpkit reads "
            "the standard ONNX operators (the default domain) only")
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, "")
    except onnx.defs.SchemaError:
        return  # no such operator at this opset: refused by name where it is read
    n = len(node.input)
    lo, hi = schema.min_input, schema.max_input
    if n < lo or n > hi or not all(node.input[:lo]):
        want = (f"{lo} inputs" if lo == hi else f"{lo} to {hi} inputs" if hi < 2**31 - 1
                else f"at least {lo} inputs")
        empty = " (a required input left unnamed)" if lo <= n <= hi else ""
        raise ModelFormatError(
            f"{where}: {node.op_type} takes {want}, not {list(node.input)}{empty}; the model "
            "is not valid ONNX (onnx.checker.check_model reports such errors)")
    given = {a.name for a in node.attribute}
    missing = sorted(a for a, spec in schema.attributes.items()
                     if spec.required and a not in given)
    if missing:
        raise ModelFormatError(
            f"{where}: {node.op_type} without its required attribute(s) {missing}; the model "
            "is not valid ONNX (onnx.checker.check_model reports such errors)")


def _opset(model: Any) -> int:
    """The model's version of the default ONNX operator set."""
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def read_onnx(path: str | os.PathLike[str], input_shape: tuple[int, ...] | None = None
              ) -> Network:
    """Read an ONNX model (a chain of the supported operators) as a :class:`Network`.

    The weights keep their exact values: a float32 model is held as float32
    (except values that batch-norm folding made, which are float64).

    Raises
    ------
    UnsupportedLayerError
        Naming the operator and its node index for anything unsupported.
    ModelFormatError
        For malformed models.
    """
    import onnx

    p = str(path)
    try:
        model = onnx.load(p)
    except Exception as exc:  # onnx raises DecodeError and others
        raise ModelFormatError(f"{p}: not a readable ONNX model ({exc})") from None
    g = model.graph
    consts: dict[str, np.ndarray] = {}
    wide = False  # whether the model has a float tensor wider than float32
    for init in g.initializer:
        arr = _tensor_array(init, f"{p}: initializer {init.name!r}")
        if arr.dtype.kind == "f":
            wide |= arr.dtype.itemsize > 4
            arr = arr.astype(np.float64)
        consts[init.name] = arr
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1 or len(g.output) != 1:
        names = [i.name for i in inputs]
        hint = ("lumpkit reads a network with one data input and one real-valued output; "
                "export it with a single output")
        reader = next(((k, n) for k, n in enumerate(g.node) if set(n.input) & set(names[1:])),
                      None)
        if reader is not None:
            k, n = reader
            hint = (f"node {k} ({n.op_type} {n.name!r}) reads "
                    f"{sorted(set(n.input) & set(names[1:]))}: weights must be constants "
                    "(initializers or Constant nodes), not graph inputs")
        raise UnsupportedLayerError(
            f"{p}: expected one data input and one output, got {len(inputs)} inputs {names} and "
            f"{len(g.output)} outputs {[o.name for o in g.output]}; {hint}"
        )
    dims = [d.dim_value if d.dim_value > 0 else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) == 1:
        raise UnsupportedLayerError(
            f"{p}: input {inputs[0].name!r} has shape {dims}, one axis and no batch axis; "
            "lumpkit reads models whose input has a batch axis first (export it with input "
            f"shape [N, {dims[0] if dims[0] is not None else 'n'}] or [1, ...])")
    if input_shape is not None:  # fills the dimensions the model leaves open (not the batch)
        given = tuple(int(x) for x in input_shape)
        if len(dims) != len(given) + 1 or any(
                d is not None and d != g for d, g in zip(dims[1:], given, strict=True)):
            raise ModelFormatError(
                f"{p}: input {inputs[0].name!r} has shape {dims} (batch first); the given "
                f"input shape {given} does not fit it")
        dims = [dims[0], *given]
    if len(dims) < 2 or any(d is None for d in dims[1:]):
        raise ModelFormatError(
            f"{p}: input {inputs[0].name!r} needs a known shape, got {dims} (batch first); "
            "give the shape of one input (input_shape=..., CLI: --input-shape C,H,W)")
    in_shape = tuple(int(d) for d in dims[1:] if d is not None)
    data_type = inputs[0].type.tensor_type.elem_type  # follows the Casts of the data
    input_type = data_type
    b = _Builder(p, in_shape)
    cur = inputs[0].name
    out_name = g.output[0].name

    # values computed from the data tensor's shape (x.view(x.size(0), -1) and the like):
    # usable only as the target of a Reshape
    from_shape: set[str] = set()

    def const(name: str, k: int, node: Any) -> np.ndarray:
        if name not in consts:
            raise UnsupportedLayerError(
                f"{b.where(k, node)}: input {name!r} must be a constant (initializer)"
            )
        if name in from_shape:
            raise UnsupportedLayerError(
                f"{b.where(k, node)}: input {name!r} is computed from the data tensor's shape; "
                "lumpkit uses such values only as the target shape of a Reshape"
            )
        return consts[name]

    def param(name: str, k: int, node: Any) -> np.ndarray:
        """A constant that becomes weights, a bias or a scaling: finite, or a clear error."""
        c = const(name, k, node)
        if c.dtype.kind == "f" and not np.all(np.isfinite(c)):
            at = tuple(int(i) for i in np.argwhere(~np.isfinite(c))[0])
            raise ModelFormatError(
                f"{b.where(k, node)}: input {name!r} has the non-finite value {c[at]} at index "
                f"{at if len(at) != 1 else at[0]}; NaN/inf weights are not allowed")
        return c

    for k, node in enumerate(g.node):  # (before anything reads a node's inputs)
        _check_node(node, _opset(model), b.where(k, node))
    # float32 parts of exact weights, as write_onnx writes them, added back together
    graph_nodes = _fused_parallel(list(g.node), consts)
    # nodes whose results nothing reads on the way to the output are skipped (pure operators)
    dead = _dead_nodes(graph_nodes, g.output[0].name)
    # who reads each tensor (-1: the graph's output), and the Constant nodes by output,
    # for the activations written as several operators (_onnx_patterns)
    consumers: dict[str, list[int]] = {g.output[0].name: [-1]}
    for j, nd in enumerate(graph_nodes):
        if j in dead:
            continue
        for name in dict.fromkeys(i for i in nd.input if i):
            consumers.setdefault(name, []).append(j)
    constant_nodes = {nd.output[0]: nd for nd in graph_nodes if nd.op_type == "Constant"}

    def constant_value(name: str) -> np.ndarray | None:
        if name in from_shape:
            return None
        if name in consts:
            return consts[name]
        nd = constant_nodes.get(name)
        value = _attrs(nd).get("value") if nd is not None else None
        return None if value is None else _tensor_array(value, f"Constant {name!r}")

    fused: set[int] = set()  # nodes of a multi-operator activation already read
    # a zero Pad of the spatial axes, (top, left, bottom, right), that the next node (a
    # Conv) takes as its padding (what exporters write for nn.ZeroPad2d)
    pending_pad: tuple[int, int, int, int] | None = None
    pad_where = ""
    for k, node in enumerate(graph_nodes):
        if k in fused or k in dead:
            continue
        op = node.op_type
        at = _attrs(node)
        if op == "Constant":
            t = at.get("value")
            scalar = {"value_float": np.float32, "value_floats": np.float32,
                      "value_int": np.int64, "value_ints": np.int64}
            kind = next((a for a in scalar if a in at), None)
            if t is not None:
                arr = _tensor_array(t, f"{b.where(k, node)}: its value")
            elif kind is not None:
                arr = np.array(at[kind], dtype=scalar[kind])
            else:
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: only tensor and number constants (value, value_float(s), "
                    f"value_int(s)), not {sorted(at)}")
            if arr.dtype.kind == "f":
                wide |= arr.dtype.itemsize > 4
                arr = arr.astype(np.float64)
            consts[node.output[0]] = arr
            continue
        if op == "Shape" and list(node.input) == [cur]:
            full = np.array([_BATCH if dims[0] is None else dims[0], *b.real], dtype=np.int64)
            consts[node.output[0]] = full[slice(at.get("start", 0), at.get("end"))]
            from_shape.add(node.output[0])
            continue
        if cur in node.input and len(consumers.get(cur, [])) > 1:
            # the chain's tensor read more than once: an activation of several operators?
            found = match_activation(graph_nodes, k, cur, constant_value, consumers)
            if found is not None:
                act, used, cur = found
                b.add(act)
                fused.update(used)
                continue
        data_inputs = [i for i in node.input if i and i not in consts]
        if not data_inputs:
            # constant folding of value-preserving ops on weights (exporters write
            # Transpose of a weight, Identity aliases of equal initializers, reshapes)
            folded = _fold_constant(op, [consts[i] if i else None for i in node.input], at)
            if folded is None:
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: constant subgraphs with {op} are not supported")
            consts[node.output[0]] = folded
            if any(i in from_shape for i in node.input):
                from_shape.add(node.output[0])
            continue
        # (commutative operators read with the data second; Sub, Div and MatMul say why not)
        if data_inputs != [cur] or (node.input[0] != cur and op not in (
                "MatMul", "Add", "Mul", "Max", "Min", "Sub", "Div")):
            raise UnsupportedLayerError(
                f"{b.where(k, node)}: the model is not a single chain (reads {data_inputs}, "
                f"current tensor {cur!r}); lumpkit reads networks whose every node combines "
                "the previous node's output with constants only: two data tensors combined "
                "(a residual Add, a Concat) or weights computed from the data cannot be reduced"
            )
        out = node.output[0]
        before_first = not any(isinstance(lyr, Dense | Conv2d) for lyr in b.layers)
        if pending_pad is not None and op != "Conv":
            raise UnsupportedLayerError(
                f"{b.where(k, node)}: {op} after a zero Pad; lumpkit reads a Pad only "
                "directly before a Conv, as that convolution's padding")
        if b.real != b.shape and op not in _SHAPE_FREE:
            raise UnsupportedLayerError(
                f"{b.where(k, node)}: {op} of a (batch, *{b.real}) tensor, which lumpkit holds "
                f"as (batch, *{b.shape}) (the same values without the axes of size 1); lumpkit "
                f"reads {op} only where no Squeeze, Unsqueeze, Reshape or MatMul has added or "
                "removed axes of size 1: remove those before it"
            )
        if op in ("Identity", "Dropout"):
            train = node.input[2] if op == "Dropout" and len(node.input) > 2 else ""
            if train and bool(const(train, k, node).reshape(-1)[0]):
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: Dropout in training mode (training_mode true) drops "
                    "values at random; export the model in inference (eval) mode")
        elif op == "Cast":
            to = int(at.get("to", 0))
            # the same or a wider float type keeps every value; another one only as the last
            # node, before the first layer, or back to the model's own input type (the
            # output, the normalised input or a float64 batch norm rounded, which lumpkit's
            # exact semantics ignore as they ignore float arithmetic's roundings: lumpkit
            # writes them around float64 normalisations, batch norms and weights)
            keeps = to == data_type or (data_type, to) in _WIDENING
            at_end = out_name == node.output[0] or before_first
            back = to == input_type and (to, data_type) in _WIDENING
            if not keeps and not back and (not at_end or to not in (1, 10, 11, 16)):
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: Cast of the data from {_type_name(data_type)} to "
                    f"{_type_name(to)} can change its values; lumpkit reads a Cast only to the "
                    "same or a wider float type (a narrower one only before the first layer, "
                    "as the last node, or back to the model's input type): export the model "
                    "without it")
            data_type = to
        elif op == "Gemm":
            if at.get("transA", 0):
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: transA=1 is not supported (it transposes the batch "
                    "into the features)")
            w = param(node.input[1], k, node)
            if w.ndim != 2:
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: a weight of shape {w.shape}, not a matrix")
            w = w if at.get("transB", 0) else w.T
            # alpha (A B) = A (alpha B), and beta C: exact products (float64 or rationals)
            w = _exact_product(w, np.array(float(at.get("alpha", 1.0))))
            n_out = w.shape[0]
            _need_vector(b, k, node)
            b.add(Dense(w, np.zeros(n_out)))
            b.real = (n_out,)
            if len(node.input) > 2 and node.input[2]:
                c = _exact_product(param(node.input[2], k, node),
                                   np.array(float(at.get("beta", 1.0))))
                b.layers[-1] = Dense(w, _unit_constant(b, c, b.where(k, node)))
        elif op == "MatMul":
            r = b.real
            if node.input[0] != cur:  # W @ x: a matrix times column vectors (..., K, 1)
                w = param(node.input[0], k, node)
                if w.ndim != 2 or len(r) < 2 or r[-1] != 1 or w.shape[1] != r[-2] or any(
                        d != 1 for d in r[:-2]):
                    raise UnsupportedLayerError(
                        f"{b.where(k, node)}: a constant of shape {w.shape} times a (batch, *{r}) "
                        "tensor; lumpkit reads W @ x only for a matrix W (n_out, n_in) and "
                        "column vectors x (batch, n_in, 1) (on a (batch, n_in) tensor W @ x "
                        "would mix the examples of the batch): write x @ W.T instead")
                _need_vector(b, k, node)
                b.add(Dense(w, np.zeros(w.shape[0])))
                b.real = (*r[:-2], w.shape[0], 1)
            else:
                w = param(node.input[1], k, node)
                if w.ndim != 2 or w.shape[0] != r[-1] or any(d != 1 for d in r[:-1]):
                    raise UnsupportedLayerError(
                        f"{b.where(k, node)}: a (batch, *{r}) tensor times a constant of shape "
                        f"{w.shape}; lumpkit reads x @ W for a matrix W (n_in, n_out) and x "
                        "whose axes other than the batch and the last one have size 1")
                _need_vector(b, k, node)
                b.add(Dense(w.T, np.zeros(w.shape[1])))
                b.real = (*r[:-1], w.shape[1])
        elif op in ("Add", "Sub"):
            other = next(i for i in node.input if i != cur)
            # (the input normalisation checks its own constants, naming the operation)
            c = const(other, k, node) if before_first else param(other, k, node)
            sign = 1.0 if op == "Add" else -1.0
            if op == "Sub" and node.input[0] != cur:
                raise UnsupportedLayerError(f"{b.where(k, node)}: constant - x is not supported")
            if b.after_last and op == "Add":
                if "output_mean" in b.norm:
                    raise UnsupportedLayerError(
                        f"{b.where(k, node)}: a second Add after the output Mul is not supported")
                b.norm["output_mean"] = _full_constant(b, c, b.where(k, node)).reshape(-1)
            elif b.open_linear and not b.after_last:
                last = b.layers[-1]
                assert isinstance(last, Dense | Conv2d)
                # one value per output neuron (channel): a constant that broadcasts otherwise
                # (a (C,) vector on a (C, H, W) map meets the W axis) is refused
                cc = _unit_constant(b, c, b.where(k, node))
                b.layers[-1] = replace(last, bias=_exact_sum(last.bias, sign * cc))
            elif before_first:
                _input_norm(b, op, c, k, node)
            elif not b.after_last:  # after an activation: a shift per channel
                _scale_shift(b, None, sign * _unit_constant(b, c, b.where(k, node)))
            else:
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: {op} of a constant here is not supported"
                )
        elif op in ("Max", "Min", "Div", "Mul") and before_first:
            if op == "Div" and node.input[0] != cur:
                raise UnsupportedLayerError(f"{b.where(k, node)}: constant / x is not supported")
            _input_norm(b, op, const(next(i for i in node.input if i != cur), k, node), k, node)
        elif op in ("Mul", "Div") and not before_first:
            if op == "Div" and node.input[0] != cur:
                raise UnsupportedLayerError(f"{b.where(k, node)}: constant / x is not supported")
            c = param(next(i for i in node.input if i != cur), k, node)
            later = {n.op_type for n in graph_nodes[k + 1:]} - {"Identity", "Constant", "Cast"}
            if op == "Mul" and later <= {"Add"} and not b.after_last:
                # y * range (+ mean) at the very end: the output normalisation write_onnx writes
                b.norm["output_range"] = _full_constant(b, c, b.where(k, node)).reshape(-1)
                b.after_last = True
            elif b.after_last:
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: a second {op} after the output Mul is not supported")
            else:  # a scaling inside the network: folded exactly into the layer before
                s = _unit_constant(b, c, b.where(k, node))
                if op == "Div":
                    if np.any(s == 0):
                        raise UnsupportedLayerError(f"{b.where(k, node)}: Div by zero")
                    s = np.array([1 / Fraction(v) for v in s.tolist()], dtype=object)
                if b.open_linear:
                    last = b.layers[-1]
                    assert isinstance(last, Dense | Conv2d)
                    col = s.reshape((-1,) + (1,) * (last.weight.ndim - 1))
                    b.layers[-1] = replace(last, weight=_exact_product(last.weight, col),
                                           bias=_exact_product(last.bias, s))
                else:
                    _scale_shift(b, s, None)
        elif op == "Relu":
            b.add(Activation("relu"))
        elif op == "LeakyRelu":
            # (attribute defaults are float32 values, as an explicit alpha=0.01 is stored)
            alpha = float(at.get("alpha", float(np.float32(0.01))))
            if not math.isfinite(alpha):
                raise ModelFormatError(f"{b.where(k, node)}: LeakyRelu alpha {alpha}; it must "
                                       "be a finite number")
            b.add(Activation("leaky_relu", alpha=to_rational(alpha)))
        elif op == "PRelu":
            s = param(node.input[1], k, node)  # (finite: named before its shape is read)
            # one shared slope, or one per channel (a (C,) slope on a (C, H, W) map meets W)
            s = s.reshape(-1) if s.size == 1 else _unit_constant(b, s, b.where(k, node))
            b.add(Activation("prelu", slopes=s))
        elif op == "Sigmoid":
            b.add(Activation("sigmoid"))
        elif op == "Tanh":
            b.add(Activation("tanh"))
        elif op in _SIMPLE_ACTIVATIONS:
            b.add(_onnx_activation(op, at, b.where(k, node)))
        elif op == "Clip":
            if _opset(model) < 11:
                lo_v, hi_v = at.get("min"), at.get("max")
            else:
                lo_v, hi_v = (float(const(node.input[j], k, node).reshape(-1)[0])
                              if len(node.input) > j and node.input[j] else None
                              for j in (1, 2))
            # float32's extremes are the old defaults for "no bound"
            lo = None if lo_v is None or lo_v <= -3.4e38 else to_rational(float(lo_v))
            hi = None if hi_v is None or hi_v >= 3.4e38 else to_rational(float(hi_v))
            if lo is not None and hi is not None and not lo < hi:
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: Clip with min {lo} not below max {hi}")
            if lo is not None or hi is not None:
                b.add(clip_activation(lo, hi))
        elif op in ("Softmax", "LogSoftmax"):
            # opset < 13 coerces to 2-D at `axis` (default 1); later ones act on `axis`
            # (default -1): on a (batch, n) tensor both are the softmax over the n features
            axis = int(at.get("axis", 1 if _opset(model) < 13 else -1))
            if len(b.shape) != 1 or axis not in (1, -1):
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: {op} over axis {axis} of a (batch, *{b.shape}) tensor; "
                    "lumpkit takes a softmax over the features of a vector only"
                )
            rest = [n.op_type for n in graph_nodes[k + 1:]
                    if n.op_type not in ("Identity", "Constant", "Cast")]
            if rest not in ([], ["Mul"], ["Mul", "Add"]):  # (the output normalisation)
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: {op} must be the last operator (followed by {rest[0]})"
                )
            b.add(Activation("softmax" if op == "Softmax" else "log_softmax"))
        elif op == "Gelu":
            approx = at.get("approximate", b"none")
            approx = approx.decode() if isinstance(approx, bytes) else str(approx)
            if approx not in ("none", "tanh"):
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: Gelu approximate={approx!r} (ONNX has 'none' and 'tanh')")
            b.add(Activation("gelu" if approx == "none" else "gelu_tanh"))
        elif op == "Conv":
            w = param(node.input[1], k, node)
            if w.ndim != 4:
                raise UnsupportedLayerError(f"{b.where(k, node)}: only 2-D convolutions")
            group = int(at.get("group", 1))
            dil = tuple(int(d) for d in at.get("dilations", [1, 1]))
            if len(dil) != 2:
                raise UnsupportedLayerError(f"{b.where(k, node)}: dilations {list(dil)}")
            if group != 1 or dil != (1, 1):  # the plain convolution it equals (exact)
                w = expand_conv_weight(w, group, (dil[0], dil[1]), b.shape[0], b.where(k, node))
            bias = (param(node.input[2], k, node) if len(node.input) > 2 and node.input[2]
                    else np.zeros(w.shape[0]))
            strides = tuple(at.get("strides", [1, 1]))
            # auto_pad SAME_* pads for the dilated (= expanded) kernel, as ONNX specifies
            pads = _pads(at, b.shape, tuple(w.shape[2:]), strides, b.where(k, node))
            if pending_pad is not None:
                if at.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
                    raise UnsupportedLayerError(
                        f"{b.where(k, node)}: a Conv with auto_pad after a zero Pad")
                pads = (pads[0] + pending_pad[0], pads[1] + pending_pad[1],
                        pads[2] + pending_pad[2], pads[3] + pending_pad[3])
                pending_pad = None
            b.add(Conv2d(w, bias, strides, pads))
        elif op == "Pad":
            pending_pad = _zero_pad(node, at, b.shape, b.where(k, node),
                                    functools.partial(const, k=k, node=node))
            pad_where = b.where(k, node)
        elif op in ("MaxPool", "AveragePool"):
            if any(d != 1 for d in at.get("dilations", [1, 1])):
                raise UnsupportedLayerError(f"{b.where(k, node)}: dilations")
            ks = tuple(at["kernel_shape"])
            strides = tuple(at.get("strides", [1, 1]))
            pads = _pads(at, b.shape, ks, strides, b.where(k, node))
            if len(ks) == 2:  # (the layer checks this too; here the node is named)
                pads_below_kernel(pads, ks, b.where(k, node))
            if at.get("ceil_mode", 0):
                ceil_mode_changes_nothing(b.shape, ks, strides, pads, b.where(k, node))
            if op == "MaxPool":
                if len(node.output) > 1 and node.output[1]:
                    raise UnsupportedLayerError(f"{b.where(k, node)}: MaxPool indices output")
                b.add(MaxPool2d(ks, strides, pads))
            else:
                b.add(AvgPool2d(ks, strides, pads, bool(at.get("count_include_pad", 0))))
        elif op in ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax"):
            if op.startswith("Reduce"):  # over the two spatial axes: a global pooling
                axes_in = node.input[1] if len(node.input) > 1 and node.input[1] else None
                axes = (at.get("axes") if axes_in is None
                        else const(axes_in, k, node).reshape(-1).tolist())
                rank = len(b.shape) + 1
                if axes is None or sorted(int(a) % rank for a in axes) != [2, 3] or \
                        len(b.shape) != 3:
                    raise UnsupportedLayerError(
                        f"{b.where(k, node)}: {op} over axes {axes} of a (batch, *{b.shape}) "
                        "tensor; lumpkit takes it over the two spatial axes (2, 3) only")
            if len(b.shape) != 3:
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: {op} of a (batch, *{b.shape}) tensor; lumpkit "
                    "pools (C, H, W) feature maps only")
            ks = (b.shape[1], b.shape[2])  # one window over the whole map: (C, 1, 1)
            b.add(MaxPool2d(ks, ks, (0, 0, 0, 0)) if op in ("GlobalMaxPool", "ReduceMax")
                  else AvgPool2d(ks, ks, (0, 0, 0, 0), False))
            if op.startswith("Reduce") and not at.get("keepdims", 1):
                b.add(Flatten())  # (batch, C)
        elif op == "Flatten":
            axis = int(at.get("axis", 1))
            if (axis + len(b.real) + 1 if axis < 0 else axis) != 1:
                raise UnsupportedLayerError(f"{b.where(k, node)}: Flatten axis != 1")
            b.set_real((math.prod(b.real),))
        elif op == "Reshape":
            if node.input[1] not in consts:
                const(node.input[1], k, node)  # raises: the shape must be known
            shape_in = consts[node.input[1]]
            if shape_in.dtype.kind not in "iu" or list(shape_in.reshape(-1)).count(-1) > 1:
                raise ModelFormatError(
                    f"{b.where(k, node)}: Reshape to {shape_in.reshape(-1).tolist()} "
                    f"({shape_in.dtype}); ONNX takes an int64 shape with at most one -1")
            target = [int(x) for x in shape_in.reshape(-1)]
            n = math.prod(b.shape)
            # (batch, n): the batch as -1, 0 (copied), the graph's own fixed batch size,
            # or the batch read from the data tensor's shape; n may come with axes of size 1
            batch = (-1, 0, 1, int(_BATCH)) if dims[0] is None else (-1, 0, 1, dims[0])
            tail = [b.real[j] if d == 0 and j < len(b.real) and not at.get("allowzero", 0)
                    else d for j, d in enumerate(target[1:])]
            known = math.prod(d for d in tail if d != -1)
            if tail.count(-1) == 1 and known > 0 and n % known == 0:
                tail = [n // known if d == -1 else d for d in tail]
            ok2 = len(target) >= 2 and target[0] in batch and min(tail) >= 1 and math.prod(
                tail) == n and sum(d > 1 for d in tail) <= 1
            ok1 = len(target) == 1 and target[0] in (n, -1) and dims[0] == 1
            if not (ok1 or ok2):
                shown = ["batch" if x == _BATCH else x for x in target]
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: Reshape to {shown} (only to (batch, {n}), possibly "
                    "with axes of size 1)"
                )
            b.set_real(tuple(tail) if ok2 else (n,))
        elif op in ("Squeeze", "Unsqueeze"):
            axes_in = node.input[1] if len(node.input) > 1 and node.input[1] else None
            axes = at.get("axes") if axes_in is None else const(axes_in, k, node).reshape(
                -1).tolist()
            r = b.real
            if op == "Squeeze" and axes is None and dims[0] != 1:  # every axis of size 1
                axes = [j + 1 for j, d in enumerate(r) if d == 1]
            listed = [] if axes is None else [int(a) for a in axes]
            rank = len(r) + 1 + (len(listed) if op == "Unsqueeze" else 0)
            ax = sorted({a % rank for a in listed})
            if axes is None or 0 in ax or any(not -rank <= a < rank for a in listed) or (
                    op == "Squeeze" and any(r[a - 1] != 1 for a in ax)):
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: {op} of axes {axes} of a (batch, *{r}) tensor; "
                    f"lumpkit reads {op} of given axes of size 1 other than the batch axis only")
            if op == "Squeeze":
                b.set_real(tuple(d for j, d in enumerate(r) if j + 1 not in ax))
            else:
                new = list(r)
                for a in ax:
                    new.insert(a - 1, 1)
                b.set_real(tuple(new))
        elif op == "Transpose":
            perm = list(at.get("perm", range(len(b.real), -1, -1)))  # default: reversed
            if sorted(perm) != list(range(len(b.real) + 1)):
                raise ModelFormatError(
                    f"{b.where(k, node)}: Transpose perm {perm} is no permutation of the "
                    f"axes 0..{len(b.real)} of the (batch, *{b.real}) tensor")
            if perm[0] != 0:
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: Transpose {perm} moves the batch axis"
                )
            if perm != sorted(perm):
                b.add(Permute(tuple(x - 1 for x in perm[1:])))
        elif op == "BatchNormalization":
            extra = [o for o in node.output[1:] if o]
            if (int(at.get("training_mode", 0)) or extra
                    or (_opset(model) < 7 and not int(at.get("is_test", 0)))):
                # onnxruntime then normalises with the batch's own mean and variance
                how = ("training_mode=1" if int(at.get("training_mode", 0)) else
                       f"the running-statistics outputs {extra}" if extra else "is_test=0")
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: BatchNormalization in training mode ({how}) "
                    "normalises with the statistics of the batch, not a fixed scale and shift; "
                    "export the model in inference (eval) mode")
            if not int(at.get("spatial", 1)):
                raise UnsupportedLayerError(
                    f"{b.where(k, node)}: BatchNormalization with spatial=0 (statistics per "
                    "activation, not per channel) is not supported; export it with spatial=1 "
                    "or fold it into the layer before")
            scale_, bias_, mean_, var_ = (param(node.input[i], k, node) for i in range(1, 5))
            for i, v in enumerate((scale_, bias_, mean_, var_), start=1):
                if v.shape != (b.shape[0],):
                    raise UnsupportedLayerError(
                        f"{b.where(k, node)}: BatchNormalization input {i} "
                        f"({node.input[i]!r}) has shape {v.shape}; expected one value per "
                        f"channel, ({b.shape[0]},), for the (batch, *{b.shape}) input")
            eps = float(at.get("epsilon", float(np.float32(1e-5))))  # (a float32 default)
            if not np.all(var_ + eps > 0):
                c0 = int(np.flatnonzero(~(var_ + eps > 0))[0])
                raise ModelFormatError(
                    f"{b.where(k, node)}: BatchNormalization of channel {c0}: variance "
                    f"{float(var_[c0])!r} + epsilon {eps!r} is not positive, so the channel is "
                    "divided by zero (or a square root of a negative number)")
            s = scale_ / np.sqrt(var_ + eps)
            t = bias_ - mean_ * s
            _add_batchnorm(b, s, t)
        elif op in ("ArgMax", "ArgMin"):
            raise UnsupportedLayerError(
                f"{b.where(k, node)}: {op} gives the index of the largest (smallest) value, an "
                "integer, not a real-valued output; export the model without it (up to the "
                f"values {op} reads): the reduced model computes those values, hence {op}, "
                "unchanged")
        else:
            raise UnsupportedLayerError(
                f"{b.where(k, node)}: operator {op} is not supported by lumpkit (docs/formats-nn"
                ".md lists what is read); export the model without it or with supported operators"
            )
        cur = out
    if pending_pad is not None and any(pending_pad):
        raise UnsupportedLayerError(
            f"{pad_where}: a zero Pad as the last operator; lumpkit reads a Pad only directly "
            "before a Conv, as that convolution's padding")
    if cur != g.output[0].name:
        raise UnsupportedLayerError(f"{p}: the output {g.output[0].name!r} is not the chain's end")
    nrm = normalization_of(b.norm, math.prod(in_shape), math.prod(b.shape))
    io_type = inputs[0].type.tensor_type.elem_type
    io_names: tuple[str, str] = (inputs[0].name, g.output[0].name)
    net = Network(tuple(b.layers), in_shape, nrm, _DATA_DTYPE.get(io_type),
                  io_names if all(io_names) and io_names[0] != io_names[1] else None)
    # a float32 model is held as float32 (folded values that are not float32 stay float64)
    return net if wide else narrowed_to_float32(net)


#: One-operator activations read by :func:`_onnx_activation`.
_SIMPLE_ACTIVATIONS = ("Elu", "Selu", "Celu", "Softplus", "Softsign", "HardSigmoid",
                       "HardSwish", "Mish", "Swish")


def _onnx_activation(op: str, at: dict[str, Any], where: str) -> Activation:
    """The activation of one ONNX operator of :data:`_SIMPLE_ACTIVATIONS`.

    Float attributes are float32 values, taken at their exact binary value
    (absent ones at the float32 value of the operator's default).
    """
    def attr(name: str, default: float) -> Fraction:
        return to_rational(float(at.get(name, float(np.float32(default)))))

    try:
        if op == "Elu":
            return Activation("elu", alpha=attr("alpha", 1.0))
        if op == "Celu":
            return Activation("celu", alpha=attr("alpha", 1.0))
        if op == "Selu":
            # SELU's constants, as float32 attributes (the defaults), or absent
            consts = {"alpha": SELU_ALPHA, "gamma": SELU_SCALE}
            for name, value in consts.items():
                if attr(name, value) != Fraction(float(np.float32(value))):
                    raise UnsupportedLayerError(
                        f"{where}: Selu with {name}={at[name]!r}; lumpkit takes SELU's own "
                        f"constants only ({name} = {value!r})")
            return Activation("selu")
        if op == "HardSigmoid":
            return Activation("hard_sigmoid", alpha=attr("alpha", 0.2), beta=attr("beta", 0.5))
        if op == "HardSwish":  # defined with alpha = 1/6, beta = 1/2 (no attributes)
            return Activation("hard_swish")
        if op == "Swish":
            if attr("alpha", 1.0) != 1:
                raise UnsupportedLayerError(
                    f"{where}: Swish with alpha={at['alpha']!r}; lumpkit takes alpha = 1 "
                    "(SiLU, x * sigmoid(x)) only")
            return Activation("silu")
    except ModelFormatError as exc:
        raise ModelFormatError(f"{where}: {exc}") from None
    return Activation({"Softplus": "softplus", "Softsign": "softsign", "Mish": "mish"}[op])


def _type_name(code: int) -> str:
    import onnx

    try:
        return str(onnx.TensorProto.DataType.Name(code))
    except ValueError:
        return f"type {code}"


def _exact_product(a: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``a * s`` (broadcast) in float64 when every product is exact there (always for two
    float32 values), else as exact rationals."""
    if a.dtype != object and s.dtype != object:
        a64, s64 = np.asarray(a, dtype=np.float64), np.asarray(s, dtype=np.float64)
        prod = a64 * s64
        if np.all(s64 == 1) or not np.all(np.isfinite(prod)) or (
                np.array_equal(a64.astype(np.float32), a64)
                and np.array_equal(s64.astype(np.float32), s64)):
            return prod  # 24 + 24 significant bits fit in 53 (non-finite: refused later)
    fa, fs = np.broadcast_arrays(np.asarray(a, dtype=object), np.asarray(s, dtype=object))
    exact = [Fraction(x) * Fraction(y) for x, y in zip(fa.reshape(-1).tolist(),
                                                        fs.reshape(-1).tolist(), strict=True)]
    rounded = [float(e) for e in exact]
    if all(Fraction(f) == e for f, e in zip(rounded, exact, strict=True)):
        return np.array(rounded, dtype=np.float64).reshape(fa.shape)
    return np.array(exact, dtype=object).reshape(fa.shape)


def _full_constant(b: _Builder, c: np.ndarray, where: str) -> np.ndarray:
    """A constant combined element-wise with the current tensor, broadcast to ``b.shape``;
    refused when it would change the data's shape (ONNX would broadcast the data too)."""
    arr = np.asarray(c)
    try:
        return np.broadcast_to(arr, (1, *b.real)).reshape(b.shape)
    except ValueError:
        raise UnsupportedLayerError(
            f"{where}: a constant of shape {arr.shape} does not broadcast to the data shape "
            f"(batch, {', '.join(map(str, b.real))}) without changing it") from None


def _unit_constant(b: _Builder, c: np.ndarray, where: str) -> np.ndarray:
    """A constant combined element-wise with the current tensor, as one value per neuron of
    a vector or per channel of a ``(C, H, W)`` map; refused when it varies within a channel."""
    full = _full_constant(b, c, where)
    per = full.reshape(full.shape[0], -1)
    if not np.all(per == per[:, :1]):
        raise UnsupportedLayerError(
            f"{where}: a constant of shape {np.shape(c)} takes several values within a channel "
            f"of the (batch, {', '.join(map(str, b.shape))}) feature map; lumpkit folds one "
            "value per channel only (shape (1, C, 1, 1))")
    return per[:, 0].copy()


def _scale_shift(b: _Builder, s: np.ndarray | None, t: np.ndarray | None) -> None:
    """Multiply by ``s`` or add ``t`` (per channel) after a layer that is not linear: a
    ``BatchNorm`` layer (the last one, when it is one, takes it on), exactly."""
    last = b.layers[-1]
    if not isinstance(last, BatchNorm):
        n = b.shape[0]
        last = BatchNorm(np.ones(n, dtype=np.float32), np.zeros(n, dtype=np.float32))
        b.add(last)
    if s is not None:  # (x a + c) s = x (a s) + c s
        last = BatchNorm(_exact_product(last.scale, s), _exact_product(last.shift, s))
        b.layers[-1] = last
    if t is not None:
        b.layers[-1] = BatchNorm(last.scale, _exact_sum(last.shift, t))


def _exact_sum(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a + c`` in float64 when every sum is exact there, else as exact rationals."""
    total = np.asarray(a, dtype=np.float64) + c
    exact = [Fraction(x) + Fraction(y) for x, y in zip(np.asarray(a).tolist(), c.tolist(),
                                                        strict=True)]
    if all(Fraction(t) == e for t, e in zip(total.tolist(), exact, strict=True)):
        return total
    return np.array(exact, dtype=object)


def _input_constant(b: _Builder, c: np.ndarray, where: str) -> np.ndarray:
    """A constant of an input-normalising node, one value per network input.

    ``c`` broadcasts (ONNX/numpy rules, without growing the data) against the
    current tensor ``(batch, *b.shape)``, e.g. a per-channel ``(1, C, 1, 1)``
    mean; the flattens and transposes before the node are undone, so that
    value ``i`` belongs to the network's input ``i`` (C order).
    """
    if len(b.layers) and not all(isinstance(lyr, Permute | Flatten) for lyr in b.layers):
        before = ", ".join(lyr.kind if isinstance(lyr, Activation) else type(lyr).__name__
                           for lyr in b.layers)
        raise UnsupportedLayerError(
            f"{where}: a constant combined with the data after {before} but before the first "
            "linear layer; lumpkit reads constants before the first "
            "linear layer only as an input normalisation, before any other layer (a shift or "
            "scaling after an activation is read where it follows a linear layer)")
    arr = np.asarray(c, dtype=np.float64)
    try:
        full = np.broadcast_to(arr, (1, *b.real))
    except ValueError:
        raise UnsupportedLayerError(
            f"{where}: a constant of shape {arr.shape} does not broadcast to the data shape "
            f"(batch, {', '.join(map(str, b.real))})") from None
    idx = np.arange(math.prod(b.input_shape)).reshape(b.input_shape)
    for lyr in b.layers:  # Flatten and Permute only (checked above)
        idx = np.transpose(idx, lyr.perm) if isinstance(lyr, Permute) else idx.reshape(-1)
    out = np.empty(idx.size, dtype=np.float64)
    out[idx.reshape(-1)] = full.reshape(-1)
    return out


def _input_norm(b: _Builder, op: str, c: np.ndarray, k: int, node: Any) -> None:
    """Fold Max/Min/Add/Sub/Mul/Div of a constant before the first layer into the input
    normalisation ``(clip(x, min, max) - mean) / range``, exactly or not at all."""
    where = b.where(k, node)
    fold_input_op(b.norm, op, _input_constant(b, c, where), where)


def _need_vector(b: _Builder, k: int, node: Any) -> None:
    if len(b.shape) != 1:
        if sum(s > 1 for s in b.shape) <= 1:
            b.add(Flatten())
            return
        raise UnsupportedLayerError(f"{b.where(k, node)}: dense layer on shape {b.shape}")


def _add_batchnorm(b: _Builder, s: np.ndarray, t: np.ndarray) -> None:
    last = b.layers[-1] if b.layers else None
    if b.open_linear and isinstance(last, Dense | Conv2d):
        b.layers[-1] = fold_batchnorm(last, s, t)
        return
    b.add(BatchNorm(s, t))


def _zero_pad(node: Any, at: dict[str, Any], shape: tuple[int, ...], where: str,
              const: Any) -> tuple[int, int, int, int]:
    """The (top, left, bottom, right) of a Pad node that pads a (batch, C, H, W) tensor's
    spatial axes with zeros (anything else: :class:`UnsupportedLayerError`)."""
    mode = at.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode != "constant":
        raise UnsupportedLayerError(f"{where}: Pad mode {mode!r}; lumpkit reads zero padding "
                                    "(mode 'constant', value 0) only")
    if len(node.input) > 3 and node.input[3]:
        raise UnsupportedLayerError(f"{where}: Pad with an axes input")
    pads = (const(node.input[1]) if len(node.input) > 1 and node.input[1]
            else np.asarray(at.get("pads", []))).reshape(-1).astype(np.int64).tolist()
    value = (const(node.input[2]).reshape(-1) if len(node.input) > 2 and node.input[2]
             else np.asarray([at.get("value", 0.0)], dtype=np.float64))
    if value.size != 1 or float(value[0]) != 0.0:
        raise UnsupportedLayerError(f"{where}: Pad with the value {value.tolist()}; lumpkit "
                                    "reads zero padding only")
    if len(shape) != 3 or len(pads) != 8:
        raise UnsupportedLayerError(
            f"{where}: Pad of a (batch, *{shape}) tensor with pads {pads}; lumpkit reads the "
            "zero padding of the two spatial axes of a (batch, C, H, W) tensor")
    # pads: begins of the axes (batch, C, H, W), then their ends
    if pads[0] or pads[1] or pads[4] or pads[5] or min(pads) < 0:
        raise UnsupportedLayerError(
            f"{where}: Pad with pads {pads}; lumpkit reads non-negative padding of the two "
            "spatial axes only")
    return pads[2], pads[3], pads[6], pads[7]


def _pads(at: dict[str, Any], shape: tuple[int, ...], ks: tuple[int, ...],
          strides: tuple[int, ...], where: str) -> tuple[int, int, int, int]:
    auto = at.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", "VALID"):
        pads = list(at.get("pads", [0, 0, 0, 0])) if auto == "NOTSET" else [0, 0, 0, 0]
        if len(pads) != 4:
            raise UnsupportedLayerError(f"{where}: pads {pads}")
        return int(pads[0]), int(pads[1]), int(pads[2]), int(pads[3])
    if len(shape) != 3:
        raise UnsupportedLayerError(f"{where}: auto_pad on shape {shape}")
    upper = auto == "SAME_UPPER"
    t, bt = _same_pads(shape[1], ks[0], strides[0], upper)
    left, r = _same_pads(shape[2], ks[1], strides[1], upper)
    return t, left, bt, r


# -------------------------------------------------------------------- export
def _float32_parts(a: np.ndarray, most: int = 3) -> list[np.ndarray] | None:
    """Float32 arrays whose exact sum is ``a`` (float64): the nearest float32 values, then
    those of what remains; ``None`` when ``most`` parts do not suffice (values outside
    float32's range or below its smallest subnormal)."""
    rest = np.asarray(a, dtype=np.float64)
    parts: list[np.ndarray] = []
    while not parts or np.any(rest != 0):
        if len(parts) == most:
            return None
        with np.errstate(over="ignore"):
            part = rest.astype(np.float32)
        if not np.all(np.isfinite(part)):
            return None
        parts.append(part)
        rest = rest - part.astype(np.float64)  # exact: part is rest rounded to float32
    return parts


def _f32(values: Any) -> bool:
    """Whether every value is a float32 value."""
    arr = np.array([float(v) for v in np.asarray(values, dtype=object).reshape(-1)],
                   dtype=np.float64)
    with np.errstate(over="ignore"):
        return bool(np.all(arr.astype(np.float32).astype(np.float64) == arr))


def _float64_params(layer: Layer) -> bool:
    """Whether a layer other than Dense/Conv2d has a parameter tensor that float32 cannot
    hold (batch norm, PReLU slopes, clip bounds; float attributes are float32 anyway)."""
    if isinstance(layer, BatchNorm):
        return not (_f32(layer.scale) and _f32(layer.shift))
    if isinstance(layer, Activation):
        extra = [v for v in (layer.bounds or ()) if v is not None]
        if layer.slopes is not None:
            extra.extend(np.asarray(layer.slopes).reshape(-1).tolist())
        return bool(extra) and not _f32(extra)
    return False


def _splittable(net: Network) -> bool:
    """Every Dense/Conv2d parameter splits into float32 parts (the other layers'
    parameters that float32 cannot hold are computed in float64 between Casts, as a
    normalisation is)."""
    for layer in net.layers:
        if isinstance(layer, Dense | Conv2d):
            if _float32_parts(layer.weight) is None or _float32_parts(layer.bias) is None:
                return False
    return True


def _float32_norm(nrm: Any) -> bool:
    """Whether every value of a normalisation is a float32 value."""
    fields = [nrm.input_mean, nrm.input_range, nrm.output_mean, nrm.output_range,
              nrm.input_min, nrm.input_max]
    arr = np.array([float(v) for a in fields if a is not None for v in a], dtype=np.float64)
    with np.errstate(over="ignore"):
        return bool(np.all(arr.astype(np.float32).astype(np.float64) == arr))


#: (alpha, beta) of ONNX's HardSwish operator (and PyTorch's Hardswish)
_HARD_SWISH = (Fraction(1, 6), Fraction(1, 2))
#: A softplus threshold at least this large changes no value of that precision:
#: above it log(1 + exp(x)) rounds to x (exp(-x) is below half a unit in the last place).
_SOFTPLUS_SILENT = {"float32": 17, "float64": 37}


def _rename_tensors(nodes: list[Any], inits: list[Any], mapping: dict[str, str]) -> None:
    """Rename tensors of a generated graph (``mapping``: old -> new name); a generated
    tensor that already has one of the new names is renamed aside first."""
    names = {t for n in nodes for t in (*n.input, *n.output)} | {i.name for i in inits}
    full = dict(mapping)
    for new in mapping.values():
        if new in names and new not in mapping:
            aside = new
            while aside in names or aside in mapping.values():
                aside += "_"
            full[new] = aside
    for n in nodes:
        for field in (n.input, n.output):
            for k, t in enumerate(field):
                field[k] = full.get(t, t)
    for i in inits:
        i.name = full.get(i.name, i.name)


def write_onnx(net: Network, path: str | os.PathLike[str], *, dtype: str = "float32",
               opset: int = 17, io_dtype: str | None = None) -> None:
    """Write ``net`` as an ONNX model (atomically), weights in ``dtype``.

    The normalisation (if any) is written as Max/Min/Sub/Div before and
    Mul/Add after the layers.  An activation raises the opset to the first
    one with its operator: GELU 20 (``Gelu``), mish 18 (``Mish``),
    hard_swish 14 (``HardSwish``; other slopes and offsets than 1/6 and 1/2
    are written as ``x * HardSigmoid(x)``), celu 12.  SiLU is written as
    ``x * Sigmoid(x)``.  Float attributes (the ``alpha`` of elu, celu,
    leaky_relu, hard_sigmoid) are float32 in ONNX: a value that is not a
    float32 is written as the nearest one.

    ``io_dtype`` (default ``dtype``) is the type of the model's input and
    output; float16 and bfloat16 data are cast to the weights' type after
    the input (exactly) and back before the output (rounded, as the model
    the reduced one replaces rounds its results).

    With ``dtype='float64'`` and ``io_dtype='float32'`` (or a 16-bit one)
    the model stays a float32 model (a drop-in replacement of the one it was reduced from, and
    one onnxruntime can run: it has no float64 Conv or AveragePool): every
    weight array that float32 cannot hold is written exactly as a sum of two
    or three float32 arrays, ``Gemm(x, W1, b) + Gemm(x, W2) + ...`` (``Conv``
    alike), and a bias as further Adds of constants; the reader adds them
    back exactly.  Where that cannot be done (values outside float32's range,
    or other float64-only parameters), the data is cast to float64 after the
    input and back before the output instead.

    Raises
    ------
    UnsupportedLayerError
        For a celu in a float64 model (ONNX's ``Celu`` takes float32 only
        before opset 28), and for a softplus whose threshold would change
        values of ``dtype`` (below 17 for float32, 37 for float64): ONNX's
        ``Softplus`` has no threshold.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    netf = as_float(net)
    # 16-bit data enters and leaves float32 layers by Casts (exact in, rounded out)
    split = dtype == "float64" and io_dtype in ("float16", "bfloat16", "float32") \
        and _splittable(netf)
    if split:
        dtype = "float32"  # float32 data; weights exact as sums of float32 parts
    np_dt = np.float32 if dtype == "float32" else np.float64
    onnx_dt = TensorProto.FLOAT if dtype == "float32" else TensorProto.DOUBLE
    nodes: list[Any] = []
    inits: list[Any] = []
    counter = [0]

    def name(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def init(arr: Any, prefix: str, dt: Any = None) -> str:
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=dt or np_dt), n))
        return n

    cur = "input"

    def node(op: str, ins: list[str], **kw: Any) -> None:
        nonlocal cur
        out = name(op.lower())
        nodes.append(helper.make_node(op, ins, [out], name=out, **kw))
        cur = out

    io_dt = onnx_dt if io_dtype in (None, dtype) else _DATA_CODE[io_dtype]
    if io_dt != onnx_dt:
        node("Cast", [cur], to=onnx_dt)
    n_in = math.prod(netf.input_shape)
    nrm = netf.normalization
    # float32 layers with a normalisation float32 cannot hold: the normalisation is computed
    # in float64 (Casts around it; the data rounded to float32 after it, which lumpkit's
    # exact semantics ignore as they ignore float arithmetic's roundings)
    norm_dt = np.float64 if split and nrm is not None and not _float32_norm(nrm) else None
    if nrm is not None:
        shape_in = (1, *netf.input_shape)

        def vec(a: np.ndarray, n: int) -> np.ndarray:
            v = np.array([float(x) for x in a])
            return np.broadcast_to(v, (n,)).reshape(shape_in[1:])[None]

        if norm_dt is not None:
            node("Cast", [cur], to=TensorProto.DOUBLE)
        if nrm.input_min is not None:
            node("Max", [cur, init(vec(nrm.input_min, n_in), "in_min", norm_dt)])
        if nrm.input_max is not None:
            node("Min", [cur, init(vec(nrm.input_max, n_in), "in_max", norm_dt)])
        node("Sub", [cur, init(vec(nrm.input_mean, n_in), "in_mean", norm_dt)])
        node("Div", [cur, init(vec(nrm.input_range, n_in), "in_range", norm_dt)])
        if norm_dt is not None:
            node("Cast", [cur], to=TensorProto.FLOAT)
    def linear(op: str, weight: np.ndarray, bias: np.ndarray, bias_shape: tuple[int, ...],
               **kw: Any) -> None:
        """``op(x, W, b)``; with ``split``, W and b as sums of float32 parts."""
        if not split:
            node(op, [cur, init(weight, "W"), init(bias, "b")], **kw)
            return
        wparts, bparts = _float32_parts(weight), _float32_parts(bias)
        assert wparts is not None and bparts is not None
        x = cur
        node(op, [x, init(wparts[0], "W"), init(bparts[0], "b")], **kw)
        for k, part in enumerate(wparts[1:]):
            first = cur
            node(op, [x, init(part, f"W_part{k + 2}")], **kw)
            node("Add", [first, cur])
        for k, part in enumerate(bparts[1:]):
            node("Add", [cur, init(part.reshape(bias_shape), f"b_part{k + 2}")])

    def write_layer(layer: Layer, par_dt: Any) -> None:
        nonlocal opset
        if isinstance(layer, Dense):
            linear("Gemm", layer.weight, layer.bias, (layer.bias.shape[0],), transB=1)
        elif isinstance(layer, Conv2d):
            t, left, bt, r = layer.padding
            # the smallest equal convolution: groups / dilation where the weight has them
            w, groups, dil = compact_conv_weight(layer.weight)
            extra: dict[str, Any] = {}
            if groups != 1:
                extra["group"] = groups
            if dil != (1, 1):
                extra["dilations"] = list(dil)
            linear("Conv", w, layer.bias, (1, layer.bias.shape[0], 1, 1),
                   kernel_shape=list(w.shape[2:]), strides=list(layer.stride),
                   pads=[t, left, bt, r], **extra)
        elif isinstance(layer, MaxPool2d | AvgPool2d):
            t, left, bt, r = layer.padding
            kw: dict[str, Any] = {"kernel_shape": list(layer.kernel),
                                  "strides": list(layer.stride), "pads": [t, left, bt, r]}
            if isinstance(layer, AvgPool2d):
                kw["count_include_pad"] = int(layer.count_include_pad)
                node("AveragePool", [cur], **kw)
            else:
                node("MaxPool", [cur], **kw)
        elif isinstance(layer, Flatten):
            node("Flatten", [cur], axis=1)
        elif isinstance(layer, Permute):
            node("Transpose", [cur], perm=[0, *(p + 1 for p in layer.perm)])
        elif isinstance(layer, BatchNorm):
            c = layer.scale.shape[0]
            node("BatchNormalization",
                 [cur, init(layer.scale, "bn_s", par_dt), init(layer.shift, "bn_b", par_dt),
                  init(np.zeros(c), "bn_m", par_dt), init(np.ones(c), "bn_v", par_dt)],
                 epsilon=0.0)
        elif isinstance(layer, Activation):
            kind = layer.kind
            if kind == "identity":
                return
            if kind == "relu":
                node("Relu", [cur])
            elif kind == "leaky_relu":
                node("LeakyRelu", [cur], alpha=float(layer.alpha or 0))
            elif kind == "prelu":
                assert layer.slopes is not None
                s = np.asarray(layer.slopes, dtype=np.float64)
                idx = list(netf.layers).index(layer)
                shp = netf.shapes[idx]
                s = s.reshape((-1,) + (1,) * (len(shp) - 1)) if s.size > 1 else s
                node("PRelu", [cur, init(s, "slope", par_dt)])
            elif kind == "sigmoid":
                node("Sigmoid", [cur])
            elif kind == "tanh":
                node("Tanh", [cur])
            elif kind in ("softmax", "log_softmax"):
                node("Softmax" if kind == "softmax" else "LogSoftmax", [cur], axis=1)
            elif kind == "clip":
                assert layer.bounds is not None
                lo, hi = layer.bounds
                node("Clip", [cur,
                              "" if lo is None else init(np.array(float(lo)), "clip_lo", par_dt),
                              "" if hi is None else init(np.array(float(hi)), "clip_hi", par_dt)])
            elif kind in ("gelu", "gelu_tanh"):
                node("Gelu", [cur], **({"approximate": "tanh"} if kind == "gelu_tanh" else {}))
                opset = max(opset, 20)
            elif kind in ("silu", "hard_swish"):
                x_in = cur
                if kind == "hard_swish" and (layer.alpha, layer.beta) == _HARD_SWISH:
                    node("HardSwish", [cur])
                    opset = max(opset, 14)
                    return
                if kind == "silu":
                    node("Sigmoid", [cur])
                else:  # x * HardSigmoid(x), read back as a hard_swish
                    node("HardSigmoid", [cur], alpha=float(layer.alpha or 0),
                         beta=float(layer.beta or 0))
                node("Mul", [x_in, cur])
            elif kind in ("elu", "celu"):
                if kind == "celu" and dtype != "float32" and opset < 28:
                    raise UnsupportedLayerError(
                        "ONNX's Celu takes float32 tensors only (before opset 28, which "
                        "onnxruntime does not run); export with dtype='float32'")
                node(kind.capitalize(), [cur], alpha=float(layer.alpha or 0))
                opset = max(opset, 12) if kind == "celu" else opset
            elif kind == "hard_sigmoid":
                node("HardSigmoid", [cur], alpha=float(layer.alpha or 0),
                     beta=float(layer.beta or 0))
            elif kind == "softplus":
                thr = layer.threshold
                if thr is not None and thr < _SOFTPLUS_SILENT[dtype]:
                    raise UnsupportedLayerError(
                        f"softplus with threshold {thr}: ONNX's Softplus has no threshold, and "
                        f"below {_SOFTPLUS_SILENT[dtype]} the threshold changes {dtype} values; "
                        "export to .pt or .npz")
                node("Softplus", [cur])
            elif kind in ("selu", "softsign"):
                node(kind.capitalize(), [cur])
            elif kind == "mish":
                node("Mish", [cur])
                opset = max(opset, 18)
            else:  # pragma: no cover - every kind is handled above
                raise UnsupportedLayerError(f"activation {kind!r} has no ONNX form here")
    for layer in netf.layers:
        # float32 data through a layer whose parameters float32 cannot hold: computed in
        # float64 between Casts (the result rounded to float32, like the float32 arithmetic
        # around it; onnxruntime has float64 kernels of these, not of Conv)
        wide = split and _float64_params(layer)
        if wide:
            node("Cast", [cur], to=TensorProto.DOUBLE)
        write_layer(layer, np.float64 if wide else None)
        if wide:
            node("Cast", [cur], to=TensorProto.FLOAT)

    if nrm is not None:
        n_out = math.prod(netf.output_shape)
        if norm_dt is not None:
            node("Cast", [cur], to=TensorProto.DOUBLE)
        # one value per output element, in the output's own shape (a (C, H, W) map's
        # constants as (n_out,) would broadcast along its last axis)
        out_shape = (1, *netf.output_shape)
        node("Mul", [cur, init(np.broadcast_to(np.array([float(x) for x in nrm.output_range]),
                                               (n_out,)).reshape(out_shape), "out_range",
                               norm_dt)])
        node("Add", [cur, init(np.broadcast_to(np.array([float(x) for x in nrm.output_mean]),
                                               (n_out,)).reshape(out_shape), "out_mean",
                               norm_dt)])
        if norm_dt is not None:
            node("Cast", [cur], to=TensorProto.FLOAT)
    if io_dt != onnx_dt:
        node("Cast", [cur], to=io_dt)
    in_name, out_name = "input", cur
    if netf.io_names is not None and nodes:  # the names of the model it was read from
        in_name, out_name = netf.io_names
        _rename_tensors(nodes, inits, {"input": in_name, cur: out_name})
    graph = helper.make_graph(
        nodes, "lumpkit",
        [helper.make_tensor_value_info(in_name, io_dt, ["N", *netf.input_shape])],
        [helper.make_tensor_value_info(out_name, io_dt, ["N", *netf.output_shape])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="lumpkit")
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    data = model.SerializeToString()

    def _write(fh: Any) -> None:
        fh.write(data)

    atomic_write(Path(path), _write)

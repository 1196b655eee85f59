"""ONNX graphs in the shapes real exporters and verification benchmarks write (tf2onnx and
keras2onnx dense and NHWC convolutional models, VNN-COMP/ERAN/ACAS Xu graphs, old IR
versions, output post-processing), read by lumpkit and checked against onnxruntime.

Oracle: onnxruntime on the original graph.  Each readable style is compared with lumpkit's
float evaluation and with the reduced model ``lumpkit nn reduce`` writes (run by
onnxruntime), and its certificate is re-checked by :func:`proofs.check_certificate`.  Graphs
with a planted duplicate neuron (a row that is twice another, bias included) must lose it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumpcore import UnsupportedLayerError
from lumpkit._cli import main
from nnreduce import Dense, evaluate, load_network, reduce_network

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from nn_helpers import ort_run  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

F32, F64 = TensorProto.FLOAT, TensorProto.DOUBLE


@dataclass
class Graph:
    """A hand-built model and how many neurons a reduction must remove from it."""

    model: Any
    planted: int = 0
    exact_only: bool = False  # weights float64 cannot hold (exact rationals): files round them


def _node(op: str, ins: list[str], outs: list[str] | str, **kw: Any) -> Any:
    outs = [outs] if isinstance(outs, str) else outs
    return helper.make_node(op, ins, outs, name=f"{op.lower()}_{outs[0]}", **kw)


def _t(name: str, arr: Any, dt: Any = np.float32) -> Any:
    return numpy_helper.from_array(np.asarray(arr, dtype=dt), name)


def _ints(name: str, values: list[int]) -> Any:
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def _const(out: str, arr: Any, dt: Any = np.float32) -> Any:
    """A ``Constant`` node holding ``arr`` (weights some exporters write as nodes)."""
    return helper.make_node("Constant", [], [out], name=f"const_{out}",
                            value=numpy_helper.from_array(np.asarray(arr, dtype=dt), out))


def _model(nodes: list[Any], inits: list[Any], x_shape: list[Any], y_shape: list[Any] | None,
           *, opset: int = 13, ir: int = 8, dt: int = F32, inits_as_inputs: bool = False,
           outputs: list[str] | None = None) -> Any:
    """A graph with data input ``x`` and output ``y`` (or ``outputs``), checked by onnx."""
    ins = [helper.make_tensor_value_info("x", dt, x_shape)]
    if inits_as_inputs:  # IR < 4: every initializer is also a graph input
        ins += [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in inits]
    outs = [helper.make_tensor_value_info(n, dt, y_shape) for n in (outputs or ["y"])]
    graph = helper.make_graph(nodes, "styles", ins, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir
    onnx.checker.check_model(model, full_check=True)
    return model


def _dyadic(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Weights k/8: float32 values whose merged sums stay float32 values (an exact reduced
    model that onnxruntime runs in float32, convolutions included)."""
    return (rng.integers(-8, 9, size=shape) / 8).astype(np.float32)


def _dense(rng: np.random.Generator, n_in: int, n_out: int, plant: bool
           ) -> tuple[np.ndarray, np.ndarray]:
    """``(W (out, in), b)``; with ``plant`` neuron 1 is neuron 0 times two."""
    w, b = _dyadic(rng, n_out, n_in), _dyadic(rng, n_out)
    if plant:
        w[1], b[1] = 2 * w[0], 2 * b[0]
    return w, b


def _close(got: np.ndarray, want: np.ndarray) -> None:
    """Equal to float32 rounding: onnxruntime sums in float32, so the tolerance grows with
    the outputs' size (a misread, such as permuted columns, is off by the outputs' size)."""
    np.testing.assert_allclose(got, want, rtol=1e-5,
                               atol=1e-5 * max(1.0, float(np.abs(want).max())))


# ------------------------------------------------------------------ 1. tf2onnx dense
def _tf_dense(variant: str) -> Callable[[], Graph]:
    def build() -> Graph:
        rng = np.random.default_rng(1)
        w1, b1 = _dense(rng, 784, 12, True)
        w2, b2 = _dense(rng, 12, 10, False)
        inits = [_t("W1", w1.T), _t("b1", b1), _t("W2", w2.T), _t("b2", b2)]
        head: list[Any] = []
        x_shape: list[Any] = ["unk__6", 784]
        src = "x"
        if variant == "reshape-initializer":
            x_shape = ["unk__6", 28, 28]
            inits.append(_ints("shape", [-1, 784]))
            head = [_node("Reshape", ["x", "shape"], "flat")]
            src = "flat"
        elif variant == "reshape-constant":
            x_shape = ["unk__6", 28, 28]
            head = [helper.make_node("Constant", [], ["shape"], name="const_shape",
                                     value=numpy_helper.from_array(
                                         np.array([-1, 784], dtype=np.int64), "shape")),
                    _node("Reshape", ["x", "shape"], "flat")]
            src = "flat"
        elif variant == "reshape-constant-ints":  # Constant(value_ints=...), as onnxscript writes
            x_shape = ["unk__6", 28, 28]
            head = [helper.make_node("Constant", [], ["shape"], name="const_shape",
                                     value_ints=[-1, 1, 784]),
                    _node("Reshape", ["x", "shape"], "flat3"),
                    _node("Squeeze", ["flat3", "ax1"], "flat")]
            inits.append(_ints("ax1", [1]))
            src = "flat"
        elif variant == "flatten":
            x_shape = ["N", 28, 28]
            head = [_node("Flatten", ["x"], "flat", axis=1)]
            src = "flat"
        nodes = [*head,
                 _node("MatMul", [src, "W1"], "mm1"),
                 _node("Add", ["mm1", "b1"], "h1"),
                 _node("Relu", ["h1"], "r1"),
                 _node("Identity", ["r1"], "id1"),
                 _node("Cast", ["id1"], "c1", to=F32),
                 _node("MatMul", ["c1", "W2"], "mm2"),
                 _node("Add", ["b2", "mm2"], "y")]  # the bias as the first input
        return Graph(_model(nodes, inits, x_shape, ["unk__6", 10]), planted=1)
    return build


def _tf_matmul_weight_first() -> Graph:
    """``MatMul(W, x)`` on column vectors: ``(N, 5)`` unsqueezed to ``(N, 5, 1)``."""
    rng = np.random.default_rng(2)
    w1, b1 = _dense(rng, 5, 8, True)
    w2, b2 = _dense(rng, 8, 3, False)
    nodes = [_node("Unsqueeze", ["x", "ax2"], "col"),
             _node("MatMul", ["W1", "col"], "mm1"),
             _node("Add", ["mm1", "b1"], "h1"),
             _node("Relu", ["h1"], "r1"),
             _node("MatMul", ["W2", "r1"], "mm2"),
             _node("Add", ["mm2", "b2"], "h2"),
             _node("Squeeze", ["h2", "ax2"], "y")]
    inits = [_ints("ax2", [2]), _t("W1", w1), _t("b1", b1.reshape(8, 1)), _t("W2", w2),
             _t("b2", b2.reshape(3, 1))]
    return Graph(_model(nodes, inits, ["N", 5], ["N", 3]), planted=1)


def _tf_dense_scaled(variant: str) -> Callable[[], Graph]:
    """Scalings inside the network: Keras batch norm after an activation as tf2onnx writes it
    (Mul, Add), a Mul and a Div right after a MatMul (folded into the layer), a Mul between
    two layers (once read as an output scaling applied after the last layer)."""
    def build() -> Graph:
        rng = np.random.default_rng(13)
        w1, b1 = _dense(rng, 6, 7, True)
        w2, b2 = _dense(rng, 7, 3, False)
        s = rng.integers(1, 5, size=7).astype(np.float32) / 4
        t = _dyadic(rng, 7)
        s[1], t[1] = s[0], 2 * t[0]  # the planted neuron stays twice neuron 0
        inits = [_t("W1", w1.T), _t("b1", b1), _t("W2", w2.T), _t("b2", b2), _t("s", s),
                 _t("t", t), _t("two", 2.0)]
        if variant == "batchnorm-after-relu":
            nodes = [_node("MatMul", ["x", "W1"], "mm1"), _node("Add", ["mm1", "b1"], "h1"),
                     _node("Relu", ["h1"], "r1"), _node("Mul", ["r1", "s"], "bn_m"),
                     _node("Add", ["bn_m", "t"], "bn")]
        elif variant == "mul-between-layers":  # (x W1 + b1) * 1.5, a Relu, a Gemm: no Add
            nodes = [_node("MatMul", ["x", "W1"], "mm1"), _node("Add", ["mm1", "b1"], "h1"),
                     _node("Mul", ["h1", "k"], "h1s"), _node("Relu", ["h1s"], "r1"),
                     _node("Gemm", ["r1", "W2", "b2"], "y")]
            return Graph(_model(nodes, [*inits, _t("k", 1.5)], ["N", 6], ["N", 3]), planted=1)
        else:  # (x W1 + b1) * s + t, then a Relu
            nodes = [_node("MatMul", ["x", "W1"], "mm1"), _node("Add", ["mm1", "b1"], "h1"),
                     _node("Mul", ["s", "h1"], "h1s"), _node("Add", ["h1s", "t"], "h1t"),
                     _node("Relu", ["h1t"], "bn")]
        nodes += [_node("MatMul", ["bn", "W2"], "mm2"), _node("Div", ["mm2", "two"], "half"),
                  _node("Add", ["half", "b2"], "y")]
        return Graph(_model(nodes, inits, ["N", 6], ["N", 3]),
                     planted=0 if variant == "batchnorm-after-relu" else 1)
    return build


def _cast_to_double() -> Graph:
    """A float input cast to double (exact) before float64 layers."""
    rng = np.random.default_rng(14)
    w1, b1 = _dense(rng, 4, 5, True)
    w2, b2 = _dense(rng, 5, 2, False)
    nodes = [_node("Cast", ["x"], "xd", to=F64), _node("Gemm", ["xd", "W1", "b1"], "g1", transB=1),
             _node("Relu", ["g1"], "r1"), _node("Gemm", ["r1", "W2", "b2"], "yd", transB=1),
             _node("Cast", ["yd"], "y", to=F64)]
    inits = [_t(n, a, np.float64) for n, a in (("W1", w1), ("b1", b1), ("W2", w2), ("b2", b2))]
    graph = helper.make_graph(nodes, "cast", [helper.make_tensor_value_info("x", F32, ["N", 4])],
                              [helper.make_tensor_value_info("y", F64, ["N", 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return Graph(model, planted=1)


# ------------------------------------------------------------ 2. tf2onnx NHWC CNNs
def _tf_cnn(norm: bool) -> Callable[[], Graph]:
    def build() -> Graph:
        rng = np.random.default_rng(3)
        hw, c_in = (10, 3) if norm else (28, 1)
        wc = _dyadic(rng, 4, c_in, 3, 3)
        bc = _dyadic(rng, 4)
        wc[2], bc[2] = 2 * wc[0], 2 * bc[0]  # a planted duplicate channel
        m = (hw - 2) // 2
        w1, b1 = _dense(rng, m * m * 4, 6, False)
        nodes: list[Any] = []
        inits = [_t("wc", wc), _t("bc", bc), _t("W1", w1.T), _t("b1", b1),
                 _ints("shape", [-1, m * m * 4])]
        src = "x"
        if norm:  # per-channel NHWC constants, before the transpose to NCHW
            nodes += [_node("Sub", ["x", "mean"], "xs"), _node("Div", ["xs", "std"], "xn")]
            inits += [_t("mean", [0.485, 0.456, 0.406]), _t("std", [0.229, 0.224, 0.225])]
            src = "xn"
        nodes += [_node("Transpose", [src], "nchw", perm=[0, 3, 1, 2]),
                  _node("Conv", ["nchw", "wc", "bc"], "conv", kernel_shape=[3, 3],
                        auto_pad="VALID"),
                  _node("Relu", ["conv"], "relu"),
                  _node("MaxPool", ["relu"], "pool", kernel_shape=[2, 2], strides=[2, 2]),
                  _node("Transpose", ["pool"], "nhwc", perm=[0, 2, 3, 1]),
                  _node("Reshape", ["nhwc", "shape"], "flat"),  # flattened in NHWC order
                  _node("MatMul", ["flat", "W1"], "mm"),
                  _node("Add", ["mm", "b1"], "y")]
        return Graph(_model(nodes, inits, ["N", hw, hw, c_in], ["N", 6]), planted=1)
    return build


# ------------------------------------------------------- 3. VNN-COMP / ERAN / ACAS Xu
def _eran_image(norm: str) -> Callable[[], Graph]:
    """``(1, 1, 28, 28)`` (or ``(1, 784)``, ``(1, 3, 8, 8)``) with Sub/Div constants, Flatten
    and Gemm with ``transB`` 1 then 0."""
    def build() -> Graph:
        rng = np.random.default_rng(4)
        shape = {"scalar": [1, 1, 28, 28], "per-pixel": [1, 784],
                 "per-channel": [1, 3, 8, 8]}[norm]
        n = int(np.prod(shape))
        mean: np.ndarray
        std: np.ndarray
        if norm == "scalar":
            mean, std = np.array(0.1307, np.float32), np.array(0.3081, np.float32)
        elif norm == "per-pixel":
            mean = rng.uniform(0, 0.5, size=(784,)).astype(np.float32)
            std = rng.uniform(0.5, 1, size=(1, 784)).astype(np.float32)
        else:
            mean = np.array([0.4914, 0.4822, 0.4465], np.float32).reshape(1, 3, 1, 1)
            std = np.array([0.2023, 0.1994, 0.2010], np.float32).reshape(3, 1, 1)
        w1, b1 = _dense(rng, n, 16, True)
        w2, b2 = _dense(rng, 16, 10, False)
        nodes = [_node("Sub", ["x", "mean"], "xs"), _node("Div", ["xs", "std"], "xn"),
                 _node("Flatten", ["xn"], "flat", axis=1),
                 _node("Gemm", ["flat", "W1", "b1"], "g1", transB=1),
                 _node("Relu", ["g1"], "r1"),
                 _node("Gemm", ["r1", "W2", "b2"], "y", transB=0)]
        inits = [_t("mean", mean), _t("std", std), _t("W1", w1), _t("b1", b1),
                 _t("W2", w2.T), _t("b2", b2)]
        return Graph(_model(nodes, inits, shape, [1, 10]), planted=1)
    return build


def _acas(flatten: bool) -> Callable[[], Graph]:
    """ACAS Xu as Marabou ships it: input ``(1, 1, 1, 5)``, Sub, (Flatten,) MatMul, Add."""
    def build() -> Graph:
        rng = np.random.default_rng(5)
        w1, b1 = _dense(rng, 5, 9, True)
        w2, b2 = _dense(rng, 9, 5, False)
        nodes = [_node("Sub", ["x", "avg"], "xs")]
        src = "xs"
        if flatten:
            nodes.append(_node("Flatten", ["xs"], "flat", axis=1))
            src = "flat"
        nodes += [_node("MatMul", [src, "W1"], "mm1"), _node("Add", ["mm1", "b1"], "h1"),
                  _node("Relu", ["h1"], "r1"), _node("MatMul", ["r1", "W2"], "mm2"),
                  _node("Add", ["mm2", "b2"], "y")]
        inits = [_t("avg", rng.uniform(-1, 1, size=(1, 1, 1, 5))), _t("W1", w1.T),
                 _t("b1", b1), _t("W2", w2.T), _t("b2", b2)]
        return Graph(_model(nodes, inits, [1, 1, 1, 5], [1, 5] if flatten else [1, 1, 1, 5]),
                     planted=1)
    return build


def _gemm(variant: str) -> Callable[[], Graph]:
    """Gemm with alpha/beta, without C, with C as a row ``(1, n)``, in float64."""
    def build() -> Graph:
        rng = np.random.default_rng(6)
        dt = np.float64 if variant == "double-alpha" else np.float32
        w1, b1 = _dense(rng, 6, 7, True)
        w2, b2 = _dense(rng, 7, 4, False)
        g1: dict[str, Any] = {"transB": 1}
        ins1 = ["x", "W1", "b1"]
        if variant in ("alpha-beta", "double-alpha"):
            g1.update(alpha=0.1, beta=3.0)
        elif variant == "no-bias":
            ins1 = ["x", "W1"]
        if variant == "double-alpha":  # float64 weights times 0.1: no float64 product
            w1 = w1 + rng.normal(size=w1.shape) * 1e-3
            w1[1] = 2 * w1[0]
        inits = [_t("W1", w1, dt), _t("b1", b1.reshape(1, 7) if variant == "row-bias" else b1,
                                      dt), _t("W2", w2.T, dt), _t("b2", b2, dt)]
        nodes = [_node("Gemm", ins1, "g1", **g1), _node("Relu", ["g1"], "r1"),
                 _node("Gemm", ["r1", "W2", "b2"], "y", alpha=0.5, beta=2.0)]
        return Graph(_model(nodes, inits, ["N", 6], ["N", 4],
                            dt=F64 if dt == np.float64 else F32), planted=1,
                     exact_only=variant == "double-alpha")
    return build


def _weights_as_constant_nodes() -> Graph:
    rng = np.random.default_rng(7)
    w1, b1 = _dense(rng, 6, 5, True)
    w2, b2 = _dense(rng, 5, 3, False)
    nodes = [_const("W1", w1), _const("b1", b1), _const("W2", w2.T), _const("b2", b2),
             _node("Gemm", ["x", "W1", "b1"], "g1", transB=1), _node("Relu", ["g1"], "r1"),
             _node("MatMul", ["r1", "W2"], "mm2"), _node("Add", ["mm2", "b2"], "y")]
    return Graph(_model(nodes, [], ["N", 6], ["N", 3]), planted=1)


def _float16_weights_cast() -> Graph:
    """float16 initializers cast to float (a half-precision export run in float32)."""
    rng = np.random.default_rng(8)
    w1, b1 = _dense(rng, 6, 5, True)
    w2, b2 = _dense(rng, 5, 3, False)
    nodes = [_node("Cast", ["W1h"], "W1", to=F32), _node("Cast", ["b1h"], "b1", to=F32),
             _node("Cast", ["W2h"], "W2", to=F32),
             _node("Gemm", ["x", "W1", "b1"], "g1", transB=1), _node("Relu", ["g1"], "r1"),
             _node("Gemm", ["r1", "W2", "b2"], "y", transB=1)]
    inits = [_t("W1h", w1 / 3, np.float16), _t("b1h", b1, np.float16),
             _t("W2h", w2 / 3, np.float16), _t("b2", b2)]
    return Graph(_model(nodes, inits, ["N", 6], ["N", 3]), planted=1)


def _old_ir_initializers_as_inputs() -> Graph:
    """IR 3 / opset 8: initializers are listed as graph inputs too; Dropout with a ratio."""
    rng = np.random.default_rng(9)
    w1, b1 = _dense(rng, 5, 6, True)
    w2, b2 = _dense(rng, 6, 2, False)
    nodes = [_node("Gemm", ["x", "W1", "b1"], "g1", transB=1), _node("Relu", ["g1"], "r1"),
             _node("Dropout", ["r1"], ["d1", "mask"], ratio=0.3),
             _node("Gemm", ["d1", "W2", "b2"], "y", transB=1)]
    inits = [_t("W1", w1), _t("b1", b1), _t("W2", w2), _t("b2", b2)]
    return Graph(_model(nodes, inits, [1, 5], [1, 2], opset=8, ir=3, inits_as_inputs=True),
                 planted=1)


def _dropout_inputs() -> Graph:
    """opset 13 Dropout: ratio and training_mode (false) as inputs, the mask output unused."""
    rng = np.random.default_rng(10)
    w1, b1 = _dense(rng, 5, 6, True)
    w2, b2 = _dense(rng, 6, 2, False)
    nodes = [_node("Gemm", ["x", "W1", "b1"], "g1", transB=1), _node("Relu", ["g1"], "r1"),
             _node("Dropout", ["r1", "ratio", "train"], ["d1", "mask"]),
             _node("Gemm", ["d1", "W2", "b2"], "y", transB=1)]
    inits = [_t("W1", w1), _t("b1", b1), _t("W2", w2), _t("b2", b2),
             _t("ratio", 0.5), numpy_helper.from_array(np.array(False), "train")]
    return Graph(_model(nodes, inits, ["N", 5], ["N", 2]), planted=1)


def _squeeze_around_dense(opset: int) -> Callable[[], Graph]:
    """``(N, 1, 5)`` squeezed to ``(N, 5)``, Gemm, unsqueezed to ``(N, 1, 6)``, MatMul on the
    last axis, squeezed back: axes as attributes (opset 11) or as inputs (opset 13)."""
    def build() -> Graph:
        rng = np.random.default_rng(11)
        w1, b1 = _dense(rng, 5, 6, True)
        w2, b2 = _dense(rng, 6, 3, False)
        inits = [_t("W1", w1), _t("b1", b1), _t("W2", w2.T), _t("b2", b2.reshape(1, 3))]

        def sq(op: str, src: str, out: str) -> Any:
            if opset < 13:
                return _node(op, [src], out, axes=[1])
            return _node(op, [src, "ax1"], out)

        if opset >= 13:
            inits.append(_ints("ax1", [1]))
        nodes = [sq("Squeeze", "x", "x2"), _node("Gemm", ["x2", "W1", "b1"], "g1", transB=1),
                 _node("Relu", ["g1"], "r1"), sq("Unsqueeze", "r1", "r3"),
                 _node("MatMul", ["r3", "W2"], "mm2"), _node("Add", ["mm2", "b2"], "h2"),
                 sq("Squeeze", "h2", "y")]
        return Graph(_model(nodes, inits, ["N", 1, 5], ["N", 3], opset=opset), planted=1)
    return build


# ------------------------------------------------------------ 4. output processing
def _output(variant: str) -> Callable[[], Graph]:
    def build() -> Graph:
        rng = np.random.default_rng(12)
        w1, b1 = _dense(rng, 4, 6, True)
        w2, b2 = _dense(rng, 6, 3, False)
        nodes = [_node("Gemm", ["x", "W1", "b1"], "g1", transB=1), _node("Relu", ["g1"], "r1"),
                 _node("Gemm", ["r1", "W2", "b2"], "logits", transB=1)]
        if variant == "softmax":
            nodes.append(_node("Softmax", ["logits"], "y", axis=1))
        else:  # output aliases
            nodes += [_node("Identity", ["logits"], "alias"), _node("Identity", ["alias"], "y")]
        inits = [_t("W1", w1), _t("b1", b1), _t("W2", w2), _t("b2", b2)]
        return Graph(_model(nodes, inits, ["N", 4], ["N", 3]), planted=1)
    return build


# ------------------------------------------------------------- exported by PyTorch
def _torch(variant: str, dynamo: bool = False) -> Callable[[], Graph]:
    """The same patterns written by ``torch.onnx.export``: an NHWC CNN flattened in NHWC
    order, ``W @ x.unsqueeze(-1)`` (the weight first), and squeezes around a Linear."""
    def build() -> Graph:
        import io
        import warnings

        torch = pytest.importorskip("torch")
        if dynamo:
            pytest.importorskip("onnxscript")  # the dynamo exporter writes through it
        rng = np.random.default_rng(15)

        def param(a: np.ndarray) -> Any:
            return torch.nn.Parameter(torch.tensor(a))

        class Net(torch.nn.Module):  # type: ignore[name-defined]
            def __init__(self) -> None:
                super().__init__()
                if variant == "nhwc-cnn":
                    wc, bc = _dyadic(rng, 3, 2, 3, 3), _dyadic(rng, 3)
                    wc[1], bc[1] = 2 * wc[0], 2 * bc[0]
                    self.conv = torch.nn.Conv2d(2, 3, 3)
                    self.conv.weight, self.conv.bias = param(wc), param(bc)
                    w, b = _dense(rng, 3 * 3 * 3, 4, False)
                else:
                    w1, b1 = _dense(rng, 5, 6, True)
                    self.w1, self.b1 = param(w1), param(b1)
                    w, b = _dense(rng, 6, 4, False)
                self.fc = torch.nn.Linear(w.shape[1], 4)
                self.fc.weight, self.fc.bias = param(w), param(b)

            def forward(self, x: Any) -> Any:
                if variant == "nhwc-cnn":
                    h = torch.relu(self.conv(x.permute(0, 3, 1, 2)))
                    h = torch.nn.functional.max_pool2d(h, 2).permute(0, 2, 3, 1)
                    return self.fc(h.reshape(-1, 3 * 3 * 3))
                if variant == "weight-first":
                    h = (self.w1 @ x.unsqueeze(-1)).squeeze(-1) + self.b1
                else:  # (N, 1, 5) squeezed, a Linear, unsqueezed, a Linear, squeezed
                    h = (x.squeeze(1) @ self.w1.T + self.b1).unsqueeze(1)
                return self.fc(torch.relu(h)).squeeze(1)

        shape = {"nhwc-cnn": (2, 8, 8, 2), "weight-first": (2, 5), "squeeze": (2, 1, 5)}[variant]
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if dynamo:
                torch.onnx.export(Net().eval(), (torch.randn(*shape),), buf, dynamo=True,
                                  input_names=["x"], verbose=False,
                                  dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
            else:
                torch.onnx.export(Net().eval(), (torch.randn(*shape),), buf, dynamo=False,
                                  input_names=["x"], dynamic_axes={"x": {0: "batch"}})
        return Graph(onnx.load_from_string(buf.getvalue()), planted=1)
    return build


STYLES: dict[str, Callable[[], Graph]] = {
    "tf-dense-784": _tf_dense("784"),
    "tf-dense-reshape-initializer": _tf_dense("reshape-initializer"),
    "tf-dense-reshape-constant": _tf_dense("reshape-constant"),
    "tf-dense-reshape-value-ints-squeeze": _tf_dense("reshape-constant-ints"),
    "keras-dense-flatten": _tf_dense("flatten"),
    "tf-matmul-weight-first": _tf_matmul_weight_first,
    "tf-cnn-nhwc": _tf_cnn(False),
    "tf-cnn-nhwc-normalised": _tf_cnn(True),
    "eran-scalar-norm": _eran_image("scalar"),
    "eran-per-pixel-norm": _eran_image("per-pixel"),
    "eran-per-channel-norm": _eran_image("per-channel"),
    "acas-flatten": _acas(True),
    "acas-matmul-on-4d": _acas(False),
    "gemm-alpha-beta": _gemm("alpha-beta"),
    "gemm-double-alpha": _gemm("double-alpha"),
    "gemm-no-bias": _gemm("no-bias"),
    "gemm-row-bias": _gemm("row-bias"),
    "constant-node-weights": _weights_as_constant_nodes,
    "float16-weights-cast": _float16_weights_cast,
    "ir3-initializers-as-inputs": _old_ir_initializers_as_inputs,
    "dropout-ratio-input": _dropout_inputs,
    "squeeze-unsqueeze-opset11": _squeeze_around_dense(11),
    "squeeze-unsqueeze-opset13": _squeeze_around_dense(13),
    "softmax-output": _output("softmax"),
    "identity-output-aliases": _output("identity"),
    "tf-dense-batchnorm-after-relu": _tf_dense_scaled("batchnorm-after-relu"),
    "tf-dense-mul-add-after-matmul": _tf_dense_scaled("mul-after-matmul"),
    "tf-dense-mul-between-layers": _tf_dense_scaled("mul-between-layers"),
    "cast-to-double": _cast_to_double,
    "torch-nhwc-cnn": _torch("nhwc-cnn"),
    "torch-dynamo-nhwc-cnn": _torch("nhwc-cnn", dynamo=True),
    "torch-weight-first": _torch("weight-first"),
    "torch-squeeze-unsqueeze": _torch("squeeze"),
}


@pytest.mark.parametrize("style", list(STYLES))
def test_style_is_read_as_onnxruntime_computes_it(tmp_path: Path, style: str) -> None:
    graph = STYLES[style]()
    path = tmp_path / "m.onnx"
    onnx.save(graph.model, str(path))
    net = load_network(path)
    x = np.random.default_rng(0).uniform(-1, 1, size=(5, *net.input_shape))
    _close(evaluate(net, x), ort_run(path, x))


@pytest.mark.parametrize("style", list(STYLES))
def test_style_reduced_by_the_cli_runs_in_onnxruntime_and_is_certified(
        tmp_path: Path, style: str, capsys: pytest.CaptureFixture[str]) -> None:
    from proofs import check_certificate

    graph = STYLES[style]()
    path, out, cert = tmp_path / "m.onnx", tmp_path / "r.onnx", tmp_path / "c.json"
    onnx.save(graph.model, str(path))
    assert main(["nn", "reduce", str(path), "-o", str(out), "--certificate", str(cert),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["neurons_before"] - summary["neurons_after"] == graph.planted
    net = load_network(path)
    x = np.random.default_rng(1).uniform(-1, 1, size=(5, *net.input_shape))
    _close(ort_run(out, x), ort_run(path, x))
    assert not summary["rounded"]
    # the certificate is of the exact reduction; a file that rounds it is checked in memory
    reduced = reduce_network(net).network if graph.exact_only else load_network(out)
    verdict = check_certificate(net, reduced, json.loads(cert.read_text()))
    assert verdict.valid, verdict


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_gemm_alpha_and_beta_are_exact_products(tmp_path: Path, dt: type) -> None:
    """``alpha (A B) + beta C``: the weights and bias are ``alpha B`` and ``beta C`` exactly
    (a float32 times a float32 is a float64; float64 products become rationals)."""
    from fractions import Fraction

    path = tmp_path / "g.onnx"
    onnx.save(_gemm("double-alpha" if dt == np.float64 else "alpha-beta")().model, str(path))
    model = onnx.load(str(path))
    gemm = model.graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
    alpha, beta = Fraction(attrs["alpha"]), Fraction(attrs["beta"])
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    layer = load_network(path).layers[0]
    assert isinstance(layer, Dense)
    want_w = [[alpha * Fraction(float(v)) for v in row] for row in values["W1"].tolist()]
    want_b = [beta * Fraction(float(v)) for v in values["b1"].tolist()]
    assert [[Fraction(v) for v in row] for row in layer.weight.tolist()] == want_w
    assert [Fraction(v) for v in layer.bias.tolist()] == want_b
    assert (layer.weight.dtype == object) == (dt == np.float64)  # 0.1 * float64: no float64


# ---------------------------------------------------------------- 5. refusals
def _refused(variant: str) -> Any:
    """Graphs lumpkit cannot read exactly."""
    rng = np.random.default_rng(16)
    w1, b1 = _dense(rng, 4, 3, False)
    dense = [_t("W1", w1), _t("b1", b1)]
    gemm = _node("Gemm", ["x", "W1", "b1"], "g1", transB=1)
    if variant == "conv-weights-as-input":
        graph = helper.make_graph(
            [_node("Conv", ["x", "w"], "y", kernel_shape=[3, 3])], "g",
            [helper.make_tensor_value_info("x", F32, ["N", 1, 5, 5]),
             helper.make_tensor_value_info("w", F32, [2, 1, 3, 3])],
            [helper.make_tensor_value_info("y", F32, None)])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    if variant == "conv-weights-from-data":
        return _model([_node("Relu", ["x"], "r"), _node("Conv", ["r", "x"], "y")], [],
                      [1, 1, 3, 3], [1, 1, 1, 1])
    if variant == "residual-add":
        return _model([_node("Gemm", ["x", "Wsq", "b1"], "g1", transB=1),
                       _node("Relu", ["g1"], "r1"), _node("Add", ["r1", "x"], "y")],
                      [_t("Wsq", _dyadic(rng, 3, 3)), _t("b1", b1)], ["N", 3], ["N", 3])
    if variant == "concat-data":
        return _model([gemm, _node("Relu", ["g1"], "r1"),
                       _node("Concat", ["r1", "x"], "y", axis=1)], dense, ["N", 4], ["N", 7])
    if variant == "gather-data":
        return _model([gemm, _node("Gather", ["g1", "idx"], "y", axis=1)],
                      [*dense, _ints("idx", [2, 0])], ["N", 4], ["N", 2])
    if variant == "argmax-output":
        graph = helper.make_graph(
            [gemm, _node("ArgMax", ["g1"], "y", axis=1, keepdims=0)], "g",
            [helper.make_tensor_value_info("x", F32, ["N", 4])],
            [helper.make_tensor_value_info("y", TensorProto.INT64, ["N"])], dense)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    if variant == "two-outputs":
        return _model([gemm, _node("Relu", ["g1"], "y")], dense, ["N", 4], ["N", 3],
                      outputs=["y", "g1"])
    if variant == "bias-per-column":  # (C,) on a (C, H, W) map meets W: not a channel bias
        return _model([_node("Conv", ["x", "wc"], "c"), _node("Add", ["c", "bc"], "y")],
                      [_t("wc", _dyadic(rng, 4, 1, 3, 3)), _t("bc", _dyadic(rng, 4))],
                      ["N", 1, 6, 6], ["N", 4, 4, 4])
    if variant == "prelu-slope-per-column":  # a (C,) slope on a (C, H, W) map meets W
        return _model([_node("Conv", ["x", "wc"], "c"), _node("PRelu", ["c", "slope"], "y")],
                      [_t("wc", _dyadic(rng, 4, 1, 3, 3)), _t("slope", [0.5, 0.25, 0.125, 1.0])],
                      ["N", 1, 6, 6], ["N", 4, 4, 4])
    if variant == "bias-growing":  # (1, 3) + (3, 1) is (3, 3)
        return _model([gemm, _node("Add", ["g1", "col"], "y")],
                      [*dense, _t("col", _dyadic(rng, 3, 1))], [1, 4], [3, 3])
    if variant == "dropout-training":
        return _model([gemm, _node("Dropout", ["g1", "ratio", "train"], "y")],
                      [*dense, _t("ratio", 0.5), numpy_helper.from_array(np.array(True), "train")],
                      ["N", 4], ["N", 3])
    if variant == "cast-narrowing":
        # between two layers (before the first one and as the last node it is read)
        return _model([_node("Gemm", ["x", "W0", "b0"], "h", transB=1),
                       _node("Cast", ["h"], "xf", to=F32), _node("Cast", ["xf"], "xd", to=F64),
                       _node("Gemm", ["xd", "W1", "b1"], "y", transB=1)],
                      [_t("W0", np.eye(4), np.float64), _t("b0", np.zeros(4), np.float64),
                       _t("W1", w1, np.float64), _t("b1", b1, np.float64)], ["N", 4], ["N", 3],
                      dt=F64)
    if variant == "weight-first-on-batch":  # W @ x with x (N, 4) multiplies across the batch
        return _model([_node("MatMul", ["W", "x"], "y")], [_t("W", _dyadic(rng, 3, 2))],
                      [2, 4], [3, 4])
    assert variant == "softmax-on-padded-axes"  # the softmax of an axis of size 1
    return _model([_node("MatMul", ["x", "W"], "h"), _node("Softmax", ["h"], "y", axis=1)],
                  [_t("W", w1.T)], ["N", 1, 4], ["N", 1, 3])


REFUSALS = {
    "conv-weights-as-input": r"node 0 \(Conv 'conv_y'\) reads \['w'\].*must be constants",
    "conv-weights-from-data": r"node 1 \(Conv 'conv_y'\).*not a single chain.*computed from the",
    "residual-add": r"node 2 \(Add 'add_y'\).*not a single chain.*residual",
    "concat-data": r"node 2 \(Concat 'concat_y'\).*not a single chain.*Concat",
    "gather-data": r"node 1 \(Gather 'gather_y'\): operator Gather is not supported.*export",
    "argmax-output": r"node 1 \(ArgMax 'argmax_y'\).*not a real-valued output.*without it",
    "two-outputs": r"2 outputs \['y', 'g1'\].*single output",
    "bias-per-column": r"node 1 \(Add 'add_y'\).*several values within a channel",
    "prelu-slope-per-column": r"node 1 \(PRelu 'prelu_y'\).*several values within a channel",
    "bias-growing": r"node 1 \(Add 'add_y'\).*shape \(3, 1\) does not broadcast",
    "dropout-training": r"node 1 \(Dropout 'dropout_y'\).*training mode",
    "cast-narrowing": r"node 1 \(Cast 'cast_xf'\).*from DOUBLE to FLOAT",
    "weight-first-on-batch": r"node 0 \(MatMul 'matmul_y'\).*mix the examples of the batch",
    "softmax-on-padded-axes": r"node 1 \(Softmax 'softmax_y'\): Softmax of a \(batch, \*\(1, 3\)\)",
}


@pytest.mark.parametrize("variant", list(REFUSALS))
def test_unreadable_graphs_are_refused_naming_the_node(
        tmp_path: Path, variant: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Refused with the node's index, operator and name and what to do; the CLI prints the
    message (exit status 2), never a traceback."""
    path = tmp_path / "m.onnx"
    onnx.save(_refused(variant), str(path))
    with pytest.raises(UnsupportedLayerError, match=REFUSALS[variant]):
        load_network(path)
    assert main(["nn", "reduce", str(path), "-o", str(tmp_path / "r.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lumpkit: error: ") and "Traceback" not in err
    assert not (tmp_path / "r.onnx").exists()

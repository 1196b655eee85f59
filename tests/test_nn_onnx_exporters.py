"""Hand-built ONNX graphs in the forms other exporters write (opsets 7 to 20), against
onnxruntime.

Oracle: onnxruntime on the original graph; a graph lumpkit reads must give onnxruntime's
outputs under :func:`nnreduce.evaluate`, and so must the reduced model it writes.  A graph
whose meaning lumpkit cannot hold (a batch norm in training mode normalises with the batch's
own statistics) must be refused with the node named, never read as something else.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumpcore import UnsupportedLayerError
from nnreduce import evaluate, load_network, reduce_network, save_network

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from nn_helpers import ort_run  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

F32 = TensorProto.FLOAT


def _t(name: str, arr: Any, dt: Any = np.float32) -> Any:
    return numpy_helper.from_array(np.asarray(arr, dtype=dt), name)


def _node(op: str, ins: list[str], outs: list[str] | str, **kw: Any) -> Any:
    outs = [outs] if isinstance(outs, str) else outs
    return helper.make_node(op, ins, outs, name=f"{op.lower()}_{outs[0]}", **kw)


def _model(nodes: list[Any], inits: list[Any], x_shape: list[Any], y_shape: list[Any],
           opset: int, ir: int = 7) -> Any:
    ins = [helper.make_tensor_value_info("x", F32, x_shape)]
    if ir < 4:  # IR 3: initializers are graph inputs too
        ins += [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in inits]
    graph = helper.make_graph(nodes, "g", ins, [helper.make_tensor_value_info("y", F32, y_shape)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir
    onnx.checker.check_model(model)
    return model


def _w(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.integers(-8, 9, size=shape) / 8).astype(np.float32)


_BN = {"s": [1.5, 0.5, 2.0], "m": [0.5, -0.5, 1.0], "v": [1.0, 0.25, 4.0]}


def _bn_inits(rng: np.random.Generator) -> list[Any]:
    return [_t("s", _BN["s"]), _t("bb", _w(rng, 3)), _t("m", _BN["m"]), _t("v", _BN["v"])]


def _bn_graph(opset: int, outs: list[str], ir: int = 7, **attrs: Any) -> Any:
    """Dense layer, BatchNormalization on its (batch, 3) output, ReLU."""
    rng = np.random.default_rng(3)
    return _model([_node("Gemm", ["x", "W", "b"], "h", transB=1),
                   _node("BatchNormalization", ["h", "s", "bb", "m", "v"], outs, **attrs),
                   _node("Relu", [outs[0]], "y")],
                  [_t("W", _w(rng, 3, 4)), _t("b", _w(rng, 3)), *_bn_inits(rng)],
                  ["N", 4], ["N", 3], opset, ir)


def _dense_chain(opset: int, act: list[Any], extra: list[Any] | None = None) -> Any:
    """Gemm, the activation nodes ``act`` (from 'h' to 'a'), Gemm; a planted neuron."""
    rng = np.random.default_rng(opset)
    w1, b1 = _w(rng, 5, 4), _w(rng, 5)
    w1[1], b1[1] = 2 * w1[0], 2 * b1[0]
    return _model([_node("Gemm", ["x", "W1", "b1"], "h", transB=1), *act,
                   _node("Gemm", ["a", "W2", "b2"], "y", transB=1)],
                  [_t("W1", w1), _t("b1", b1), _t("W2", _w(rng, 3, 5)), _t("b2", _w(rng, 3)),
                   *(extra or [])], ["N", 4], ["N", 3], opset)


def _conv_prelu(slope: np.ndarray) -> Any:
    rng = np.random.default_rng(5)
    return _model([_node("Conv", ["x", "w"], "c", kernel_shape=[3, 3]),
                   _node("PRelu", ["c", "s"], "r"), _node("Flatten", ["r"], "y")],
                  [_t("w", _w(rng, 3, 2, 3, 3)), _t("s", slope)], ["N", 2, 5, 5], ["N", 27], 13)


READ: dict[str, Callable[[], Any]] = {
    "bn-opset7-spatial1-ir3": lambda: _bn_graph(7, ["bn"], ir=3, spatial=1),
    "bn-opset9": lambda: _bn_graph(9, ["bn"]),
    "bn-opset15-training-mode-0": lambda: _bn_graph(15, ["bn"], ir=8, training_mode=0),
    "leaky-relu-default-alpha-opset9": lambda: _dense_chain(9, [_node("LeakyRelu", ["h"], "a")]),
    "leaky-relu-default-alpha-opset16": lambda: _dense_chain(16,
                                                             [_node("LeakyRelu", ["h"], "a")]),
    "prelu-slope-(1,)": lambda: _dense_chain(13, [_node("PRelu", ["h", "sl"], "a")],
                                             [_t("sl", [0.25])]),
    "prelu-slope-(C,)": lambda: _dense_chain(13, [_node("PRelu", ["h", "sl"], "a")],
                                             [_t("sl", [0.25, 0.5, 0.125, 1.5, -0.5])]),
    "prelu-conv-slope-(C,1,1)": lambda: _conv_prelu(np.array([0.25, 0.5, -0.125]).reshape(3, 1,
                                                                                          1)),
    "prelu-conv-slope-(1,)": lambda: _conv_prelu(np.array([0.25])),
    "clip-attributes-opset10-relu6": lambda: _dense_chain(
        10, [_node("Clip", ["h"], "a", min=0.0, max=6.0)]),
    "clip-only-max-input-opset13": lambda: _dense_chain(
        13, [_node("Clip", ["h", "", "hi"], "a")], [_t("hi", 0.75)]),
    "clip-constant-nodes-opset13": lambda: _dense_chain(
        13, [helper.make_node("Constant", [], ["lo"], value=_t("lo", 0.0)),
             helper.make_node("Constant", [], ["hi"], value_float=6.0),
             _node("Clip", ["h", "lo", "hi"], "a")]),
    "dropout-opset10-mask-output": lambda: _dense_chain(
        10, [_node("Dropout", ["h"], ["d", "mask"], ratio=0.3), _node("Relu", ["d"], "a")]),
    "identity-chain-opset9": lambda: _dense_chain(
        9, [_node("Identity", ["h"], "i1"), _node("Relu", ["i1"], "i2"),
            _node("Identity", ["i2"], "a")]),
}


@pytest.mark.parametrize("name", list(READ))
def test_exporter_form_is_read_as_onnxruntime_computes_it(tmp_path: Path, name: str) -> None:
    path, out = tmp_path / "m.onnx", tmp_path / "r.onnx"
    onnx.save(READ[name](), str(path))
    net = load_network(path)
    x = np.random.default_rng(0).uniform(-2, 2, size=(6, *net.input_shape))
    want = ort_run(path, x)
    np.testing.assert_allclose(evaluate(net, x), want, rtol=1e-5, atol=1e-5)
    save_network(reduce_network(net).network, out)
    np.testing.assert_allclose(ort_run(out, x), want, rtol=1e-5, atol=1e-5)


def test_external_data_is_read(tmp_path: Path) -> None:
    model = _dense_chain(13, [_node("Relu", ["h"], "a")])
    path = tmp_path / "m.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="m.data",
                    all_tensors_to_one_file=True, size_threshold=0)
    assert (tmp_path / "m.data").exists()
    x = np.random.default_rng(1).uniform(-2, 2, size=(6, 4))
    np.testing.assert_allclose(evaluate(load_network(path), x), ort_run(path, x), rtol=1e-5,
                               atol=1e-5)


# -------------------------------------------------------- batch norm: refused forms
TRAINING = {
    "opset14-training-mode-1": (lambda: _bn_graph(14, ["bn", "rm", "rv"], training_mode=1),
                                r"training mode \(training_mode=1\)"),
    "opset9-running-statistics-outputs": (lambda: _bn_graph(9, ["bn", "o1", "o2", "o3", "o4"]),
                                          r"training mode \(the running-statistics outputs "
                                          r"\['o1', 'o2', 'o3', 'o4'\]\)"),
    "opset7-running-statistics-outputs": (lambda: _bn_graph(7, ["bn", "o1", "o2", "o3", "o4"],
                                                            ir=3, spatial=1),
                                          r"training mode \(the running-statistics"),
}


@pytest.mark.parametrize("name", list(TRAINING))
def test_batch_norm_in_training_mode_is_refused(tmp_path: Path, name: str) -> None:
    """onnxruntime normalises such a node with the batch's own mean and variance (checked
    here: it differs from the inference form); lumpkit used to read it as the inference
    form, a different function, without a word."""
    build, match = TRAINING[name]
    path, ref = tmp_path / "m.onnx", tmp_path / "ref.onnx"
    onnx.save(build(), str(path))
    onnx.save(_bn_graph(9, ["bn"]), str(ref))  # the same weights in inference form
    x = np.random.default_rng(2).uniform(-2, 2, size=(6, 4))
    assert not np.allclose(ort_run(path, x), ort_run(ref, x), atol=1e-3)
    with pytest.raises(UnsupportedLayerError,
                       match=r"node 1 \(BatchNormalization 'batchnormalization_bn'\): "
                             "BatchNormalization in " + match + ".*inference"):
        load_network(path)


def test_batch_norm_per_activation_and_misshapen_are_refused(tmp_path: Path) -> None:
    """spatial=0 (opset 7/8: statistics per activation, constants of shape (C, H, W)) raised a
    bare numpy broadcasting ValueError; constants of the wrong length are named."""
    rng = np.random.default_rng(4)
    per_act = _model(
        [_node("Conv", ["x", "w"], "c", kernel_shape=[3, 3]),
         _node("BatchNormalization", ["c", "s", "bb", "m", "v"], "bn", spatial=0),
         _node("Flatten", ["bn"], "y")],
        [_t("w", _w(rng, 3, 2, 3, 3)), _t("s", _w(rng, 3, 3, 3) + 2), _t("bb", _w(rng, 3, 3, 3)),
         _t("m", _w(rng, 3, 3, 3)), _t("v", np.abs(_w(rng, 3, 3, 3)) + 1)],
        ["N", 2, 5, 5], ["N", 27], 7, ir=3)
    onnx.save(per_act, str(tmp_path / "a.onnx"))
    with pytest.raises(UnsupportedLayerError, match=r"node 1 \(BatchNormalization .*spatial=0"):
        load_network(tmp_path / "a.onnx")
    short = _model([_node("Gemm", ["x", "W", "b"], "h", transB=1),
                    _node("BatchNormalization", ["h", "s", "bb", "m", "v"], "y")],
                   [_t("W", _w(rng, 3, 4)), _t("b", _w(rng, 3)), _t("s", [1.0, 2.0]),
                    _t("bb", _w(rng, 2)), _t("m", _w(rng, 2)), _t("v", [1.0, 1.0])],
                   ["N", 4], ["N", 3], 9)
    onnx.save(short, str(tmp_path / "b.onnx"), )
    with pytest.raises(UnsupportedLayerError,
                       match=r"input 1 \('s'\) has shape \(2,\); expected one value per "
                             r"channel, \(3,\)"):
        load_network(tmp_path / "b.onnx")

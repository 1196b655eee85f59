"""ONNX models as users have them, at the edges an independent red-team run found:
tensor names kept by the reduced model, constant-first Min/Max, and clear one-line
errors for non-finite constants and degenerate batch norms.

Oracle: onnxruntime runs the original and the reduced file (dyadic weights and
inputs, so both float computations are exact and must agree exactly).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumpkit._cli import COMPILE_NOTICE, main

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
F = np.float32


def _model(path: Path, nodes: list[Any], inits: dict[str, np.ndarray], x: str = "x",
           y: str = "y") -> Path:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(np.asarray(v, dtype=F), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


# 3 -> 4 -> 2, hidden neuron 3 = 2 x neuron 0 (weights and bias)
W1 = np.array([[1, 2, 3], [-1, 0.5, 1], [0.25, -2, 1], [2, 4, 6]], F)
B1 = np.array([0.5, -1, 2, 1], F)
W2 = np.array([[1, -1, 0.5, 2], [0.5, 1, -2, 1]], F)
B2 = np.array([0.25, -0.5], F)


def _layers(x: str, y: str) -> list[Any]:
    from onnx import helper

    return [helper.make_node("Gemm", [x, "W1", "B1"], ["h"], transB=1),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("Gemm", ["r", "W2", "B2"], [y], transB=1)]


def _inputs(n: int = 64) -> np.ndarray:
    return (np.random.default_rng(0).integers(-32, 33, size=(n, 3)) / 8.0).astype(F)


@pytest.mark.parametrize(("x", "y"), [("obs", "logits"), ("gemm_4", "W_1"), ("input", "out")])
def test_reduced_model_keeps_the_tensor_names(tmp_path: Path, x: str, y: str) -> None:
    """Code that feeds a model by name runs the reduced one unchanged; names that clash
    with the writer's own (``gemm_4``, ``W_1``) move those aside."""
    src = _model(tmp_path / "m.onnx", _layers(x, y),
                 {"W1": W1, "B1": B1, "W2": W2, "B2": B2}, x, y)
    assert main(["nn", "reduce", str(src)]) == 0
    out = tmp_path / "m.reduced.onnx"
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == [x]
    assert [o.name for o in model.graph.output] == [y]
    data = _inputs()
    before = ort.InferenceSession(str(src)).run([y], {x: data})[0]
    after = ort.InferenceSession(str(out)).run([y], {x: data})[0]
    assert np.array_equal(before, after)
    assert sum(n.op_type == "Gemm" for n in model.graph.node) == 2
    assert model.graph.initializer[0].dims[0] == 3  # 4 hidden neurons -> 3


@pytest.mark.parametrize("op", ["Min", "Max"])
@pytest.mark.parametrize("constant_first", [False, True])
def test_input_clip_with_the_constant_first(tmp_path: Path, op: str,
                                            constant_first: bool) -> None:
    from onnx import helper

    bound = np.array([1.0, 2.0, -0.5], F)
    ins = ["bound", "x"] if constant_first else ["x", "bound"]
    src = _model(tmp_path / "c.onnx", [helper.make_node(op, ins, ["z"]), *_layers("z", "y")],
                 {"bound": bound, "W1": W1, "B1": B1, "W2": W2, "B2": B2})
    assert main(["nn", "reduce", str(src)]) == 0
    data = _inputs()  # values on both sides of every bound
    before = ort.InferenceSession(str(src)).run(None, {"x": data})[0]
    after = ort.InferenceSession(str(tmp_path / "c.reduced.onnx")).run(None, {"x": data})[0]
    assert np.array_equal(before, after)


@pytest.mark.parametrize(("op", "message"), [("Sub", "constant - x is not supported"),
                                             ("Div", "constant / x is not supported")])
def test_constant_minus_or_over_the_data_is_refused_by_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], op: str, message: str) -> None:
    from onnx import helper

    src = _model(tmp_path / "s.onnx",
                 [helper.make_node(op, ["c", "x"], ["z"]), *_layers("z", "y")],
                 {"c": np.ones(3, F), "W1": W1, "B1": B1, "W2": W2, "B2": B2})
    assert main(["nn", "reduce", str(src)]) == 2
    err = capsys.readouterr().err
    assert f"node 0 ({op} '')" in err and message in err
    assert not (tmp_path / "s.reduced.onnx").exists()


def _nonfinite_cases() -> dict[str, tuple[list[Any], dict[str, np.ndarray], str]]:
    from onnx import helper

    mk = helper.make_node
    relu_out = [mk("Relu", ["h"], ["r"]), mk("Gemm", ["r", "W2", "B2"], ["y"], transB=1)]
    inf_c = np.array([np.inf, 1, 1, 1], F)
    nan_c = np.array([1, np.nan, 1, 1], F)
    return {
        "MatMul + Add(inf)": ([mk("MatMul", ["x", "W1t"], ["m"]), mk("Add", ["m", "C"], ["h"]),
                              *relu_out], {"W1t": W1.T.copy(), "C": inf_c}, "node 1 (Add"),
        "Gemm + Sub(-inf)": ([mk("Gemm", ["x", "W1", "B1"], ["m"], transB=1),
                              mk("Sub", ["m", "C"], ["h"]), *relu_out],
                             {"W1": W1, "B1": B1, "C": -inf_c}, "node 1 (Sub"),
        "Gemm + Mul(inf)": ([mk("Gemm", ["x", "W1", "B1"], ["m"], transB=1),
                             mk("Mul", ["m", "C"], ["h"]), *relu_out],
                            {"W1": W1, "B1": B1, "C": inf_c}, "node 1 (Mul"),
        "Gemm bias NaN": ([mk("Gemm", ["x", "W1", "C"], ["h"], transB=1), *relu_out],
                          {"W1": W1, "C": nan_c}, "node 0 (Gemm"),
        "MatMul weight NaN": ([mk("MatMul", ["x", "W1t"], ["m"]), mk("Add", ["m", "B1"], ["h"]),
                               *relu_out], {"W1t": np.where(W1 == 2, np.nan, W1).T.copy(),
                                            "B1": B1}, "node 0 (MatMul"),
        "BatchNormalization mean inf": (
            [mk("Gemm", ["x", "W1", "B1"], ["m"], transB=1),
             mk("BatchNormalization", ["m", "g", "be", "mu", "var"], ["h"]), *relu_out],
            {"W1": W1, "B1": B1, "g": np.ones(4, F), "be": np.zeros(4, F), "mu": inf_c,
             "var": np.ones(4, F)}, "node 1 (BatchNormalization"),
    }


@pytest.mark.parametrize("case", sorted(_nonfinite_cases()))
def test_nonfinite_constants_get_one_clear_line(tmp_path: Path, case: str) -> None:
    """In a subprocess, as a user runs it: exit 2, one line naming the node, no traceback,
    no file."""
    nodes, inits, where = _nonfinite_cases()[case]
    src = _model(tmp_path / "n.onnx", nodes, {**inits, "W2": W2, "B2": B2})
    r = subprocess.run([sys.executable, "-m", "lumpkit", "nn", "reduce", str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.strip().splitlines() if x != COMPILE_NOTICE]
    assert len(lines) == 1 and lines[0].startswith("lumpkit: error: "), r.stderr
    assert where in lines[0] and "NaN/inf weights are not allowed" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.onnx"]


def test_batch_norm_dividing_by_zero_is_named(tmp_path: Path) -> None:
    from onnx import helper

    mk = helper.make_node
    src = _model(tmp_path / "b.onnx", [
        mk("Gemm", ["x", "W1", "B1"], ["m"], transB=1),
        mk("BatchNormalization", ["m", "g", "be", "mu", "var"], ["h"], epsilon=0.0),
        mk("Relu", ["h"], ["r"]), mk("Gemm", ["r", "W2", "B2"], ["y"], transB=1)],
        {"W1": W1, "B1": B1, "W2": W2, "B2": B2, "g": np.ones(4, F), "be": np.zeros(4, F),
         "mu": np.zeros(4, F), "var": np.array([1, 1, 1, 0], F)})
    r = subprocess.run([sys.executable, "-m", "lumpkit", "nn", "reduce", str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    lines = [x for x in r.stderr.strip().splitlines() if x != COMPILE_NOTICE]
    assert len(lines) == 1, r.stderr  # no numpy warnings
    assert "node 1 (BatchNormalization" in lines[0] and "channel 3" in lines[0]
    assert not (tmp_path / "b.reduced.onnx").exists()


def test_nodes_nothing_reads_are_skipped(tmp_path: Path) -> None:
    """A dead branch (an Exp of the input, a Relu of the hidden layer that nothing reads)
    does not stop the model from being read; the reduced model computes the same."""
    from onnx import helper

    mk = helper.make_node
    src = _model(tmp_path / "d.onnx", [
        mk("Exp", ["x"], ["unused_exp"]),
        mk("Gemm", ["x", "W1", "B1"], ["h"], transB=1),
        mk("Sigmoid", ["h"], ["unused_sigmoid"]),
        mk("Relu", ["h"], ["r"]),
        mk("Gemm", ["r", "W2", "B2"], ["y"], transB=1)],
        {"W1": W1, "B1": B1, "W2": W2, "B2": B2})
    assert main(["nn", "reduce", str(src)]) == 0
    data = _inputs()
    before = ort.InferenceSession(str(src)).run(["y"], {"x": data})[0]
    after = ort.InferenceSession(str(tmp_path / "d.reduced.onnx")).run(["y"], {"x": data})[0]
    assert np.array_equal(before, after)


def test_an_input_without_batch_axis_is_refused_saying_so(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["W", "x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.ones((2, 3), F), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(tmp_path / "v.onnx"))
    from lumpcore import UnsupportedLayerError
    from nnreduce import load_network

    for shape in (None, (3,)):
        with pytest.raises(UnsupportedLayerError, match=r"one axis and no batch axis"):
            load_network(tmp_path / "v.onnx", input_shape=shape)

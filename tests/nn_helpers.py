"""Shared helpers of the nnreduce tests: hand-made ONNX graphs, and exports run by their
own frameworks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["exports_run_by_their_frameworks", "ort_run", "save_onnx_graph"]


def save_onnx_graph(path: Path, nodes: Sequence[Any], input_shape: Sequence[int | None],
                    output_shape: Sequence[int | None] | None, inits: Sequence[Any],
                    opset: int = 13, double: bool = False) -> Path:
    """Write a float32 (``double``: float64) graph with input ``x`` and output ``y``
    (ir_version 8, which the installed onnxruntime reads)."""
    import onnx
    from onnx import TensorProto, helper

    dt = TensorProto.DOUBLE if double else TensorProto.FLOAT
    graph = helper.make_graph(
        list(nodes), "g", [helper.make_tensor_value_info("x", dt, input_shape)],
        [helper.make_tensor_value_info("y", dt, output_shape)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def exports_run_by_their_frameworks(net: Any, x: np.ndarray, tmp_path: Path) -> dict[str, Any]:
    """Export ``net`` to ONNX, pickled torch, TorchScript (float64) and .npz; check that
    onnxruntime and torch compute ``evaluate(net, x)`` (to 1e-12) and that .npz reads back
    bit for bit; return the networks read back, by format."""
    import onnxruntime as ort
    import torch

    from nnreduce import evaluate, load_network, save_network

    want = evaluate(net, x)
    back: dict[str, Any] = {}
    save_network(net, tmp_path / "r.onnx", dtype="float64")
    sess = ort.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    back["onnx"] = load_network(tmp_path / "r.onnx")
    for script in (False, True):
        path = tmp_path / f"r{script}.pt"
        save_network(net, path, torchscript=script, dtype="float64")
        mod = torch.jit.load(str(path)) if script else torch.load(str(path), weights_only=False)
        np.testing.assert_allclose(mod(torch.tensor(x)).detach().numpy(), want, rtol=1e-12,
                                   atol=1e-12)
        back["torchscript" if script else "torch"] = load_network(path)
    save_network(net, tmp_path / "r.npz")
    back["npz"] = load_network(tmp_path / "r.npz")
    np.testing.assert_array_equal(evaluate(back["npz"], x), want)
    return back


def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    """onnxruntime's outputs for the batch ``x`` (float64, one flattened row per example), in
    the model's input type; a model with a fixed batch of one runs example by example."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dt = {"tensor(double)": np.float64, "tensor(float16)": np.float16}.get(inp.type, np.float32)
    if inp.shape[0] == 1:
        outs = [sess.run(None, {inp.name: xi[None].astype(dt)})[0] for xi in x]
    else:
        outs = list(sess.run(None, {inp.name: x.astype(dt)})[0])
    return np.asarray(outs, dtype=np.float64).reshape(x.shape[0], -1)

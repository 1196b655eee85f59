"""Softmax / log-softmax as a classifier's last layer, through every format and checker.

Oracles: PyTorch and onnxruntime run the same models; the proofs package
checks the reduction's certificate; exact evaluation of the planted
original and its reduction agrees.
"""

from __future__ import annotations

import json
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from lumpcore import ModelFormatError, UnsupportedLayerError
from nnreduce import (
    Activation,
    Dense,
    Flatten,
    Network,
    evaluate,
    evaluate_exact,
    from_torch,
    load_network,
    reduce_network,
    save_certificate,
    save_network,
)

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from nn_helpers import exports_run_by_their_frameworks, save_onnx_graph  # noqa: E402


def _planted(kind: str) -> Network:
    """4 -> 6 -> 3 with neuron 5 = 2 * neuron 0 and neuron 4 = neuron 1 / 4 (ReLU)."""
    rng = np.random.default_rng(8)
    w = rng.normal(size=(4, 4)).astype(np.float32).astype(np.float64)
    b = rng.normal(size=4).astype(np.float32).astype(np.float64)
    w1 = np.vstack([w, w[1] / 4, 2 * w[0]])
    b1 = np.concatenate([b, [b[1] / 4, 2 * b[0]]])
    w2 = rng.normal(size=(3, 6)).astype(np.float32).astype(np.float64)
    return Network((Dense(w1, b1), Activation("relu"), Dense(w2, np.zeros(3)),
                    Activation(kind)), (4,))


def test_softmax_is_the_last_layer_of_a_vector_only() -> None:
    w = np.eye(2)
    with pytest.raises(ModelFormatError, match="only as the network's last layer"):
        Network((Dense(w, [0.0, 0.0]), Activation("softmax"), Dense(w, [0.0, 0.0])), (2,))
    with pytest.raises(ModelFormatError, match="needs a vector input"):
        Network((Activation("log_softmax"),), (2, 2))
    net = Network((Flatten(), Activation("softmax")), (2, 2))
    out = evaluate(net, np.zeros((1, 2, 2)))
    np.testing.assert_allclose(out, np.full((1, 4), 0.25))


@pytest.mark.parametrize("kind", ["softmax", "log_softmax"])
def test_evaluation_matches_torch_and_exact_is_deterministic(kind: str) -> None:
    net = _planted(kind)
    seq = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3),
                              torch.nn.Softmax(dim=1) if kind == "softmax"
                              else torch.nn.LogSoftmax(dim=1)).double()
    with torch.no_grad():
        seq[0].weight.copy_(torch.tensor(net.layers[0].weight))
        seq[0].bias.copy_(torch.tensor(net.layers[0].bias))
        seq[2].weight.copy_(torch.tensor(net.layers[2].weight))
        seq[2].bias.zero_()
    x = np.random.default_rng(1).normal(size=(5, 4)) * 30  # large logits: a stable softmax
    want = seq(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(evaluate(net, x), want, rtol=1e-12, atol=1e-12)
    ex = evaluate_exact(net, x)
    assert all(isinstance(v, Fraction) for v in ex.reshape(-1))
    np.testing.assert_allclose(ex.astype(np.float64), want, rtol=1e-12, atol=1e-12)
    if kind == "softmax":
        assert np.all(ex.astype(np.float64).sum(axis=1) == pytest.approx(1.0))


@pytest.mark.parametrize("kind", ["softmax", "log_softmax"])
def test_reduction_keeps_the_softmax_and_is_certified(tmp_path: Path, kind: str) -> None:
    from proofs import check_certificate

    net = _planted(kind)
    red = reduce_network(net)
    assert [lr.neurons_after for lr in red.layers] == [4]
    assert isinstance(red.network.layers[-1], Activation)
    assert red.network.layers[-1].kind == kind
    rng = np.random.default_rng(2)
    for _ in range(4):
        x = [Fraction(int(v), int(d)) for v, d in zip(rng.integers(-9, 10, size=4),
                                                     rng.integers(1, 5, size=4), strict=True)]
        assert evaluate_exact(net, x).tolist() == evaluate_exact(red.network, x).tolist()
    save_certificate(red, tmp_path / "c.json")
    verdict = check_certificate(net, red.network, json.loads((tmp_path / "c.json").read_text()))
    assert verdict.valid, verdict


@pytest.mark.parametrize("kind", ["softmax", "log_softmax"])
def test_onnx_torch_npz_round_trips_run_by_their_frameworks(tmp_path: Path, kind: str) -> None:
    net = reduce_network(_planted(kind)).network
    x = np.random.default_rng(3).normal(size=(6, 4))
    for fmt, back in exports_run_by_their_frameworks(net, x, tmp_path).items():
        last = back.layers[-1]
        assert isinstance(last, Activation) and last.kind == kind, fmt
    with pytest.raises(UnsupportedLayerError, match="NNet holds only"):
        save_network(net, tmp_path / "r.nnet")


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_torch_exported_classifier_with_softmax_reads_from_onnx(tmp_path: Path,
                                                                opset: int) -> None:
    torch.manual_seed(5)
    m = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3),
                            torch.nn.Softmax(dim=-1)).eval()
    path = tmp_path / "clf.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(2, 4),), str(path), dynamo=False, opset_version=opset,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    net = load_network(path)
    assert isinstance(net.layers[-1], Activation) and net.layers[-1].kind == "softmax"
    x = np.random.default_rng(4).normal(size=(5, 4)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(evaluate(net, x.astype(np.float64)), sess.run(None, {"x": x})[0],
                               rtol=1e-5, atol=1e-6)
    last = from_torch(m).layers[-1]
    assert isinstance(last, Activation) and last.kind == "softmax"


def test_softmax_not_last_or_not_over_the_features_is_named(tmp_path: Path) -> None:
    from onnx import helper, numpy_helper

    def save(nodes: list[object], shape: list[int | None], name: str) -> Path:
        w = numpy_helper.from_array(np.ones((3, 3), dtype=np.float32), "w")
        return save_onnx_graph(tmp_path / name, nodes, shape, None, [w])

    middle = save([helper.make_node("Softmax", ["x"], ["s"]),
                   helper.make_node("MatMul", ["s", "w"], ["y"])], [None, 3], "middle.onnx")
    with pytest.raises(UnsupportedLayerError, match=r"node 0 \(Softmax.*last operator"):
        load_network(middle)
    axis0 = save([helper.make_node("Softmax", ["x"], ["y"], axis=0)], [None, 3], "axis0.onnx")
    with pytest.raises(UnsupportedLayerError, match="over axis 0"):
        load_network(axis0)
    with pytest.raises(UnsupportedLayerError, match=r"Softmax\(dim=0\)"):
        from_torch(torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Softmax(dim=0)))


def _logit_shifted(net: Network, shift: list[float]) -> Network:
    out = net.layers[-2]
    assert isinstance(out, Dense)
    return Network((*net.layers[:-2], Dense(out.weight, out.bias + np.array(shift)),
                    net.layers[-1]), net.input_shape)


@pytest.mark.parametrize("kind", ["softmax", "log_softmax"])
def test_smt_compares_softmax_classifiers_through_their_logits(kind: str) -> None:
    """softmax(a) = softmax(b) iff a - b is a constant vector.  Oracles: the reduction (equal),
    the same logits shifted by a constant (equal), and shifted in one output only (a
    counterexample whose logit difference is re-checked exactly)."""
    from proofs import check_equivalence

    net = _planted(kind)
    red = reduce_network(net).network
    assert check_equivalence(net, red, box="-1:1").equivalent
    shifted = _logit_shifted(red, [0.75, 0.75, 0.75])
    v = check_equivalence(net, shifted)
    assert v.equivalent and f"shared {kind}" in v.statement
    # float evaluation agrees too (not a proof, a sanity check of the claim)
    x = np.random.default_rng(6).normal(size=(8, 4))
    np.testing.assert_allclose(evaluate(net, x), evaluate(shifted, x), rtol=1e-9, atol=1e-12)
    for falsify in (True, False):
        bad = _logit_shifted(red, [0.0, 0.0, 2.0**-10])
        v = check_equivalence(net, bad, falsify=falsify)
        assert not v.equivalent and v.input is not None and v.outputs is not None
        ya, yb = (evaluate_exact(n.__class__(n.layers[:-1], n.input_shape), list(v.input))
                  for n in (net, bad))
        assert list(v.outputs[0]) == ya.tolist() and list(v.outputs[1]) == yb.tolist()
        d = [a - b for a, b in zip(ya, yb, strict=True)]
        assert len(set(d)) > 1  # not a constant shift: the softmax outputs differ
        assert "logits" in v.statement


def test_smt_refuses_a_softmax_on_one_side_only() -> None:
    from proofs import check_equivalence

    net = _planted("softmax")
    plain = Network(net.layers[:-1], net.input_shape)
    with pytest.raises(UnsupportedLayerError, match="softmax and no softmax"):
        check_equivalence(net, plain)
    with pytest.raises(UnsupportedLayerError, match="softmax and log_softmax"):
        check_equivalence(net, _planted("log_softmax"))

"""Clipping activations (ReLU6, hardtanh, clamp) through the model, the formats, the
reduction and the checkers.

Oracles: PyTorch and onnxruntime run the same models; the certificate is
checked by ``proofs``; z3 decides equivalence on an exact ReLU rewriting of
the clip (itself checked against exact evaluation); planted duplicates give
the known neuron count.
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

from nn_helpers import exports_run_by_their_frameworks  # noqa: E402

BOUNDS = [(Fraction(0), Fraction(6)), (Fraction(-1), Fraction(1)), (Fraction(-1, 2), None),
          (None, Fraction(3, 4))]


def _clip(bounds: tuple[Fraction | None, Fraction | None]) -> Activation:
    return Activation("clip", bounds=bounds)


def _planted(bounds: tuple[Fraction | None, Fraction | None]) -> Network:
    """3 -> 5 (clip) -> 2 with neuron 4 an exact copy of neuron 1 (its outgoing weights
    split), neuron 3 = 2 * neuron 0 (not mergeable: clip is not homogeneous)."""
    rng = np.random.default_rng(12)
    w = np.round(rng.normal(size=(3, 3)) * 8) / 8
    b = np.round(rng.normal(size=3) * 8) / 8
    w1 = np.vstack([w, 2 * w[0], w[1]])
    b1 = np.concatenate([b, [2 * b[0], b[1]]])
    w2 = np.round(rng.normal(size=(2, 5)) * 8) / 8
    return Network((Dense(w1 * 3, b1 * 3), _clip(bounds), Dense(w2, [0.25, -0.5])), (3,))


def _rational_inputs(rng: np.random.Generator, n: int) -> list[list[Fraction]]:
    return [[Fraction(int(v), int(d)) for v, d in zip(rng.integers(-12, 13, size=n),
                                                     rng.integers(1, 4, size=n), strict=True)]
            for _ in range(6)]


def test_clip_bounds_are_checked() -> None:
    with pytest.raises(ModelFormatError, match="needs bounds"):
        Activation("clip")
    with pytest.raises(ModelFormatError, match="at least one bound"):
        Activation("clip", bounds=(None, None))
    with pytest.raises(ModelFormatError, match="must be below"):
        Activation("clip", bounds=(1, 1))
    with pytest.raises(ModelFormatError, match="takes no bounds"):
        Activation("relu", bounds=(0, 1))
    a = Activation("clip", bounds=(0.5, "3/2"))
    assert a.bounds == (Fraction(1, 2), Fraction(3, 2))


@pytest.mark.parametrize("bounds", BOUNDS)
def test_reduction_merges_only_equal_neurons_and_is_certified(tmp_path: Path,
                                                              bounds: tuple) -> None:
    from proofs import check_certificate, check_equivalence

    net = _planted(bounds)
    red = reduce_network(net)
    lr = red.layers[0]
    assert lr.factors == "one" and lr.neurons_after == 4 and (1, 4) in lr.blocks
    rng = np.random.default_rng(13)
    for x in _rational_inputs(rng, 3):
        assert evaluate_exact(net, x).tolist() == evaluate_exact(red.network, x).tolist()
    save_certificate(red, tmp_path / "c.json")
    verdict = check_certificate(net, red.network, json.loads((tmp_path / "c.json").read_text()))
    assert verdict.valid, verdict
    assert check_equivalence(net, red.network).equivalent
    # a changed bound is a different function: a counterexample, re-checked exactly
    lo, hi = bounds
    other = (lo - 1 if lo is not None else None, hi + 1 if hi is not None else None)
    changed = Network((red.network.layers[0], _clip(other), red.network.layers[2]), (3,))
    v = check_equivalence(net, changed)
    assert not v.equivalent and v.input is not None and v.outputs is not None
    assert evaluate_exact(net, list(v.input)).tolist() == list(v.outputs[0])
    assert evaluate_exact(changed, list(v.input)).tolist() == list(v.outputs[1])
    assert v.outputs[0] != v.outputs[1]


def test_smt_rewriting_of_a_final_clip_is_exact() -> None:
    """A clip as the last layer: the exact ReLU form (with an extra identity layer) computes
    the same outputs as exact evaluation of the network."""
    from proofs._mlp import as_mlp
    from proofs._mlp import evaluate_exact as mlp_exact

    rng = np.random.default_rng(14)
    for bounds in BOUNDS:
        w = np.round(rng.normal(size=(3, 2)) * 4) / 4
        net = Network((Dense(w, [0.5, -0.25, 0.0]), _clip(bounds)), (2,))
        mlp = as_mlp(net, relu_form=True)
        for x in _rational_inputs(rng, 2):
            assert list(mlp_exact(mlp, x)) == evaluate_exact(net, x).tolist()


@pytest.mark.parametrize("bounds", BOUNDS)
def test_formats_round_trip_run_by_their_frameworks(tmp_path: Path, bounds: tuple) -> None:
    net = _planted(bounds)
    x = np.random.default_rng(15).normal(size=(7, 3)) * 4
    for fmt, back in exports_run_by_their_frameworks(net, x, tmp_path).items():
        assert back.layers[1].bounds == bounds, fmt
    with pytest.raises(UnsupportedLayerError, match="NNet holds only"):
        save_network(net, tmp_path / "c.nnet")


@pytest.mark.parametrize("style", ["relu6", "hardtanh", "clamp", "clamp-min0", "F.relu6"])
def test_torch_modules_and_exports_with_clipping(tmp_path: Path, style: str) -> None:
    F = torch.nn.functional

    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(4, 6)
            self.act = {"relu6": torch.nn.ReLU6(), "hardtanh": torch.nn.Hardtanh(-0.5, 0.75)
                        }.get(style, torch.nn.Identity())
            self.b = torch.nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.a(x)
            if style == "clamp":
                h = torch.clamp(h, -0.25, 0.5)
            elif style == "clamp-min0":  # exactly a ReLU
                h = h.clamp(min=0)
            elif style == "F.relu6":
                h = F.relu6(h)
            return self.b(self.act(h))

    torch.manual_seed(16)
    m = M().eval()
    x = torch.randn(5, 4) * 3
    want = m(x).detach().double().numpy()
    net = from_torch(m)
    kind = net.layers[1].kind
    assert kind == ("relu" if style == "clamp-min0" else "clip")
    np.testing.assert_allclose(evaluate(net, x.double().numpy()), want, rtol=1e-5, atol=1e-6)
    path = tmp_path / "m.onnx"
    for opset in (9, 13):  # Clip bounds as attributes (opset < 11) and as inputs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(m, (x,), str(path), dynamo=False, opset_version=opset,
                              input_names=["x"], dynamic_axes={"x": {0: "batch"}})
        onet = load_network(path)
        assert onet.layers[1].kind == kind
        np.testing.assert_allclose(evaluate(onet, x.double().numpy()), want, rtol=1e-5,
                                   atol=1e-6)


def test_leo_refuses_clip_by_name() -> None:
    from proofs import leo_reduce

    net = _planted(BOUNDS[0])
    with pytest.raises(UnsupportedLayerError, match="'clip'"):
        leo_reduce(net, box=[(-1, 1)] * 3)


@pytest.mark.parametrize("bad", ["abc", [1], [3, 1], [None, None], ["1/0", 2]])
def test_bad_clip_bounds_in_a_file_name_the_file(tmp_path: Path, bad: object) -> None:
    from lumpcore import LumpkitError

    path = tmp_path / "m.npz"
    save_network(_planted(BOUNDS[0]), path)
    arrays = dict(np.load(path, allow_pickle=False))
    meta = json.loads(str(arrays["__lumpkit__"]))
    meta["layers"][1]["bounds"] = bad
    arrays["__lumpkit__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(LumpkitError) as info:
        load_network(tmp_path / "bad.npz")
    assert isinstance(info.value, ValueError | TypeError)
    assert str(info.value).startswith(str(tmp_path / "bad.npz"))

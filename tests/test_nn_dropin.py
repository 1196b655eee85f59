"""A reduced float32 model stays a drop-in replacement: float32 in, float32 out.

Merged weights are sums that float32 often cannot hold, so ``lumpkit nn reduce``
keeps them exact: in ONNX as sums of float32 parts (onnxruntime has no float64
Conv), in PyTorch as float64 layers between lumpkit's cast modules.  Oracles:
onnxruntime and torch run the original and the reduced files on the same
float32 data; the reduced file read back has the certificate's hash.
"""

from __future__ import annotations

import json
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lumpcore import UnsupportedLayerError
from lumpkit._cli import main
from nnreduce import (
    Activation,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    Network,
    evaluate,
    load_network,
    network_sha256,
    reduce_network,
    save_network,
)

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from nn_helpers import save_onnx_graph  # noqa: E402
from strategies import examples, settings  # noqa: E402


def _planted_float32() -> Network:
    """5 -> 8 -> 8 -> 3 ReLU, float32; hidden neuron 7 = 2 x neuron 2 in both layers, so
    the next layer's merged columns are float32 sums (not float32 values in general)."""
    rng = np.random.default_rng(21)
    layers: list[Any] = []
    n_in = 5
    for _ in range(2):
        w = rng.standard_normal((8, n_in)).astype(np.float32)
        b = rng.standard_normal(8).astype(np.float32)
        w[7], b[7] = 2 * w[2], 2 * b[2]
        layers += [Dense(w, b), Activation("relu")]
        n_in = 8
    layers.append(Dense(rng.standard_normal((3, 8)).astype(np.float32),
                        rng.standard_normal(3).astype(np.float32)))
    return Network(tuple(layers), (5,))


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(float)"
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert y.dtype == np.float32
    return np.asarray(y)


@pytest.mark.parametrize("suffix", [".onnx", ".pt", ".pt-script"])
def test_reduced_float32_model_takes_and_gives_float32(tmp_path: Path, suffix: str,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    net = _planted_float32()
    script = suffix == ".pt-script"
    ext = ".pt" if script else suffix
    src, dst = tmp_path / f"m{ext}", tmp_path / f"m.small{ext}"
    save_network(net, src, dtype="float32", torchscript=script)
    assert main(["nn", "reduce", str(src), "-o", str(dst), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["neurons_after"] == 14 and out["rounded"] is False
    x = np.random.default_rng(3).standard_normal((16, 5)).astype(np.float32)
    if ext == ".onnx":
        want, got = _run_onnx(src, x), _run_onnx(dst, x)
        model = onnx.load(str(dst))
        # float64 weights as exact sums of float32 parts: a float32 model throughout
        assert {t.data_type for t in model.graph.initializer} == {onnx.TensorProto.FLOAT}
        kinds = [n.op_type for n in model.graph.node]
        assert "Cast" not in kinds and kinds.count("Gemm") > 3
    else:
        def load(p: Path) -> Any:
            return torch.jit.load(str(p)) if script else torch.load(str(p), weights_only=False)

        small = load(dst)
        assert {p.dtype for p in small.parameters()} == {torch.float64}  # float64 weights inside
        with torch.no_grad():
            want = load(src)(torch.tensor(x)).numpy()
            got_t = small(torch.tensor(x))
        assert got_t.dtype == torch.float32
        got = got_t.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # read back, the reduced model holds the exact float64 weights of the reduction
    back = load_network(dst)
    red = reduce_network(net).network
    for a, b in zip(back.layers, red.layers, strict=True):
        if isinstance(a, Dense):
            assert isinstance(b, Dense)
            assert np.array_equal(np.asarray(a.weight, dtype=np.float64),
                                  np.asarray(b.weight, dtype=np.float64))


def test_casts_that_round_inside_the_network_are_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.eye(3, dtype=np.float64), "w")

    def model(casts: list[int], name: str) -> Path:
        nodes, cur = [helper.make_node("MatMul", ["x", "w"], ["h"])], "h"
        for k, to in enumerate(casts):
            nodes.append(helper.make_node("Cast", [cur], [f"c{k}"], to=to))
            cur = f"c{k}"
        nodes.append(helper.make_node("MatMul", [cur, "w"], ["y"]))
        return save_onnx_graph(tmp_path / name, nodes, [None, 3], [None, 3], [w], double=True)

    # double -> float -> double between layers: a rounding of the data, refused by name
    with pytest.raises(UnsupportedLayerError, match=r"node 1 \(Cast.*narrower"):
        load_network(model([TensorProto.FLOAT, TensorProto.DOUBLE], "round.onnx"))
    # a cast to the type the data already has is nothing
    net = load_network(model([TensorProto.DOUBLE], "same.onnx"))
    assert [type(lyr) for lyr in net.layers] == [Dense, Dense]


def _planted_conv() -> Network:
    rng = np.random.default_rng(5)
    f = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    f[3], b[3] = 2 * f[1], 2 * b[1]
    return Network((Conv2d(f, b, (1, 1), (1, 1, 1, 1)), Activation("relu"),
                    MaxPool2d((2, 2), (2, 2), (0, 0, 0, 0)),
                    Conv2d(rng.standard_normal((3, 4, 3, 3)).astype(np.float32),
                           rng.standard_normal(3).astype(np.float32), (1, 1), (0, 0, 0, 0)),
                    Activation("relu"), AvgPool2d((2, 2), (2, 2), (0, 0, 0, 0), True),
                    Flatten(), Dense(rng.standard_normal((2, 3)).astype(np.float32),
                                     np.zeros(2, dtype=np.float32))), (2, 8, 8))


def test_reduced_cnn_runs_in_onnxruntime_and_reads_back_exactly(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """onnxruntime has no float64 Conv/AveragePool: the exact merged filters are float32
    parts, and the file read back is the certified network (same hash)."""
    from nnreduce import network_sha256

    net = _planted_conv()
    src, dst = tmp_path / "c.onnx", tmp_path / "c.small.onnx"
    save_network(net, src)
    assert main(["nn", "reduce", str(src), "-o", str(dst), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["neurons_after"] == 6 and out["rounded"] is False
    x = np.random.default_rng(6).standard_normal((4, 2, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(_run_onnx(dst, x), _run_onnx(src, x), rtol=1e-5, atol=1e-5)
    cert = json.loads((tmp_path / "c.small.certificate.json").read_text())
    back = load_network(dst)
    assert network_sha256(back) == cert["reduced"]["sha256"]
    assert np.asarray(back.layers[3].weight).dtype == np.float64  # merged: not float32 values


@settings(max_examples=examples(60), deadline=None)
@given(terms=st.lists(st.floats(-2.0**100, 2.0**100, width=32, allow_subnormal=False),
                      min_size=1, max_size=3),
       scale=st.sampled_from([1.0, 0.5, 2.0**-20, 2.0**20]))
def test_float32_parts_sum_exactly(terms: list[float], scale: float) -> None:
    from nnreduce._io_onnx import _float32_parts

    value = Fraction(0)
    for t in terms:
        value += Fraction(t) * Fraction(scale)
    x = float(value)
    parts = _float32_parts(np.array([x]))
    if Fraction(x) != value:  # not a float64: nothing to check
        return
    if parts is None:  # only when the pieces leave float32's normal range
        assert not (x == 0 or 2.0**-60 <= abs(x) <= 2.0**120)
        return
    assert all(p.dtype == np.float32 for p in parts)
    assert sum((Fraction(float(p[0])) for p in parts), Fraction(0)) == Fraction(x)


def test_parallel_linear_nodes_fuse_only_when_exact_and_unshared(tmp_path: Path) -> None:
    from onnx import helper, numpy_helper

    w1 = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    w2 = np.array([[2.0**-30, 0.0], [0.0, -2.0**-28]], dtype=np.float32)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
             numpy_helper.from_array(np.array([0.5, -1.0], dtype=np.float32), "b")]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b"], ["g1"], transB=1),
             helper.make_node("Gemm", ["x", "w2"], ["g2"], transB=1),
             helper.make_node("Add", ["g1", "g2"], ["y"])]
    net = load_network(save_onnx_graph(tmp_path / "p.onnx", nodes, [None, 2], [None, 2], inits))
    assert len(net.layers) == 1 and isinstance(net.layers[0], Dense)
    want = w1.astype(np.float64) + w2.astype(np.float64)
    assert np.array_equal(np.asarray(net.layers[0].weight, dtype=np.float64), want)
    x = np.array([[0.25, -3.0]], dtype=np.float32)
    sess = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(evaluate(net, x), sess.run(None, {"x": x})[0], rtol=1e-6)
    # a branch that is also read elsewhere is not a single chain: refused, not fused
    shared = [*nodes[:2], helper.make_node("Add", ["g1", "g2"], ["s"]),
              helper.make_node("Add", ["s", "g2"], ["y"])]
    with pytest.raises(UnsupportedLayerError, match="single chain"):
        load_network(save_onnx_graph(tmp_path / "q.onnx", shared, [None, 2], [None, 2], inits))


def test_auto_dtype_keeps_normalisation_and_warns_when_rationals_round(tmp_path: Path) -> None:
    from lumpcore import LumpkitWarning
    from nnreduce import Normalization

    w = np.array([[1.0, -2.0], [0.5, 4.0]], dtype=np.float32)
    nrm = Normalization(input_mean=[Fraction(1, 10), 0.0], input_range=[1.0, 3.0],
                        output_mean=[0.0, 0.0], output_range=[1.0, 1.0])
    net = Network((Dense(w, np.zeros(2, dtype=np.float32)),), (2,), nrm)
    save_network(net, tmp_path / "n.onnx")  # 1/10 rounds to float64, not float32
    back = load_network(tmp_path / "n.onnx")
    assert back.normalization is not None
    assert list(back.normalization.input_mean) == [Fraction(0.1), 0]
    # an exact network with a value float64 cannot hold: written rounded, and said so
    exact = Network((Dense(np.array([[Fraction(1, 3), Fraction(1)]], dtype=object),
                           np.array([Fraction(0)], dtype=object)),), (2,))
    with pytest.warns(LumpkitWarning, match="1 exact parameter values"):
        save_network(exact, tmp_path / "e.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # kept exact: no warning
        save_network(exact, tmp_path / "e.npz")
    assert load_network(tmp_path / "e.npz").layers[0].weight[0, 0] == Fraction(1, 3)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("case", ["normalised", "float64-slope"])
@pytest.mark.parametrize("ext", [".onnx", ".pt"])
def test_a_float32_interface_survives_lumpkits_own_files(tmp_path: Path, case: str, ext: str,
                                                         ) -> None:
    """A float32 model whose file lumpkit wrote with float64 parts (a float64 normalisation
    buffer, or a PReLU slope float32 cannot hold, behind casts) is read back as a float32
    model, and its reduction keeps float32 input and output."""
    from nnreduce import Normalization

    w1 = np.array([[1, 2], [2, 4], [1, -1]], np.float32)
    b1 = np.array([1, 2, 0], np.float32)
    act = Activation("relu") if case == "normalised" else Activation(
        "prelu", slopes=np.array([0.1]))
    nrm = Normalization([0.5], [2], [0], [1]) if case == "normalised" else None
    net = Network((Dense(w1, b1), act, Dense(np.ones((1, 3), np.float32),
                                             np.zeros(1, np.float32))), (2,), nrm)
    src, dst = tmp_path / f"m{ext}", tmp_path / f"r{ext}"
    save_network(net, src)
    assert load_network(src).data_dtype == "float32"
    assert main(["nn", "reduce", str(src), "-o", str(dst)]) == 0
    x = np.array([[1.0, 2.0], [-3.0, 0.5]], dtype=np.float32)
    if ext == ".onnx":
        got, want = _run_onnx(dst, x), _run_onnx(src, x)
    else:
        with torch.no_grad():
            got = torch.load(str(dst), weights_only=False)(torch.tensor(x)).numpy()
            want = torch.load(str(src), weights_only=False)(torch.tensor(x)).numpy()
        assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_softmax_output_with_output_normalisation_reads_back(tmp_path: Path) -> None:
    """write_onnx puts the output normalisation after a final softmax; the reader takes it."""
    from nnreduce import Normalization

    net = Network((Dense(np.eye(2), np.zeros(2)), Activation("relu"),
                   Dense(np.array([[1.0, -1.0], [0.5, 2.0]]), np.zeros(2)),
                   Activation("softmax")), (2,), Normalization([0], [1], [1], [2]))
    save_network(net, tmp_path / "s.onnx")
    back = load_network(tmp_path / "s.onnx")
    x = np.array([[0.25, -1.0], [2.0, 3.0]])
    np.testing.assert_array_equal(evaluate(back, x), evaluate(net, x))


def test_softmax_output_after_a_float64_normalisation_reads_back(tmp_path: Path) -> None:
    """A float32 classifier whose normalisation float32 cannot hold (mean 1/3) is written
    with the output normalisation between Casts after the softmax; it reads back."""
    from nnreduce import Normalization

    net = Network((Dense(np.array([[1.0, -1.0], [0.5, 2.0]], np.float32),
                         np.zeros(2, np.float32)), Activation("relu"),
                   Dense(np.array([[1.0, 2.0], [-1.0, 0.5]], np.float32),
                         np.zeros(2, np.float32)), Activation("softmax")), (2,),
                  Normalization([Fraction(1, 3)], [1], [0], [1]))
    save_network(net, tmp_path / "m.onnx")
    back = load_network(tmp_path / "m.onnx")
    assert back.normalization is not None
    assert list(back.normalization.input_mean) == [Fraction(float(Fraction(1, 3)))] * 2
    x = np.array([[0.25, -1.0], [2.0, 3.0]])
    np.testing.assert_allclose(evaluate(back, x), evaluate(net, x), rtol=1e-15)


@pytest.mark.parametrize("post", ["batch_norm", "prelu", "clip"])
def test_float32_cnn_with_float64_layer_parameters_runs_in_onnxruntime(
        tmp_path: Path, post: str) -> None:
    """A float32 CNN whose batch norm (after a pooling: not folded), PReLU slopes or clip
    bound float32 cannot hold: that layer is written in float64 between Casts, so the
    file stays a float32 model that onnxruntime runs (it has no float64 Conv).

    Oracles: onnxruntime against nnreduce's float64 evaluation of the original network
    (float32 accuracy), and the file read back has the reduced network's hash."""
    import onnxruntime as ort

    rng = np.random.default_rng(3)
    mid = {"batch_norm": BatchNorm(np.array([0.1, 0.2, 0.3]), np.array([0.0, 0.7, -0.1])),
           "prelu": Activation("prelu", slopes=np.array([0.1, 0.2, 0.3])),
           "clip": Activation("clip", bounds=(0.1, None))}[post]
    half = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    net = Network((Conv2d(np.concatenate([half, 2 * half[:1]]), np.zeros(3, np.float32)),
                   Activation("relu"), MaxPool2d((2, 2), (2, 2)), mid, Flatten(),
                   Dense(rng.standard_normal((2, 12)).astype(np.float32),
                         np.zeros(2, np.float32))),
                  (2, 6, 6), data_dtype="float32")
    red = reduce_network(net).network
    dst = tmp_path / "red.onnx"
    save_network(red, dst)
    sess = ort.InferenceSession(str(dst))
    assert sess.get_inputs()[0].type == "tensor(float)"
    x = rng.standard_normal((5, 2, 6, 6)).astype(np.float32)
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, evaluate(net, x.astype(np.float64)), rtol=1e-4, atol=1e-4)
    assert network_sha256(load_network(dst)) == network_sha256(red)

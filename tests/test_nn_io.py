"""Import/export round trips, each checked by the model's own framework (onnxruntime, torch)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumpcore import ModelFormatError, UnsupportedLayerError
from nnreduce import (
    Activation,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    Network,
    Normalization,
    Permute,
    as_exact,
    evaluate,
    from_torch,
    load_network,
    network_sha256,
    reduce_network,
    save_network,
    to_torch,
)

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from nn_helpers import save_onnx_graph  # noqa: E402

DATA = Path(__file__).parent / "data" / "nn"


def _ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dt = np.float64 if "double" in inp.type else np.float32
    if inp.shape[0] == 1:  # a fixed batch of one: run the examples one by one
        shape = [int(d) for d in inp.shape]
        outs = [sess.run(None, {inp.name: xi.astype(dt).reshape(shape)})[0] for xi in x]
        return np.asarray(outs, dtype=np.float64).reshape(x.shape[0], -1)
    return np.asarray(sess.run(None, {inp.name: x.astype(dt)})[0], dtype=np.float64)


@pytest.mark.parametrize("name", ["onnx/mnist2x10.onnx", "onnx/mnist5x20_leaky_relu.onnx",
                                  "onnx/mnist2x5_sigmoid.onnx", "onnx/cnn_max_mninst2.onnx",
                                  "acasxu/ACASXU_experimental_v2a_1_1.onnx"])
def test_shipped_onnx_models_match_onnxruntime(name: str) -> None:
    path = DATA / name
    net = load_network(path)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(4, *net.input_shape))
    np.testing.assert_allclose(evaluate(net, x), _ort_run(path, x).reshape(4, -1),
                               rtol=1e-4, atol=1e-4)


def test_batch_one_pytorch_export_with_constant_transposes() -> None:
    path = DATA / "onnx/conv_mp1.onnx"
    net = load_network(path)
    assert net.input_shape == (3, 8, 8)
    x = np.random.default_rng(1).uniform(-1, 1, size=(1, 3, 8, 8))
    np.testing.assert_allclose(evaluate(net, x)[0], _ort_run(path, x).reshape(-1),
                               rtol=1e-4, atol=1e-5)


def test_keras_nhwc_export_keeps_its_input_layout() -> None:
    net = load_network(DATA / "onnx/cnn_max_mninst2.onnx")
    assert net.input_shape == (28, 28, 1)
    assert isinstance(net.layers[0], Permute)


def test_nnet_and_onnx_acasxu_agree() -> None:
    a = load_network(DATA / "acasxu/ACASXU_experimental_v2a_1_1.nnet")
    b = load_network(DATA / "acasxu/ACASXU_experimental_v2a_1_1.onnx")
    x = np.random.default_rng(2).uniform(-1, 1, size=(6, 5))
    np.testing.assert_allclose(evaluate(a, x, normalize=False), evaluate(b, x.reshape(6, 1, 1, 5)),
                               rtol=1e-4, atol=1e-4)


def test_nnet_round_trip_is_exact(tmp_path: Path) -> None:
    net = load_network(DATA / "acasxu/ACASXU_experimental_v2a_2_7.nnet")
    save_network(net, tmp_path / "a.nnet")
    back = load_network(tmp_path / "a.nnet")
    assert network_sha256(back) == network_sha256(net)
    # the normalisation: clip, (x - mean) / range, y * range + mean, checked against numpy
    x = np.array([[1e5, 0.0, 0.0, 600.0, -50.0]])
    nrm = net.normalization
    assert nrm is not None
    lo = np.array([float(v) for v in nrm.input_min])
    hi = np.array([float(v) for v in nrm.input_max])
    z = (np.clip(x, lo, hi) - np.array([float(v) for v in nrm.input_mean])) / np.array(
        [float(v) for v in nrm.input_range])
    y = evaluate(net, z, normalize=False) * float(nrm.output_range[0]) + float(
        nrm.output_mean[0])
    np.testing.assert_allclose(evaluate(back, x), y, rtol=1e-12)


def _random_conv(rng: np.random.Generator) -> Network:
    return Network(
        (Conv2d(rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4), (1, 1), (1, 1, 1, 1)),
         Activation("prelu", slopes=rng.uniform(0, 0.3, size=4)),
         MaxPool2d((2, 2), (2, 2)),
         Conv2d(rng.normal(size=(3, 4, 2, 2)), rng.normal(size=3), (1, 1), (0, 0, 0, 0)),
         BatchNorm(rng.uniform(0.5, 2, size=3), rng.normal(size=3)),
         Activation("leaky_relu", alpha=Fraction(1, 10)),
         AvgPool2d((2, 2), (1, 1), (1, 1, 1, 1), count_include_pad=True),
         Flatten(),
         Dense(rng.normal(size=(6, 27)), rng.normal(size=6)), Activation("tanh"),
         Dense(rng.normal(size=(5, 6)), rng.normal(size=5)), Activation("gelu"),
         Dense(rng.normal(size=(2, 5)), rng.normal(size=2)), Activation("sigmoid")),
        (2, 6, 6),
    )


def test_onnx_export_runs_in_onnxruntime_and_reads_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    net = _random_conv(rng)
    x = rng.normal(size=(5, 2, 6, 6))
    # rounded to float32 on purpose: onnxruntime has no float64 Conv
    save_network(net, tmp_path / "m.onnx", dtype="float32")
    np.testing.assert_allclose(_ort_run(tmp_path / "m.onnx", x), evaluate(net, x),
                               rtol=1e-4, atol=1e-5)
    back = load_network(tmp_path / "m.onnx")
    np.testing.assert_allclose(evaluate(back, x), evaluate(net, x), rtol=1e-5, atol=1e-6)


def test_onnx_export_with_normalisation(tmp_path: Path) -> None:
    net = load_network(DATA / "mnist/mnist10x10.nnet")
    save_network(net, tmp_path / "m.onnx", dtype="float64")
    x = np.random.default_rng(4).uniform(-0.5, 1.5, size=(3, 784))
    np.testing.assert_allclose(_ort_run(tmp_path / "m.onnx", x), evaluate(net, x), rtol=1e-9)
    back = load_network(tmp_path / "m.onnx")
    np.testing.assert_allclose(evaluate(back, x), evaluate(net, x), rtol=1e-12)


def _torch_seq() -> torch.nn.Module:
    torch.manual_seed(0)
    seq = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 3, 2), torch.nn.PReLU(3),
        torch.nn.AvgPool2d(2, 1, padding=1, count_include_pad=False),
        torch.nn.Flatten(), torch.nn.Linear(27, 6), torch.nn.GELU(), torch.nn.Dropout(0.1),
        torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh()), torch.nn.Linear(4, 2),
    ).double()
    with torch.no_grad():
        seq[1].running_mean.uniform_(-1, 1)
        seq[1].running_var.uniform_(0.5, 2)
    return seq.eval()


def test_torch_import_matches_torch() -> None:
    seq = _torch_seq()
    net = from_torch(seq, (2, 6, 6))
    assert not any(isinstance(lyr, BatchNorm) for lyr in net.layers)  # folded into the conv
    x = np.random.default_rng(5).normal(size=(4, 2, 6, 6))
    with torch.no_grad():
        y = seq(torch.tensor(x)).numpy()
    np.testing.assert_allclose(evaluate(net, x), y, rtol=1e-9, atol=1e-12)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("script", [False, True])
def test_torch_export_runs_in_torch_and_reads_back(tmp_path: Path, script: bool) -> None:
    rng = np.random.default_rng(6)
    net = _random_conv(rng)
    path = tmp_path / "m.pt"
    save_network(net, path, torchscript=script, dtype="float64")
    module = torch.jit.load(str(path)) if script else torch.load(str(path), weights_only=False)
    x = rng.normal(size=(3, 2, 6, 6))
    with torch.no_grad():
        y = module(torch.tensor(x)).numpy()
    np.testing.assert_allclose(y, evaluate(net, x), rtol=1e-9, atol=1e-12)
    back = load_network(path)  # the input shape travels with the file
    np.testing.assert_allclose(evaluate(back, x), evaluate(net, x), rtol=1e-9, atol=1e-12)


def test_npz_round_trip_float_and_exact(tmp_path: Path) -> None:
    net = _random_conv(np.random.default_rng(7))
    for n in (net, as_exact(net)):
        save_network(n, tmp_path / "m.npz")
        assert network_sha256(load_network(tmp_path / "m.npz")) == network_sha256(n)
    nrm = Normalization([Fraction(1, 3)], [2], [0], [1])
    small = Network((Dense([[1.0]], [0.0]),), (1,), nrm)
    save_network(small, tmp_path / "s.npz")
    assert network_sha256(load_network(tmp_path / "s.npz")) == network_sha256(small)


def test_reduced_model_exported_and_run_by_onnxruntime(tmp_path: Path) -> None:
    net = load_network(DATA / "twin/twin_ladder-5_inp-4_layers-10_width-1_margin.nnet")
    red = reduce_network(net)
    save_network(red.network, tmp_path / "r.onnx", dtype="float64")
    x = np.random.default_rng(8).uniform(-5, 5, size=(10, 5))
    np.testing.assert_allclose(_ort_run(tmp_path / "r.onnx", x), evaluate(net, x), rtol=1e-9,
                               atol=1e-12)


@pytest.mark.parametrize("ext", [".onnx", ".pt"])
@pytest.mark.parametrize("pool", [False, True])
def test_output_normalisation_of_a_feature_map_exported_in_its_shape(
        pool: bool, ext: str, tmp_path: Path) -> None:
    """A network whose output is a (C, H, W) map, with an output normalisation: the saved
    model scales and shifts each output element in the map's shape (as (n,) vectors they
    were broadcast along the last axis: onnxruntime refused the model, or ran it, like
    torch, to an output of another shape).  Oracle: onnxruntime (torch) running the saved
    file, then the file read back."""
    rng = np.random.default_rng(21)
    layers: list[Any] = [Conv2d(rng.standard_normal((3, 2, 1, 1), dtype=np.float32),
                                rng.standard_normal(3, dtype=np.float32)), Activation("relu")]
    if pool:
        layers.append(AvgPool2d((4, 4), (4, 4)))
    n_out = 3 if pool else 3 * 4 * 4
    nrm = Normalization([0.5], [2.0], rng.standard_normal(n_out).tolist(),
                        rng.uniform(0.5, 2.0, n_out).tolist())
    net = Network(tuple(layers), (2, 4, 4), nrm)
    path = tmp_path / f"map{ext}"
    save_network(net, path)  # (float32: onnxruntime has no double Conv)
    x = rng.standard_normal((5, 2, 4, 4)).astype(np.float32)
    want = evaluate(net, x)
    if ext == ".onnx":
        got = _ort_run(path, x)
    else:
        got = torch.load(path, weights_only=False)(torch.tensor(x)).detach().numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(evaluate(load_network(path), x), want, rtol=1e-5, atol=1e-5)


def test_unsupported_onnx_operator_is_named(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 3), dtype=np.float32), "W")
    g = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W"], ["h"], transB=1, name="fc"),
         helper.make_node("ThresholdedRelu", ["h"], ["y"], name="trelu")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[w])
    onnx.save(helper.make_model(g), tmp_path / "bad.onnx")
    with pytest.raises(UnsupportedLayerError,
                       match=r"node 1 \(ThresholdedRelu 'trelu'\): operator ThresholdedRelu"):
        load_network(tmp_path / "bad.onnx")


def test_unsupported_torch_module_is_named() -> None:
    seq = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Threshold(0.1, 20.0))
    with pytest.raises(UnsupportedLayerError, match=r"module 1 \(Threshold"):
        from_torch(seq)


def test_bad_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="unknown model format"):
        load_network(tmp_path / "m.h5")
    (tmp_path / "bad.nnet").write_text("2,1,1,1,\n1,1\n")
    with pytest.raises(ModelFormatError, match=r"bad\.nnet"):
        load_network(tmp_path / "bad.nnet")
    with pytest.raises(FileNotFoundError):
        load_network(tmp_path / "missing.onnx")


def test_to_torch_refuses_nothing_it_can_express() -> None:
    net = _random_conv(np.random.default_rng(9))
    seq = to_torch(net, "float64")
    x = np.random.default_rng(9).normal(size=(2, 2, 6, 6))
    with torch.no_grad():
        np.testing.assert_allclose(seq(torch.tensor(x)).numpy(), evaluate(net, x), rtol=1e-9,
                                   atol=1e-12)


@pytest.mark.parametrize("suffix", [".npz", ".nnet", ".onnx", ".pt", ".json"])
def test_written_files_get_the_usual_permissions(tmp_path: Path, suffix: str) -> None:
    """Atomic writes go through a 0600 temporary file; the result must not stay 0600."""
    import os

    from nnreduce import save_certificate

    net = Network((Dense([[1.0, 2.0], [2.0, 4.0]], [0.0, 0.0]), Activation("relu"),
                   Dense([[1.0, 1.0]], [0.0])), (2,))
    path = tmp_path / f"m{suffix}"

    def write() -> None:
        if suffix == ".json":
            save_certificate(reduce_network(net), path)
        else:
            save_network(net, path)

    umask = os.umask(0o022)
    try:
        write()
        assert path.stat().st_mode & 0o777 == 0o644
        path.chmod(0o640)  # an existing file keeps its mode
        write()
        assert path.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(umask)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left


@pytest.mark.parametrize("suffix", [".npz", ".nnet", ".onnx", ".pt"])
def test_damaged_files_give_a_format_error_naming_the_file(tmp_path: Path, suffix: str) -> None:
    """Truncated files and flipped bytes: a clean error (or a model), never a traceback
    from inside zipfile, protobuf or the text decoder."""
    from lumpcore import LumpkitError

    rng = np.random.default_rng(5)
    net = Network((Dense(rng.normal(size=(4, 3)), rng.normal(size=4)), Activation("relu"),
                   Dense(rng.normal(size=(2, 4)), [0.0, 0.0])), (3,))
    good = tmp_path / f"good{suffix}"
    save_network(net, good)
    data = good.read_bytes()
    variants = [data[: len(data) // 2], data[:-7], b"", b"\xff\xfe" + data[2:]]
    for _ in range(8):
        b = bytearray(data)
        for pos in rng.integers(0, len(b), size=4):
            b[int(pos)] = int(rng.integers(0, 256))
        variants.append(bytes(b))
    for k, v in enumerate(variants):
        path = tmp_path / f"bad{k}{suffix}"
        path.write_bytes(v)
        try:
            load_network(path)
        except LumpkitError as exc:
            assert isinstance(exc, ValueError | TypeError)
            assert f"bad{k}{suffix}" in str(exc)


def test_torch_exported_onnx_with_folded_constants_matches_onnxruntime(tmp_path: Path) -> None:
    """PyTorch's exporter aliases equal initializers through Identity nodes (a fresh
    BatchNorm1d: running_var = weight = 1) and other exporters reshape, squeeze or cast
    weights: such constant subgraphs are folded, value for value."""
    import warnings

    torch.manual_seed(3)
    m = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(),
                            torch.nn.Linear(5, 2))
    m.eval()
    path = tmp_path / "bn1d.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(2, 3),), str(path), input_names=["x"],
                          output_names=["y"], dynamo=False,
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    assert "Identity" in [n.op_type for n in onnx.load(str(path)).graph.node]
    net = load_network(path)
    x = np.random.default_rng(1).normal(size=(4, 3))
    np.testing.assert_allclose(evaluate(net, x), _ort_run(path, x), rtol=1e-5, atol=1e-5)
    # a hand-made graph: the weight reshaped and cast, the bias unsqueezed and squeezed
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    nodes = [
        helper.make_node("Reshape", ["w_flat", "shape"], ["w2"]),
        helper.make_node("Cast", ["w2"], ["w"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["b0", "ax"], ["b1"]),
        helper.make_node("Squeeze", ["b1", "ax"], ["b"]),
        helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        [numpy_helper.from_array(w.reshape(-1), "w_flat"),
         numpy_helper.from_array(np.array([2, -1], dtype=np.int64), "shape"),
         numpy_helper.from_array(np.array([0.5, -1.0], dtype=np.float32), "b0"),
         numpy_helper.from_array(np.array([0], dtype=np.int64), "ax")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what the installed onnxruntime reads
    hand = tmp_path / "hand.onnx"
    onnx.save(model, str(hand))
    got = load_network(hand)
    assert np.array_equal(got.layers[0].weight, w) and got.layers[0].weight.dtype == np.float32
    np.testing.assert_allclose(evaluate(got, x), _ort_run(hand, x), rtol=1e-6, atol=1e-6)


def test_reshape_to_the_graphs_fixed_batch_is_a_flatten(tmp_path: Path) -> None:
    """Exporters that trace with a fixed batch write Reshape(x, [B, n]) for a flatten."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 8)).astype(np.float32)
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["f"]),
             helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(np.array([2, 8], dtype=np.int64), "shape"),
         numpy_helper.from_array(w, "w"),
         numpy_helper.from_array(np.zeros(3, dtype=np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "fixed_batch.onnx"
    onnx.save(model, str(path))
    net = load_network(path)
    assert net.input_shape == (2, 2, 2)
    x = rng.normal(size=(2, 2, 2, 2))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x.astype(np.float32)})[0]
    np.testing.assert_allclose(evaluate(net, x), want, rtol=1e-5, atol=1e-5)
    bad = tmp_path / "bad.onnx"
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.array([4, 4], dtype=np.int64),
                                                                "shape"))
    onnx.save(model, str(bad))
    with pytest.raises(UnsupportedLayerError, match=r"Reshape to \[4, 4\]"):
        load_network(bad)


@pytest.mark.parametrize("style", ["view", "view-product", "reshape"])
def test_flatten_by_the_data_tensors_own_shape(tmp_path: Path, style: str) -> None:
    """``x.view(x.size(0), -1)`` exports as Shape -> Gather -> Unsqueeze -> Concat -> Reshape
    (with a dynamic batch); it is a flatten.  Oracle: onnxruntime."""
    import warnings

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = torch.nn.Conv2d(2, 3, 3, padding=1)
            self.f = torch.nn.Linear(3 * 4 * 4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.c(x))
            if style == "view":
                x = x.view(x.size(0), -1)
            elif style == "view-product":
                x = x.view(x.size(0), x.size(1) * x.size(2) * x.size(3))
            else:
                x = x.reshape(x.shape[0], -1)
            return self.f(x)

    torch.manual_seed(4)
    path = tmp_path / "view.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Net().eval(), (torch.randn(2, 2, 4, 4),), str(path), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    assert "Shape" in [n.op_type for n in onnx.load(str(path)).graph.node]
    net = load_network(path)
    assert isinstance(net.layers[2], Flatten)
    x = np.random.default_rng(5).normal(size=(3, 2, 4, 4))
    np.testing.assert_allclose(evaluate(net, x), _ort_run(path, x), rtol=1e-5, atol=1e-5)


def test_shape_values_are_refused_outside_a_reshape(tmp_path: Path) -> None:
    """A value computed from the data's shape used as a weight, or a Reshape that is not a
    flatten, is refused with the node named."""
    from onnx import helper, numpy_helper

    def save(nodes: list[object], inits: list[object], name: str) -> Path:
        return save_onnx_graph(tmp_path / name, nodes, [None, 2, 3], [None, 6], inits)

    shape = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "ax"], ["n1"])]
    inits = [numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
             numpy_helper.from_array(np.array([0], dtype=np.int64), "ax"),
             numpy_helper.from_array(np.array([3, 2], dtype=np.int64), "tail")]
    as_bias = save([*shape, helper.make_node("Reshape", ["x", "six"], ["f"]),
                    helper.make_node("Gemm", ["f", "w", "n1"], ["y"], transB=1)],
                   [*inits, numpy_helper.from_array(np.array([-1, 6], dtype=np.int64), "six"),
                    numpy_helper.from_array(np.eye(6, dtype=np.float32), "w")],
                   "as_bias.onnx")
    with pytest.raises(UnsupportedLayerError,
                       match=r"node 4 \(Gemm.*'n1' is computed from the data tensor's shape"):
        load_network(as_bias)
    not_flat = save([*shape, helper.make_node("Concat", ["n1", "tail"], ["t"], axis=0),
                     helper.make_node("Reshape", ["x", "t"], ["y"])],
                    inits, "not_flat.onnx")
    with pytest.raises(UnsupportedLayerError, match=r"Reshape to \['batch', 3, 2\]"):
        load_network(not_flat)


_MEAN = (0.4914, 0.4822, 0.4465)
_STD = (0.2023, 0.1994, 0.2010)


def _normalising_net(style: str) -> torch.nn.Module:
    mean = torch.tensor(_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_STD).view(1, 3, 1, 1)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = torch.nn.Conv2d(3, 4, 3)
            self.f = torch.nn.Linear(4 * 4 * 4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if style == "per-channel":
                x = (x - mean) / std
            elif style == "div255":  # Div, Sub, Div: folded exactly into one mean and range
                x = (x / 255.0 - mean) / std
            elif style == "mul-add":
                x = x * 0.5 + 0.25
            elif style == "clamp":
                x = torch.maximum(torch.minimum(x, torch.tensor(0.9)), torch.tensor(0.1)) - mean
            elif style == "nhwc":  # per-channel constants of the NHWC input, then a transpose
                x = ((x - mean.view(1, 1, 1, 3)) / std.view(1, 1, 1, 3)).permute(0, 3, 1, 2)
            elif style == "nhwc-after":  # a transpose, then per-channel constants
                x = (x.permute(0, 3, 1, 2) - mean) / std
            return self.f(torch.flatten(torch.relu(self.c(x)), 1))

    torch.manual_seed(9)
    return Net().eval()


@pytest.mark.parametrize("style", ["per-channel", "div255", "mul-add", "clamp", "nhwc",
                                   "nhwc-after"])
def test_input_normalisation_with_per_channel_constants(tmp_path: Path, style: str) -> None:
    """torchvision-style ``(x - mean) / std`` with (1, C, 1, 1) constants, also around an NHWC
    transpose, after a Div by 255, or as Mul/Add: read exactly into the input normalisation.
    Oracle: onnxruntime on the model, and on the reduced model lumpkit writes back."""
    import warnings

    nhwc = style.startswith("nhwc")
    shape = (1, 6, 6, 3) if nhwc else (1, 3, 6, 6)
    path = tmp_path / "norm.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_normalising_net(style), (torch.randn(*shape),), str(path),
                          dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    net = load_network(path)
    assert net.normalization is not None
    x = np.random.default_rng(10).random((3, *shape[1:])) * 2
    want = _ort_run(path, x)
    np.testing.assert_allclose(evaluate(net, x), want, rtol=1e-5, atol=1e-5)
    out = tmp_path / "reduced.onnx"
    save_network(reduce_network(net).network, out)
    np.testing.assert_allclose(_ort_run(out, x), want, rtol=1e-5, atol=1e-5)


def test_input_normalisation_that_cannot_be_held_exactly_is_refused(tmp_path: Path) -> None:
    from onnx import helper, numpy_helper

    def save(nodes: list[object], consts: dict[str, float], name: str) -> Path:
        return save_onnx_graph(
            tmp_path / name, [*nodes, helper.make_node("Gemm", ["h", "w"], ["y"], transB=1)],
            [None, 2], [None, 2],
            [numpy_helper.from_array(np.eye(2, dtype=np.float32), "w"),
             *(numpy_helper.from_array(np.array([v], dtype=np.float32), k)
               for k, v in consts.items())])

    third = save([helper.make_node("Mul", ["x", "s"], ["h"])], {"s": 1 / 3}, "third.onnx")
    with pytest.raises(UnsupportedLayerError, match=r"node 0 \(Mul.*not a float64 value"):
        load_network(third)
    late_clip = save([helper.make_node("Sub", ["x", "m"], ["a"]),
                      helper.make_node("Max", ["a", "lo"], ["h"])], {"m": 0.5, "lo": 0.0},
                     "late_clip.onnx")
    with pytest.raises(UnsupportedLayerError, match=r"node 1 \(Max.*clips first"):
        load_network(late_clip)
    # Sub twice and Div twice combine exactly: (((x - a) - b) / c) / d
    twice = save([helper.make_node("Sub", ["x", "a"], ["p"]),
                  helper.make_node("Sub", ["p", "b"], ["q"]),
                  helper.make_node("Div", ["q", "c"], ["r"]),
                  helper.make_node("Div", ["r", "d"], ["h"])],
                 {"a": 0.25, "b": 1.5, "c": 4.0, "d": 0.5}, "twice.onnx")
    net = load_network(twice)
    x = np.random.default_rng(11).normal(size=(4, 2))
    np.testing.assert_allclose(evaluate(net, x), (x - 1.75) / 2.0, rtol=1e-15)
    np.testing.assert_allclose(evaluate(net, x), _ort_run(twice, x), rtol=1e-6)


def test_a_bias_added_after_a_layer_stays_exact(tmp_path: Path) -> None:
    """MatMul then Add(c), Gemm(bias) then Add(c): folded into the bias; a sum float64 cannot
    hold (2**30 + 2**-30) makes the bias exact rationals instead of rounding it."""
    from onnx import helper, numpy_helper

    path = save_onnx_graph(
        tmp_path / "bias.onnx",
        [helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
         helper.make_node("Add", ["h", "c"], ["y"])], [None, 2], [None, 2],
        [numpy_helper.from_array(np.eye(2), "w"),
         numpy_helper.from_array(np.array([2.0**30, 1.0]), "b"),
         numpy_helper.from_array(np.array([2.0**-30, 0.5]), "c")], double=True)
    net = load_network(path)
    assert list(net.layers[0].bias) == [Fraction(2**30) + Fraction(1, 2**30), Fraction(3, 2)]


def test_onnx_input_dimensions_left_open_take_a_given_shape(tmp_path: Path) -> None:
    """An export with dynamic spatial axes needs the input shape; given, it must fit the
    dimensions the model fixes.  Oracle: onnxruntime."""
    import subprocess
    import sys
    import warnings

    torch.manual_seed(7)
    m = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                            torch.nn.Linear(3 * 4 * 4, 2)).eval()
    path = tmp_path / "open.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(1, 2, 6, 6),), str(path), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
    with pytest.raises(ModelFormatError, match=r"needs a known shape.*--input-shape"):
        load_network(path)
    with pytest.raises(ModelFormatError, match=r"\(3, 6, 6\) does not fit"):
        load_network(path, input_shape=(3, 6, 6))
    net = load_network(path, input_shape=(2, 6, 6))
    x = np.random.default_rng(8).normal(size=(3, 2, 6, 6))
    np.testing.assert_allclose(evaluate(net, x), _ort_run(path, x), rtol=1e-5, atol=1e-5)
    out = tmp_path / "r.onnx"
    run = subprocess.run([sys.executable, "-m", "lumpkit", "nn", "reduce", str(path), "-o",
                          str(out), "--input-shape", "2,6,6"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    np.testing.assert_allclose(_ort_run(out, x), _ort_run(path, x), rtol=1e-5, atol=1e-5)
    run = subprocess.run([sys.executable, "-m", "lumpkit", "nn", "verify", str(path), str(out),
                          "--input-shape", "2,6,6", "--box", "-1:1"], capture_output=True,
                         text=True)
    assert run.returncode == 0 and run.stdout.startswith("equivalent"), run.stdout + run.stderr



def test_a_hidden_mul_is_folded_not_moved(tmp_path: Path) -> None:
    """``W relu(2 (W x)) + b``: a Mul of a constant after the first layer is read as the
    output scale only when nothing but the output shift follows it; inside the network it
    is folded into the layer before (read as an output scale, the outputs differ)."""
    from onnx import helper, numpy_helper

    wa = np.array([[1.0, -2.0], [0.5, 1.0]], dtype=np.float32)
    ba = np.array([0.25, -1.0], dtype=np.float32)
    inits = [numpy_helper.from_array(wa, "W"), numpy_helper.from_array(ba, "b"),
             numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")]
    nodes = [helper.make_node("Gemm", ["x", "W"], ["h"], transB=1),
             helper.make_node("Mul", ["h", "two"], ["s"]),
             helper.make_node("Relu", ["s"], ["r"], name="act"),
             helper.make_node("Gemm", ["r", "W", "b"], ["y"], transB=1)]
    path = save_onnx_graph(tmp_path / "m.onnx", nodes, ["N", 2], ["N", 2], inits)
    x = np.array([[1.0, -1.0]])
    moved = 2 * (np.maximum(x @ wa.T, 0) @ wa.T + ba)  # the Mul read as an output scale
    assert not np.allclose(_ort_run(path, x), moved)
    net = load_network(path)
    assert net.normalization is None
    np.testing.assert_allclose(evaluate(net, x), _ort_run(path, x), rtol=1e-6)


@pytest.mark.parametrize("bad", ["nan-mean", "inf-mean", "corrupt-initializer"])
def test_bad_onnx_constants_are_clear_errors(tmp_path: Path, bad: str) -> None:
    """A non-finite normalisation constant or an initializer whose data does not match its
    dims: a ModelFormatError naming the file and the place, not a numpy traceback."""
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.ones((3, 2), np.float32), "W")
    nodes = [helper.make_node("Gemm", ["s", "W", "b"], ["y"], transB=1)]
    inits = [w, numpy_helper.from_array(np.zeros(3, np.float32), "b")]
    if bad == "corrupt-initializer":
        w.dims[0] = 4  # the data holds 6 values, the dims say 8
        nodes[0].input[0] = "x"
        match = r"initializer 'W': its data cannot be read"
    else:
        value = np.nan if bad == "nan-mean" else np.inf
        nodes.insert(0, helper.make_node("Sub", ["x", "mean"], ["s"], name="norm"))
        inits.append(numpy_helper.from_array(np.array([0.5, value], np.float32), "mean"))
        match = r"node 0 \(Sub 'norm'\): a Sub by (nan|inf) in the input normalisation"
    path = save_onnx_graph(tmp_path / "m.onnx", nodes, ["N", 2], ["N", 3], inits)
    with pytest.raises(ModelFormatError, match=match) as info:
        load_network(path)
    assert str(path) in str(info.value)


def test_nnet_refuses_per_output_normalisation(tmp_path: Path) -> None:
    """NNet holds one output mean and range: a per-output one is refused, whichever field
    has several values (one mean with several ranges was written with the first range)."""
    net = Network((Dense(np.eye(2), np.zeros(2)), Activation("relu"),
                   Dense(np.eye(2), np.zeros(2))), (2,),
                  Normalization([0], [1], [0], [1, 2]))
    with pytest.raises(UnsupportedLayerError, match="one output mean and range"):
        save_network(net, tmp_path / "m.nnet")
    assert not (tmp_path / "m.nnet").exists()


def test_a_pickled_module_missing_an_attribute_is_a_clear_error(tmp_path: Path) -> None:
    """A pickle from another torch version (or tampered with) whose module lacks an
    attribute: a ModelFormatError naming the file, not an AttributeError traceback."""
    m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Flatten(),
                            torch.nn.Linear(2, 1))
    del m[2].start_dim
    torch.save(m, tmp_path / "m.pt")
    with pytest.raises(ModelFormatError, match=r"m\.pt: a module in the file lacks"):
        load_network(tmp_path / "m.pt")


def test_damaged_batch_norm_statistics_in_a_pt_file_name_the_module(tmp_path: Path) -> None:
    m = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.ReLU(),
                            torch.nn.Linear(6, 2)).eval()
    with torch.no_grad():
        m[1].running_var[2] = -1.0
    torch.save(m, tmp_path / "bn.pt")
    with pytest.raises(ModelFormatError,
                       match=r"module 1 \(BatchNorm1d '1'\): BatchNorm1d of channel 2: "
                             r"running variance -1\.0 \+ eps 1e-05 is not positive"):
        load_network(tmp_path / "bn.pt")


def test_a_damaged_torchscript_file_is_one_line(tmp_path: Path) -> None:
    m = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    torch.jit.save(torch.jit.script(m.double().eval()), tmp_path / "ts.pt")
    raw = bytearray((tmp_path / "ts.pt").read_bytes())
    seen = 0
    for frac in (0.2, 0.325, 0.5, 0.8):  # damage the archive at a few places
        b = bytearray(raw)
        start = int(len(b) * frac)
        for i in range(start, min(len(b), start + 64)):
            b[i] ^= 0x5A
        (tmp_path / "bad.pt").write_bytes(bytes(b))
        try:
            load_network(tmp_path / "bad.pt")
        except ModelFormatError as exc:
            seen += 1
            assert "\n" not in str(exc) and str(tmp_path / "bad.pt") in str(exc)
    assert seen  # (bytes inside raw weight data may still load: that is a valid file)


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("pad", [(0, 1, 0, 1), (2, 0, 1, 3)])
def test_zero_pad_before_a_conv_from_the_legacy_exporter(opset: int, pad: tuple[int, ...],
                                                         tmp_path: Path) -> None:
    """nn.ZeroPad2d (left, right, top, bottom) is exported as a Pad whose pads a subgraph
    computes (ConstantOfShape, Concat, Slice, Transpose ...): read as the Conv's padding;
    the reduction (a planted channel 2 = 2 * channel 0) runs in onnxruntime as torch does."""
    import warnings

    torch.manual_seed(opset + sum(pad))
    h, w = 5 + pad[2] + pad[3] - 2, 5 + pad[0] + pad[1] - 2
    m = torch.nn.Sequential(torch.nn.ZeroPad2d(pad), torch.nn.Conv2d(2, 3, 3), torch.nn.ReLU(),
                            torch.nn.Flatten(), torch.nn.Linear(3 * h * w, 2)).eval()
    with torch.no_grad():
        m[1].weight[2] = 2 * m[1].weight[0]
        m[1].bias[2] = 2 * m[1].bias[0]
    path = tmp_path / "zp.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(1, 2, 5, 5),), str(path), dynamo=False,
                          opset_version=opset)  # (float32: onnxruntime has no double Conv)
    assert "Pad" in [n.op_type for n in __import__("onnx").load(str(path)).graph.node]
    net = load_network(path)
    conv = net.layers[0]
    assert isinstance(conv, Conv2d) and conv.padding == (pad[2], pad[0], pad[3], pad[1])
    x = np.random.default_rng(opset).standard_normal((4, 2, 5, 5)).astype(np.float32)
    want = m(torch.tensor(x)).detach().numpy()
    red = reduce_network(net)
    assert [lr.neurons_after for lr in red.layers] == [2]
    out = tmp_path / "zp.reduced.onnx"
    save_network(red.network, out)
    np.testing.assert_allclose(_ort_run(out, x), want, rtol=1e-5, atol=1e-6)


def test_pads_lumpkit_cannot_read_as_conv_padding_are_named(tmp_path: Path) -> None:
    import warnings

    for mod, message in [
        (torch.nn.Sequential(torch.nn.ZeroPad2d(1), torch.nn.MaxPool2d(2)),
         r"MaxPool after a zero Pad; lumpkit reads a Pad only directly before a Conv"),
        (torch.nn.Sequential(torch.nn.ReflectionPad2d(1), torch.nn.Conv2d(2, 2, 3)),
         r"Pad mode 'reflect'"),
        (torch.nn.Sequential(torch.nn.ConstantPad2d(1, 0.5), torch.nn.Conv2d(2, 2, 3)),
         r"Pad with the value \[0\.5\]"),
        # the last operator: no Conv takes it (it was dropped, the output left unpadded)
        (torch.nn.Sequential(torch.nn.Conv2d(2, 2, 1), torch.nn.ReLU(), torch.nn.ZeroPad2d(1)),
         r"node \d+ \(Pad .*a zero Pad as the last operator"),
    ]:
        path = tmp_path / "p.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(mod.eval(), (torch.randn(1, 2, 6, 6),), str(path), dynamo=False,
                              opset_version=17)
        with pytest.raises(UnsupportedLayerError, match=message):
            load_network(path)

"""Regressions found by the differential campaign against PyTorch and onnxruntime.

Oracles: PyTorch (float64 models, to 1e-12) and onnxruntime run the same
models; lumpkit's reading must compute what they compute.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumpcore import UnsupportedLayerError
from nnreduce import evaluate, load_network, reduce_network, save_network

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
nn = torch.nn


def test_softplus_with_beta_exported_by_torch_is_read_as_torch_computes_it(
        tmp_path: Path) -> None:
    # torch writes Softplus(beta=2) as Mul(2), Softplus, Div(2): read as softplus(2 y) / 2
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Softplus(beta=2.0), nn.Linear(4, 2)).double()
    model.eval()
    with torch.no_grad():
        model[0].weight[1] = model[0].weight[0]
        model[0].bias[1] = model[0].bias[0]
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, dtype=torch.float64),), str(path),
                      dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "b"}})
    x = np.random.default_rng(0).standard_normal((5, 3)) * 3
    with torch.no_grad():
        want = model(torch.tensor(x)).numpy()
    net = load_network(path)
    np.testing.assert_allclose(evaluate(net, x), want, rtol=1e-12, atol=1e-12)
    red = reduce_network(net)
    assert red.layers[0].neurons_after == 3
    # onnxruntime has no float64 Softplus: run the reduction in torch
    save_network(red.network, tmp_path / "r.pt", torchscript=True)
    with torch.no_grad():
        got = torch.jit.load(str(tmp_path / "r.pt"))(torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_module_in_training_mode_warns_that_it_is_read_as_in_eval_mode() -> None:
    """A batch norm or dropout in training mode computes otherwise than lumpkit reads it
    (eval semantics): torch itself shows the difference, and lumpkit warns."""
    import torch

    from lumpcore import LumpkitWarning
    from nnreduce import from_torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                                torch.nn.ReLU(), torch.nn.Linear(4, 2)).double()
    model.train()
    x = torch.randn(6, 3, dtype=torch.float64)
    with torch.no_grad():
        train_out = model(x).numpy()
    with pytest.warns(LumpkitWarning, match=r"training mode.*BatchNorm1d.*module\.eval"):
        net = from_torch(model)
    model.eval()
    with torch.no_grad():
        eval_out = model(x).numpy()
    got = evaluate(net, x.numpy())
    np.testing.assert_allclose(got, eval_out, rtol=1e-12, atol=1e-12)  # read as eval
    assert not np.allclose(got, train_out)  # which is not what training mode computes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_torch(model)  # eval mode: no warning


def test_merged_weight_beyond_float64_stays_exact(tmp_path: Path) -> None:
    """Neurons merged with factor 2**1000 fold a weight of about 2**1100 into the next
    layer: the reduced network keeps it as an exact rational (it used to crash with an
    OverflowError), is certified, and float formats refuse it clearly, writing nothing.

    Oracles: exact evaluation of both networks, and the independent checker."""
    from fractions import Fraction

    from lumpcore import ModelFormatError
    from nnreduce import Activation, Dense, Network, evaluate_exact, network_sha256
    from proofs import check_certificate

    net = Network((Dense(np.array([[1.0], [2.0**1000]]), np.zeros(2)), Activation("relu"),
                   Dense(np.array([[1.0, 2.0**100]]), np.zeros(1))), (1,))
    red = reduce_network(net)
    assert red.layers[0].neurons_after == 1
    w = red.network.layers[2].weight
    assert w[0, 0] == 1 + Fraction(2) ** 1100
    for x in (Fraction(3), Fraction(-5, 7), Fraction(2) ** -1100):
        assert evaluate_exact(net, [[x]]).tolist() == evaluate_exact(red.network, [[x]]).tolist()
    assert check_certificate(net, red.network, red.certificate).valid
    with pytest.raises(ModelFormatError, match="beyond float64's range"):
        evaluate(red.network, np.ones((1, 1)))
    for ext in (".onnx", ".nnet", ".pt"):
        with pytest.raises(ModelFormatError, match=r"beyond float64's range.*npz"):
            save_network(red.network, tmp_path / f"red{ext}")
        assert not (tmp_path / f"red{ext}").exists()
    save_network(red.network, tmp_path / "red.npz")
    assert network_sha256(load_network(tmp_path / "red.npz")) == network_sha256(red.network)


@pytest.mark.parametrize("layers", [
    "relu", "pool", "batchnorm"])
def test_certificate_of_a_network_without_linear_layers_is_accepted(layers: str) -> None:
    """A network with no Dense or Conv layer (an ONNX model that is a Relu, a pooling or a
    batch norm alone) has nothing to reduce; its certificate has no layer entries, which
    the checker must accept (it counted "-1 hidden layers" and refused it).
    Oracle: the independent checker, and the reduced network equal to the original."""
    from fractions import Fraction

    from nnreduce import Activation, BatchNorm, MaxPool2d, Network
    from proofs import check_certificate

    if layers == "relu":
        net = Network((Activation("relu"),), (4,))
    elif layers == "pool":
        net = Network((MaxPool2d((2, 2), (2, 2)), Activation("relu")), (2, 4, 4))
    else:
        net = Network((BatchNorm(np.array([Fraction(1, 3), Fraction(2)], dtype=object),
                                 np.array([0.5, -1.0])),), (2,))
    red = reduce_network(net)
    assert red.neurons_after == red.neurons_before == 0
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid and res.exact, res


@pytest.mark.parametrize("tolerance", [0.0, 1e-9])
@pytest.mark.parametrize("hidden", [False, True])
def test_number_type_counts_every_rational_parameter(hidden: bool, tolerance: float) -> None:
    """The certificate's ``reduced.number_type`` is "rational" when the reduced network
    stores any parameter as a rational: here only a batch norm after the activation (a
    scale of 1/3, as an ONNX Div by 3 is read), the weights float.  The checker looked at
    the linear layers' weights alone and refused the reduction's own certificate.
    Oracles: the independent checker, exact evaluation."""
    from fractions import Fraction

    from nnreduce import Activation, BatchNorm, Dense, Network, evaluate_exact
    from proofs import check_certificate

    rng = np.random.default_rng(3)
    w = rng.integers(-4, 5, size=(4, 3)).astype(np.float64)
    w[3] = 2 * w[0]
    b = np.array([1.0, -0.5, 0.25, 2.0])
    third = np.array([Fraction(1, 3)] * 4, dtype=object)
    layers: list[Any] = [Dense(w, b), Activation("relu"), BatchNorm(third, np.zeros(4))]
    if hidden:
        layers += [Dense(rng.integers(-3, 4, size=(2, 4)).astype(np.float64), np.zeros(2))]
    net = Network(tuple(layers), (3,))
    red = reduce_network(net, tolerance=tolerance)
    assert red.certificate["reduced"]["number_type"] == "rational"
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid, res
    x = np.array([Fraction(int(v), 3) for v in rng.integers(-9, 10, size=3)], dtype=object)
    assert evaluate_exact(red.network, x).tolist() == evaluate_exact(net, x).tolist()


def _onnx_model(tmp_path: Path, nodes: list[Any], inits: dict[str, np.ndarray],
                in_shape: tuple[int, ...], name: str = "m.onnx") -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v.astype(np.float32), k)
                     for k, v in inits.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("case", ["maxpool no kernel_shape", "batchnorm 3 inputs",
                                  "gemm 1 input", "add 1 input", "prelu no slope",
                                  "gemm empty weight name"])
def test_a_node_that_breaks_its_schema_is_named_in_one_line(case: str, tmp_path: Path) -> None:
    """Malformed ONNX nodes (onnx.checker refuses them) are refused naming the node and
    what its operator's schema asks for, not with a KeyError, IndexError or StopIteration
    from inside the reader (found by the ONNX fuzz)."""
    from onnx import helper

    from lumpcore import ModelFormatError

    one = np.ones(2)
    nodes, inits, shape = {
        "maxpool no kernel_shape": ([helper.make_node("MaxPool", ["x"], ["y"], name="mp")],
                                    {}, (1, 4, 4)),
        "batchnorm 3 inputs": ([helper.make_node("BatchNormalization", ["x", "s", "t"], ["y"],
                                                 name="bn")], {"s": one, "t": one}, (2, 3, 3)),
        "gemm 1 input": ([helper.make_node("Gemm", ["x"], ["y"], name="fc")], {}, (2,)),
        "add 1 input": ([helper.make_node("Add", ["x"], ["y"], name="add")], {}, (2,)),
        "prelu no slope": ([helper.make_node("PRelu", ["x"], ["y"], name="pr")], {}, (2,)),
        "gemm empty weight name": ([helper.make_node("Gemm", ["x", ""], ["y"], name="fc")], {},
                                   (2,)),
    }[case]
    path = _onnx_model(tmp_path, nodes, inits, shape)
    with pytest.raises(ModelFormatError) as info:
        load_network(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and f"node 0 ({nodes[0].op_type} " in msg
    assert "required attribute(s) ['kernel_shape']" in msg or " takes " in msg


def test_an_operator_of_another_domain_is_refused(tmp_path: Path) -> None:
    """A Relu of a custom domain is not ONNX's Relu (it was read as one)."""
    from onnx import helper

    node = helper.make_node("Relu", ["x"], ["y"], name="r", domain="com.example")
    path = _onnx_model(tmp_path, [node], {}, (3,))
    with pytest.raises(UnsupportedLayerError, match=r"node 0 \(Relu 'r'\): operator Relu of "
                                                    r"the domain 'com.example'"):
        load_network(path)


@pytest.mark.parametrize("op", ["LeakyRelu", "BatchNormalization"])
def test_default_float_attributes_are_float32_values(op: str, tmp_path: Path) -> None:
    """An attribute left at its default reads as the same float32 value as the attribute
    written out (LeakyRelu alpha 0.01, BatchNormalization epsilon 1e-5): the two models
    are the same network, same hash (the default was read as the float64 0.01)."""
    from onnx import helper

    from nnreduce import network_sha256

    attr = {"LeakyRelu": ("alpha", 0.01), "BatchNormalization": ("epsilon", 1e-5)}[op]
    ins = ["x"] if op == "LeakyRelu" else ["x", "s", "t", "m", "v"]
    rng = np.random.default_rng(2)
    inits = {} if op == "LeakyRelu" else {
        "s": rng.uniform(0.5, 2, 2), "t": rng.standard_normal(2), "m": rng.standard_normal(2),
        "v": rng.uniform(0.5, 2, 2)}
    shape = (3,) if op == "LeakyRelu" else (2, 2, 2)
    implicit = _onnx_model(tmp_path, [helper.make_node(op, ins, ["y"])], inits, shape, "a.onnx")
    explicit = _onnx_model(tmp_path, [helper.make_node(op, ins, ["y"], **dict([attr]))], inits,
                           shape, "b.onnx")
    assert network_sha256(load_network(implicit)) == network_sha256(load_network(explicit))


@pytest.mark.parametrize("case", ["reshape float shape", "reshape two -1", "transpose perm",
                                  "pool pads", "prelu nan", "leakyrelu nan", "relu then add"])
def test_invalid_or_unreadable_nodes_are_named(case: str, tmp_path: Path) -> None:
    """Models the reader accepted though ONNX (and onnxruntime) refuses them, or refused
    with a misleading message: each is refused naming the node and the real reason."""
    from onnx import helper

    from lumpcore import LumpkitError

    mk = helper.make_node
    nodes, inits, shape, message = {
        "reshape float shape": ([mk("Reshape", ["x", "s"], ["y"])],
                                {"s": np.array([0.0, -1.0])}, (2, 3),
                                r"Reshape to \[0\.0, -1\.0\] \(float\d+\); ONNX takes an int64"),
        "reshape two -1": ([mk("Reshape", ["x", "s"], ["y"])], {"s": np.array([-1, -1])},
                           (2, 3), r"at most one -1"),
        "transpose perm": ([mk("Transpose", ["x"], ["y"], perm=[0, 1, 1])], {}, (2, 3),
                           r"perm \[0, 1, 1\] is no permutation"),
        "pool pads": ([mk("AveragePool", ["x"], ["y"], kernel_shape=[2, 2],
                          pads=[2, 0, 0, 0])], {}, (1, 4, 4), r"not smaller than the kernel"),
        "prelu nan": ([mk("PRelu", ["x", "s"], ["y"])], {"s": np.full(3, np.nan)}, (3,),
                      r"input 's' has the non-finite value nan"),
        "leakyrelu nan": ([mk("LeakyRelu", ["x"], ["y"], alpha=float("nan"))], {}, (3,),
                          r"LeakyRelu alpha nan"),
        "relu then add": ([mk("Relu", ["x"], ["r"]), mk("Add", ["r", "c"], ["y"])],
                          {"c": np.arange(3.0)}, (3,), r"node 1 \(Add ''\): a constant "
                          r"combined with the data after relu but before the first linear"),
    }[case]
    path = _onnx_model(tmp_path, nodes, inits, shape)
    if case.startswith("reshape"):  # (the shape input is an integer tensor in ONNX)
        import onnx
        from onnx import numpy_helper

        model = onnx.load(path)
        model.graph.initializer[0].CopyFrom(numpy_helper.from_array(
            inits["s"].astype(np.float32 if "float" in case else np.int64), "s"))
        onnx.save(model, path)
    with pytest.raises(LumpkitError, match=message) as info:
        load_network(path)
    assert "\n" not in str(info.value) and "node " in str(info.value)


@pytest.mark.parametrize("ext", [".pt", ".onnx"])
@pytest.mark.parametrize("model", ["depthwise conv, batch norm of negative scale",
                                   "dilated conv, batch norm of negative scale",
                                   "linear, two batch norms"])
def test_the_written_reduction_is_the_certified_network(model: str, ext: str,
                                                        tmp_path: Path) -> None:
    """The file a reduction is written to reads back as the very network its certificate
    names (same hash), so ``lumpkit nn verify`` accepts what ``lumpkit nn reduce`` wrote.
    Two cases broke that (found by a PyTorch fuzz): a batch norm of negative scale folded
    into a grouped or dilated convolution made its zero taps -0.0 (written compact, read
    back +0.0); and a second batch norm after a linear layer stayed a layer, which the
    written file's reader then folded.  Oracles: the independent checker, torch."""
    from nnreduce import network_sha256
    from proofs import check_certificate

    torch.manual_seed(0)
    if model.startswith("linear"):
        m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.BatchNorm1d(4), nn.ReLU(),
                          nn.Linear(4, 2))
        shape: tuple[int, ...] = (3,)
        bns = [m[1], m[2]]
    else:
        conv = (nn.Conv2d(2, 2, 2, groups=2) if model.startswith("depthwise")
                else nn.Conv2d(2, 2, 2, dilation=2))
        m = nn.Sequential(conv, nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                          nn.Linear(2 * (3 if model.startswith("depthwise") else 2) ** 2, 2))
        shape = (2, 4, 4)
        bns = [m[1]]
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(torch.linspace(-1.0, 0.5, bn.num_features))
            bn.running_mean.copy_(torch.linspace(-0.2, 0.3, bn.num_features))
    m = m.double().eval()
    torch.save(m, tmp_path / "m.pt")
    net = load_network(tmp_path / "m.pt", input_shape=shape)
    x = np.random.default_rng(1).standard_normal((4, *shape))
    with torch.no_grad():
        np.testing.assert_allclose(evaluate(net, x), m(torch.tensor(x)).numpy(), rtol=1e-12,
                                   atol=1e-12)
    red = reduce_network(net)
    out = tmp_path / f"r{ext}"
    save_network(red.network, out)
    back = load_network(out, input_shape=shape)
    assert network_sha256(back) == network_sha256(red.network)
    assert check_certificate(net, back, red.certificate).valid


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m["layers"][1].update(alpha="1/0"),
     r"layer 1 \('activation'\): '1/0' is not a rational number"),
    (lambda m: m["layers"][1].pop("kind"),
     r"layer 1 \('activation'\) lacks the key 'kind' in '__lumpkit__'"),
    (lambda m: m.pop("input_shape"), r"'__lumpkit__' needs 'input_shape', a list of integers"),
    (lambda m: m["layers"].insert(0, {"type": "avgpool2d", "kernel": [1], "stride": [1],
                                      "padding": [0, 0, 0, 0], "count_include_pad": "false"}),
     r"layer 0 \('avgpool2d'\): AvgPool2d\.kernel"),
])
def test_a_bad_npz_description_names_the_layer_and_key(edit: Any, message: str,
                                                       tmp_path: Path) -> None:
    """A hand-edited .npz description: the error names the layer (index and type) and
    the key or value, not just "damaged (KeyError: 'kind')" or a value without a place."""
    import json

    from lumpcore import ModelFormatError
    from nnreduce import Activation, Dense, Network

    net = Network((Dense(np.eye(2), np.zeros(2)), Activation("leaky_relu", alpha=0.25),
                   Dense(np.ones((1, 2)), np.zeros(1))), (2,))
    save_network(net, tmp_path / "m.npz")
    arrays = dict(np.load(tmp_path / "m.npz", allow_pickle=False))
    meta = json.loads(str(arrays["__lumpkit__"]))
    edit(meta)
    arrays["__lumpkit__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ModelFormatError, match=message) as info:
        load_network(tmp_path / "bad.npz")
    assert str(info.value).startswith(str(tmp_path / "bad.npz")) and "\n" not in str(info.value)


def test_an_empty_clipping_box_is_refused_by_the_normalisation() -> None:
    """min above max, as the .nnet reader refuses it, whatever the network comes from."""
    from lumpcore import ModelFormatError
    from nnreduce import Normalization

    with pytest.raises(ModelFormatError, match=r"input 1 has minimum 3 above its maximum 1"):
        Normalization([0], [1], [0], [1], input_min=[0, 3], input_max=[1])
    Normalization([0], [1], [0], [1], input_min=[0, 1], input_max=[1])  # (equal: a point)


@pytest.mark.parametrize("post", ["prelu", "batchnorm"])
def test_a_certificate_claiming_more_neurons_than_the_layer_is_refused(post: str) -> None:
    """A certificate that claims one more neuron (and a block for it) than a layer has,
    the layer followed by per-channel parameters: the checker indexed those parameters
    with the claimed representatives before it compared the counts, and raised an
    IndexError (the command line printed a traceback and exit 1, the code of a
    counterexample).  It must name the violation.  Found by a proofs fuzz."""
    from nnreduce import Activation, BatchNorm, Dense, Network
    from proofs import check_certificate

    w = np.array([[1.0], [2.0], [-1.0]])
    per_channel: Any = (Activation("prelu", slopes=np.array([0.25, 0.25, 0.5]))
                        if post == "prelu" else
                        BatchNorm(np.array([1.0, 1.0, 2.0]), np.array([0.0, 0.0, 1.0])))
    layers = [Dense(w, np.array([0.0, 0.0, 1.0])), per_channel]
    if post == "batchnorm":
        layers.append(Activation("relu"))
    net = Network((*layers, Dense(np.ones((1, 3)), np.zeros(1))), (1,))
    red = reduce_network(net)
    assert check_certificate(net, red.network, red.certificate).valid
    entry = red.certificate["layers"][0]
    entry["neurons_before"] += 1
    entry["blocks"].append([entry["neurons_before"] - 1])
    entry["rho"].append(["1"])
    entry["neurons_after"] += 1
    res = check_certificate(net, red.network, red.certificate)
    assert not res.valid and res.condition == "neurons_before"
    assert res.values == {"certificate": "4", "network": "3"}


@pytest.mark.parametrize("key", ["removed", "combined", "unused"])
@pytest.mark.parametrize("value", [0, "", False, {}, None])
def test_optional_certificate_lists_must_be_lists(key: str, value: Any) -> None:
    """``removed``, ``combined`` and ``unused`` are lists (absent: empty); a falsy
    non-list (0, "", false, {}, null) was read as an empty list."""
    from lumpcore import CertificateError
    from nnreduce import Activation, Dense, Network
    from proofs import check_certificate

    net = Network((Dense(np.array([[1.0], [2.0]]), np.zeros(2)), Activation("relu"),
                   Dense(np.ones((1, 2)), np.zeros(1))), (1,))
    red = reduce_network(net)
    red.certificate["layers"][0][key] = value
    with pytest.raises(CertificateError, match=rf"'{key}' must be a list"):
        check_certificate(net, red.network, red.certificate)


class ReLU(nn.Module):
    """A user class named like torch's ReLU that computes something else."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, 1.0)


class Conv2d(nn.Conv2d):
    """Weight standardisation (as in the WeightStandardization repositories): a torch
    Conv2d subclass whose forward convolves with a transformed kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        w = (w - w.mean(dim=(1, 2, 3), keepdim=True)) / (w.std(dim=(1, 2, 3),
                                                               keepdim=True) + 1e-5)
        return nn.functional.conv2d(x, w, self.bias)


class Sequential(nn.Sequential):
    """An nn.Sequential subclass with a residual forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)


@pytest.mark.parametrize(("case", "save"), [
    (case, save) for case in ("relu", "conv", "residual sequential")
    for save in ("pickle", "script", "trace")
    if (case, save) != ("residual sequential", "script")])  # (torch cannot script that one)
def test_a_user_class_named_like_a_torch_layer_is_not_read_as_it(case: str, save: str,
                                                                 tmp_path: Path) -> None:
    """User classes named ReLU, Conv2d or Sequential were read by their names: as a relu,
    as a plain convolution, as a chain (the residual dropped), though they compute
    otherwise; TorchScript keeps only the name.  Each is read as what it computes (a
    pickle's forward is traced) or refused, never read as the torch layer.  Found by a
    TorchScript fuzz.  Oracle: torch running the module."""
    torch.manual_seed(3)
    shape: tuple[int, ...]
    if case == "relu":
        model: Any = nn.Sequential(nn.Linear(3, 4), ReLU(), nn.Linear(4, 2))
        shape = (3,)
    elif case == "conv":
        model = nn.Sequential(Conv2d(2, 3, 2), nn.ReLU(), nn.Flatten(), nn.Linear(27, 2))
        shape = (2, 4, 4)
    else:
        model = Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3))
        shape = (3,)
    model = model.double().eval()
    x = torch.randn(5, *shape, dtype=torch.float64) * 2
    path = tmp_path / "m.pt"
    if save == "pickle":
        torch.save(model, path)
    elif save == "script":
        torch.jit.save(torch.jit.script(model), str(path))
    else:
        torch.jit.save(torch.jit.trace(model, x), str(path))
    try:
        net = load_network(path, input_shape=shape)
    except UnsupportedLayerError as exc:  # refused: by what it is, not a false layer
        assert "\n" not in str(exc)
        return
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(evaluate(net, x.numpy()), want, rtol=1e-10, atol=1e-10)


def test_a_child_in_training_mode_is_warned_about() -> None:
    """A batch norm left in training mode inside a model in eval mode computes with the
    batch's statistics: the warning looked at the model's own flag only."""
    from lumpcore import LumpkitWarning
    from nnreduce import from_torch

    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(),
                          nn.Linear(4, 2)).double().eval()
    model[1].train()
    with pytest.warns(LumpkitWarning, match=r"layers in training mode \(BatchNorm1d\)"):
        from_torch(model)


@pytest.mark.parametrize("slope", [float("inf"), float("nan")])
def test_a_non_finite_leaky_relu_slope_is_named(slope: float) -> None:
    """nn.LeakyReLU(inf) (or F.leaky_relu(x, inf) in a traced forward) was refused by the
    number parser, naming no module."""
    from lumpcore import ModelFormatError
    from nnreduce import from_torch

    model = nn.Sequential(nn.Linear(2, 2), nn.LeakyReLU(slope), nn.Linear(2, 1)).eval()
    with pytest.raises(ModelFormatError, match=r"module 1 \(LeakyReLU '1'\): LeakyReLU "
                                                r"negative_slope (inf|nan); it must be a finite"):
        from_torch(model)

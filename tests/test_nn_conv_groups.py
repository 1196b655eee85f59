"""Grouped (depthwise too) and dilated 2-D convolutions: read as the plain convolution they
equal, reduced, certified, and written back with ``group``/``dilations``.

Oracles: PyTorch and onnxruntime run the same models (on dyadic weights and
inputs every sum is exact in float64, so torch's float64 output, ``evaluate``
and ``evaluate_exact`` must agree exactly); exact rational evaluation of the
original against the reduced network; ``proofs.check_certificate``; planted
redundancy gives the known channel counts.
"""

from __future__ import annotations

import json
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import examples

import proofs
from lumpcore import UnsupportedLayerError
from nnreduce import (
    Conv2d,
    _conv,
    evaluate,
    evaluate_exact,
    from_torch,
    load_network,
    reduce_network,
    save_network,
    to_torch,
)

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
nn = torch.nn
F = torch.nn.functional


# ----------------------------------------------------------------- helpers
def _dyadic(rng: np.random.Generator, shape: tuple[int, ...], nonzero: bool = True) -> Any:
    """Values ``k / 8`` with small ``k`` (non-zero unless told): exact in every float type,
    and so are their products and short sums."""
    k = rng.integers(1, 9, size=shape) * rng.choice([-1, 1], size=shape) if nonzero \
        else rng.integers(-8, 9, size=shape)
    return torch.tensor(k / 8.0)


def _set_dyadic(module: Any, rng: np.random.Generator) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(_dyadic(rng, tuple(p.shape)))


def _rational_inputs(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> list[Any]:
    nums = rng.integers(-9, 10, size=(n, *shape))
    dens = rng.integers(1, 5, size=(n, *shape))
    out = np.empty((n, *shape), dtype=object)
    out.reshape(-1)[:] = [Fraction(int(a), int(b)) for a, b in
                          zip(nums.reshape(-1), dens.reshape(-1), strict=True)]
    return list(out)


def _export_onnx(module: Any, shape: tuple[int, ...], path: Path) -> Path:
    """The legacy (TorchScript-based) exporter, with a dynamic batch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(2, *shape, dtype=next(module.parameters()).dtype),),
                          str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}})
    return path


def _ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dt = np.float64 if "double" in inp.type else np.float32
    return np.asarray(sess.run(None, {inp.name: x.astype(dt)})[0], dtype=np.float64)


def _conv_attrs(path: Path) -> list[dict[str, Any]]:
    """``group``, ``dilations`` and the weight shape of every Conv node of an ONNX file."""
    model = onnx.load(str(path))
    inits = {i.name: tuple(i.dims) for i in model.graph.initializer}
    out = []
    for n in model.graph.node:
        if n.op_type == "Conv":
            at = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            out.append({"group": int(at.get("group", 1)),
                        "dilations": tuple(at.get("dilations", [1, 1])),
                        "weight": inits[n.input[1]]})
    return out


def _torch_out(module: Any, x: np.ndarray) -> np.ndarray:
    dt = next(module.parameters()).dtype
    with torch.no_grad():
        return np.asarray(module(torch.tensor(x, dtype=dt)).double().numpy())


# ------------------------------------------- nn.Conv2d with groups / dilation
@st.composite
def _conv_specs(draw: Any) -> dict[str, Any]:
    """Depthwise (groups = C, with a depth multiplier), grouped, dilated, or both, with
    random kernels, strides and paddings on an input the dilated kernel fits."""
    depthwise = draw(st.booleans())
    groups = draw(st.integers(2, 4)) if depthwise else draw(st.integers(1, 3))
    cg = 1 if depthwise else draw(st.integers(1, 2))
    og = draw(st.integers(1, 2))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    hw = tuple((k[i] - 1) * d[i] + 1 + draw(st.integers(0, 3)) for i in range(2))
    return {"c": groups * cg, "o": groups * og, "groups": groups, "kernel": k, "dilation": d,
            "stride": s, "padding": p, "hw": hw}


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=_conv_specs(), seed=st.integers(0, 2**31))
def test_torch_grouped_dilated_conv_is_read_and_written_exactly(spec: dict[str, Any],
                                                                seed: int) -> None:
    rng = np.random.default_rng(seed)
    conv = nn.Conv2d(spec["c"], spec["o"], spec["kernel"], stride=spec["stride"],
                     padding=spec["padding"], dilation=spec["dilation"], groups=spec["groups"])
    m = nn.Sequential(conv, nn.ReLU()).double().eval()
    _set_dyadic(m, rng)
    shape = (spec["c"], *spec["hw"])
    net = from_torch(m, shape)
    x = np.asarray(_dyadic(rng, (3, *shape), nonzero=False).numpy())
    want = _torch_out(m, x)
    got = evaluate(net, x)
    assert got.shape == want.shape
    assert np.array_equal(got, want)  # dyadic: both are exact
    exact = evaluate_exact(net, x)
    assert exact.tolist() == [[[[Fraction(v) for v in row] for row in ch] for ch in item]
                              for item in got.tolist()]
    # written back as the same small convolution (a dilation of a 1-tap axis is no dilation)
    back = to_torch(net, "float64")
    assert back[0].groups == spec["groups"]
    assert back[0].dilation == tuple(d if k > 1 else 1 for d, k in
                                     zip(spec["dilation"], spec["kernel"], strict=True))
    assert tuple(back[0].weight.shape) == tuple(conv.weight.shape)
    assert np.array_equal(_torch_out(back, x), want)


@settings(max_examples=examples(60), deadline=None)
@given(o=st.integers(1, 6), c=st.integers(1, 6), kh=st.integers(1, 5), kw=st.integers(1, 5),
       density=st.sampled_from([0.0, 0.2, 0.5, 1.0]), seed=st.integers(0, 2**31))
def test_compacting_any_weight_loses_nothing(o: int, c: int, kh: int, kw: int, density: float,
                                             seed: int) -> None:
    """Any zero pattern: the compact form expands back to the very same weight, and is not
    larger; a weight made by expanding is found again with its groups and dilation."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-3, 4, size=(o, c, kh, kw)) * (rng.random((o, c, kh, kw)) < density)
    w = w.astype(np.float64)
    small, g, d = _conv.compact_conv_weight(w)
    assert small.size <= w.size and o % g == 0 and c % g == 0
    assert np.array_equal(_conv.expand_conv_weight(small, g, d, c, "conv"), w)
    # planted: groups g2 and dilation d2 of a weight without zeros
    g2 = int(rng.integers(1, 4))
    d2 = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    core = rng.integers(1, 4, size=(o * g2, c, kh, kw)).astype(np.float64)
    big = _conv.expand_conv_weight(core, g2, d2, c * g2, "conv")
    found, g3, d3 = _conv.compact_conv_weight(big)
    assert g3 == g2 and d3 == (d2[0] if kh > 1 else 1, d2[1] if kw > 1 else 1)
    assert np.array_equal(found, core)


class _SeparableNet(nn.Module):
    """Stem, dilated depthwise, pointwise, grouped dilated conv, dense head (a custom forward)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=6)
        self.pw = nn.Conv2d(6, 8, 1)
        self.gc = nn.Conv2d(8, 4, (3, 2), stride=(1, 2), padding=(1, 0), dilation=(2, 3),
                            groups=2)
        self.fc = nn.Linear(4 * 4 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = F.relu6(self.dw(x))
        x = F.relu(self.pw(x))
        x = F.relu(self.gc(x))
        return self.fc(torch.flatten(x, 1))


def test_custom_module_with_grouped_dilated_convs_through_fx_matches_torch() -> None:
    torch.manual_seed(3)
    m = _SeparableNet().eval()
    net = from_torch(m, input_shape=(3, 12, 12))
    assert [lyr.weight.shape for lyr in net.layers if isinstance(lyr, Conv2d)] == [
        (6, 3, 3, 3), (6, 6, 5, 5), (8, 6, 1, 1), (4, 8, 5, 4)]
    x = np.random.default_rng(4).normal(size=(5, 3, 12, 12))
    np.testing.assert_allclose(evaluate(net, x), _torch_out(m, x), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------- ONNX
_ONNX_CASES: dict[str, dict[str, Any]] = {
    "depthwise": {"c": 4, "o": 4, "kernel": 3, "groups": 4, "dilation": 1, "stride": 1,
                  "padding": 1},
    "depthwise-x2": {"c": 3, "o": 6, "kernel": 3, "groups": 3, "dilation": 1, "stride": 2,
                     "padding": 1},
    "grouped": {"c": 6, "o": 4, "kernel": (3, 2), "groups": 2, "dilation": 1,
                "stride": (2, 1), "padding": (1, 0)},
    "dilated-2": {"c": 3, "o": 4, "kernel": 3, "groups": 1, "dilation": 2, "stride": 1,
                  "padding": 2},
    "dilated-2-3": {"c": 3, "o": 4, "kernel": (3, 2), "groups": 1, "dilation": (2, 3),
                    "stride": (1, 2), "padding": (2, 1)},
    "grouped-dilated": {"c": 4, "o": 6, "kernel": 3, "groups": 2, "dilation": (3, 2),
                        "stride": 2, "padding": (1, 3)},
}


def _pair(v: Any) -> tuple[int, ...]:
    return (v, v) if isinstance(v, int) else tuple(v)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("case", sorted(_ONNX_CASES))
def test_onnx_grouped_dilated_conv_matches_onnxruntime_and_round_trips(tmp_path: Path,
                                                                       case: str) -> None:
    """torch.onnx.export writes group/dilations; lumpkit reads them (oracle onnxruntime)
    and writes the same small Conv back, to ONNX and to .pt (oracles onnxruntime, torch)."""
    spec = _ONNX_CASES[case]
    torch.manual_seed(5)
    conv = nn.Conv2d(spec["c"], spec["o"], spec["kernel"], stride=spec["stride"],
                     padding=spec["padding"], dilation=spec["dilation"], groups=spec["groups"])
    shape = (spec["c"], 9, 10)
    n = int(conv(torch.zeros(1, *shape)).numel())
    m = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(n, 3)).eval()
    path = _export_onnx(m, shape, tmp_path / "m.onnx")
    written = _conv_attrs(path)
    assert written[0]["group"] == spec["groups"]
    assert written[0]["dilations"] == _pair(spec["dilation"])
    net = load_network(path)
    x = np.random.default_rng(6).normal(size=(4, *shape))
    want = _torch_out(m, x)
    np.testing.assert_allclose(_ort_run(path, x), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(evaluate(net, x), _ort_run(path, x), rtol=1e-5, atol=1e-5)
    out = tmp_path / "back.onnx"
    save_network(net, out)
    assert _conv_attrs(out) == written  # the same group, dilations and weight size
    np.testing.assert_allclose(_ort_run(out, x), want, rtol=1e-5, atol=1e-5)
    for script in (False, True):
        pt = tmp_path / f"back{script}.pt"
        save_network(net, pt, torchscript=script, dtype="float64")
        mod = torch.jit.load(str(pt)) if script else torch.load(str(pt), weights_only=False)
        np.testing.assert_allclose(_torch_out(mod, x), want, rtol=1e-5, atol=1e-5)
        again = load_network(pt)  # groups / dilation read back, TorchScript too
        assert np.array_equal(again.layers[0].weight, net.layers[0].weight)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("stride", [1, 2])
def test_onnx_auto_pad_same_pads_for_the_dilated_kernel(tmp_path: Path, auto_pad: str,
                                                        stride: int) -> None:
    """SAME_* padding is computed for the dilated kernel's extent, so that the output is
    ``ceil(n / stride)``.  Oracle: ONNX's reference evaluator (onnxruntime refuses a dilated
    Conv with SAME_* padding; it runs the same Conv with the pads written out)."""
    from nn_helpers import save_onnx_graph
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(7)
    w = rng.normal(size=(6, 2, 3, 2)).astype(np.float32)
    path = save_onnx_graph(
        tmp_path / "same.onnx",
        [helper.make_node("Conv", ["x", "w", "b"], ["h"], group=2, dilations=[2, 3],
                          strides=[stride, stride], auto_pad=auto_pad),
         helper.make_node("Relu", ["h"], ["y"])],
        [None, 4, 7, 8], None,
        [numpy_helper.from_array(w, "w"),
         numpy_helper.from_array(rng.normal(size=6).astype(np.float32), "b")])
    net = load_network(path)
    assert net.output_shape == (6, -(-7 // stride), -(-8 // stride))
    x = rng.normal(size=(3, 4, 7, 8))
    want = ReferenceEvaluator(str(path)).run(None, {"x": x.astype(np.float32)})[0]
    assert want.shape[1:] == net.output_shape
    np.testing.assert_allclose(evaluate(net, x), want, rtol=1e-5, atol=1e-5)
    save_network(net, tmp_path / "explicit.onnx")  # explicit pads: onnxruntime runs it
    np.testing.assert_allclose(_ort_run(tmp_path / "explicit.onnx", x), want, rtol=1e-5,
                               atol=1e-5)


# ------------------------------------------------------- planted redundancy
_Planted = tuple[Any, tuple[int, ...], list[int], list[int]]


def _planted_depthwise(rng: np.random.Generator) -> _Planted:
    """Stem with channel 3 = 2 * channel 0 and channel 5 = channel 1 / 2 (ReLU), then a
    dilated depthwise conv whose channel 3 = 3 * channel 0 and channel 5 = channel 1 / 4.
    Returns the module, its input shape, the hidden channel counts after the reduction and
    the groups of its convolutions then (the depthwise one stays depthwise: 4 groups)."""
    m = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(),
                      nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=6), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 3 * 3, 3)).double().eval()
    _set_dyadic(m, rng)
    stem, dw = m[0], m[2]
    with torch.no_grad():
        stem.weight[3], stem.bias[3] = 2 * stem.weight[0], 2 * stem.bias[0]
        stem.weight[5], stem.bias[5] = stem.weight[1] / 2, stem.bias[1] / 2
        # out3 = f3 * (2 in0) + b3 = 3 (f0 in0 + b0); out5 = f5 * (in1 / 2) + b5 = out1 / 4
        dw.weight[3], dw.bias[3] = 1.5 * dw.weight[0], 3 * dw.bias[0]
        dw.weight[5], dw.bias[5] = dw.weight[1] / 2, dw.bias[1] / 4
    return m, (2, 6, 6), [4, 4], [1, 4]


def _planted_grouped(rng: np.random.Generator) -> _Planted:
    """Two groups of 4 outputs (inputs 0-1 and 2-3): channel 1 = 2 * channel 0 and channel
    6 = channel 5 / 4, each within its group; then a grouped dilated conv (2 groups).  The
    merged channels stay inside their groups, so both convolutions keep 2 groups."""
    m = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=2), nn.ReLU(),
                      nn.Conv2d(8, 4, 3, stride=2, padding=(1, 2), dilation=(1, 2), groups=2),
                      nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, 3)).double().eval()
    _set_dyadic(m, rng)
    first = m[0]
    with torch.no_grad():
        first.weight[1], first.bias[1] = 2 * first.weight[0], 2 * first.bias[0]
        first.weight[6], first.bias[6] = first.weight[5] / 4, first.bias[5] / 4
    return m, (4, 6, 6), [6, 4], [2, 2]


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("build", [_planted_depthwise, _planted_grouped])
def test_planted_redundancy_in_grouped_convs_reduces_exactly(tmp_path: Path, build: Any) -> None:
    rng = np.random.default_rng(8)
    m, shape, counts, groups = build(rng)
    net = from_torch(m, shape)
    red = reduce_network(net)
    assert [lr.neurons_after for lr in red.layers] == counts
    for x in _rational_inputs(rng, 3, shape):
        assert evaluate_exact(net, x).tolist() == evaluate_exact(red.network, x).tolist()
    assert red.certificate is not None
    verdict = proofs.check_certificate(net, red.network, red.certificate)
    assert verdict.valid, verdict.message
    # export the reduced network; the frameworks compute the original's outputs
    x = rng.normal(size=(4, *shape))
    want = _torch_out(m, x)
    np.testing.assert_allclose(evaluate(red.network, x), want, rtol=1e-12, atol=1e-12)
    save_network(red.network, tmp_path / "r.onnx", dtype="float32")  # onnxruntime: no float64 Conv
    np.testing.assert_allclose(_ort_run(tmp_path / "r.onnx", x), want, rtol=1e-5, atol=1e-5)
    for script in (False, True):
        pt = tmp_path / f"r{script}.pt"
        save_network(red.network, pt, torchscript=script, dtype="float64")
        mod = torch.jit.load(str(pt)) if script else torch.load(str(pt), weights_only=False)
        np.testing.assert_allclose(_torch_out(mod, x), want, rtol=1e-12, atol=1e-12)
    # merged channels kept the block pattern: written back grouped
    assert [a["group"] for a in _conv_attrs(tmp_path / "r.onnx")] == groups


def test_unreduced_depthwise_net_is_written_back_depthwise(tmp_path: Path) -> None:
    """Nothing merges in a random depthwise-separable net: its export has group = C and the
    original weight sizes, in ONNX and in PyTorch."""
    torch.manual_seed(9)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                      nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
                      nn.Conv2d(8, 5, 1), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 6 * 6, 2)).eval()
    shape = (3, 6, 6)
    red = reduce_network(from_torch(m, shape))
    assert red.neurons_after == red.neurons_before
    save_network(red.network, tmp_path / "r.onnx", dtype="float32")  # onnxruntime: no float64 Conv
    attrs = _conv_attrs(tmp_path / "r.onnx")
    assert [a["group"] for a in attrs] == [1, 8, 1]
    assert [a["weight"] for a in attrs] == [tuple(c.weight.shape) for c in m
                                           if isinstance(c, nn.Conv2d)]
    # held expanded, counted (and written) small
    assert red.network.num_params == sum(p.numel() for p in m.parameters())
    seq = to_torch(red.network)
    assert [c.groups for c in seq if isinstance(c, nn.Conv2d)] == [1, 8, 1]
    assert sum(p.numel() for p in seq.parameters()) == sum(p.numel() for p in m.parameters())
    x = np.random.default_rng(10).normal(size=(3, *shape))
    np.testing.assert_allclose(_ort_run(tmp_path / "r.onnx", x), _torch_out(m, x), rtol=1e-5,
                               atol=1e-5)


# ------------------------------------------------------------- memory guard
def test_expansion_too_large_is_refused_with_the_layer_named(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """The guard needs both bounds exceeded (ratio and bytes); the thresholds are lowered
    here so that an 8-fold expansion of 4.5 KiB trips it."""
    m = nn.Sequential(nn.Conv2d(8, 8, 3, groups=8), nn.ReLU(), nn.Flatten(),
                      nn.Linear(8 * 3 * 3, 2)).eval()
    shape = (8, 5, 5)
    path = _export_onnx(m, shape, tmp_path / "dw.onnx")
    monkeypatch.setattr(_conv, "MAX_EXPANSION_RATIO", 4)
    monkeypatch.setattr(_conv, "MAX_EXPANSION_BYTES", 1024)
    with pytest.raises(UnsupportedLayerError,
                       match=r"module 0 \(Conv2d '0'\): .*groups=8.*shape \(8, 8, 3, 3\).*"
                             r"8 times the original.*refused"):
        from_torch(m, shape)
    with pytest.raises(UnsupportedLayerError, match=r"dw\.onnx: node 0 \(Conv .*groups=8.*refused"):
        load_network(path)
    # one bound alone is not enough
    monkeypatch.setattr(_conv, "MAX_EXPANSION_BYTES", 2**20)
    assert from_torch(m, shape).layers[0].weight.shape == (8, 8, 3, 3)
    monkeypatch.setattr(_conv, "MAX_EXPANSION_RATIO", 64)
    monkeypatch.setattr(_conv, "MAX_EXPANSION_BYTES", 1024)
    assert load_network(path).layers[0].weight.shape == (8, 8, 3, 3)


# --------------------------------------------------------------------- CLI
def _mobilenet_block(rng: np.random.Generator) -> Any:
    """Stem, depthwise 3x3 and pointwise 1x1, each with batch norm (eps 0, variance 4: the
    folding is exact), ReLU6 / ReLU, global average pooling and a dense head.  Planted:
    stem and depthwise channel 5 = channel 2 (ReLU6 allows factor 1 only), pointwise
    channel 10 = 2 * channel 3 (ReLU)."""
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8, eps=0.0),
        nn.ReLU6(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8, eps=0.0),
        nn.ReLU6(),
        nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16, eps=0.0), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)).eval()
    _set_dyadic(m, rng)
    with torch.no_grad():
        for bn in (m[1], m[4], m[7]):
            bn.running_mean.copy_(_dyadic(rng, tuple(bn.running_mean.shape), nonzero=False))
            bn.running_var.fill_(4.0)
        for conv, bn in ((m[0], m[1]), (m[3], m[4])):
            conv.weight[5] = conv.weight[2]
            for t in (bn.weight, bn.bias, bn.running_mean):
                t[5] = t[2]
        m[6].weight[10] = 2 * m[6].weight[3]
        m[7].weight[10] = m[7].weight[3]
        m[7].bias[10], m[7].running_mean[10] = 2 * m[7].bias[3], 2 * m[7].running_mean[3]
    return m


def test_cli_reduces_a_mobilenet_block_from_onnx(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from lumpkit._cli import main

    rng = np.random.default_rng(12)
    m = _mobilenet_block(rng)
    shape = (3, 8, 8)
    model = _export_onnx(m, shape, tmp_path / "mobile.onnx")
    assert max(a["group"] for a in _conv_attrs(model)) == 8
    assert main(["nn", "reduce", str(model), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["neurons_before"], out["neurons_after"]) == (32, 29)
    assert [(lr["before"], lr["after"]) for lr in out["layers"]] == [(8, 7), (8, 7), (16, 15)]
    reduced = tmp_path / "mobile.reduced.onnx"
    assert [a["group"] for a in _conv_attrs(reduced)] == [1, 7, 1]  # still depthwise
    x = rng.normal(size=(5, *shape))
    np.testing.assert_allclose(_ort_run(reduced, x), _ort_run(model, x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_ort_run(model, x), _torch_out(m, x), rtol=1e-5, atol=1e-5)
    cert = json.loads((tmp_path / "mobile.reduced.certificate.json").read_text())
    verdict = proofs.check_certificate(load_network(model), load_network(reduced), cert)
    assert verdict.valid, verdict.message


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize(("kernel", "dilation"), [(3, 1), (4, 1), ((2, 5), (3, 1)), (3, 2)])
def test_same_padding_and_zero_pad_read_and_written(tmp_path: Path, kernel: Any,
                                                     dilation: Any) -> None:
    """nn.Conv2d(padding='same') (asymmetric for even kernels) and nn.ZeroPad2d before a conv
    are read as the conv's padding; an asymmetric padding is written as nn.ZeroPad2d + Conv2d.
    Oracle: torch on the original and on the written modules."""
    torch.manual_seed(11)
    m = nn.Sequential(nn.Conv2d(2, 3, kernel, padding="same", dilation=dilation), nn.ReLU(),
                      nn.ZeroPad2d((1, 0, 2, 1)), nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten(),
                      nn.LazyLinear(2)).double()
    x = np.random.default_rng(12).normal(size=(3, 2, 7, 7))
    want = _torch_out(m.eval(), x)  # materialises the lazy linear layer
    net = from_torch(m.eval(), (2, 7, 7))
    np.testing.assert_allclose(evaluate(net, x), want, rtol=1e-12, atol=1e-12)
    assert net.layers[2].padding == (2, 1, 1, 0)  # (top, left, bottom, right)
    for script in (False, True):
        pt = tmp_path / f"p{script}.pt"
        save_network(net, pt, torchscript=script)
        mod = torch.jit.load(str(pt)) if script else torch.load(str(pt), weights_only=False)
        np.testing.assert_allclose(_torch_out(mod, x), want, rtol=1e-12, atol=1e-12)
        assert load_network(pt).layers[2].padding == (2, 1, 1, 0)


def test_zero_pad_not_before_a_conv_is_refused() -> None:
    with pytest.raises(UnsupportedLayerError, match="ZeroPad2d"):
        from_torch(nn.Sequential(nn.Conv2d(1, 1, 1), nn.ZeroPad2d(1), nn.ReLU()).eval(),
                   (1, 3, 3))
    with pytest.raises(UnsupportedLayerError, match=r"padding with 0\.5"):
        from_torch(nn.Sequential(nn.ConstantPad2d(1, 0.5), nn.Conv2d(1, 1, 1)).eval(), (1, 3, 3))

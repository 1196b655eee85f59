"""The smooth and hard element-wise activations (ELU, SELU, CELU, SiLU, softplus, softsign,
hard sigmoid, hard swish, mish, tanh-GELU) through the model, the formats, the reduction and
the checkers.

Oracles: mpmath computes the defining formulas to 50 digits; PyTorch and onnxruntime run
the same functions and models (built by the frameworks themselves, or exported by
lumpkit); the certificate is checked by ``proofs``; z3 decides the piecewise-linear hard
sigmoid; the canonical hash is recomputed from the format document; planted duplicates
give the known neuron count.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lumpcore import LumpkitError, ModelFormatError, UnsupportedLayerError
from nnreduce import (
    Activation,
    Dense,
    Network,
    evaluate,
    evaluate_exact,
    from_torch,
    load_network,
    network_sha256,
    reduce_network,
    save_certificate,
    save_network,
)

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from nn_helpers import save_onnx_graph  # noqa: E402

F = torch.nn.functional

#: One activation of every new kind (with parameters where it has them), by name.
ACTS = {
    "elu": Activation("elu", alpha=Fraction(7, 10)),
    "selu": Activation("selu"),
    "celu": Activation("celu", alpha=Fraction(13, 10)),
    "silu": Activation("silu"),
    "softplus": Activation("softplus"),
    "softplus_t": Activation("softplus", threshold=20),
    "softsign": Activation("softsign"),
    "hard_sigmoid": Activation("hard_sigmoid"),
    "hard_sigmoid_onnx": Activation("hard_sigmoid", alpha=0.2, beta=Fraction(1, 2)),
    "hard_swish": Activation("hard_swish"),
    "hard_swish_other": Activation("hard_swish", alpha=Fraction(1, 4), beta=Fraction(3, 8)),
    "mish": Activation("mish"),
    "gelu_tanh": Activation("gelu_tanh"),
}
#: The PyTorch modules computing the activations that PyTorch has.
MODULES: dict[str, Callable[[], Any]] = {
    "elu": lambda: torch.nn.ELU(0.7), "selu": torch.nn.SELU, "celu": lambda: torch.nn.CELU(1.3),
    "silu": torch.nn.SiLU, "softplus_t": torch.nn.Softplus, "softsign": torch.nn.Softsign,
    "hard_sigmoid": torch.nn.Hardsigmoid, "hard_swish": torch.nn.Hardswish,
    "mish": torch.nn.Mish, "gelu_tanh": lambda: torch.nn.GELU(approximate="tanh"),
}
#: The same as functionals, for custom modules read through torch.fx.
FUNCTIONALS: dict[str, Callable[[Any], Any]] = {
    "elu": lambda h: F.elu(h, alpha=0.7), "selu": torch.selu, "celu": lambda h: F.celu(h, 1.3),
    "silu": F.silu, "softplus_t": F.softplus, "softsign": F.softsign,
    "hard_sigmoid": F.hardsigmoid, "hard_swish": F.hardswish, "mish": F.mish,
    "gelu_tanh": lambda h: F.gelu(h, approximate="tanh"),
}
NON_PL = [name for name in ACTS if not name.startswith("hard_sigmoid")]
#: The activations that are not rational functions.
SMOOTH = [name for name in ACTS if ACTS[name].kind not in ("softsign", "hard_sigmoid",
                                                             "hard_swish")]


def _torch_reference(act: Activation, t: Any) -> Any:
    """PyTorch's own float64 computation of ``act`` (torch.logaddexp for the softplus
    without threshold, which no nn.Softplus has)."""
    kind, a = act.kind, None if act.alpha is None else float(act.alpha)
    if kind == "softplus":
        return (torch.logaddexp(t, torch.zeros_like(t)) if act.threshold is None
                else F.softplus(t, threshold=float(act.threshold)))
    if kind in ("hard_sigmoid", "hard_swish") and (act.alpha, act.beta) != (
            Fraction(1, 6), Fraction(1, 2)):
        hs = torch.clamp(float(act.alpha) * t + float(act.beta or 0), 0.0, 1.0)
        return hs if kind == "hard_sigmoid" else t * hs
    return {"elu": lambda: F.elu(t, alpha=a), "selu": lambda: F.selu(t),
            "celu": lambda: F.celu(t, alpha=a), "silu": lambda: F.silu(t),
            "softsign": lambda: F.softsign(t), "hard_sigmoid": lambda: F.hardsigmoid(t),
            "hard_swish": lambda: F.hardswish(t), "mish": lambda: F.mish(t),
            "gelu_tanh": lambda: F.gelu(t, approximate="tanh")}[kind]()


def _mp(act: Activation, v: float) -> Any:
    """The defining formula of ``act`` at ``v``, in 50-digit arithmetic."""
    mpmath.mp.dps = 50
    x = mpmath.mpf(v)
    a = None if act.alpha is None else mpmath.mpf(act.alpha.numerator) / act.alpha.denominator
    kind = act.kind

    def softplus(y: Any) -> Any:
        return mpmath.log1p(mpmath.exp(y))

    if kind == "elu":
        return x if x > 0 else a * mpmath.expm1(x)
    if kind == "celu":
        return x if x > 0 else a * mpmath.expm1(x / a)
    if kind == "selu":
        alpha = mpmath.mpf("1.6732632423543772848170429916717")
        scale = mpmath.mpf("1.0507009873554804934193349852946")
        return scale * (x if x > 0 else alpha * mpmath.expm1(x))
    if kind == "silu":
        return x / (1 + mpmath.exp(-x))
    if kind == "softplus":
        t = act.threshold
        return x if t is not None and x > mpmath.mpf(t.numerator) / t.denominator \
            else softplus(x)
    if kind == "mish":
        return x * mpmath.tanh(softplus(x))
    assert kind == "gelu_tanh"
    # 1 + tanh(u) cancels for u << 0 (about 2 |u| / ln 10 digits): enough of them
    u = math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)
    with mpmath.workdps(60 + int(abs(u))):
        inner = mpmath.sqrt(2 / mpmath.pi) * (x + mpmath.mpf("0.044715") * x ** 3)
        return x / 2 * (1 + mpmath.tanh(inner))


def _one_layer(act: Activation, n: int) -> Network:
    return Network((act,), (n,))


# ------------------------------------------------------------------ the model
def test_parameters_are_exact_checked_and_named() -> None:
    assert Activation("elu").alpha == 1 and Activation("celu").alpha == 1
    hs = Activation("hard_sigmoid", alpha=0.2)
    assert hs.alpha == Fraction(0.2) and hs.beta == Fraction(1, 2)  # 0.2 at its binary value
    assert Activation("hard_swish").alpha == Fraction(1, 6)
    assert Activation("softplus").threshold is None
    assert Activation("softplus", threshold="41/2").threshold == Fraction(41, 2)
    for kind, kw in [("elu", {"alpha": float("nan")}), ("celu", {"alpha": float("inf")}),
                     ("hard_sigmoid", {"beta": float("nan")}),
                     ("softplus", {"threshold": float("nan")})]:
        with pytest.raises(ModelFormatError, match=rf"Activation\('{kind}'\): \w+ = (nan|inf)"):
            Activation(kind, **kw)
    with pytest.raises(ModelFormatError, match="alpha = 0 divides by zero"):
        Activation("celu", alpha=0)
    with pytest.raises(ModelFormatError, match="takes no alpha"):
        Activation("selu", alpha=1)
    with pytest.raises(ModelFormatError, match="takes no beta"):
        Activation("elu", beta=1)
    with pytest.raises(ModelFormatError, match="takes no threshold"):
        Activation("silu", threshold=20)
    assert not any(a.positively_homogeneous for a in ACTS.values())


@given(xs=st.lists(st.floats(-60, 60), min_size=1, max_size=12),
       name=st.sampled_from(SMOOTH),
       alpha=st.fractions(Fraction(1, 10), 5, max_denominator=64))
def test_smooth_activations_match_their_definition_and_torch(xs: list[float], name: str,
                                                             alpha: Fraction) -> None:
    act = ACTS[name]
    if act.kind in ("elu", "celu"):
        act = Activation(act.kind, alpha=alpha)
    got = evaluate(_one_layer(act, len(xs)), np.array(xs))
    want = np.array([float(_mp(act, v)) for v in xs])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-290)
    ref = _torch_reference(act, torch.tensor(xs, dtype=torch.float64)).numpy()
    # torch's own float64 tanh-GELU loses digits where 1 + tanh cancels: absolute 1e-14
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


@given(xs=st.lists(st.fractions(-20, 20, max_denominator=1000), min_size=1, max_size=10),
       name=st.sampled_from(["softsign", "hard_sigmoid", "hard_sigmoid_onnx", "hard_swish",
                             "hard_swish_other"]))
def test_rational_activations_are_exact(xs: list[Fraction], name: str) -> None:
    act = ACTS[name]
    got = evaluate_exact(_one_layer(act, len(xs)), xs).tolist()
    if act.kind == "softsign":
        want = [x / (1 + abs(x)) for x in xs]
    else:
        assert act.alpha is not None and act.beta is not None
        hs = [min(max(act.alpha * x + act.beta, Fraction(0)), Fraction(1)) for x in xs]
        want = hs if act.kind == "hard_sigmoid" else [x * h for x, h in zip(xs, hs, strict=True)]
    assert got == want
    ref = _torch_reference(act, torch.tensor([float(x) for x in xs], dtype=torch.float64))
    np.testing.assert_allclose(np.array(got, dtype=np.float64), ref.numpy(), rtol=1e-12,
                               atol=1e-15)


def test_exact_evaluation_of_smooth_activations() -> None:
    """The rounded pre-activation, taken exactly; ``x`` itself where the function is the
    identity (elu and celu for x > 0, softplus above its threshold)."""
    xs = [Fraction(1, 3), Fraction(-7, 3), Fraction(41, 2), Fraction(-1, 10**30)]
    for name in SMOOTH:
        act = ACTS[name]
        got = evaluate_exact(_one_layer(act, len(xs)), xs).tolist()
        floats = evaluate(_one_layer(act, len(xs)), np.array([float(x) for x in xs]))
        for x, g, f in zip(xs, got, floats.tolist(), strict=True):
            assert isinstance(g, Fraction)
            identity = (act.kind in ("elu", "celu") and x > 0) or (
                act.kind == "softplus" and act.threshold is not None and x > act.threshold)
            assert g == (x if identity else Fraction(f)), (name, x)
    with pytest.raises(ModelFormatError, match="exact evaluation needs finite values"):
        evaluate_exact(_one_layer(Activation("celu", alpha=-1), 1), [-1000])


# ------------------------------------------------------------------ the hash
def _rat(q: Fraction) -> str:
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"


def _spec_hash(net: Network) -> str:
    """The canonical hash as docs/certificate-format.md section 5 specifies it, for dense
    layers with float weights and activations (the kind's own keys only)."""
    def arr(a: np.ndarray) -> dict[str, Any]:
        raw = np.ascontiguousarray(a, "<f8").tobytes()
        return {"dtype": "float64", "shape": list(a.shape),
                "sha256": hashlib.sha256(raw).hexdigest()}

    layers: list[dict[str, Any]] = []
    for layer in net.layers:
        if isinstance(layer, Dense):
            layers.append({"type": "dense", "weight": arr(layer.weight),
                           "bias": arr(layer.bias)})
            continue
        assert isinstance(layer, Activation)
        entry: dict[str, Any] = {"type": "activation", "kind": layer.kind,
                                 "alpha": None if layer.alpha is None else _rat(layer.alpha),
                                 "slopes": None}
        if layer.kind == "clip":
            entry["bounds"] = [None if v is None else _rat(v) for v in layer.bounds or ()]
        if layer.kind in ("hard_sigmoid", "hard_swish"):
            entry["beta"] = _rat(layer.beta or Fraction(0))
        if layer.kind == "softplus" and layer.threshold is not None:
            entry["threshold"] = _rat(layer.threshold)
        layers.append(entry)
    obj = {"input_shape": list(net.input_shape), "normalization": None, "layers": layers}
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_hash_follows_the_format_document_old_kinds_unchanged() -> None:
    old = [Activation("relu"), Activation("leaky_relu", alpha=0.125), Activation("tanh"),
           Activation("sigmoid"), Activation("gelu"), Activation("identity"),
           Activation("clip", bounds=(0, 6))]
    dense = Dense(np.arange(6.0).reshape(3, 2) / 8, [0.5, -0.25, 1.0])
    hashes = set()
    for act in [*old, *ACTS.values()]:
        net = Network((dense, act), (2,))
        assert network_sha256(net) == _spec_hash(net), act.kind
        hashes.add(network_sha256(net))
    assert len(hashes) == len(old) + len(ACTS)  # every parameter is part of the hash


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_hash_of_arrays_hashed_on_threads_follows_the_format_document(
        monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    """Large float arrays are hashed several at once on worker threads; the hash must be the
    format document's, whatever the thread count (oracle: ``_spec_hash``, one thread)."""
    import types

    import nnreduce._hash as hash_mod

    monkeypatch.setattr(hash_mod, "_CONCURRENT_MIN", 1)  # every array counts as large
    monkeypatch.setattr(hash_mod, "numba", types.SimpleNamespace(get_num_threads=lambda: workers))
    rng = np.random.default_rng(5)
    layers: list[Any] = []
    for k, (n_out, n_in) in enumerate([(7, 5), (6, 7), (6, 6), (3, 6)]):
        dt = np.float32 if k % 2 else np.float64
        layers += [Dense(rng.standard_normal((n_out, n_in)).astype(dt),
                         rng.standard_normal(n_out).astype(dt)), Activation("relu")]
    layers[-1] = Activation("leaky_relu", alpha=0.25)
    net = Network(tuple(layers), (5,))
    spy = []
    real = hash_mod._float_digest
    monkeypatch.setattr(hash_mod, "_float_digest", lambda a: spy.append(a.size) or real(a))
    assert network_sha256(net) == _spec_hash(net)
    assert len(spy) == 8  # every weight and bias hashed once
    changed = Network((*layers[:-2], Dense(layers[-2].weight * 2, layers[-2].bias),
                       layers[-1]), (5,))
    assert network_sha256(changed) != network_sha256(net)


# ---------------------------------------------------------------- reduction
def _planted(act: Activation) -> Network:
    """3 -> 5 (act) -> 2 with neuron 4 an exact copy of neuron 1 (its outgoing weights
    split) and neuron 3 = 2 * neuron 0 (positive multiple: not mergeable under ``act``)."""
    rng = np.random.default_rng(21)
    w = np.round(rng.normal(size=(3, 3)) * 8) / 8
    b = np.round(rng.normal(size=3) * 8) / 8
    w1 = np.vstack([w, 2 * w[0], w[1]])
    b1 = np.concatenate([b, [2 * b[0], b[1]]])
    w2 = np.round(rng.normal(size=(2, 5)) * 8) / 8
    return Network((Dense(w1, b1), act, Dense(w2, [0.25, -0.5])), (3,))


@pytest.mark.parametrize("name", list(ACTS))
def test_identical_neurons_merge_multiples_do_not_and_certificate_checks(
        tmp_path: Path, name: str) -> None:
    from proofs import check_certificate

    act = ACTS[name]
    net = _planted(act)
    # the positive multiple really is a different neuron: act(2 y) != 2 act(y)
    hidden = evaluate(Network(net.layers[:2], (3,)), _inputs(20))
    assert not np.allclose(hidden[:, 3], 2 * hidden[:, 0])
    np.testing.assert_array_equal(hidden[:, 4], hidden[:, 1])
    red = reduce_network(net)
    lr = red.layers[0]
    assert lr.factors == "one" and lr.neurons_after == 4
    assert (1, 4) in lr.blocks and not any(0 in blk and 3 in blk for blk in lr.blocks)
    rng = np.random.default_rng(22)
    for _ in range(5):
        x = [Fraction(int(v), int(d)) for v, d in zip(rng.integers(-24, 25, size=3),
                                                      rng.integers(1, 5, size=3), strict=True)]
        assert evaluate_exact(net, x).tolist() == evaluate_exact(red.network, x).tolist()
    save_certificate(red, tmp_path / "c.json")
    cert = json.loads((tmp_path / "c.json").read_text())
    verdict = check_certificate(net, red.network, cert)
    assert verdict.valid, verdict
    # a factor 2 inside a block is refused for this activation
    k = next(i for i, blk in enumerate(cert["layers"][0]["blocks"]) if blk == [1, 4])
    cert["layers"][0]["rho"][k] = ["1", "2"]
    bad = check_certificate(net, red.network, cert)
    assert not bad.valid and bad.condition == "factor allowed by the post-ops (one)"


@pytest.mark.parametrize("field,value", [("alpha", Fraction(3, 4)), ("beta", Fraction(1, 4)),
                                         ("threshold", Fraction(19))])
def test_checker_sees_a_changed_activation_parameter(tmp_path: Path, field: str,
                                                     value: Fraction) -> None:
    from proofs import check_certificate

    act = {"alpha": ACTS["elu"], "beta": ACTS["hard_sigmoid"],
           "threshold": ACTS["softplus_t"]}[field]
    net = _planted(act)
    red = reduce_network(net)
    save_certificate(red, tmp_path / "c.json")
    cert = json.loads((tmp_path / "c.json").read_text())
    params = {f: getattr(act, f) for f in ("alpha", "beta", "threshold")} | {field: value}
    changed = Network((red.network.layers[0], Activation(act.kind, **params),
                       red.network.layers[2]), (3,))
    cert["reduced"]["sha256"] = network_sha256(changed)
    verdict = check_certificate(net, changed, cert)
    assert not verdict.valid and verdict.condition == "unchanged activation"


# -------------------------------------------------------------------- formats
def _inputs(n: int = 9) -> np.ndarray:
    return np.random.default_rng(23).normal(size=(n, 3)) * 3


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dt = np.float64 if sess.get_inputs()[0].type == "tensor(double)" else np.float32
    return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x.astype(dt)})[0],
                      dtype=np.float64)


def _f32(q: Fraction | None) -> Fraction | None:
    """``q`` as the nearest float32 (an ONNX attribute)."""
    return None if q is None else Fraction(float(np.float32(float(q))))


def _torch_alpha(act: Activation) -> Fraction | None:
    """The ``alpha`` of ``act`` as PyTorch holds it: ELU's and CELU's as a float64, the
    hard sigmoid's slope as the exact 1/6 of its definition."""
    if act.kind in ("elu", "celu") and act.alpha is not None:
        return Fraction(float(act.alpha))
    return act.alpha


@pytest.mark.parametrize("name", list(ACTS))
def test_onnx_export_run_by_onnxruntime_and_read_back(tmp_path: Path, name: str) -> None:
    act = ACTS[name]
    net = _planted(act)
    x = _inputs()
    # rounded to float32 on purpose (onnxruntime has no float64 Elu, ...)
    save_network(net, tmp_path / "m.onnx", dtype="float32")
    np.testing.assert_allclose(_ort(tmp_path / "m.onnx", x), evaluate(net, x), rtol=1e-5,
                               atol=1e-6)
    back = load_network(tmp_path / "m.onnx").layers[1]
    assert isinstance(back, Activation) and back.kind == act.kind
    if (act.kind, act.alpha, act.beta) == ("hard_swish", Fraction(1, 6), Fraction(1, 2)):
        assert (back.alpha, back.beta) == (act.alpha, act.beta)  # HardSwish: exactly 1/6, 1/2
    else:  # ONNX attributes are float32
        assert (back.alpha, back.beta) == (_f32(act.alpha), _f32(act.beta))
    assert back.threshold is None  # ONNX's Softplus has none (20 changes no float32 value)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("name", [n for n in ACTS if n not in ("hard_sigmoid_onnx",
                                                               "hard_swish_other")])
def test_torch_export_run_by_torch_and_read_back(tmp_path: Path, name: str) -> None:
    act = ACTS[name]
    net = _planted(act)
    x = _inputs()
    for script in (False, True):
        path = tmp_path / f"m{script}.pt"
        save_network(net, path, torchscript=script, dtype="float64")
        mod = torch.jit.load(str(path)) if script else torch.load(str(path), weights_only=False)
        with torch.no_grad():
            got = mod(torch.tensor(x)).numpy()
        np.testing.assert_allclose(got, evaluate(net, x), rtol=1e-12, atol=1e-14)
        back = load_network(path).layers[1]
        assert isinstance(back, Activation) and back.kind == act.kind
        assert (back.alpha, back.beta) == (_torch_alpha(act), act.beta)
        # a softplus without threshold is written with one above which nothing changes
        assert back.threshold == (40 if act.kind == "softplus" and act.threshold is None
                                  else act.threshold)


@pytest.mark.parametrize("name", list(ACTS))
def test_npz_round_trip_keeps_parameters(tmp_path: Path, name: str) -> None:
    net = _planted(ACTS[name])
    save_network(net, tmp_path / "m.npz")
    back = load_network(tmp_path / "m.npz")
    assert network_sha256(back) == network_sha256(net)
    for field in ("kind", "alpha", "beta", "threshold"):
        assert getattr(back.layers[1], field) == getattr(net.layers[1], field)


@pytest.mark.parametrize("name", list(MODULES))
def test_framework_built_torch_models(name: str) -> None:
    """An nn.Sequential, its TorchScript and a custom module calling the functional form:
    read and evaluated, compared with torch's own float32 output."""
    torch.manual_seed(24)
    seq = torch.nn.Sequential(torch.nn.Linear(3, 4), MODULES[name](),
                              torch.nn.Linear(4, 2)).eval()

    class Custom(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = seq[0], seq[2]

        def forward(self, h: Any) -> Any:
            return self.b(FUNCTIONALS[name](self.a(h)))

    x = torch.tensor(_inputs(), dtype=torch.float32) * 4  # large enough for softplus's 20
    with torch.no_grad():
        want = seq(x).double().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(seq)
    for module in (seq, scripted, Custom().eval()):
        net = from_torch(module)
        act = net.layers[1]
        assert isinstance(act, Activation) and act.kind == ACTS[name].kind
        assert (act.alpha, act.beta, act.threshold) == (
            _torch_alpha(ACTS[name]), ACTS[name].beta, ACTS[name].threshold)
        np.testing.assert_allclose(evaluate(net, x.double().numpy()), want, rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("name", list(MODULES))
def test_torch_onnx_exports_read_with_their_decompositions(tmp_path: Path, name: str) -> None:
    """What ``torch.onnx.export`` writes (SiLU as x * Sigmoid(x), Softsign as
    x / (Abs(x) + 1), tanh-GELU before opset 20 as 13 operators, ...) is read as the
    activation and computes the framework's output."""
    torch.manual_seed(25)
    seq = torch.nn.Sequential(torch.nn.Linear(3, 4), MODULES[name](),
                              torch.nn.Linear(4, 2)).eval()
    x = torch.tensor(_inputs(), dtype=torch.float32) * 4
    with torch.no_grad():
        want = seq(x).double().numpy()
    for opset in (13, 17, 18, 20):
        path = tmp_path / f"m{opset}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(seq, (x,), str(path), dynamo=False, opset_version=opset,
                              input_names=["x"], dynamic_axes={"x": {0: "batch"}})
        net = load_network(path)
        assert [type(lyr).__name__ for lyr in net.layers] == ["Dense", "Activation", "Dense"]
        act = net.layers[1]
        assert isinstance(act, Activation) and act.kind == ACTS[name].kind, opset
        np.testing.assert_allclose(evaluate(net, x.double().numpy()), want, rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(_ort(path, x.numpy()), want, rtol=1e-5, atol=1e-6)


def test_gelu_decomposition_of_older_opsets_is_read(tmp_path: Path) -> None:
    """nn.GELU() before opset 20: x * (Erf(x / sqrt 2) + 1) * 0.5."""
    seq = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GELU(), torch.nn.Linear(4, 2))
    x = torch.tensor(_inputs(), dtype=torch.float32)
    path = tmp_path / "g.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(seq.eval(), (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["x"])
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "Erf" in ops and "Gelu" not in ops
    net = load_network(path)
    assert net.layers[1].kind == "gelu"
    with torch.no_grad():
        np.testing.assert_allclose(evaluate(net, x.double().numpy()), seq(x).double().numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_hand_built_decompositions(tmp_path: Path) -> None:
    """x * sigmoid(x) followed by a Mul by a constant is SiLU then an output scale (the
    longest form that is an activation); a residual x + relu(x) is still refused."""
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.array([[0.5, -1.0], [2.0, 0.25]], dtype=np.float32), "W")
    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    nodes = [helper.make_node("Gemm", ["x", "W"], ["h"], transB=1),
             helper.make_node("Sigmoid", ["h"], ["s"]),
             helper.make_node("Mul", ["s", "h"], ["m"]),
             helper.make_node("Mul", ["m", "two"], ["y"])]
    path = save_onnx_graph(tmp_path / "silu.onnx", nodes, ["N", 2], ["N", 2], [w, two])
    net = load_network(path)
    assert net.layers[1].kind == "silu"
    assert net.normalization is not None and list(net.normalization.output_range) == [2, 2]
    x = np.random.default_rng(26).normal(size=(6, 2)) * 3
    np.testing.assert_allclose(evaluate(net, x), _ort(path, x), rtol=1e-5, atol=1e-6)
    nodes = [helper.make_node("Gemm", ["x", "W"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]), helper.make_node("Add", ["h", "r"], ["y"])]
    path = save_onnx_graph(tmp_path / "res.onnx", nodes, ["N", 2], ["N", 2], [w])
    with pytest.raises(UnsupportedLayerError, match="not a single chain"):
        load_network(path)


# ------------------------------------------------------------------ refusals
def test_refused_parameters_are_named(tmp_path: Path) -> None:
    seq = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Softplus(beta=2.0))
    with pytest.raises(UnsupportedLayerError, match=r"module 1 \(Softplus.*beta = 1 only"):
        from_torch(seq)
    path = tmp_path / "sp.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(seq.eval(), (torch.zeros(1, 3),), str(path), dynamo=False,
                          opset_version=17, input_names=["x"])
    # its ONNX form, Mul(beta), Softplus, Div(beta), is exact: beta folds into the Gemm and
    # 1 / beta becomes a per-neuron scaling after the softplus (onnxruntime agrees)
    net = load_network(path)
    assert [getattr(lyr, "kind", type(lyr).__name__) for lyr in net.layers] == [
        "Dense", "softplus", "BatchNorm"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for x in np.random.default_rng(0).normal(size=(5, 1, 3)).astype(np.float32):
        np.testing.assert_allclose(evaluate(net, x), sess.run(None, {"x": x})[0], rtol=1e-5,
                                   atol=1e-6)
    with pytest.raises(ModelFormatError, match=r"module 1 \(ELU.*alpha = nan"):
        from_torch(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ELU(float("nan"))))
    with pytest.raises(ModelFormatError, match=r"module 1 \(CELU.*alpha = 0"):
        from_torch(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.CELU(0.0)))
    with pytest.raises(UnsupportedLayerError, match=r"GELU\(approximate='sigmoid'\)"):
        gelu = torch.nn.GELU()
        gelu.approximate = "sigmoid"
        from_torch(torch.nn.Sequential(torch.nn.Linear(3, 4), gelu))
    # exports that would change the function
    with pytest.raises(UnsupportedLayerError, match="Hardsigmoid/Hardswish have 1/6 and 1/2"):
        save_network(_planted(ACTS["hard_sigmoid_onnx"]), tmp_path / "hs.pt")
    with pytest.raises(UnsupportedLayerError, match="Celu takes float32 tensors only"):
        save_network(_planted(ACTS["celu"]), tmp_path / "c.onnx", dtype="float64")
    with pytest.raises(UnsupportedLayerError, match="threshold 5: ONNX's Softplus has no"):
        save_network(_planted(Activation("softplus", threshold=5)), tmp_path / "s.onnx")
    with pytest.raises(UnsupportedLayerError, match="below 37 the threshold changes float64"):
        save_network(_planted(ACTS["softplus_t"]), tmp_path / "s.onnx", dtype="float64")


def test_onnx_operators_with_other_constants_are_refused(tmp_path: Path) -> None:
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.eye(2, dtype=np.float32), "W")
    for op, kw, match in [("Selu", {"gamma": 1.5}, "Selu with gamma=1.5"),
                          ("Swish", {"alpha": 2.0}, "Swish with alpha=2.0"),
                          ("Gelu", {"approximate": "erf"}, "Gelu approximate='erf'"),
                          ("Celu", {"alpha": 0.0}, "alpha = 0 divides by zero")]:
        nodes = [helper.make_node("Gemm", ["x", "W"], ["h"], transB=1),
                 helper.make_node(op, ["h"], ["y"], name="act", **kw)]
        path = save_onnx_graph(tmp_path / f"{op}.onnx", nodes, ["N", 2], ["N", 2], [w],
                               opset=24 if op == "Swish" else 20)
        with pytest.raises(LumpkitError, match=rf"node 1 \({op} 'act'\).*{match}"):
            load_network(path)


def test_onnx_operators_with_default_attributes(tmp_path: Path) -> None:
    """Selu's float32 constants, HardSigmoid's defaults (alpha 0.2 as a float32), Swish
    of opset 24: run by onnxruntime, read with those exact values."""
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.array([[1.5, -0.5], [0.25, 2.0]], dtype=np.float32), "W")
    x = np.random.default_rng(27).normal(size=(8, 2)) * 4
    for op, opset, kind in [("Selu", 13, "selu"), ("HardSigmoid", 13, "hard_sigmoid"),
                            ("Swish", 24, "silu"), ("Elu", 13, "elu"), ("Softsign", 13,
                                                                         "softsign")]:
        nodes = [helper.make_node("Gemm", ["x", "W"], ["h"], transB=1),
                 helper.make_node(op, ["h"], ["y"])]
        path = save_onnx_graph(tmp_path / f"{op}.onnx", nodes, ["N", 2], ["N", 2], [w],
                               opset=opset)
        net = load_network(path)
        act = net.layers[1]
        assert isinstance(act, Activation) and act.kind == kind
        if kind == "hard_sigmoid":
            assert (act.alpha, act.beta) == (Fraction(float(np.float32(0.2))), Fraction(1, 2))
        np.testing.assert_allclose(evaluate(net, x), _ort(path, x), rtol=1e-5, atol=1e-6)


def test_bad_parameters_in_an_npz_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    save_network(_planted(ACTS["hard_swish"]), path)
    arrays = dict(np.load(path, allow_pickle=False))
    meta = json.loads(str(arrays["__lumpkit__"]))
    meta["layers"][1]["beta"] = "nan"
    arrays["__lumpkit__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(LumpkitError) as info:
        load_network(tmp_path / "bad.npz")
    assert str(info.value).startswith(str(tmp_path / "bad.npz"))
    assert isinstance(info.value, ValueError)


# ------------------------------------------------------------- SMT and LEO
@pytest.mark.parametrize("name", NON_PL)
def test_smt_and_leo_refuse_non_piecewise_linear_activations(name: str) -> None:
    from proofs import check_equivalence, leo_reduce

    net = _planted(ACTS[name])
    kind = ACTS[name].kind
    with pytest.raises(UnsupportedLayerError, match=rf"layer \d+: activation '{kind}' is not"):
        check_equivalence(net, net)
    with pytest.raises(UnsupportedLayerError, match=f"'{kind}'"):
        leo_reduce(net, box=[(-1, 1)] * 3)


@pytest.mark.parametrize("name", ["hard_sigmoid", "hard_sigmoid_onnx"])
def test_smt_decides_hard_sigmoid_networks(name: str) -> None:
    from proofs import check_equivalence, leo_reduce
    from proofs._mlp import as_mlp
    from proofs._mlp import evaluate_exact as mlp_exact

    act = ACTS[name]
    net = _planted(act)
    mlp = as_mlp(net, relu_form=True)  # the exact ReLU rewriting of the hard sigmoid
    rng = np.random.default_rng(28)
    for _ in range(6):
        x = [Fraction(int(v), 4) for v in rng.integers(-40, 41, size=3)]
        assert list(mlp_exact(mlp, x)) == evaluate_exact(net, x).tolist()
    red = reduce_network(net)
    assert check_equivalence(net, red.network).equivalent
    changed = Network((red.network.layers[0],
                       Activation("hard_sigmoid", alpha=act.alpha, beta=Fraction(1, 4)),
                       red.network.layers[2]), (3,))
    v = check_equivalence(net, changed)
    assert not v.equivalent and v.input is not None and v.outputs is not None
    assert evaluate_exact(net, list(v.input)).tolist() == list(v.outputs[0])
    assert evaluate_exact(changed, list(v.input)).tolist() == list(v.outputs[1])
    with pytest.raises(UnsupportedLayerError, match="'hard_sigmoid'"):
        leo_reduce(net, box=[(-1, 1)] * 3)


# ----------------------------------------------------------------------- CLI
def test_cli_reduces_a_torch_exported_onnx_model(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A PyTorch model with SiLU and ELU (SiLU exported as x * Sigmoid(x)), a duplicate
    neuron planted in each hidden layer: reduced by ``lumpkit nn reduce``, the written
    model run by onnxruntime, the certificate checked."""
    from lumpkit._cli import main
    from proofs import check_certificate

    rng = np.random.default_rng(29)

    def q(*shape: int) -> Any:
        return torch.tensor(np.round(rng.normal(size=shape) * 8) / 8, dtype=torch.float32)

    seq = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.SiLU(), torch.nn.Linear(5, 4),
                              torch.nn.ELU(0.5), torch.nn.Linear(4, 2)).eval()
    with torch.no_grad():
        for lin in (seq[0], seq[2], seq[4]):
            lin.weight.copy_(q(*lin.weight.shape))
            lin.bias.copy_(q(*lin.bias.shape))
        seq[0].weight[4], seq[0].bias[4] = seq[0].weight[1], seq[0].bias[1]
        seq[2].weight[3], seq[2].bias[3] = seq[2].weight[0], seq[2].bias[0]
    model = tmp_path / "m.onnx"
    x = torch.tensor(_inputs(12), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(seq, (x,), str(model), dynamo=False, opset_version=13,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    assert "Sigmoid" in [n.op_type for n in onnx.load(str(model)).graph.node]
    assert main(["nn", "reduce", str(model), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["neurons_before"], out["neurons_after"]) == (9, 7)
    reduced = tmp_path / "m.reduced.onnx"
    with torch.no_grad():
        want = seq(x).double().numpy()
    np.testing.assert_allclose(_ort(reduced, x.numpy()), want, rtol=1e-5, atol=1e-6)
    cert = json.loads((tmp_path / "m.reduced.certificate.json").read_text())
    assert [lr["factors"] for lr in cert["layers"]] == ["one", "one"]
    verdict = check_certificate(load_network(model), load_network(reduced), cert)
    assert verdict.valid, verdict

"""Reduction: planted redundancy on real and random networks, the THEORY erratum, real facts.

Oracles used here are independent of lumpcore and of nnreduce's reduction:
* exact rational evaluation of the unreduced network (``evaluate_exact``);
* the number of neurons before planting (known by construction);
* a brute-force pairwise proportionality test on the reduced network's
  weight rows (``_mergeable_pairs``);
* facts recorded with the reference models (trained MNIST/ACAS Xu merge
  nothing; the twin networks halve).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnreduce import (
    Activation,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    Network,
    Permute,
    as_exact,
    evaluate,
    evaluate_exact,
    load_network,
    network_sha256,
    reduce_network,
)
from nnreduce._io_nnet import read_nnet

DATA = Path(__file__).parent / "data" / "nn"


# ------------------------------------------------------------------ oracles
def _rows(layer: Dense | Conv2d) -> list[list[Fraction]]:
    w = layer.weight.reshape(layer.weight.shape[0], int(np.prod(layer.weight.shape[1:])))
    return [[Fraction(layer.bias[i])] + [Fraction(x) for x in w[i]] for i in range(w.shape[0])]


def _ratio(a: list[Fraction], b: list[Fraction]) -> Fraction | None:
    """The r with r * a == b, if any (a and b not both zero)."""
    r: Fraction | None = None
    for x, y in zip(a, b, strict=True):
        if x == 0 and y == 0:
            continue
        if x == 0 or y == 0:
            return None
        q = y / x
        if r is None:
            r = q
        elif q != r:
            return None
    return r


def _mergeable_pairs(net: Network) -> list[tuple[int, int, int]]:
    """(layer, v, t) of hidden neurons whose rows are multiples allowed by the activation."""
    lin = [i for i, lyr in enumerate(net.layers) if isinstance(lyr, Dense | Conv2d)]
    bad = []
    for li, idx in enumerate(lin[:-1]):
        kinds = {getattr(op, "kind", type(op).__name__) for op in net.layers[idx + 1: lin[li + 1]]}
        rows = _rows(net.layers[idx])
        for v in range(len(rows)):
            for t in range(v + 1, len(rows)):
                r = _ratio(rows[v], rows[t])
                if r is None:
                    continue
                if kinds <= {"identity", "Flatten"}:
                    ok = r != 0
                elif kinds <= {"relu", "leaky_relu", "identity", "MaxPool2d", "Flatten", "Permute"}:
                    ok = r > 0
                else:
                    ok = r == 1
                if ok:
                    bad.append((idx, v, t))
    return bad


def _hidden_sizes(net: Network) -> list[int]:
    lin = [lyr for lyr in net.layers if isinstance(lyr, Dense | Conv2d)]
    return [int(lyr.weight.shape[0]) for lyr in lin[:-1]]


def _random_inputs(net: Network, rng: np.random.Generator, n: int) -> list[list[Fraction]]:
    size = int(np.prod(net.input_shape))
    return [
        np.array([Fraction(int(rng.integers(-50, 51)), int(rng.integers(1, 8)))
                  for _ in range(size)], dtype=object).reshape(net.input_shape)
        for _ in range(n)
    ]


def _assert_same_function(a: Network, b: Network, rng: np.random.Generator, n: int = 6) -> None:
    for x in _random_inputs(a, rng, n):
        ya = evaluate_exact(a, x, normalize=False)
        yb = evaluate_exact(b, x, normalize=False)
        assert list(ya.reshape(-1)) == list(yb.reshape(-1))


# ------------------------------------------------------------------ planting
def _rand_factor(rng: np.random.Generator, kind: str = "relu") -> Fraction:
    """A factor the activation allows: 1 (tanh), non-zero (identity), positive (else)."""
    if kind == "tanh":
        return Fraction(1)
    r = Fraction(int(rng.integers(1, 12)), int(rng.integers(1, 12)))
    return -r if kind == "identity" and rng.integers(0, 2) else r


def _plant_mlp(net: Network, rng: np.random.Generator, per_layer: int) -> Network:
    """Add ``per_layer`` positive multiples to every hidden dense layer, split their
    outgoing weights randomly, then shuffle the neurons of the layer."""
    layers = list(as_exact(net).layers)
    lin = [i for i, lyr in enumerate(layers) if isinstance(lyr, Dense)]
    for li, idx in enumerate(lin[:-1]):
        cur, nxt = layers[idx], layers[lin[li + 1]]
        assert isinstance(cur, Dense) and isinstance(nxt, Dense)
        w, b, w2 = cur.weight.copy(), cur.bias.copy(), nxt.weight.copy()
        act = layers[idx + 1]
        kind = act.kind if isinstance(act, Activation) else "identity"
        for _ in range(per_layer):
            v = int(rng.integers(0, w.shape[0]))
            r = _rand_factor(rng, kind)
            w = np.vstack([w, (w[v] * r)[None]])
            b = np.append(b, b[v] * r).astype(object)
            a = np.array([Fraction(int(rng.integers(-9, 10)), 7) for _ in range(w2.shape[0])],
                         dtype=object)
            newcol = (w2[:, v] - a) / r
            w2[:, v] = a
            w2 = np.hstack([w2, newcol[:, None]])
        perm = rng.permutation(w.shape[0])
        layers[idx] = Dense(w[perm], b[perm])
        layers[lin[li + 1]] = Dense(w2[:, perm], nxt.bias)
    return Network(tuple(layers), net.input_shape, net.normalization)


# ------------------------------------------------------------------ the erratum
def _erratum(second: str) -> Network:
    # u1 = ReLU(x), u2 = ReLU(2x); v = A(u1), t = A(u2); o = v - t   (THEORY section 3)
    return Network(
        (Dense([[1], [2]], [0, 0]), Activation("relu"),
         Dense([[1, 0], [0, 1]], [0, 0]), Activation(second),
         Dense([[1, -1]], [0])),
        (1,),
    )


def test_erratum_relu_merges_with_the_scaled_factor() -> None:
    net = _erratum("relu")
    red = reduce_network(net)
    l0, l1 = red.layers
    assert l0.blocks == ((0, 1),) and l0.rho == ((1, Fraction(1, 2)),)
    # scaled sums: v gets 1/rho(u1) = 1, t gets 1/rho(u2) = 2 -> t = 2 v, rho(t) = 1/2
    # (the printed Def. 6 compares unscaled sums 1 and 1 and would use rho = 1)
    assert l1.blocks == ((0, 1),) and l1.rho == ((1, Fraction(1, 2)),)
    out = red.network.layers[4]
    assert list(out.weight.reshape(-1)) == [-1]  # o = -ReLU(x); Def. 6's rho = 1 gives 0
    for x in ["-3", "-1", "0", "1", "5/2"]:
        expected = -max(Fraction(x), Fraction(0))  # by hand: o = ReLU(x) - ReLU(2x)
        assert evaluate_exact(net, [x])[0] == expected
        assert evaluate_exact(red.network, [x])[0] == expected


def test_erratum_tanh_does_not_merge_v_and_t() -> None:
    # with a non-homogeneous second activation only rho = 1 is allowed; the scaled
    # sums of v and t are 1 and 2, so they must stay apart (unscaled sums would merge them)
    net = _erratum("tanh")
    red = reduce_network(net)
    assert red.layers[0].blocks == ((0, 1),)
    assert red.layers[1].blocks == ((0,), (1,))
    for x in ["-1", "1/3", "2"]:
        assert evaluate_exact(red.network, [x])[0] == evaluate_exact(net, [x])[0]
        assert evaluate_exact(net, [x])[0] != 0 or Fraction(x) <= 0


# ------------------------------------------------------------------ real networks
REAL = ["acasxu/ACASXU_experimental_v2a_1_1.nnet", "acasxu/ACASXU_experimental_v2a_2_7.nnet",
        "mnist/mnist10x10.nnet", "mnist/mnist10x20.nnet", "mnist/mnist20x20.nnet",
        "acasxu/ACASXU_experimental_v2a_1_1.onnx", "onnx/mnist2x10.onnx",
        "onnx/mnist5x20_leaky_relu.onnx", "onnx/mnist2x5_sigmoid.onnx"]


@pytest.mark.parametrize("name", REAL)
def test_trained_networks_merge_nothing(name: str) -> None:
    pytest.importorskip("onnx")
    net = load_network(DATA / name)
    red = reduce_network(net)
    assert [lr.neurons_after for lr in red.layers] == _hidden_sizes(net)
    assert all(not lr.removed for lr in red.layers)
    assert network_sha256(red.network) == network_sha256(net)


TWINS = ["twin/twin_ladder-5_inp-2_layers-5_width-1_margin.nnet",
         "twin/twin_ladder-5_inp-4_layers-10_width-1_margin.nnet",
         "twin/twin_ladder-25_inp-5_layers-25_width-1_margin.nnet"]


@pytest.mark.parametrize("name", TWINS)
def test_twin_networks_halve(name: str) -> None:
    net = read_nnet(DATA / name)
    red = reduce_network(net)
    assert [lr.neurons_after for lr in red.layers] == [s // 2 for s in _hidden_sizes(net)]
    rng = np.random.default_rng(0)
    if red.rounded:  # pragma: no cover - the twin files merge without rounding
        x = rng.uniform(-2, 2, size=(20, *net.input_shape))
        np.testing.assert_allclose(evaluate(red.network, x), evaluate(net, x), rtol=1e-12)
    else:
        _assert_same_function(net, red.network, rng, 4)


@pytest.mark.parametrize("name", ["acasxu/ACASXU_experimental_v2a_1_1.nnet",
                                  "mnist/mnist10x10.nnet"])
def test_planted_redundancy_on_real_networks(name: str) -> None:
    rng = np.random.default_rng(7)
    net = read_nnet(DATA / name)
    planted = _plant_mlp(net, rng, per_layer=3)
    assert _hidden_sizes(planted) == [s + 3 for s in _hidden_sizes(net)]
    _assert_same_function(net, planted, rng, 2)  # the planting itself is exact
    red = reduce_network(planted)
    assert [lr.neurons_after for lr in red.layers] == _hidden_sizes(net)
    # consecutive planted layers: blocks of the previous layer carry different factors
    assert any(r != 1 for lr in red.layers for rs in lr.rho for r in rs)
    _assert_same_function(planted, red.network, rng, 4)
    assert _mergeable_pairs(red.network) == []


def test_planted_float_network_with_power_of_two_factors() -> None:
    """Float weights, factors 2^k and exact float splits: the float path stays exact."""
    net = read_nnet(DATA / "acasxu/ACASXU_experimental_v2a_2_7.nnet")
    layers = list(net.layers)
    w, b = layers[0].weight, layers[0].bias
    w2 = layers[2].weight
    w_new = np.vstack([w, 4.0 * w[3:4], 0.5 * w[7:8]])
    b_new = np.append(b, [4.0 * b[3], 0.5 * b[7]])
    w2_new = np.hstack([w2, 0.25 * w2[:, 3:4], w2[:, 7:8]])
    w2_new[:, 3] = 0.0  # all of neuron 3's weight moves to its multiple
    w2_new[:, 7] = 0.5 * w2[:, 7]  # merged: 0.5 w + w / 2 = w, exact in float64
    layers[0] = Dense(w_new, b_new)
    layers[2] = Dense(w2_new, layers[2].bias)
    planted = Network(tuple(layers), net.input_shape, net.normalization)
    red = reduce_network(planted)
    assert red.layers[0].neurons_after == 50 and not red.rounded
    assert red.network.layers[0].weight.dtype == np.float64
    rng = np.random.default_rng(3)
    _assert_same_function(planted, red.network, rng, 3)


# ------------------------------------------------------------------ convolutions
def _conv_net(rng: np.random.Generator, permute: bool) -> Network:
    def q(*shape: int) -> np.ndarray:
        vals = [Fraction(int(rng.integers(-6, 7)), int(rng.integers(1, 5)))
                for _ in range(int(np.prod(shape)))]
        return np.array(vals, dtype=object).reshape(shape)

    tail: tuple = (Permute((1, 2, 0)), Flatten()) if permute else (Flatten(),)
    return Network(
        (Conv2d(q(3, 2, 2, 2), q(3), (1, 1), (1, 1, 0, 0)), Activation("relu"),
         Conv2d(q(4, 3, 2, 2), q(4)), Activation("leaky_relu", alpha=Fraction(1, 8)),
         MaxPool2d((2, 2), (2, 2)), *tail,
         Dense(q(3, 4 * 2 * 2), q(3)), Activation("relu"), Dense(q(2, 3), q(2))),
        (2, 5, 5),
    )


def _plant_conv(net: Network, rng: np.random.Generator, permute: bool) -> Network:
    layers = list(net.layers)
    c1, c2, d1 = layers[0], layers[2], layers[7 if permute else 6]
    # channel 3 of conv1 = 3/2 * channel 1; channel 4 of conv2 = 5 * channel 0 (the
    # latter's filter already sees the planted channel, with a random split)
    r1, r2 = Fraction(3, 2), Fraction(5)
    w1 = np.concatenate([c1.weight, c1.weight[1:2] * r1])
    b1 = np.append(c1.bias, c1.bias[1] * r1).astype(object)
    w2 = c2.weight.copy()
    a = np.array([Fraction(int(rng.integers(-5, 6)), 3) for _ in range(w2[:, 1].size)],
                 dtype=object).reshape(w2[:, 1].shape)
    new = (w2[:, 1] - a) / r1
    w2[:, 1] = a
    w2 = np.concatenate([w2, new[:, None]], axis=1)
    w2 = np.concatenate([w2, w2[0:1] * r2])
    b2 = np.append(c2.bias, c2.bias[0] * r2).astype(object)
    # dense columns: channel c at positions p -> column c*P+p (or p*C+c after the permute)
    wd = d1.weight
    c_old, p = 4, 4
    g = wd.reshape(3, p, c_old).transpose(0, 2, 1) if permute else wd.reshape(3, c_old, p)
    a2 = np.array([Fraction(int(rng.integers(-5, 6)), 2) for _ in range(3 * p)],
                  dtype=object).reshape(3, p)
    newg = (g[:, 0] - a2) / r2
    g = g.copy()
    g[:, 0] = a2
    g = np.concatenate([g, newg[:, None]], axis=1)
    wd_new = g.transpose(0, 2, 1).reshape(3, -1) if permute else g.reshape(3, -1)
    layers[0] = Conv2d(w1, b1, c1.stride, c1.padding)
    layers[2] = Conv2d(w2, b2)
    layers[7 if permute else 6] = Dense(wd_new, d1.bias)
    return Network(tuple(layers), net.input_shape)


@pytest.mark.parametrize("permute", [False, True])
def test_planted_conv_channels_merge_through_pool_and_flatten(permute: bool) -> None:
    rng = np.random.default_rng(11 + permute)
    net = _conv_net(rng, permute)
    planted = _plant_conv(net, rng, permute)
    _assert_same_function(net, planted, rng, 2)
    red = reduce_network(planted)
    assert [lr.neurons_after for lr in red.layers] == [3, 4, 3]
    assert red.layers[0].blocks[1] == (1, 3) and red.layers[0].rho[1] == (1, Fraction(2, 3))
    _assert_same_function(planted, red.network, rng, 3)
    assert _mergeable_pairs(red.network) == []


# ------------------------------------------------------------------ constants, tolerance
def test_dead_and_constant_neurons_are_folded() -> None:
    net = Network(
        (Dense([[1, 2], [0, 0], [0, 0], [3, -1]], [1, -5, 4, 0]), Activation("relu"),
         Dense([[1, 2, 3, 4], [-1, 1, -1, 1]], [0, 1]), Activation("relu"),
         Dense([[1, 1]], [0])),
        (2,),
    )
    red = reduce_network(net)
    assert dict(red.layers[0].removed) == {1: 0, 2: 4}
    assert red.layers[0].neurons_after == 2
    # next bias by hand: (0 + 3*4, 1 + (-1)*4)
    assert list(red.network.layers[2].bias) == [12, -3]
    _assert_same_function(net, red.network, np.random.default_rng(1), 6)


def test_tolerance_mode_merges_near_multiples_and_reports_deviation() -> None:
    rng = np.random.default_rng(5)
    w = rng.normal(size=(4, 3))
    w[3] = 2.0 * w[0] * (1 + 1e-9)  # near multiple of neuron 0
    b = rng.normal(size=4)
    b[3] = 2.0 * b[0]
    net = Network((Dense(w, b), Activation("relu"), Dense(rng.normal(size=(2, 4)),
                                                          rng.normal(size=2))), (3,))
    assert reduce_network(net).layers[0].neurons_after == 4  # exact: not a multiple
    red = reduce_network(net, tolerance=1e-6)
    assert red.layers[0].neurons_after == 3 and red.mode == "tolerance"
    assert 0 < red.max_weight_deviation < 1e-6
    assert red.certificate is not None and red.certificate["mode"] == "tolerance"
    x = rng.normal(size=(50, 3))
    np.testing.assert_allclose(evaluate(red.network, x), evaluate(net, x), atol=1e-6)


def test_bad_tolerance_is_named() -> None:
    net = _erratum("relu")
    with pytest.raises(ValueError, match="tolerance"):
        reduce_network(net, tolerance=-1)


def test_certificate_is_json_and_describes_the_reduction() -> None:
    net = _plant_mlp(read_nnet(DATA / TWINS[0]), np.random.default_rng(2), per_layer=2)
    red = reduce_network(net)
    cert = json.loads(json.dumps(red.certificate))
    assert cert["format"] == "lumpkit-nn-certificate" and cert["version"] == 1
    assert cert["original"]["sha256"] == network_sha256(net)
    assert cert["reduced"]["sha256"] == network_sha256(red.network)
    (layer,) = cert["layers"]
    kept = sorted(v for b in layer["blocks"] for v in b)
    removed = [r["neuron"] for r in layer["removed"]]
    assert sorted(kept + removed) == list(range(layer["neurons_before"]))
    assert all(rs[0] == "1" for rs in layer["rho"])
    assert all(Fraction(r) > 0 for rs in layer["rho"] for r in rs)


# ------------------------------------------------------------------ properties
@st.composite
def _planted_nets(draw: st.DrawFn) -> tuple[Network, Network, int]:
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    n_hidden = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 3))] + [draw(st.integers(1, 4)) for _ in range(n_hidden)]
    sizes.append(draw(st.integers(1, 2)))
    kinds = [draw(st.sampled_from(["relu", "leaky_relu", "identity", "tanh"]))
             for _ in range(n_hidden)]
    layers: list = []
    for k in range(len(sizes) - 1):
        w = np.array([[Fraction(int(rng.integers(-4, 5)), int(rng.integers(1, 4)))
                       for _ in range(sizes[k])] for _ in range(sizes[k + 1])], dtype=object)
        b = np.array([Fraction(int(rng.integers(-4, 5)), 2) for _ in range(sizes[k + 1])],
                     dtype=object)
        layers.append(Dense(w, b))
        if k < n_hidden:
            kind = kinds[k]
            layers.append(Activation(kind, alpha=Fraction(1, 4)) if kind == "leaky_relu"
                          else Activation(kind))
    net = Network(tuple(layers), (sizes[0],))
    planted = _plant_mlp(net, rng, per_layer=draw(st.integers(0, 2)))
    return net, planted, seed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_planted_nets())
def test_property_reduced_equals_original_and_is_maximal(case: tuple) -> None:
    net, planted, seed = case
    red = reduce_network(planted)
    rng = np.random.default_rng(seed)
    _assert_same_function(planted, red.network, rng, 4)
    _assert_same_function(net, red.network, rng, 2)
    assert _mergeable_pairs(red.network) == []
    # never more neurons than the unplanted network (planting adds only multiples)
    assert all(a <= b for a, b in zip(_hidden_sizes(red.network), _hidden_sizes(net),
                                      strict=True))


def test_linear_layer_drops_linear_combinations_exactly() -> None:
    rng = np.random.default_rng(12)

    def q(*shape: int) -> np.ndarray:
        return np.array([Fraction(int(rng.integers(-6, 7)), int(rng.integers(1, 5)))
                         for _ in range(int(np.prod(shape)))], dtype=object).reshape(shape)

    w, b = q(3, 4), q(3)
    # neuron 3 = 2 * n0 - 3/2 * n2 (weights and bias), neuron 4 = -n1 (a negative multiple)
    w = np.vstack([w, 2 * w[0] - Fraction(3, 2) * w[2], -w[1]])
    b = np.append(b, [2 * b[0] - Fraction(3, 2) * b[2], -b[1]]).astype(object)
    net = Network((Dense(w, b), Activation("identity"), Dense(q(2, 5), q(2)),
                   Activation("relu"), Dense(q(1, 2), q(1))), (4,))
    plain = reduce_network(net, linear_dependence=False)
    assert plain.layers[0].blocks == ((0,), (1, 4), (2,), (3,))  # rho(4) = -1
    assert plain.layers[0].rho[1] == (1, -1)
    assert reduce_network(net).layers[0].combined == reduce_network(
        net, linear_dependence=True).layers[0].combined  # the default finds it too
    red = reduce_network(net, linear_dependence=True)
    lr = red.layers[0]
    assert lr.neurons_after == 3 and lr.blocks == ((0,), (1, 4), (2,))
    assert lr.combined == (((3,), (Fraction(1),), ((0, Fraction(2)), (2, Fraction(-3, 2)))),)
    _assert_same_function(net, red.network, rng, 6)
    assert red.certificate is not None and "combined" in red.certificate["layers"][0]


def test_float_network_with_non_dyadic_factor_takes_the_exact_path() -> None:
    # neuron 2 = 3 * neuron 0 with small integer float weights: rho = 1/3 is not a power of
    # two, so the merged sums are computed in rationals (a + 3 b is an integer: no rounding)
    w = np.array([[1.0, -2.0], [4.0, 1.0], [3.0, -6.0]])
    net = Network((Dense(w, [1.0, 0.0, 3.0]), Activation("relu"),
                   Dense([[2.0, 1.0, -5.0], [1.0, 1.0, 7.0]], [0.5, 0.0])), (2,))
    red = reduce_network(net)
    assert red.layers[0].blocks == ((0, 2), (1,)) and red.layers[0].rho[0] == (1, Fraction(1, 3))
    assert not red.rounded and red.network.layers[2].weight.dtype == np.float64
    # by hand: column of block {0, 2} = W(:,0) + 3 W(:,2)
    assert red.network.layers[2].weight.tolist() == [[2.0 - 15.0, 1.0], [1.0 + 21.0, 1.0]]
    _assert_same_function(net, red.network, np.random.default_rng(4), 5)


def test_prelu_slopes_and_batchnorm_parameters_separate_neurons() -> None:
    from nnreduce import BatchNorm

    w = np.array([[1, -1], [3, -3], [2, -2], [1, 2], [1, 2]], dtype=object)
    w = np.vectorize(Fraction, otypes=[object])(w)
    b = np.array([Fraction(1), Fraction(3), Fraction(2), Fraction(0), Fraction(0)], dtype=object)
    slopes = np.array([Fraction(1, 10), Fraction(1, 10), Fraction(1, 5), Fraction(1, 2),
                       Fraction(1, 2)], dtype=object)
    head = Dense(np.ones((1, 5), dtype=np.float64), [0.0])
    net = Network((Dense(w, b), Activation("prelu", slopes=slopes), head), (2,))
    red = reduce_network(net)
    # 1 = 3 * 0 with the same slope merges; 2 = 2 * 0 has another slope; 3 == 4 merge
    assert red.layers[0].blocks == ((0, 1), (2,), (3, 4))
    assert list(red.network.layers[1].slopes) == [Fraction(1, 10), Fraction(1, 5), Fraction(1, 2)]
    _assert_same_function(net, red.network, np.random.default_rng(0), 5)
    # batch norm after the activation: only rho = 1 and equal (scale, shift) merge
    bn = BatchNorm(np.array([Fraction(2), Fraction(2), Fraction(2), Fraction(2), Fraction(3)],
                            dtype=object), np.zeros(5))
    net2 = Network((Dense(w, b), Activation("relu"), bn, head), (2,))
    red2 = reduce_network(net2)
    assert red2.layers[0].factors == "one" and red2.layers[0].neurons_after == 5
    _assert_same_function(net2, red2.network, np.random.default_rng(1), 5)
    same = BatchNorm(np.array([Fraction(2)] * 5, dtype=object), np.zeros(5))
    red3 = reduce_network(Network((Dense(w, b), Activation("relu"), same, head), (2,)))
    assert red3.layers[0].blocks == ((0,), (1,), (2,), (3, 4))  # identical rows, equal BN



def test_per_feature_prelu_after_flatten_is_refused_not_mislabelled() -> None:
    from lumpcore import UnsupportedLayerError

    rng = np.random.default_rng(3)
    net = Network((Conv2d(rng.normal(size=(2, 1, 2, 2)), np.zeros(2)), Flatten(),
                   Activation("prelu", slopes=rng.uniform(0, 1, size=8)),
                   Dense(rng.normal(size=(1, 8)), [0.0])), (1, 3, 3))
    with pytest.raises(UnsupportedLayerError, match="layer 2"):
        reduce_network(net)


def test_pooling_across_the_channel_axis_is_refused() -> None:
    from lumpcore import UnsupportedLayerError

    rng = np.random.default_rng(4)
    net = Network((Conv2d(rng.normal(size=(4, 1, 1, 1)), np.zeros(4)), Activation("relu"),
                   Permute((1, 2, 0)), MaxPool2d((1, 2), (1, 2)), Flatten(),
                   Dense(rng.normal(size=(1, 8)), [0.0])), (1, 2, 2))
    with pytest.raises(UnsupportedLayerError, match="layer 3"):
        reduce_network(net)


def test_tolerance_mode_on_an_exact_network_is_not_flagged_rounded() -> None:
    """Rationals merge exactly even in tolerance mode: the reduced network stores the derived
    weights, so 'rounded' is false and the independent checker agrees."""
    from proofs import check_certificate

    w1 = np.array([[Fraction(1, 3), Fraction(1)], [Fraction(2, 3), Fraction(2)],
                   [Fraction(1), Fraction(-1)]], dtype=object)
    net = Network((Dense(w1, [Fraction(1), Fraction(2), Fraction(0)]), Activation("relu"),
                   Dense(np.array([[Fraction(1, 7), Fraction(1), Fraction(1)]], dtype=object),
                         [Fraction(0)])), (2,))
    red = reduce_network(net, tolerance=1e-6)
    assert red.layers[0].neurons_after == 2 and red.rounded is False
    assert red.certificate is not None and red.certificate["reduced"]["rounded"] is False
    assert check_certificate(net, red.network, red.certificate).valid

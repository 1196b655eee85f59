"""Which member of a block represents it (certificate version 5).

In exact mode the next layer's merged weight of a block is
``sum_v W(:, v) / rho(v)``, the factors relative to the representative.  With
the smallest member as representative, a copy ``(3/2) u`` placed before ``u``
represents it, and ``u``'s ``1 / rho`` is ``2/3``, which no float holds: the
float network's reduction was rounded.  Relative to ``u`` the copy's is
``3/2``, an exact float sum.  nnreduce now picks such a representative where
one exists (planted copies placed before their originals, as a shuffled
network has them).

Oracles: exact rational evaluation of the original network, the independent
certificate checker, and, for the block layout, the planted factors.
"""

from __future__ import annotations

import copy
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnreduce import Activation, Dense, Network, evaluate_exact, reduce_network
from proofs import check_certificate


def _same_function(a: Network, b: Network, rng: np.random.Generator, n: int = 4) -> None:
    size = int(np.prod(a.input_shape))
    for _ in range(n):
        x = np.array([Fraction(int(rng.integers(-40, 41)), int(rng.integers(1, 7)))
                      for _ in range(size)], dtype=object).reshape(a.input_shape)
        assert list(evaluate_exact(a, x).reshape(-1)) == list(evaluate_exact(b, x).reshape(-1))


def _net(factor: float, copy_first: bool, dtype: type = np.float32) -> Network:
    """Hidden neuron ``u`` and its copy ``factor * u`` (the copy first or second), a
    third neuron on its own, and an output layer reading all three."""
    base = np.array([0.5, -1.25, 2.0])
    other = np.array([1.0, 0.75, -0.5])
    rows = [factor * base, base] if copy_first else [base, factor * base]
    w1: np.ndarray = np.array([r[:2] for r in rows] + [other[:2]], dtype=dtype)
    b1: np.ndarray = np.array([r[2] for r in rows] + [other[2]], dtype=dtype)
    w2: np.ndarray = np.array([[0.375, -1.5, 0.25], [1.0, 2.0, -0.75]], dtype=dtype)
    return Network((Dense(w1, b1), Activation("relu"), Dense(w2, np.zeros(2, dtype=dtype))),
                   (2,))


@pytest.mark.parametrize("factor", [1.5, 3.0, 0.75, 2.5])
@pytest.mark.parametrize("copy_first", [True, False])
def test_the_representative_keeps_merged_weights_exact(factor: float,
                                                       copy_first: bool) -> None:
    net = _net(factor, copy_first)
    red = reduce_network(net)
    (blk, *_), (rho, *_) = red.layers[0].blocks, red.layers[0].rho
    assert set(blk) == {0, 1}
    # the representative is the member relative to which the other's 1 / rho is a float
    assert all((rho[0] / r).denominator & ((rho[0] / r).denominator - 1) == 0 for r in rho)
    assert not red.rounded
    assert red.certificate is not None
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid and res.exact, res
    # version 5 exactly when the representative is not the smallest member
    assert red.certificate["version"] == (5 if blk[0] != 0 else 1)
    _same_function(net, red.network, np.random.default_rng(1))


def test_the_base_neuron_represents_its_multiples() -> None:
    """Neurons 3u, 5u and u: relative to u every ``1 / rho`` is an integer (3, 5), so u
    represents the block although it comes last, and the merged weights are exact."""
    base = np.array([0.5, -1.25, 2.0])
    rows = [3.0 * base, 5.0 * base, base]
    w1 = np.array([r[:2] for r in rows], dtype=np.float32)
    b1 = np.array([r[2] for r in rows], dtype=np.float32)
    w2 = np.array([[0.375, -1.5, 0.25]], dtype=np.float32)
    net = Network((Dense(w1, b1), Activation("relu"), Dense(w2, np.zeros(1, np.float32))),
                  (2,))
    red = reduce_network(net)
    assert red.layers[0].blocks == ((2, 0, 1),)
    assert red.layers[0].rho == ((Fraction(1), Fraction(1, 3), Fraction(1, 5)),)
    assert not red.rounded and red.certificate is not None
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid and res.exact, res
    _same_function(net, red.network, np.random.default_rng(3))


def test_no_member_helps_and_the_smallest_stays() -> None:
    """Neurons 3u and 5u: relative to either, the other's ``1 / rho`` has an odd
    denominator (5/3, 3/5), so the smallest member represents the block and the
    reduction is rounded (and says so)."""
    base = np.array([0.5, -1.25, 2.0])
    rows = [3.0 * base, 5.0 * base]
    w1 = np.array([r[:2] for r in rows], dtype=np.float32)
    b1 = np.array([r[2] for r in rows], dtype=np.float32)
    w2 = np.array([[0.375, -1.25]], dtype=np.float32)  # -1.25 * 5/3 is no float
    net = Network((Dense(w1, b1), Activation("relu"), Dense(w2, np.zeros(1, np.float32))),
                  (2,))
    red = reduce_network(net)
    assert red.layers[0].blocks == ((0, 1),)
    assert red.rounded and red.certificate is not None
    assert red.certificate["version"] == 1
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid and not res.exact


def test_rational_networks_keep_the_smallest_representative() -> None:
    """Merged weights of a rational network are exact rationals whoever represents a block."""
    from nnreduce import as_exact

    net = as_exact(_net(1.5, copy_first=True, dtype=np.float64))
    red = reduce_network(net)
    assert red.layers[0].blocks[0] == (0, 1) and not red.rounded
    _same_function(net, red.network, np.random.default_rng(2))


def test_the_checker_holds_versions_to_their_block_rules() -> None:
    net = _net(1.5, copy_first=True)
    red = reduce_network(net)
    cert = red.certificate
    assert cert is not None and cert["version"] == 5
    assert check_certificate(net, red.network, cert).valid
    # version 4 demands sorted blocks: the same certificate is refused under it
    old = copy.deepcopy(cert)
    old["version"] = 4
    res = check_certificate(net, red.network, old)
    assert not res.valid and res.condition == "blocks sorted"
    # a representative swapped for the other member (factors kept) breaks the conditions
    swapped = copy.deepcopy(cert)
    blk = swapped["layers"][0]["blocks"][0]
    swapped["layers"][0]["blocks"][0] = [blk[1], blk[0]]
    res = check_certificate(net, red.network, swapped)
    assert not res.valid


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1),
       factors=st.lists(st.sampled_from([3.0, 1.5, 0.75, 2.5, 5.0, 0.375, 6.0]),
                        min_size=1, max_size=4))
def test_shuffled_planted_copies_reduce_exactly(seed: int, factors: list[float]) -> None:
    """The issue's planted redundancy, the neurons shuffled: copies ``f * u`` of dyadic
    neurons, their outgoing weights split at random, in random positions.  The reduction
    finds exactly the original neurons, is not rounded, its certificate is valid and exact,
    and the reduced network computes the original function exactly."""
    rng = np.random.default_rng(seed)
    n_in, base_n = 3, len(factors) + 1
    base = rng.integers(-8, 9, size=(base_n, n_in + 1)) / 8.0
    base[:, 0] = np.where(base[:, 0] == 0, 0.5, base[:, 0])  # no two rows proportional
    base[:, 0] += np.arange(base_n) * 4.0
    nonzero = np.r_[-8:0, 1:9] / 8.0
    out = rng.choice(nonzero, size=(2, base_n))  # every neuron read
    rows, cols = list(base), list(out.T)
    for i, f in enumerate(factors):
        rows.append(f * base[i])
        split = rng.choice(nonzero, size=2)  # the copy takes split, the original
        cols.append(split)                          # the rest (times f: exact)
        cols[i] = cols[i] - f * split
    perm = rng.permutation(len(rows))
    w1 = np.array([rows[k][:n_in] for k in perm], dtype=np.float32)
    b1 = np.array([rows[k][n_in] for k in perm], dtype=np.float32)
    w2 = np.array([cols[k] for k in perm], dtype=np.float32).T
    net = Network((Dense(w1, b1), Activation("relu"), Dense(w2, np.zeros(2, np.float32))),
                  (n_in,))
    red = reduce_network(net)
    assert red.layers[0].neurons_after == base_n
    assert not red.rounded
    assert red.certificate is not None
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid and res.exact, res
    _same_function(net, red.network, rng, 3)


@pytest.mark.parametrize("name", ["acasxu/ACASXU_experimental_v2a_2_7.onnx",
                                  "onnx/mnist5x20_leaky_relu.onnx"])
def test_shuffled_planted_float_networks_reduce_exactly(name: str) -> None:
    """The issue's planted redundancy on real float32 networks kept as floats: three
    copies per hidden layer with factors 3/2, 3, 3/4, 5/2 (exact products of float32
    weights in float64), outgoing weights split with dyadic parts, every layer shuffled
    (consecutive layers: the erratum case).  The session-start code rounded half of such
    reductions; now the neuron counts come back, nothing is rounded, the certificate
    check finds the reduction exact and exact evaluation agrees."""
    from pathlib import Path

    from nnreduce import load_network

    rng = np.random.default_rng(11)
    net = load_network(Path(__file__).parent / "data" / "nn" / name)
    layers = list(net.layers)
    lin = [i for i, lyr in enumerate(layers) if isinstance(lyr, Dense)]
    sizes = []
    for k, i in enumerate(lin[:-1]):
        w = np.asarray(layers[i].weight, dtype=np.float64)
        b = np.asarray(layers[i].bias, dtype=np.float64)
        sizes.append(w.shape[0])
        picks = rng.choice(w.shape[0], size=3, replace=False)
        facs = rng.choice([1.5, 3.0, 0.75, 2.5], size=3)
        w = np.vstack([w, facs[:, None] * w[picks]])
        b = np.concatenate([b, facs * b[picks]])
        perm = rng.permutation(w.shape[0])
        layers[i] = Dense(w[perm], b[perm])
        nxt = np.asarray(layers[lin[k + 1]].weight, dtype=np.float64).copy()
        split = rng.integers(-4, 5, size=(nxt.shape[0], 3)) / 8.0
        nxt[:, picks] -= facs[None, :] * split
        layers[lin[k + 1]] = Dense(np.hstack([nxt, split])[:, perm],
                                   np.asarray(layers[lin[k + 1]].bias, dtype=np.float64))
    planted = Network(tuple(layers), net.input_shape, net.normalization)
    red = reduce_network(planted)
    assert [lr.neurons_after for lr in red.layers] == sizes
    assert not red.rounded and red.certificate is not None
    res = check_certificate(planted, red.network, red.certificate)
    assert res.valid and res.exact, res
    _same_function(planted, red.network, rng, 2)

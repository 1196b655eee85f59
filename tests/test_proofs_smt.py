"""proofs.check_equivalence: proofs, counterexamples, unknown, exports.

Oracles: nnreduce's exact evaluator (a different implementation from the one
inside proofs), hand-computed outputs, the monolithic encoding (one variable
per neuron, no sharing, no lemmas), cvc5, and exact evaluation at sampled
rational inputs.
"""

from __future__ import annotations

import os
import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import z3
from hypothesis import given, settings
from hypothesis import strategies as st

import proofs
from lumpcore import ModelFormatError, SolverUnknownError
from nnreduce import Activation, Dense, Network, evaluate_exact, load_network, reduce_network

DATA = Path(__file__).parent / "data" / "proofs"


def exact_net(layers: list[tuple[list[list[object]], list[object], str]], n_in: int) -> Network:
    out: list[object] = []
    for W, b, act in layers:
        out.append(Dense(np.array([[Fraction(x) for x in row] for row in W], dtype=object),
                         np.array([Fraction(x) for x in b], dtype=object)))
        if act != "identity":
            out.append(Activation(act) if act != "leaky_relu"
                       else Activation("leaky_relu", alpha=Fraction(1, 10)))
    return Network(tuple(out), (n_in,))


def outputs(net: Network, x: tuple[Fraction, ...]) -> list[Fraction]:
    return list(evaluate_exact(net, list(x)))


# ---------------------------------------------------------------- erratum
def test_erratum_paper_reduction_is_refuted_by_z3_with_a_validated_input() -> None:
    ex = proofs.erratum_example()
    v = proofs.check_equivalence(ex.original, ex.reduced, falsify=False)
    assert v.verdict == "counterexample"
    assert v.input is not None and v.outputs is not None
    # independent re-evaluation (nnreduce's evaluator) of both networks
    assert outputs(ex.original, v.input) == list(v.outputs[0])
    assert outputs(ex.reduced, v.input) == list(v.outputs[1])
    assert v.outputs[0] != v.outputs[1]
    # by hand: original computes -ReLU(x), the unsound reduction 0
    (x,) = v.input
    assert v.outputs[0] == (-x if x > 0 else 0,) and v.outputs[1] == (0,)


def test_erratum_witness_is_the_one_in_theory() -> None:
    ex = proofs.erratum_example()
    assert outputs(ex.original, ex.witness) == [-1]
    assert outputs(ex.reduced, ex.witness) == [0]


def test_erratum_lumpkit_reduction_is_proved_equivalent() -> None:
    ex = proofs.erratum_example()
    red = reduce_network(ex.original)
    assert red.neurons_after < red.neurons_before
    v = proofs.check_equivalence(ex.original, red.network)
    assert v.equivalent and v.verdict == "equivalent"
    # the scaled reduction built by hand: o = -ReLU(ReLU(x))
    by_hand = exact_net([([[1]], [0], "relu"), ([[1]], [0], "relu"), ([[-1]], [0], "identity")],
                        1)
    assert proofs.check_equivalence(ex.original, by_hand, share=False, cegar=False).equivalent


# ------------------------------------------------------ linear combination
def test_linear_combination_counterexample_violates_the_sign_condition() -> None:
    ex = proofs.linear_combination_example()
    v = proofs.check_equivalence(ex.original, ex.reduced, falsify=False)
    assert v.verdict == "counterexample" and v.input is not None and v.outputs is not None
    x1, x2 = v.input
    y1, y2 = x1 + x2, x1 - x2  # pre-activations of v1, v2 (by hand)
    assert y1 * y2 < 0
    assert outputs(ex.original, v.input) != outputs(ex.reduced, v.input)
    assert outputs(ex.original, ex.witness) == [1] and outputs(ex.reduced, ex.witness) == [4]


@pytest.mark.parametrize("share", [True, False])
def test_linear_combination_is_exact_on_a_box_forcing_equal_signs(share: bool) -> None:
    ex = proofs.linear_combination_example()
    assert ex.exact_box is not None
    v = proofs.check_equivalence(ex.original, ex.reduced, box=ex.exact_box, share=share,
                                 cegar=share)
    assert v.equivalent and v.box == ex.exact_box


def test_linear_combination_box_where_signs_differ_gives_counterexample_in_the_box() -> None:
    ex = proofs.linear_combination_example()
    box = ((Fraction(-1), Fraction(1)), (Fraction(-1), Fraction(1)))
    v = proofs.check_equivalence(ex.original, ex.reduced, box=box, falsify=False)
    assert v.verdict == "counterexample" and v.input is not None
    assert all(lo <= x <= hi for x, (lo, hi) in zip(v.input, box, strict=True))


# ---------------------------------------------------------- exactness
def test_weights_are_exact_not_decimal_readings_of_floats() -> None:
    # 0.1 as a float is not 1/10: the networks differ wherever x != 0
    a = Network((Dense(np.array([[0.1]]), np.array([0.0])),), (1,))
    b = exact_net([([["1/10"]], [0], "identity")], 1)
    v = proofs.check_equivalence(a, b, falsify=False)
    assert v.verdict == "counterexample" and v.input is not None and v.input[0] != 0
    c = exact_net([([[Fraction(0.1)]], [0], "identity")], 1)
    assert proofs.check_equivalence(a, c).equivalent


# ------------------------------------------------------------- unknown
def test_timeout_raises_and_never_becomes_a_verdict() -> None:
    ex = proofs.linear_combination_example()
    with pytest.raises(SolverUnknownError):
        proofs.check_equivalence(ex.original, ex.reduced, timeout=1e-9, falsify=False)


def test_solver_unknown_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(z3.Solver, "check", lambda self, *a: z3.unknown)
    ex = proofs.linear_combination_example()
    with pytest.raises(SolverUnknownError):
        proofs.check_equivalence(ex.original, ex.reduced, falsify=False)


def test_mismatched_shapes_are_bad_input() -> None:
    a = exact_net([([[1, 1]], [0], "identity")], 2)
    b = exact_net([([[1]], [0], "identity")], 1)
    with pytest.raises(ModelFormatError, match="inputs"):
        proofs.check_equivalence(a, b)
    with pytest.raises(ModelFormatError, match="box"):
        proofs.check_equivalence(a, a, box="0:1,0:1,0:1")


# ------------------------------------------------ SMT-LIB export, cvc5
def test_smtlib_export_is_decided_the_same_by_z3_and_cvc5(tmp_path: Path) -> None:
    ex = proofs.erratum_example()
    out = tmp_path / "q.smt2"
    v = proofs.check_equivalence(ex.original, ex.reduced, smtlib=out, second_opinion="cvc5",
                                 falsify=False)
    assert v.second_opinion == "sat"
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not the temporary file's 0600
    s = z3.Solver()
    s.add(z3.parse_smt2_file(str(out)))
    assert s.check() == z3.sat
    red = reduce_network(ex.original).network
    out2 = tmp_path / "q2.smt2"
    v2 = proofs.check_equivalence(ex.original, red, smtlib=out2, second_opinion="cvc5")
    assert v2.equivalent and v2.second_opinion == "unsat"
    s2 = z3.Solver()
    s2.add(z3.parse_smt2_file(str(out2)))
    assert s2.check() == z3.unsat
    assert "(set-logic QF_LRA)" in out2.read_text()


# ------------------------------------------ random networks, properties
@st.composite
def small_nets(draw: st.DrawFn) -> tuple[list[tuple[list[list[int]], list[int], str]], int]:
    n_in = draw(st.integers(1, 2))
    depth = draw(st.integers(1, 2))
    w = st.integers(-2, 2)
    layers = []
    width = n_in
    for _ in range(depth):
        n = draw(st.integers(1, 3))
        W = [[draw(w) for _ in range(width)] for _ in range(n)]
        b = [draw(w) for _ in range(n)]
        layers.append((W, b, draw(st.sampled_from(["relu", "relu", "leaky_relu"]))))
        width = n
    layers.append(([[draw(w) for _ in range(width)]], [draw(w)], "identity"))
    return layers, n_in


def plant_duplicate(layers: list, k: int, v: int, c: Fraction, s: Fraction) -> list:
    """Add a neuron t = c * v to hidden layer k; split v's outgoing weights (exact)."""
    out = [([list(r) for r in W], list(b), a) for W, b, a in layers]
    W, b, _ = out[k]
    W.append([c * x for x in W[v]])
    b.append(c * b[v])
    Wn = out[k + 1][0]
    for row in Wn:
        row.append(row[v] * (1 - s) / c)
        row[v] = row[v] * s
    return out


def sample_points(n_in: int, rnd: random.Random) -> list[tuple[Fraction, ...]]:
    pts = [tuple(Fraction(rnd.randint(-40, 40), rnd.randint(1, 8)) for _ in range(n_in))
           for _ in range(60)]
    return pts


@settings(max_examples=25, deadline=None)
@given(small_nets(), st.data())
def test_planted_duplicates_are_proved_equivalent(net: tuple, data: st.DataObject) -> None:
    layers, n_in = net
    k = data.draw(st.integers(0, len(layers) - 2))
    v = data.draw(st.integers(0, len(layers[k][1]) - 1))
    c = Fraction(data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5)))
    s = Fraction(data.draw(st.integers(0, 4)), 4)
    big = plant_duplicate(layers, k, v, c, s)
    orig = exact_net(layers, n_in)
    bigger = exact_net(big, n_in)
    rnd = random.Random(0)
    for x in sample_points(n_in, rnd)[:10]:
        assert outputs(orig, x) == outputs(bigger, x)  # construction sanity
    assert proofs.check_equivalence(bigger, orig).equivalent
    assert proofs.check_equivalence(bigger, orig, share=False, cegar=False).equivalent


@settings(max_examples=30, deadline=None)
@given(small_nets(), small_nets())
def test_verdicts_agree_with_monolithic_encoding_and_sampling(a: tuple, b: tuple) -> None:
    la, na = a
    lb, nb = b
    if na != nb:
        return
    A, B = exact_net(la, na), exact_net(lb, nb)
    v1 = proofs.check_equivalence(A, B, falsify=False)
    v2 = proofs.check_equivalence(A, B, share=False, cegar=False, falsify=False)
    assert v1.equivalent == v2.equivalent
    differs = [x for x in sample_points(na, random.Random(1)) if outputs(A, x) != outputs(B, x)]
    if differs:
        assert not v1.equivalent
    for v in (v1, v2):
        if not v.equivalent:
            assert v.input is not None
            assert outputs(A, v.input) != outputs(B, v.input)


# ----------------------------------------------- the ACAS Xu target
def _plant_network(net: Network, frac: float, seed: int) -> Network:
    """Add ~frac proportional duplicates per hidden layer (exact), same function."""
    from nnreduce import as_exact

    net = as_exact(net)
    rng = np.random.default_rng(seed)
    lay = list(net.layers)
    dense = [i for i, layer in enumerate(lay) if isinstance(layer, Dense)]
    Ws = [lay[i].weight.copy() for i in dense]
    bs = [lay[i].bias.copy() for i in dense]
    for k in range(len(dense) - 1):
        W, b = Ws[k], bs[k]
        n = W.shape[0]
        ndup = round(frac * n / (1 - frac))
        src = rng.integers(0, n, ndup)
        c = [Fraction(int(p), int(q)) for p, q in zip(rng.integers(1, 9, ndup),
                                                       rng.integers(1, 9, ndup), strict=True)]
        s = [Fraction(int(p), 4) for p in rng.integers(1, 4, ndup)]
        W2 = np.vstack([W, np.array([W[v] * cc for v, cc in zip(src, c, strict=True)])])
        b2 = np.concatenate([b, np.array([b[v] * cc for v, cc in zip(src, c, strict=True)],
                                         dtype=object)])
        Wn = Ws[k + 1].copy()
        extra = np.empty((Wn.shape[0], ndup), dtype=object)
        for m, v in enumerate(src):
            extra[:, m] = Wn[:, v] * (1 - s[m]) / c[m]
            Wn[:, v] = Wn[:, v] * s[m]
        Ws[k], bs[k], Ws[k + 1] = W2, b2, np.hstack([Wn, extra])
    for k, i in enumerate(dense):
        lay[i] = Dense(Ws[k], bs[k])
    return Network(tuple(lay), net.input_shape, net.normalization)


@pytest.mark.slow
def test_acasxu_with_30_percent_planted_duplicates_proved_equivalent() -> None:
    # the 60 s target is shown by benchmarks/proofs_scaling.py, not asserted here
    acas = load_network(DATA / "ACASXU_experimental_v2a_1_1.nnet")
    big = _plant_network(acas, 0.3, seed=0)
    hidden = sum(lyr.weight.shape[0] for lyr in big.layers if isinstance(lyr, Dense)) - 5
    assert hidden == 426  # 300 original ReLUs + 126 planted
    v = proofs.check_equivalence(big, acas, timeout=600)
    assert v.equivalent
    # and the same against lumpkit's own reduction, checked by its certificate too
    red = reduce_network(big)
    assert red.neurons_after == 300
    assert proofs.check_certificate(big, red.network, red.certificate).valid
    assert proofs.check_equivalence(big, red.network, timeout=60).equivalent


@pytest.mark.slow
def test_acasxu_wrong_reduction_gets_a_validated_counterexample() -> None:
    acas = load_network(DATA / "ACASXU_experimental_v2a_1_1.nnet")
    lay = list(acas.layers)
    W = lay[0].weight.copy()
    W[3, 1] += 0.5  # a visible change in the first layer
    lay[0] = Dense(W, lay[0].bias)
    wrong = Network(tuple(lay), acas.input_shape, acas.normalization)
    v = proofs.check_equivalence(acas, wrong, timeout=60)
    assert v.verdict == "counterexample" and v.input is not None
    # the input is in the networks' own units (nnreduce's evaluator applies the shared
    # normalisation, clipping included), and the outputs shown are the networks' outputs
    assert outputs(acas, v.input) == list(v.outputs[0])
    assert outputs(wrong, v.input) == list(v.outputs[1])
    assert outputs(acas, v.input) != outputs(wrong, v.input)


# ---------------------------------------------------- NNet normalisation
def test_normalisation_folded_when_only_one_network_has_it() -> None:
    from nnreduce import Normalization

    F = Fraction
    nrm = Normalization(input_mean=[F(1), F(-2)], input_range=[F(2), F(4)],
                        output_mean=[F(3)], output_range=[F(5)])
    core = [([[1, -1], [2, 1]], [0, "1/2"], "relu"), ([[1, 3]], [1], "identity")]
    with_nrm = Network(exact_net(core, 2).layers, (2,), nrm)
    # the same function written without normalisation, folded by hand:
    # x' = ((x1 - 1)/2, (x2 + 2)/4); y = 5 * core(x') + 3
    folded = exact_net([([["1/2", "-1/4"], [1, "1/4"]], ["-1", 0], "relu"),
                        ([[5, 15]], [8], "identity")], 2)
    assert proofs.check_equivalence(with_nrm, folded).equivalent
    wrong = exact_net([([["1/2", "-1/4"], [1, "1/4"]], ["-1", 0], "relu"),
                       ([[5, 15]], [9], "identity")], 2)
    v = proofs.check_equivalence(with_nrm, wrong)
    assert v.verdict == "counterexample" and v.input is not None
    # the input is in raw units here: nnreduce's evaluator applies the normalisation
    assert outputs(with_nrm, v.input) != outputs(wrong, v.input)
    assert outputs(with_nrm, v.input) == list(v.outputs[0])


def test_smtlib_written_and_cvc5_asked_when_sampling_finds_the_counterexample(
        tmp_path: Path) -> None:
    ex = proofs.linear_combination_example()
    out = tmp_path / "q.smt2"
    v = proofs.check_equivalence(ex.original, ex.reduced, smtlib=out, second_opinion="cvc5")
    assert v.verdict == "counterexample" and v.second_opinion == "sat"
    s = z3.Solver()
    s.add(z3.parse_smt2_file(str(out)))
    assert s.check() == z3.sat

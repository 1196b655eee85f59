"""The compiled exact verifiers agree with the plain-Python exact verifier.

The engine trusts three compiled checks (int64 sums, 128-bit sums, and
residues modulo several primes with a magnitude bound) to certify its
partitions.  Here each is run on random partitions -- stable or not -- of
graphs with planted equal and proportional in-vectors, and must give the same
verdict as ``verify_partition`` on Python integers.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lumpcore._refine as R
from lumpcore import WeightedGraph
from lumpcore._kernels import csr_by_source, verify_crt, verify_i128_plain, verify_int64
from lumpcore._verify import verify_partition

BASES = [1.0, 3.0, 0.1, 1e-12, 1e9, 2.5e-15, -0.7, 1 / 3, 200.0]


def _planted(rng: np.random.Generator) -> tuple[WeightedGraph, np.ndarray]:
    n_src, n_dst = int(rng.integers(1, 4)), int(rng.integers(2, 6))
    n = n_src + n_dst
    src, dst, w = [], [], []
    proto = rng.choice(BASES, size=n_src)
    for t in range(n_dst):
        c = float(rng.choice([1.0, 1.0, 2.0, 0.5, -1.0]))
        for s in range(n_src):
            if rng.random() < 0.8:
                src.append(s)
                dst.append(n_src + t)
                w.append(float(proto[s]) * c)
    # a few random extra edges, self-loops included
    for _ in range(int(rng.integers(0, 4))):
        src.append(int(rng.integers(0, n)))
        dst.append(int(rng.integers(0, n)))
        w.append(float(rng.choice(BASES)))
    blocks = np.concatenate([np.arange(n_src), n_src + rng.integers(0, 2, n_dst)])
    return WeightedGraph.from_edges(n, src, dst, w), blocks


def _python_verdict(g: WeightedGraph, blocks: np.ndarray, proportional: bool) -> bool:
    w = R._exact_integer_weights(g)
    ints = w.to_python_ints() if isinstance(w, R._Dyadic) else w.astype(object)
    return verify_partition(g.n, g.src, g.dst, ints, blocks, proportional).ok


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), proportional=st.booleans())
def test_compiled_verifiers_agree_with_python(seed: int, proportional: bool) -> None:
    rng = np.random.default_rng(seed)
    g, raw = _planted(rng)
    blocks = R._canonical(raw.astype(np.int64))
    nb = int(blocks.max()) + 1
    expected = _python_verdict(g, blocks, proportional)
    w = R._exact_integer_weights(g)
    dummy = np.zeros(g.num_edges, dtype=np.uint64)
    indptr, targets, _, perm = csr_by_source(g.n, g.src, g.dst, dummy)
    if isinstance(w, R._Dyadic):
        mant = np.ascontiguousarray(w.mant[perm])
        shift = np.ascontiguousarray(w.shift[perm])
        plan = R._CrtPlan.for_dyadic(w, proportional)
        assert plan is not None
        ok, _, _, _, _ = verify_crt(
            g.n, indptr, targets, mant, shift, blocks, nb, proportional,
            plan.primes, plan.pow2, plan.cinv, plan.half_digits,
        )
        assert ok == expected
        if not proportional and w.bits < 125:
            assert verify_i128_plain(g.n, indptr, targets, mant, shift, blocks, nb) == expected
    else:
        ints = np.ascontiguousarray(w[perm])
        ok, _, _, _, _ = verify_int64(g.n, indptr, targets, ints, blocks, nb, proportional)
        assert ok == expected


@pytest.mark.parametrize("proportional", [False, True])
def test_planted_stable_partition_is_certified(proportional: bool) -> None:
    # targets 2, 3 receive c * (1e-12, 1e9) with c = 1 (plain) or 4 (proportional, exact)
    c = 4.0 if proportional else 1.0
    g = WeightedGraph.from_edges(4, [0, 1, 0, 1], [2, 2, 3, 3], [1e-12, 1e9, c * 1e-12, c * 1e9])
    assert isinstance(R._exact_integer_weights(g), R._Dyadic)
    blocks = np.array([0, 1, 2, 2])
    assert _python_verdict(g, blocks, proportional)

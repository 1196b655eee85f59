"""Compiled passes over float weight matrices (numba, cached on disk).

They build the weighted graph of one layer (the scaled block sums of THEORY
section 3) in one pass over the weights; the refinement itself is
lumpcore's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
from numba import njit, prange

__all__ = ["deviation_bound", "merge_columns", "runs", "take_rows", "threads_for"]

_PARALLEL_MIN = 1 << 18  # fewer entries than this: one thread (a parallel launch costs more)


@contextmanager
def threads_for(entries: int) -> Iterator[None]:
    """Run the compiled passes on one thread for small layers, on all threads otherwise."""
    if entries >= _PARALLEL_MIN:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)

_TINY = 2.2250738585072014e-308  # smallest normal float64


@njit(cache=True, parallel=True)
def merge_columns(w: np.ndarray, bias: np.ndarray, first_runs: np.ndarray,
                  first_scale: np.ndarray, rest_runs: np.ndarray, rest_dst: np.ndarray,
                  rest_scale: np.ndarray, exact: bool, out: np.ndarray,
                  normed: np.ndarray, signed: bool
                  ) -> tuple[np.ndarray, bool, np.ndarray, np.ndarray]:
    """Fill ``out`` (rows of ``w``, ``1 + width`` columns) with the scaled column sums.

    ``out[i, 0] = bias[i]``; ``out[i, 1 + c] = w[i, src(c)] * first_scale[c]``
    for the first input ``src(c)`` of merged column ``c``, plus
    ``w[i, f] * rest_scale[k]`` for every further input ``f`` (the ``k``-th,
    going to ``rest_dst[k]``).  Both lists come as runs ``(src, pos, len)``
    of consecutive inputs: ``first_runs`` with ``pos`` the merged column,
    ``rest_runs`` with ``pos`` the index ``k``.  Returns whether each row's
    weights (bias excluded) are all zero, and whether every entry is finite
    and, when ``exact``, every product and sum was exact (the scales are
    powers of two; Knuth's TwoSum error is checked to be zero).

    When ``normed`` has rows, it receives each row of ``out`` times its
    ``sign`` over its largest absolute entry (1 for an all-zero row); ``sign``
    is the sign of the row's first non-zero entry when ``signed``, else 1.
    Also returns those scales and signs.
    """
    n = w.shape[0]
    width = out.shape[1] - 1
    zero = np.zeros(n, dtype=np.bool_)
    bad = np.zeros(n, dtype=np.bool_)
    scales = np.ones(n, dtype=np.float64)
    signs = np.ones(n, dtype=np.float64)
    normalise = normed.shape[0] > 0
    for i in prange(n):
        o = out[i]
        row = w[i]
        o[0] = bias[i]
        inexact = False
        for r in range(first_runs.shape[0]):
            s0 = first_runs[r, 0]
            c0 = first_runs[r, 1]
            for t in range(first_runs[r, 2]):
                v = row[s0 + t]
                x = v * first_scale[c0 + t]
                inexact |= (v != 0.0) & (abs(x) < _TINY)
                o[1 + c0 + t] = x
        if not exact:
            inexact = False
        for r in range(rest_runs.shape[0]):
            s0 = rest_runs[r, 0]
            k0 = rest_runs[r, 1]
            for t in range(rest_runs[r, 2]):
                v = row[s0 + t]
                x = v * rest_scale[k0 + t]
                d = 1 + rest_dst[k0 + t]
                a = o[d]
                s = a + x
                bb = s - a
                if exact:
                    inexact |= ((v != 0.0) & (abs(x) < _TINY)) | (
                        (a - (s - bb)) + (x - bb) != 0.0)
                o[d] = s
        allzero = True
        finite = abs(o[0]) < np.inf
        for k in range(1, 1 + width):
            allzero &= o[k] == 0.0
            finite &= abs(o[k]) < np.inf
        zero[i] = allzero
        bad[i] = inexact or not finite
        sg = 1.0
        if signed:
            for k in range(1 + width):
                if o[k] != 0.0:
                    sg = 1.0 if o[k] > 0.0 else -1.0
                    break
        signs[i] = sg
        if normalise:
            big = 0.0
            for k in range(1 + width):
                big = max(big, abs(o[k]))
            if big == 0.0:
                big = 1.0
            scales[i] = big
            mult = sg / big
            nrow = normed[i]
            for k in range(1 + width):
                nrow[k] = o[k] * mult
    return zero, not bad.any(), scales, signs


def runs(src: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Split parallel index arrays into maximal runs ``(src, pos, length)``.

    Within a run both ``src`` and ``pos`` go up by one at each step.
    """
    if src.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    brk = np.ones(src.size, dtype=bool)
    brk[1:] = (np.diff(src) != 1) | (np.diff(pos) != 1)
    starts = np.flatnonzero(brk)
    lengths = np.diff(np.append(starts, src.size))
    return np.ascontiguousarray(np.stack([src[starts], pos[starts], lengths], axis=1),
                                dtype=np.int64)


@njit(cache=True, parallel=True)
def take_rows(mb: np.ndarray, rows: np.ndarray, first_col: int, out: np.ndarray) -> None:
    """``out[:] = mb[rows, first_col:]`` (rows copied in parallel)."""
    n = rows.shape[0]
    m = mb.shape[1] - first_col
    for j in prange(n):
        src = mb[rows[j]]
        dst = out[j]
        for k in range(m):
            dst[k] = src[first_col + k]


@njit(cache=True, parallel=True)
def deviation_bound(mb: np.ndarray, members: np.ndarray, reps: np.ndarray,
                    rho: np.ndarray) -> float:
    """``max |rho[j] * mb[members[j]] - mb[reps[j]]|`` plus a relative margin of ``2**-40``."""
    n = members.shape[0]
    m = mb.shape[1]
    best = np.zeros(n, dtype=np.float64)
    for j in prange(n):
        x = mb[members[j]]
        y = mb[reps[j]]
        r = rho[j]
        dev = 0.0
        for k in range(m):
            scaled = r * x[k]
            ref = y[k]
            dev = max(dev, abs(scaled - ref) + 2.0**-40 * (abs(scaled) + abs(ref)))
        best[j] = dev
    return best.max() if n else 0.0

"""Compiled passes over float weight matrices (numba, cached on disk).

They build the weighted graph of one layer (the scaled block sums of THEORY
section 3) in one pass over the weights; the refinement itself is
lumpcore's.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from lumpcore._dense import (  # lumpcore's candidate hash, fused into the pass
    column_signature,
    signature_version,
)

__all__ = ["deviation_bound", "merge_columns", "runs", "take_rows"]

_ABS = np.int64(0x7FFFFFFFFFFFFFFF)  # all bits but the sign
_INF_BITS = np.int64(0x7FF0000000000000)  # bit pattern of inf; NaNs lie above


# The helpers below work on slices so that LLVM vectorises their loops; their
# reductions are integer max or boolean or (a float reduction would need
# reassociation, which would also break the TwoSum check).
@njit(cache=True, inline="always")
def _scale_into(dst: np.ndarray, src: np.ndarray, scale: np.ndarray, inv: np.ndarray) -> bool:
    """``dst = src * scale``; True if a product was inexact (it does not scale back)."""
    inexact = False
    for t in range(dst.shape[0]):
        v = src[t]
        x = v * scale[t]
        inexact |= x * inv[t] != v
        dst[t] = x
    return inexact


@njit(cache=True, inline="always")
def _add_scaled_into(dst: np.ndarray, src: np.ndarray, scale: np.ndarray,
                     inv: np.ndarray) -> bool:
    """``dst += src * scale``; True if a product or a sum was inexact (TwoSum error)."""
    inexact = False
    for t in range(dst.shape[0]):
        v = src[t]
        x = v * scale[t]
        a = dst[t]
        s = a + x
        bb = s - a
        inexact |= (x * inv[t] != v) | ((a - (s - bb)) + (x - bb) != 0.0)
        dst[t] = s
    return inexact


@njit(cache=True, inline="always")
def _abs_bits_max(x: np.ndarray) -> np.int64:
    """Largest bit pattern of ``|x[k]|`` (ordered like the values; inf and NaN on top)."""
    bits = x.view(np.int64)
    top = np.int64(0)
    for k in range(bits.shape[0]):
        top = max(top, bits[k] & _ABS)
    return top


@njit(cache=True, parallel=True)
def merge_columns(w: np.ndarray, bias: np.ndarray, first_runs: np.ndarray,
                  first_scale: np.ndarray, first_inv: np.ndarray, rest_runs: np.ndarray,
                  rest_scale: np.ndarray, rest_inv: np.ndarray, exact: bool, out: np.ndarray,
                  normed: np.ndarray, signed: bool, mult_sig: np.ndarray, proportional: bool,
                  step: float, hashes: np.ndarray, pivot: np.ndarray, pval: np.ndarray,
                  status: np.ndarray, short: np.ndarray
                  ) -> tuple[np.ndarray, bool, np.ndarray, np.ndarray, int]:
    """Fill ``out`` (rows of ``w``, ``1 + width`` columns) with the scaled column sums.

    ``out[i, 0] = bias[i]``; ``out[i, 1 + c] = w[i, src(c)] * first_scale[c]``
    for the first input ``src(c)`` of merged column ``c``, plus
    ``w[i, f] * rest_scale[k]`` for every further input ``f`` (the ``k``-th).
    Inputs come in runs, consecutive in input and merged column:
    ``first_runs`` rows ``(src, column, length)``, ``rest_runs`` rows
    ``(src, column, length, k)``.  ``*_inv`` are the reciprocals of the
    scales.  Returns whether each row's weights (bias excluded) are all zero,
    whether every entry is finite and, when ``exact``, every product and sum
    was exact (the scales are powers of two: a product is exact iff it
    scales back to the weight; sums by Knuth's TwoSum error), and each row's
    largest absolute entry and sign (below).

    When ``normed`` has rows, it receives each row of ``out`` times its
    ``sign`` over its largest absolute entry (1 for an all-zero row); ``sign``
    is the sign of the row's first non-zero entry when ``signed``, else 1.

    When ``hashes`` has rows, the pass also fills ``hashes``, ``pivot``,
    ``pval``, ``status``, ``short`` with lumpcore's
    :func:`~lumpcore._dense.column_signature` of each row of ``normed`` (when
    it has rows) or of ``out`` (``proportional`` and ``step`` are
    its parameters, ``mult_sig`` the multipliers), while the row is still in the cache.
    The last value returned is the signature version compiled into this pass
    (compare it with ``lumpcore._dense.SIGNATURE_VERSION``).
    """
    n = w.shape[0]
    width = out.shape[1] - 1
    zero = np.zeros(n, dtype=np.bool_)
    bad = np.zeros(n, dtype=np.bool_)
    scales = np.ones(n, dtype=np.float64)
    signs = np.ones(n, dtype=np.float64)
    normalise = normed.shape[0] > 0
    sign_rows = hashes.shape[0] > 0
    inv_step = 1.0 / step if step > 0.0 else 0.0
    for i in prange(n):
        o = out[i]
        row = w[i]
        o[0] = bias[i]
        inexact = False
        for r in range(first_runs.shape[0]):
            s0, c0, ln = first_runs[r, 0], first_runs[r, 1], first_runs[r, 2]
            inexact |= _scale_into(o[1 + c0:1 + c0 + ln], row[s0:s0 + ln],
                                   first_scale[c0:c0 + ln], first_inv[c0:c0 + ln])
        for r in range(rest_runs.shape[0]):
            s0, c0, ln, k0 = rest_runs[r, 0], rest_runs[r, 1], rest_runs[r, 2], rest_runs[r, 3]
            inexact |= _add_scaled_into(o[1 + c0:1 + c0 + ln], row[s0:s0 + ln],
                                        rest_scale[k0:k0 + ln], rest_inv[k0:k0 + ln])
        top = _abs_bits_max(o[1:])
        zero[i] = top == 0
        top = max(top, _abs_bits_max(o[:1]))
        bad[i] = top >= _INF_BITS or (exact and inexact)
        cell = np.empty(1, dtype=np.int64)
        cell[0] = top
        big = cell.view(np.float64)[0]
        sg = 1.0
        if signed:
            for k in range(1 + width):
                if o[k] != 0.0:
                    sg = 1.0 if o[k] > 0.0 else -1.0
                    break
        signs[i] = sg
        if big == 0.0:
            big = 1.0
        scales[i] = big
        if normalise:
            factor = sg / big
            nrow = normed[i]
            for k in range(1 + width):
                nrow[k] = o[k] * factor
        if sign_rows:
            buf = np.empty(1 + width, dtype=np.float64)
            qbuf = np.empty(1 + width if step > 0.0 else 0, dtype=np.float64)
            hashes[i], pivot[i], pval[i], status[i], short[i] = column_signature(
                normed[i] if normalise else o, proportional, step, inv_step, mult_sig, buf,
                qbuf)
    return zero, not bad.any(), scales, signs, signature_version()


def runs(src: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Split parallel index arrays into maximal runs ``(src, pos, length, start)``.

    Within a run both ``src`` and ``pos`` go up by one at each step;
    ``start`` is the index of the run's first element in the arrays.
    """
    if src.size == 0:
        return np.zeros((0, 4), dtype=np.int64)
    brk = np.ones(src.size, dtype=bool)
    brk[1:] = (np.diff(src) != 1) | (np.diff(pos) != 1)
    starts = np.flatnonzero(brk)
    lengths = np.diff(np.append(starts, src.size))
    return np.ascontiguousarray(np.stack([src[starts], pos[starts], lengths, starts], axis=1),
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
        buf = np.empty(m, dtype=np.float64)
        for k in range(m):
            scaled = r * x[k]
            ref = y[k]
            buf[k] = abs(scaled - ref) + 2.0**-40 * (abs(scaled) + abs(ref))
        cell = np.empty(1, dtype=np.int64)
        cell[0] = _abs_bits_max(buf)  # the largest (non-negative) entry, by its bits
        best[j] = cell.view(np.float64)[0]
    return best.max() if n else 0.0

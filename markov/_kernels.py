"""Compiled passes over the edge arrays of float chains (numba, cached on disk).

Only bookkeeping lives here (extracting Storm's rate matrix, building a
forward quotient); every refinement is done by :mod:`lumpcore`.  Each pass
reproduces exactly (bit for bit) what the numpy code it replaces computed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["exact_diagonals", "forward_quotient", "rate_edges_float", "sorted_offdiagonal_rows"]


@njit(cache=True, inline="always")
def _insert_ascending(svals: np.ndarray, start: int, end: int,
                      x: float) -> None:  # pragma: no cover - compiled
    """Insert ``x`` into the ascending run ``svals[start:end]`` (``svals[end]`` is free)."""
    c = end - 1
    while c >= start and svals[c] > x:
        svals[c + 1] = svals[c]
        c -= 1
    svals[c + 1] = x


@njit(cache=True)
def rate_edges_float(  # pragma: no cover - compiled
    n: int, src: np.ndarray, dst: np.ndarray, val: np.ndarray, loops: np.ndarray,
    has_loops: bool, rs: np.ndarray, rd: np.ndarray, rv: np.ndarray,
) -> int:
    """Storm's rate matrix from a canonical generator: the off-diagonal entries
    plus the non-zero self-loops, sorted by (row, column), in one pass.

    Written to ``rs, rd, rv`` (allocated by the caller with numpy, which puts
    large arrays on huge pages; numba's own allocations fault page by page,
    which costs as much as the pass); returns the number of entries.
    """
    m = src.shape[0]
    p = 0
    e = 0
    for i in range(n):
        while e < m and src[e] == i and dst[e] < i:
            rs[p] = i
            rd[p] = dst[e]
            rv[p] = val[e]
            p += 1
            e += 1
        if e < m and src[e] == i and dst[e] == i:
            e += 1  # the generator's diagonal is not a rate
        if has_loops and loops[i] != 0.0:
            rs[p] = i
            rd[p] = i
            rv[p] = loops[i]
            p += 1
        while e < m and src[e] == i:
            rs[p] = i
            rd[p] = dst[e]
            rv[p] = val[e]
            p += 1
            e += 1
    return p


@njit(cache=True)
def forward_quotient(  # pragma: no cover - compiled
    n: int, indptr: np.ndarray, dst: np.ndarray, val: np.ndarray, block_of: np.ndarray, k: int,
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, svals: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
           np.ndarray]:
    """Rows of a forward quotient: ``Qt(I, J) = sum_{v in J} M(s, v)`` for the
    smallest state ``s`` of block ``I`` (``M`` given by edges sorted by row, with
    row pointers ``indptr``).

    Each sum adds the row's entries in column order (as ``numpy.bincount``
    over the sorted pairs does).  Returns ``(rows, cols, vals, diag_at,
    sorted_vals, row_start, own, reps)``: the off-diagonal quotient entries
    sorted by (row, column) with one reserved slot (value 0) at the diagonal
    position of every row that has an off-diagonal entry (``diag_at[I]``, -1
    if none); the off-diagonal values of every such row in ascending order
    (``sorted_vals``; row ``q`` of those rows starts at ``row_start[q]``, for
    exit rates summed like ``_fsum_rows``); ``own[I] = Qt(I, I)`` (0 if
    absent); and the representatives.  ``rows, cols, vals, svals`` are
    work arrays of length at least ``len(src) + k`` from the caller (numpy:
    huge pages); the returned arrays are views of them.
    """
    reps = np.full(k, -1, dtype=np.int64)
    for v in range(n):
        b = block_of[v]
        if reps[b] < 0:
            reps[b] = v
    row_start = np.empty(k + 1, dtype=np.int64)
    diag_at = np.full(k, -1, dtype=np.int64)
    own = np.zeros(k, dtype=np.float64)
    cap = 64
    bj = np.empty(cap, dtype=np.int64)
    bv = np.empty(cap, dtype=np.float64)
    p = 0
    sp = 0
    nrows = 0
    for b in range(k):
        s = reps[b]
        lo = indptr[s]
        d = indptr[s + 1] - lo
        if d > cap:
            cap = 2 * d
            bj = np.empty(cap, dtype=np.int64)
            bv = np.empty(cap, dtype=np.float64)
        # the row's (target block, value) pairs, stably sorted by block
        if d <= 32:
            for t in range(d):
                j = block_of[dst[lo + t]]
                x = val[lo + t]
                c = t - 1
                while c >= 0 and bj[c] > j:
                    bj[c + 1] = bj[c]
                    bv[c + 1] = bv[c]
                    c -= 1
                bj[c + 1] = j
                bv[c + 1] = x
        else:
            jj = np.empty(d, dtype=np.int64)
            for t in range(d):
                jj[t] = block_of[dst[lo + t]]
            order = np.argsort(jj, kind="mergesort")
            for t in range(d):
                bj[t] = jj[order[t]]
                bv[t] = val[lo + order[t]]
        # sum each run in edge order; emit by increasing column
        placed = False
        start = sp
        t = 0
        while t < d:
            j = bj[t]
            acc = 0.0 + bv[t]
            t += 1
            while t < d and bj[t] == j:
                acc = acc + bv[t]
                t += 1
            if j == b:
                own[b] = acc
                continue
            if not placed and j > b:
                rows[p] = b
                cols[p] = b
                vals[p] = 0.0
                diag_at[b] = p
                p += 1
                placed = True
            rows[p] = b
            cols[p] = j
            vals[p] = acc
            p += 1
            _insert_ascending(svals, start, sp, acc)  # into this row's sorted values
            sp += 1
        if sp > start:
            if not placed:
                rows[p] = b
                cols[p] = b
                vals[p] = 0.0
                diag_at[b] = p
                p += 1
            row_start[nrows] = start
            nrows += 1
    row_start[nrows] = sp
    return (rows[:p], cols[:p], vals[:p], diag_at, svals[:sp], row_start[:nrows + 1], own, reps)


@njit(cache=True)
def sorted_offdiagonal_rows(  # pragma: no cover - compiled
    n: int, src: np.ndarray, dst: np.ndarray, val: np.ndarray, svals: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The off-diagonal values of every row (edges sorted by row) in ascending
    order, into ``svals`` (from the caller, numpy-allocated); returns the rows
    that have such values and where each starts in ``svals`` (one more entry
    at the end)."""
    m = src.shape[0]
    rows_with = np.empty(n, dtype=np.int64)
    starts = np.empty(n + 1, dtype=np.int64)
    nr = 0
    sp = 0
    e = 0
    while e < m:
        r = src[e]
        start = sp
        while e < m and src[e] == r:
            if dst[e] != r:
                _insert_ascending(svals, start, sp, val[e])
                sp += 1
            e += 1
        if sp > start:
            rows_with[nr] = r
            starts[nr] = start
            nr += 1
    starts[nr] = sp
    return rows_with[:nr], starts[:nr + 1]


@njit(cache=True)
def exact_diagonals(  # pragma: no cover - compiled
    n: int, src: np.ndarray, dst: np.ndarray, val: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minus the exact rate sum of every row (edges sorted by row) whose stored diagonal
    is not exactly that, as floats whose exact sum it is.

    Each row's rates are summed into a non-overlapping expansion (Shewchuk's
    grow-expansion: Knuth's TwoSum, zero components dropped), which holds the
    exact sum; usually one or two floats.  Returns ``bad`` (per row: the stored
    diagonal differs), and the rows and values of the expansions' components
    (negated) of the bad rows.
    """
    m = src.shape[0]
    bad = np.zeros(n, dtype=np.bool_)
    out_rows = np.empty(m, dtype=np.int64)
    out_vals = np.empty(m, dtype=np.float64)
    comp = np.empty(m + 1, dtype=np.float64)
    k_out = 0
    e = 0
    while e < m:
        r = src[e]
        nc = 0
        d = 0.0
        while e < m and src[e] == r:
            x = val[e]
            if dst[e] == r:
                d = x
            else:
                q = x
                kept = 0
                for i in range(nc):
                    h = comp[i]
                    t = q + h
                    bb = t - q
                    err = (q - (t - bb)) + (h - bb)
                    q = t
                    if err != 0.0:
                        comp[kept] = err
                        kept += 1
                if q != 0.0:
                    comp[kept] = q
                    kept += 1
                nc = kept
            e += 1
        exact = (nc == 0 and d == 0.0) or (nc == 1 and comp[0] == -d)
        if not exact:
            bad[r] = True
            for i in range(nc):
                out_rows[k_out] = r
                out_vals[k_out] = -comp[i]
                k_out += 1
    return bad, out_rows[:k_out], out_vals[:k_out]

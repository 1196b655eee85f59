"""Compiled passes over the edge arrays of float chains (numba, cached on disk).

Only bookkeeping lives here (extracting Storm's rate matrix, building a
forward quotient); every refinement is done by :mod:`lumpcore`.  Each pass
reproduces exactly (bit for bit) what the numpy code it replaces computed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["forward_quotient", "rate_edges_float"]


@njit(cache=True)
def rate_edges_float(  # pragma: no cover - compiled
    n: int, src: np.ndarray, dst: np.ndarray, val: np.ndarray, loops: np.ndarray,
    has_loops: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Storm's rate matrix from a canonical generator: the off-diagonal entries
    plus the non-zero self-loops, sorted by (row, column), in one pass."""
    m = src.shape[0]
    extra = 0
    if has_loops:
        for i in range(n):
            if loops[i] != 0.0:
                extra += 1
    size = m + extra
    rs = np.empty(size, dtype=np.int64)
    rd = np.empty(size, dtype=np.int64)
    rv = np.empty(size, dtype=np.float64)
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
    return rs[:p], rd[:p], rv[:p]


@njit(cache=True)
def forward_quotient(  # pragma: no cover - compiled
    n: int, src: np.ndarray, dst: np.ndarray, val: np.ndarray, block_of: np.ndarray, k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
           np.ndarray]:
    """Rows of a forward quotient: ``Qt(I, J) = sum_{v in J} M(s, v)`` for the
    smallest state ``s`` of block ``I`` (``M`` given by edges sorted by row).

    Each sum adds the row's entries in column order (as ``numpy.bincount``
    over the sorted pairs does).  Returns ``(rows, cols, vals, diag_at,
    sorted_vals, row_start, own, reps)``: the off-diagonal quotient entries
    sorted by (row, column) with one reserved slot (value 0) at the diagonal
    position of every row that has an off-diagonal entry (``diag_at[I]``, -1
    if none); the off-diagonal values of every such row in ascending order
    (``sorted_vals``; row ``q`` of those rows starts at ``row_start[q]``, for
    exit rates summed like ``_fsum_rows``); ``own[I] = Qt(I, I)`` (0 if
    absent); and the representatives.
    """
    m = src.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int64)
    for e in range(m):
        indptr[src[e] + 1] += 1
    for v in range(n):
        indptr[v + 1] += indptr[v]
    reps = np.full(k, -1, dtype=np.int64)
    for v in range(n):
        b = block_of[v]
        if reps[b] < 0:
            reps[b] = v
    total = 0
    for b in range(k):
        s = reps[b]
        total += indptr[s + 1] - indptr[s] + 1
    rows = np.empty(total, dtype=np.int64)
    cols = np.empty(total, dtype=np.int64)
    vals = np.empty(total, dtype=np.float64)
    svals = np.empty(total, dtype=np.float64)
    row_start = np.empty(k + 1, dtype=np.int64)
    diag_at = np.full(k, -1, dtype=np.int64)
    own = np.zeros(k, dtype=np.float64)
    slot = np.full(k, -1, dtype=np.int64)
    js = np.empty(k if k < 64 else 64, dtype=np.int64)
    acc = np.zeros(k, dtype=np.float64)
    p = 0
    sp = 0
    nrows = 0
    for b in range(k):
        s = reps[b]
        nj = 0
        for e in range(indptr[s], indptr[s + 1]):
            j = block_of[dst[e]]
            if slot[j] < 0:
                slot[j] = nj
                if nj == js.shape[0]:
                    grown = np.empty(2 * nj, dtype=np.int64)
                    grown[:nj] = js[:nj]
                    js = grown
                js[nj] = j
                nj += 1
                acc[j] = 0.0 + val[e]
            else:
                acc[j] = acc[j] + val[e]
        # columns in increasing order (rows are short: insertion sort)
        for a in range(1, nj):
            x = js[a]
            c = a - 1
            while c >= 0 and js[c] > x:
                js[c + 1] = js[c]
                c -= 1
            js[c + 1] = x
        noff = 0
        for a in range(nj):
            if js[a] != b:
                noff += 1
        placed = noff == 0
        start = sp
        for a in range(nj):
            j = js[a]
            slot[j] = -1
            if j == b:
                own[b] = acc[j]
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
            vals[p] = acc[j]
            p += 1
            # ascending insertion into this row's sorted values
            x = acc[j]
            c = sp - 1
            while c >= start and svals[c] > x:
                svals[c + 1] = svals[c]
                c -= 1
            svals[c + 1] = x
            sp += 1
        if not placed:
            rows[p] = b
            cols[p] = b
            vals[p] = 0.0
            diag_at[b] = p
            p += 1
        if noff > 0:
            row_start[nrows] = start
            nrows += 1
    row_start[nrows] = sp
    return (rows[:p], cols[:p], vals[:p], diag_at, svals[:sp], row_start[:nrows + 1], own, reps)

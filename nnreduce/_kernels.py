"""Compiled passes over float weight matrices (numba, cached on disk).

They build the weighted graph of one layer (the scaled block sums of THEORY
section 3) in one pass over the weights; the refinement itself is
lumpcore's.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from lumpcore._dense import (  # lumpcore's candidate keys, fused into the pass
    add_to_summary,
    bits_summary,
    column_signature,
    signature_version,
    summarised_signature,
    two_prod,
)

__all__ = ["compact_rows", "deviation_bound", "merge_columns", "merge_columns_integer",
           "nonzero_columns", "runs", "take_rows", "take_rows_divided"]

_INF_BITS = np.int64(0x7FF0000000000000)  # bit pattern of inf; NaNs lie above


# The helpers below work on slices so that LLVM vectorises their loops; their
# reductions are integer max or integer or (a bool or a float reduction keeps the
# loop scalar; a float reduction would also need reassociation, which would break
# the TwoSum check).
@njit(cache=True, inline="always")
def _scale_into(o: np.ndarray, c0: int, row: np.ndarray, s0: int, ln: int, scale: np.ndarray,
                inv: np.ndarray, k0: int) -> np.int64:
    """``o[c0:c0+ln] = row[s0:s0+ln] * scale[k0:k0+ln]``; non-zero if a product was inexact
    (it does not scale back: ``inv`` holds the reciprocals)."""
    inexact = np.int64(0)
    dst = o[c0:c0 + ln]
    src = row[s0:s0 + ln]
    sc = scale[k0:k0 + ln]
    iv = inv[k0:k0 + ln]
    for t in range(ln):
        v = np.float64(src[t])
        x = v * sc[t]
        inexact |= np.int64(x * iv[t] != v)
        dst[t] = x
    return inexact


@njit(cache=True, inline="always")
def _add_scaled_into(o: np.ndarray, c0: int, row: np.ndarray, s0: int, ln: int,
                     scale: np.ndarray, inv: np.ndarray, k0: int) -> np.int64:
    """``o[c0:c0+ln] += row[s0:s0+ln] * scale[k0:k0+ln]``; non-zero if a product or a sum
    was inexact (TwoSum error)."""
    inexact = np.int64(0)
    dst = o[c0:c0 + ln]
    src = row[s0:s0 + ln]
    sc = scale[k0:k0 + ln]
    iv = inv[k0:k0 + ln]
    for t in range(ln):
        v = np.float64(src[t])
        x = v * sc[t]
        a = dst[t]
        s = a + x
        bb = s - a
        inexact |= np.int64(x * iv[t] != v) | np.int64((a - (s - bb)) + (x - bb) != 0.0)
        dst[t] = s
    return inexact


_PROD_LO = 2.0**-900  # Dekker's product error is exact for products in this range
_PROD_HI = 2.0**900


@njit(cache=True, inline="always")
def _product_inexact(v: float, m: float, x: float) -> bool:
    """Whether ``x = fl(v * m)`` differs from the exact product (Dekker's two-product;
    outside ``[2**-900, 2**900]`` the answer is "inexact", to be safe)."""
    if x == 0.0:
        return v != 0.0 and m != 0.0
    if not (_PROD_LO <= abs(x) <= _PROD_HI):
        return True
    p, e = two_prod(v, m)
    return p != x or e != 0.0


@njit(cache=True, inline="always")
def _scale_into_checked(o: np.ndarray, c0: int, row: np.ndarray, s0: int, ln: int,
                        scale: np.ndarray, k0: int) -> np.int64:
    """:func:`_scale_into` for any (integer) scales: products checked by two-product."""
    inexact = np.int64(0)
    for t in range(ln):
        v = np.float64(row[s0 + t])
        x = v * scale[k0 + t]
        inexact |= np.int64(_product_inexact(v, scale[k0 + t], x))
        o[c0 + t] = x
    return inexact


@njit(cache=True, inline="always")
def _add_scaled_into_checked(o: np.ndarray, c0: int, row: np.ndarray, s0: int, ln: int,
                             scale: np.ndarray, k0: int) -> np.int64:
    """:func:`_add_scaled_into` for any (integer) scales: products checked by two-product."""
    inexact = np.int64(0)
    for t in range(ln):
        v = np.float64(row[s0 + t])
        x = v * scale[k0 + t]
        a = o[c0 + t]
        s = a + x
        bb = s - a
        inexact |= (np.int64(_product_inexact(v, scale[k0 + t], x))
                    | np.int64((a - (s - bb)) + (x - bb) != 0.0))
        o[c0 + t] = s
    return inexact


@njit(cache=True, inline="always")
def _scale_into_exact(o: np.ndarray, c0: int, row: np.ndarray, s0: int, ln: int,
                      scale: np.ndarray, k0: int) -> np.int64:
    """:func:`_scale_into` for products exact by construction (float32 weights times
    integers below ``2**29``): nothing to check."""
    dst = o[c0:c0 + ln]
    src = row[s0:s0 + ln]
    sc = scale[k0:k0 + ln]
    for t in range(ln):
        dst[t] = np.float64(src[t]) * sc[t]
    return np.int64(0)


@njit(cache=True, inline="always")
def _add_scaled_into_exact(o: np.ndarray, c0: int, row: np.ndarray, s0: int, ln: int,
                           scale: np.ndarray, k0: int) -> np.int64:
    """:func:`_add_scaled_into` for products exact by construction: sums checked only."""
    inexact = np.int64(0)
    dst = o[c0:c0 + ln]
    src = row[s0:s0 + ln]
    sc = scale[k0:k0 + ln]
    for t in range(ln):
        x = np.float64(src[t]) * sc[t]
        a = dst[t]
        s = a + x
        bb = s - a
        inexact |= np.int64((a - (s - bb)) + (x - bb) != 0.0)
        dst[t] = s
    return inexact


@njit(cache=True, inline="always")
def _merge_row_sums_checked(o: np.ndarray, row: np.ndarray, first_runs: np.ndarray,
                            first_scale: np.ndarray, rest_runs: np.ndarray,
                            rest_scale: np.ndarray) -> np.int64:
    """One merged row (runs as in :func:`merge_columns`) whose products are exact by
    construction: non-zero if a sum was inexact (TwoSum)."""
    inexact = np.int64(0)
    for r in range(first_runs.shape[0]):
        _scale_into_exact(o, 1 + first_runs[r, 1], row, first_runs[r, 0], first_runs[r, 2],
                          first_scale, first_runs[r, 1])
    for r in range(rest_runs.shape[0]):
        inexact |= _add_scaled_into_exact(o, 1 + rest_runs[r, 1], row, rest_runs[r, 0],
                                          rest_runs[r, 2], rest_scale, rest_runs[r, 3])
    return inexact


@njit(cache=True, inline="always")
def _add_scaled_unchecked(o: np.ndarray, c0: int, row: np.ndarray, s0: int, ln: int,
                          scale: np.ndarray, k0: int) -> None:
    """:func:`_add_scaled_into` where nothing is checked (tolerance mode rounds)."""
    dst = o[c0:c0 + ln]
    src = row[s0:s0 + ln]
    sc = scale[k0:k0 + ln]
    for t in range(ln):
        dst[t] += np.float64(src[t]) * sc[t]


@njit(cache=True, inline="always")
def _from_bits(bits: np.int64) -> float:
    """The float64 whose bit pattern is ``bits``."""
    cell = np.empty(1, dtype=np.int64)
    cell[0] = bits
    return cell.view(np.float64)[0]


@njit(cache=True, inline="always")
def _term_abs_max(row: np.ndarray, abs_scale: np.ndarray) -> float:
    """Largest ``|row[f]| * abs_scale[f]`` (for rows whose merged values are finite).

    The products are stored and their largest bit pattern taken: a loop of
    float maxima does not vectorise (numba's ``max`` orders NaNs), an integer
    one does, and non-negative floats order like their bit patterns.
    """
    prod = np.empty(row.shape[0], dtype=np.float64)
    for f in range(row.shape[0]):
        prod[f] = abs(np.float64(row[f])) * abs_scale[f]
    return _from_bits(bits_summary(prod)[0])


@njit(cache=True)
def _finish_row(i: int, o: np.ndarray, inexact: np.int64, exact: bool, signed: bool,
                normed: np.ndarray, normalise: bool, sign_rows: bool, proportional: bool,
                step: float, inv_step: float, coef: np.ndarray, zero: np.ndarray,
                bad: np.ndarray, scales: np.ndarray, signs: np.ndarray, key: np.ndarray,
                radius: np.ndarray, pivot: np.ndarray, pval: np.ndarray, status: np.ndarray,
                short: np.ndarray) -> None:
    """Everything :func:`merge_columns` records of a merged row ``o`` (row ``i``)."""
    width = o.shape[0] - 1
    summary = bits_summary(o[1:])  # one pass: zero rows, finiteness, signature ranges
    zero[i] = summary[0] == 0
    summary = add_to_summary(summary, o[:1])
    bad[i] = summary[0] >= _INF_BITS or (exact and inexact != 0)
    sg = 1.0
    if signed:
        for k in range(1 + width):
            if o[k] != 0.0:
                sg = 1.0 if o[k] > 0.0 else -1.0
                break
    signs[i] = sg
    if normalise and not bad[i]:
        # the largest |entry|: the largest bit pattern of the row's absolute values, which
        # the summary holds (a float maximum would be a scalar loop: it does not vectorise)
        big = _from_bits(summary[0])
        if big == 0.0:
            big = 1.0
        scales[i] = big
        # 1 / big overflows for a row of subnormal entries: such rows are scaled up first
        pre = 2.0**600 if big < 2.0**-1000 else 1.0
        factor = sg / (big * pre)
        nrow = normed[i]
        for k in range(1 + width):
            nrow[k] = (o[k] * pre) * factor
    if sign_rows:
        qbuf = np.empty(1 + width if step > 0.0 else 0, dtype=np.float64)
        if normalise:
            key[i], radius[i], pivot[i], pval[i], status[i], short[i] = column_signature(
                normed[i], proportional, step, inv_step, coef, qbuf)
        else:
            key[i], radius[i], pivot[i], pval[i], status[i], short[i] = \
                summarised_signature(o, summary, proportional, step, inv_step, coef, qbuf)


@njit(cache=True, parallel=True)
def merge_columns_integer(w: np.ndarray, bias: np.ndarray, first_runs: np.ndarray,
                          first_scale: np.ndarray, rest_runs: np.ndarray,
                          rest_scale: np.ndarray, exact_products: bool, out: np.ndarray,
                          signed: bool, coef: np.ndarray, proportional: bool,
                          key: np.ndarray, radius: np.ndarray, pivot: np.ndarray,
                          pval: np.ndarray, status: np.ndarray, short: np.ndarray
                          ) -> tuple[np.ndarray, bool, np.ndarray, np.ndarray, int]:
    """:func:`merge_columns` in exact mode with integer scales (any integers, not only
    powers of two; lumpkit passes them below ``2**29``).

    With ``exact_products`` (float32 weights: 24-bit mantissas times such
    integers fit float64) only the sums are checked; otherwise every product
    is checked by Dekker's two-product as well.  A separate pass, compiled
    only when a network needs it (exact merges with factors that are not
    powers of two).
    """
    n = w.shape[0]
    zero = np.zeros(n, dtype=np.bool_)
    bad = np.zeros(n, dtype=np.bool_)
    scales = np.ones(n, dtype=np.float64)
    signs = np.ones(n, dtype=np.float64)
    normed = np.empty((0, 0), dtype=np.float64)
    sign_rows = key.shape[0] > 0
    for i in prange(n):
        o = out[i]
        row = w[i]
        o[0] = bias[i]
        inexact = np.int64(0)
        if exact_products:
            inexact |= _merge_row_sums_checked(o, row, first_runs, first_scale, rest_runs,
                                               rest_scale)
        else:
            for r in range(first_runs.shape[0]):
                inexact |= _scale_into_checked(o, 1 + first_runs[r, 1], row, first_runs[r, 0],
                                               first_runs[r, 2], first_scale, first_runs[r, 1])
            for r in range(rest_runs.shape[0]):
                inexact |= _add_scaled_into_checked(o, 1 + rest_runs[r, 1], row,
                                                    rest_runs[r, 0], rest_runs[r, 2],
                                                    rest_scale, rest_runs[r, 3])
        _finish_row(i, o, inexact, True, signed, normed, False, sign_rows, proportional,
                    0.0, 0.0, coef, zero, bad, scales, signs, key, radius, pivot, pval,
                    status, short)
    return zero, not bad.any(), scales, signs, signature_version()


@njit(cache=True, parallel=True)
def merge_columns(w: np.ndarray, bias: np.ndarray, first_runs: np.ndarray,
                  first_scale: np.ndarray, first_inv: np.ndarray, rest_runs: np.ndarray,
                  rest_scale: np.ndarray, rest_inv: np.ndarray, exact: bool, out: np.ndarray,
                  normed: np.ndarray, signed: bool, coef: np.ndarray, proportional: bool,
                  step: float, key: np.ndarray, radius: np.ndarray, pivot: np.ndarray,
                  pval: np.ndarray, status: np.ndarray, short: np.ndarray,
                  term_max: np.ndarray, abs_scale: np.ndarray, check: int
                  ) -> tuple[np.ndarray, bool, np.ndarray, np.ndarray, int]:
    """Fill ``out`` (rows of ``w``, ``1 + width`` columns) with the scaled column sums.

    ``out[i, 0] = bias[i]``; ``out[i, 1 + c] = w[i, src(c)] * first_scale[c]``
    for the first input ``src(c)`` of merged column ``c``, plus
    ``w[i, f] * rest_scale[k]`` for every further input ``f`` (the ``k``-th).
    Inputs come in runs, consecutive in input and merged column:
    ``first_runs`` rows ``(src, column, length)``, ``rest_runs`` rows
    ``(src, column, length, k)``.  ``*_inv`` are the reciprocals of the
    scales (powers of two: a product is exact iff it scales back to the
    weight; :func:`merge_columns_integer` takes integer scales).  Returns whether
    each row's weights (bias excluded) are all zero, whether every entry is
    finite and, when ``exact``, every product and sum was exact (sums by
    Knuth's TwoSum error), and each row's largest absolute entry and sign
    (below).  ``check`` says what is checked: 2 products and sums, 1 sums only
    (the caller knows every product to be exact: float32 weights times powers
    of two in range), 0 nothing (the answer's exactness flag is not used:
    tolerance mode).

    When ``normed`` has rows, it receives each row of ``out`` times its
    ``sign`` over its largest absolute entry (1 for an all-zero row); ``sign``
    is the sign of the row's first non-zero entry when ``signed``, else 1.

    When ``key`` has rows, the pass also fills ``key``, ``radius``, ``pivot``,
    ``pval``, ``status``, ``short`` with lumpcore's
    :func:`~lumpcore._dense.column_signature` of each row of ``normed`` (when
    it has rows) or of ``out`` (``proportional`` and ``step`` are
    its parameters, ``coef`` the projection coefficients), while the row is still in the cache.
    The last value returned is the signature version compiled into this pass
    (compare it with ``lumpcore._dense.SIGNATURE_VERSION``).

    When ``term_max`` has rows (tolerance mode), it receives each row's largest
    term ``|w[i, f]| * abs_scale[f]`` (``abs_scale``: the size of input ``f``'s
    scale, 0 for inputs merged into no column; of a row whose merged values are
    finite, others are flagged anyway): the size of the terms whose float sums
    may have cancelled, for the rounding-error bound of the merged row.
    """
    n = w.shape[0]
    track = term_max.shape[0] > 0
    zero = np.zeros(n, dtype=np.bool_)
    bad = np.zeros(n, dtype=np.bool_)
    scales = np.ones(n, dtype=np.float64)
    signs = np.ones(n, dtype=np.float64)
    normalise = normed.shape[0] > 0
    sign_rows = key.shape[0] > 0
    inv_step = 1.0 / step if step > 0.0 else 0.0
    for i in prange(n):
        o = out[i]
        row = w[i]
        o[0] = bias[i]
        inexact = np.int64(0)
        if check == 2:
            for r in range(first_runs.shape[0]):
                inexact |= _scale_into(o, 1 + first_runs[r, 1], row, first_runs[r, 0],
                                       first_runs[r, 2], first_scale, first_inv,
                                       first_runs[r, 1])
            for r in range(rest_runs.shape[0]):
                inexact |= _add_scaled_into(o, 1 + rest_runs[r, 1], row, rest_runs[r, 0],
                                            rest_runs[r, 2], rest_scale, rest_inv,
                                            rest_runs[r, 3])
        elif check == 1:
            inexact |= _merge_row_sums_checked(o, row, first_runs, first_scale, rest_runs,
                                               rest_scale)
        else:
            for r in range(first_runs.shape[0]):
                _scale_into_exact(o, 1 + first_runs[r, 1], row, first_runs[r, 0],
                                  first_runs[r, 2], first_scale, first_runs[r, 1])
            for r in range(rest_runs.shape[0]):
                _add_scaled_unchecked(o, 1 + rest_runs[r, 1], row, rest_runs[r, 0],
                                      rest_runs[r, 2], rest_scale, rest_runs[r, 3])
        if track:
            term_max[i] = _term_abs_max(row, abs_scale)
        _finish_row(i, o, inexact, exact, signed, normed, normalise, sign_rows, proportional,
                    step, inv_step, coef, zero, bad, scales, signs, key, radius, pivot, pval,
                    status, short)
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


@njit(cache=True)
def compact_rows(flat: np.ndarray, rows: np.ndarray, row_len: int) -> None:
    """In place: row ``j`` of ``flat`` (rows of ``row_len`` entries) becomes row
    ``rows[j]``, in order (``rows`` increasing, so every target lies at or before its
    source and no source is overwritten before it is read); rows already in place stay."""
    for j in range(rows.shape[0]):
        src = rows[j] * row_len
        dst = j * row_len
        if src == dst:
            continue
        for k in range(row_len):
            flat[dst + k] = flat[src + k]


@njit(cache=True, parallel=True)
def take_rows_divided(mb: np.ndarray, rows: np.ndarray, first_col: int, div: np.ndarray,
                      out: np.ndarray) -> bool:
    """``out[:] = mb[rows, first_col:] / div`` (columnwise, correctly rounded); returns
    whether any quotient was inexact (its two-product with the divisor is not the
    dividend)."""
    n = rows.shape[0]
    m = mb.shape[1] - first_col
    bad = np.zeros(n, dtype=np.bool_)
    for j in prange(n):
        src = mb[rows[j]]
        dst = out[j]
        inexact = False
        for k in range(m):
            a = src[first_col + k]
            d = div[k]
            q = a / d
            dst[k] = q
            if d != 1.0:
                inexact |= q * d != a or _product_inexact(q, d, a)
        bad[j] = inexact
    return bool(bad.any())


@njit(cache=True, inline="always")
def _deviation_exact_errors(r: float, x: float, ref: float, tiny: float) -> float:
    """A bound of ``|r x - ref|`` for a product ``r x`` in the two-product's range: the
    float product and difference with their exact errors, a relative ``2**-50`` for the
    roundings of this sum, ``tiny`` for values that underflowed."""
    p, e1 = two_prod(r, x)
    d = p - ref
    bb = d - p
    e2 = (p - (d - bb)) + (-ref - bb)  # d + e2 = p - ref exactly
    return (abs(d) + abs(e1) + abs(e2)) * (1.0 + 2.0**-50) + tiny


@njit(cache=True, parallel=True)
def deviation_bound(mb: np.ndarray, members: np.ndarray, reps: np.ndarray,
                    rho: np.ndarray) -> float:
    """An upper bound of ``max |rho[j] * mb[members[j]] - mb[reps[j]]|`` (the exact values of
    the float entries), plus ``2**-1073 (|rho[j]| + 1)`` (values that underflowed).

    The product and the difference come with their exact errors (Dekker's
    two-product, Knuth's TwoSum), so the bound is the deviation itself up to a relative
    ``2**-50``.  Where the two-product does not apply (a factor, an entry or their
    product outside ``[2**-900, 2**900]``) a margin of ``2**-40`` of the values' sizes
    is used instead.
    """
    n = members.shape[0]
    m = mb.shape[1]
    best = np.zeros(n, dtype=np.float64)
    for j in prange(n):
        x = mb[members[j]]
        y = mb[reps[j]]
        r = rho[j]
        tiny = 2.0**-1073 * (abs(r) + 1.0)
        r_ok = abs(r) <= _PROD_HI
        buf = np.empty(m, dtype=np.float64)
        top, bottom, _ = bits_summary(x)
        if r_ok and r != 0.0 and top < _INF_BITS and (
                top == 0 or (abs(r) * _from_bits(top) <= _PROD_HI / 2
                             and abs(r) * _from_bits(bottom) >= _PROD_LO * 2
                             and _from_bits(top) <= _PROD_HI)):
            # every product of a non-zero entry lies in the two-product's range (checked
            # with a factor 2 of margin for the roundings of the check); zero entries give
            # exact zero products: one loop without branches, which vectorises
            for k in range(m):
                buf[k] = _deviation_exact_errors(r, x[k], y[k], tiny)
        else:
            for k in range(m):
                ref = y[k]
                xk = x[k]
                p = r * xk
                if r_ok and abs(xk) <= _PROD_HI and _PROD_LO <= abs(p) <= _PROD_HI:
                    buf[k] = _deviation_exact_errors(r, xk, ref, tiny)
                else:
                    buf[k] = abs(p - ref) + 2.0**-40 * (abs(p) + abs(ref)) + tiny
        best[j] = _from_bits(bits_summary(buf)[0])  # the largest (non-negative) entry
    return best.max() if n else 0.0


@njit(cache=True)
def nonzero_columns(w: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Which columns of ``w`` hold a non-zero entry in a row ``r`` with ``rows[r]``.

    Stops at the first row after which every column has one: on a dense
    matrix that is after a row or two.
    """
    n, f = w.shape
    nz = np.zeros(f, dtype=np.bool_)
    left = f
    for r in range(n):
        if left == 0:
            break
        if not rows[r]:
            continue
        row = w[r]
        for c in range(f):
            if not nz[c] and row[c] != 0:
                nz[c] = True
                left -= 1
    return nz

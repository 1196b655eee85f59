"""Coarsest lumping of a layer-shaped graph held as a dense biadjacency matrix.

A graph built by :meth:`WeightedGraph.from_biadjacency` has edges only from
its row nodes (sources) to its column nodes (targets).  When every source
starts in a block of its own that no target shares, backward refinement
needs one step: sources receive nothing, so their blocks are stable, and a
target's sum from a source block is its single matrix entry.  The coarsest
stable partition therefore groups the targets of one initial label whose
columns are equal (plain) or positive multiples of each other
(proportional): of the exact values in exact arithmetic, of the values
rounded to the grid ``tolerance * Z`` in float arithmetic.  This is the same
answer the general splitter algorithm gives on the edge list (the tests
compare both); it is computed here in two compiled passes over the matrix:

1. every column gets a *key*: a random projection ``S = sum_k c_k x_k``
   (fixed coefficients ``c_k`` in ``[1, 2)``) divided by its first non-zero
   entry ``x_p`` (plain mode: ``S`` itself), computed in float arithmetic
   together with a rigorous bound of its rounding error.  Exactly
   proportional (plain: equal) columns have equal exact keys, so their
   computed key intervals overlap: candidate groups are the connected runs
   of overlapping intervals (per initial label, sign and pivot position), and
   no merge can be missed.  A projection costs two multiply-adds per entry,
   far less than a division per entry;
2. every column of a candidate group is compared *exactly* with the group's
   first member: ``x_k * y_p == y_k * x_p`` for all ``k``, the products
   compared exactly (Dekker's two-product; a plain product when both
   mantissas are short enough for it to be exact).  A failed comparison (two
   distinct columns with overlapping keys) splits the group and the
   comparison is repeated.

Inputs the exact products cannot cover (entries beyond ``2**±400``, grid
steps beyond ``2**±800``, grid integers of ``2**50`` or more, a float grid
chosen automatically) fall back to the general path.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
from numba import njit, prange

from ._graph import check_biadjacency_finite
from ._result import Lumping
from ._threads import threads_for

__all__ = ["SIGNATURE_VERSION", "Signatures", "add_to_summary", "bits_summary",
           "column_signature", "dense_lumping", "signature_coefficients", "signature_version",
           "summarised_signature", "two_prod", "with_signatures"]

_SPLIT = 134217729.0  # 2**27 + 1, Dekker's splitter
_LO = 2.0**-400  # exact products need every non-zero |entry| in [_LO, _HI]
_HI = 2.0**400
_QMAX = 2.0**50  # grid integers must stay below this
_LOW27I = np.int64((1 << 27) - 1)  # mantissa bits that must be zero for a plain exact product

# status codes of a column
_OK, _NONFINITE, _RANGE = 0, 1, 2

# bit patterns of |x| (ordered like the values) for the range tests
_ABS = np.int64(0x7FFFFFFFFFFFFFFF)
_MAXI = np.int64(0x7FFFFFFFFFFFFFFF)
_INF_BITS = np.int64(0x7FF0000000000000)
_HI_BITS = np.int64(np.array([_HI]).view(np.int64)[0])
_LO_BITS = np.int64(np.array([_LO]).view(np.int64)[0])
_QMAX_BITS = np.int64(np.array([_QMAX]).view(np.int64)[0])


@njit(inline="always")
def two_prod(a: float, b: float) -> tuple[float, float]:
    """``fl(a * b)`` and its exact error (Dekker; no overflow, no underflow assumed)."""
    p = a * b
    c = _SPLIT * a
    ah = c - (c - a)
    al = a - ah
    c = _SPLIT * b
    bh = c - (c - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


@njit(inline="always")
def _grid(x: float, step: float, inv: float) -> float:
    """``x / step`` rounded to the nearest integer exactly (ties to even); ``inv = 1 / step``.

    ``x * inv`` is within two units in the last place of ``x / step``; only
    values that close to a half-way point are decided exactly.
    """
    q = x * inv
    k = np.floor(q)
    f = q - k
    window = 1e-6 + abs(q) * 2.0**-50
    if abs(f - 0.5) > window:
        return k + 1.0 if f > 0.5 else k
    # near a half-way point: the sign of x - (k + 1/2) * step, exactly
    p, e = two_prod(k + 0.5, step)
    d = x - p  # exact (Sterbenz): x and p agree to far better than a factor 2
    if d > e:
        return k + 1.0
    if d < e:
        return k
    return k if k % 2.0 == 0.0 else k + 1.0


# Row helpers.  Their loops are written so that LLVM vectorises them: the only
# reductions are integer min/max, integer wrapping sums and boolean or (a float
# reduction would need reassociation, which the exact checks must not get).
@njit(cache=True, inline="always")
def _grid_row(dst: np.ndarray, src: np.ndarray, step: float, inv: float) -> None:
    """``dst[k]`` = ``src[k] / step`` rounded to the nearest integer exactly (ties to even)."""
    near = False
    for k in range(src.shape[0]):
        q = src[k] * inv
        fl = np.floor(q)
        f = q - fl
        near |= abs(f - 0.5) <= 1e-6 + abs(q) * 2.0**-50
        dst[k] = fl + 1.0 if f > 0.5 else fl
    if near:  # rare: settle the entries close to a half-way point exactly
        for k in range(src.shape[0]):
            dst[k] = _grid(src[k], step, inv)


@njit(cache=True, inline="always")
def bits_summary(x: np.ndarray) -> tuple[np.int64, np.int64, np.int64]:
    """Largest and smallest non-zero bit pattern of ``|x[k]|`` (ordered like the
    values; infinities and NaNs have the largest, an all-zero ``x`` gives
    ``(0, 2**63 - 1)``) and the or of the entries' low 27 mantissa bits (0: every
    mantissa fits 26 bits), in one pass."""
    bits = x.view(np.int64)
    top = np.int64(0)
    bottom = _MAXI
    low = np.int64(0)
    for k in range(bits.shape[0]):
        b = bits[k] & _ABS
        top = max(top, b)
        bottom = min(bottom, b if b != 0 else _MAXI)
        low |= b & _LOW27I
    return top, bottom, low


@njit(cache=True, inline="always")
def add_to_summary(summary: tuple[np.int64, np.int64, np.int64], x: np.ndarray
                   ) -> tuple[np.int64, np.int64, np.int64]:
    """:func:`bits_summary` of an array extended by the entries of ``x`` (a few)."""
    top, bottom, low = summary
    more = bits_summary(x)
    return max(top, more[0]), min(bottom, more[1]), low | more[2]


class Signatures(NamedTuple):
    """Per-target signatures of a biadjacency, as :func:`column_signature` computes them.

    A caller that builds the matrix in a compiled pass of its own can compute
    them there, while each row is still in the cache, and attach them with
    :func:`with_signatures`; :func:`dense_lumping` then skips its own pass.
    They must have been computed for the same ``proportional`` and ``step``
    and with :func:`signature_coefficients` of the row length.
    """

    key: np.ndarray  # float64 per target: projection over the pivot value (plain: projection)
    radius: np.ndarray  # float64: bound of |computed key - exact key|
    pivot: np.ndarray  # int64: first non-zero position (-1: all zero)
    pval: np.ndarray  # float64: the value there (after gridding)
    status: np.ndarray  # int8: _OK, _NONFINITE, _RANGE
    short: np.ndarray  # bool: every mantissa fits 26 bits (plain exact products)
    proportional: bool
    step: float


#: Version of :func:`column_signature`; change it whenever the signature changes.  numba's
#: on-disk cache of a caller in another file (nnreduce's merge pass, which inlines it) is
#: not invalidated by a change here, so callers report the version their compiled code
#: was built with (:func:`signature_version`) and stale signatures are not used.
SIGNATURE_VERSION = 4

_U = 2.0**-53  # unit roundoff of float64
_TINY = 2.0**-1074  # smallest subnormal: the absolute error of one underflowing operation


@njit(cache=True, inline="always")
def signature_version() -> int:
    """:data:`SIGNATURE_VERSION` as compiled into the calling kernel."""
    return SIGNATURE_VERSION


@njit(cache=True, fastmath={"reassoc", "contract"})
def _project(vals: np.ndarray, coef: np.ndarray) -> tuple[float, float]:
    """``sum_k coef[k] * vals[k]`` and ``sum_k coef[k] * |vals[k]|`` in float arithmetic.

    Reassociation (vectorised partial sums) and fused multiply-adds are
    allowed: the error bound used by :func:`column_signature` (``gamma_m``
    times the sum of absolute products) holds for every order of summation.
    """
    s = 0.0
    a = 0.0
    for k in range(vals.shape[0]):
        v = vals[k]
        s += v * coef[k]
        a += abs(v) * coef[k]
    return s, a


@njit(cache=True, inline="always")
def _key_of(vals: np.ndarray, coef: np.ndarray, proportional: bool, pv: float
            ) -> tuple[float, float]:
    """Key and radius of one vector: ``|computed key - exact key| <= radius``.

    ``S = sum c_k x_k`` is computed with error at most ``gamma_m * A`` where
    ``A = sum c_k |x_k|`` (any summation order, ``gamma_m = m u / (1 - m u)``)
    plus ``2 m`` underflowing operations of at most ``2**-1074`` each; ``A``
    itself is computed with a relative error below ``gamma_m``.  In
    proportional mode the key is ``S / pv`` (``pv`` the exact pivot value);
    its division adds at most one rounding.
    """
    m = vals.shape[0]
    s, a = _project(vals, coef)
    g = m * _U / (1.0 - m * _U)
    err = (g * a / (1.0 - g) + 2.0 * m * _TINY) * (1.0 + 2.0**-40)
    if not proportional:
        return s, err
    key = s / pv
    return key, (err / abs(pv) + abs(key) * 2.0**-52) * (1.0 + 2.0**-40)


@njit(cache=True, inline="always")
def column_signature(row: np.ndarray, proportional: bool, step: float, inv: float,
                     coef: np.ndarray, qbuf: np.ndarray
                     ) -> tuple[float, float, np.int64, float, np.int8, bool]:
    """Key, key radius, pivot, pivot value, status and shortness of one target's vector.

    ``inv = 1 / step`` (0 without a grid); ``qbuf`` is a scratch array of
    the row's length (it may be empty without a grid).  Exactly proportional
    (plain: equal) vectors get keys whose intervals ``key +- radius``
    overlap.
    """
    return summarised_signature(row, bits_summary(row), proportional, step, inv, coef, qbuf)


@njit(cache=True, inline="always")
def summarised_signature(row: np.ndarray, summary: tuple[np.int64, np.int64, np.int64],
                         proportional: bool, step: float, inv: float, coef: np.ndarray,
                         qbuf: np.ndarray
                         ) -> tuple[float, float, np.int64, float, np.int8, bool]:
    """:func:`column_signature` given :func:`bits_summary` of ``row`` (a caller that
    built the row can compute it while it writes the row)."""
    m = row.shape[0]
    grid = step > 0.0
    top, bottom, low = summary
    if top >= _INF_BITS:
        return 0.0, 0.0, np.int64(-1), 0.0, np.int8(_NONFINITE), False
    if grid:
        _grid_row(qbuf, row, step, inv)
        vals = qbuf
        top, bottom, low = bits_summary(qbuf)
        if top >= _QMAX_BITS:
            return 0.0, 0.0, np.int64(-1), 0.0, np.int8(_RANGE), False
    else:
        vals = row
        if top != 0 and (top > _HI_BITS or bottom < _LO_BITS):
            # beyond the range of the exact products (and of the key's error bound)
            return 0.0, 0.0, np.int64(-1), 0.0, np.int8(_RANGE), False
    p = -1
    pv = 1.0
    for k in range(m):
        if vals[k] != 0.0:
            p = k
            pv = vals[k]
            break
    key, rad = _key_of(vals, coef, proportional and p >= 0, pv)
    return (key, rad, np.int64(p), pv if p >= 0 else 0.0, np.int8(_OK), low == 0)


@njit(cache=True, parallel=True)
def _hash_columns(t: np.ndarray, proportional: bool, step: float, coef: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                             np.ndarray]:
    """:func:`column_signature` of every row of ``t`` (a target's incoming vector)."""
    n, m = t.shape
    key = np.zeros(n, dtype=np.float64)
    radius = np.zeros(n, dtype=np.float64)
    pivot = np.full(n, -1, dtype=np.int64)
    pval = np.zeros(n, dtype=np.float64)
    status = np.zeros(n, dtype=np.int8)
    short = np.zeros(n, dtype=np.bool_)
    grid = step > 0.0
    inv = 1.0 / step if grid else 0.0
    for i in prange(n):
        qbuf = np.empty(m if grid else 0, dtype=np.float64)
        key[i], radius[i], pivot[i], pval[i], status[i], short[i] = column_signature(
            t[i], proportional, step, inv, coef, qbuf)
    return key, radius, pivot, pval, status, short


@njit(cache=True)
def _candidate_groups(order: np.ndarray, lab: np.ndarray, sign: np.ndarray,
                      pivot: np.ndarray, key: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Group number of every column: runs of overlapping key intervals.

    ``order`` sorts the columns by label, sign, pivot and key; a new group
    starts where one of the first three changes or where the next interval
    starts above the largest upper end seen in the current group.
    """
    c = order.shape[0]
    group = np.empty(c, dtype=np.int64)
    g = -1
    hi = 0.0
    prev = -1
    for j in range(c):
        i = order[j]
        lo_i = key[i] - radius[i]
        if (prev < 0 or lab[i] != lab[prev] or sign[i] != sign[prev]
                or pivot[i] != pivot[prev] or lo_i > hi):
            g += 1
            hi = key[i] + radius[i]
        else:
            hi = max(hi, key[i] + radius[i])
        group[i] = g
        prev = i
    return group


@njit(cache=True, parallel=True)
def _compare_pairs(t: np.ndarray, a: np.ndarray, b: np.ndarray, pivot: np.ndarray,
                   pval: np.ndarray, short: np.ndarray, proportional: bool, step: float
                   ) -> np.ndarray:
    """Whether row ``a[j]`` equals (plain) or is a positive multiple of row ``b[j]``, exactly."""
    npairs = a.shape[0]
    m = t.shape[1]
    ok = np.zeros(npairs, dtype=np.bool_)
    grid = step > 0.0
    inv = 1.0 / step if grid else 0.0
    for j in prange(npairs):
        x = t[a[j]]
        y = t[b[j]]
        if pivot[a[j]] != pivot[b[j]]:
            continue
        if grid:
            xs = np.empty(m, dtype=np.float64)
            ys = np.empty(m, dtype=np.float64)
            _grid_row(xs, x, step, inv)
            _grid_row(ys, y, step, inv)
        else:
            xs = x
            ys = y
        if not proportional or pivot[a[j]] < 0:
            ok[j] = _equal(xs, ys)
            continue
        px = pval[a[j]]
        py = pval[b[j]]
        if (px > 0.0) != (py > 0.0):
            continue
        mx, ex = math.frexp(px)
        my, ey = math.frexp(py)
        if short[a[j]] and short[b[j]]:
            ok[j] = _cross_equal_short(xs, ys, px, py)
        elif mx == my and abs(ex - ey) <= 600:
            # py / px is a power of two: x * (py / px) is exact (the entries lie in
            # [2**-400, 2**400], or are grid integers), so x * py == y * px iff it is y
            ok[j] = _scaled_equal(xs, ys, py / px)
        else:
            ok[j] = _cross_equal(xs, ys, px, py)
    return ok


@njit(cache=True, inline="always")
def _scaled_equal(x: np.ndarray, y: np.ndarray, r: float) -> bool:
    """``x * r == y`` entrywise (exact products: ``r`` a power of two, no under/overflow)."""
    good = True
    for k in range(x.shape[0]):
        good &= x[k] * r == y[k]
    return good


@njit(cache=True, inline="always")
def _equal(x: np.ndarray, y: np.ndarray) -> bool:
    good = True
    for k in range(x.shape[0]):
        good &= x[k] == y[k]
    return good


@njit(cache=True, inline="always")
def _cross_equal_short(x: np.ndarray, y: np.ndarray, px: float, py: float) -> bool:
    """``x * py == y * px`` entrywise, for mantissas of at most 26 bits (exact products)."""
    good = True
    for k in range(x.shape[0]):
        good &= x[k] * py == y[k] * px
    return good


@njit(cache=True, inline="always")
def _cross_equal(x: np.ndarray, y: np.ndarray, px: float, py: float) -> bool:
    """``x * py == y * px`` entrywise, the products compared exactly (two-product)."""
    good = True
    for k in range(x.shape[0]):
        p1, e1 = two_prod(x[k], py)
        p2, e2 = two_prod(y[k], px)
        good &= (p1 == p2) & (e1 == e2)
    return good


_COEF_CACHE: dict[int, np.ndarray] = {}


def _coefficients(m: int) -> np.ndarray:
    """Fixed projection coefficients in ``[1, 2)``, one per position (deterministic)."""
    got = _COEF_CACHE.get(m)
    if got is None:
        rng = np.random.default_rng(0x5EED_1A4B)
        got = 1.0 + rng.random(m)
        got.setflags(write=False)
        if len(_COEF_CACHE) > 16:
            _COEF_CACHE.clear()
        _COEF_CACHE[m] = got
    return got


def signature_coefficients(m: int) -> np.ndarray:
    """The per-position coefficients of :func:`column_signature` for rows of length ``m``."""
    return _coefficients(m)


def with_signatures(graph: Any, signatures: Signatures) -> Any:
    """``graph`` (from :meth:`WeightedGraph.from_biadjacency`) with its targets' signatures.

    They are trusted as given: they must be :func:`column_signature` of
    exactly the matrix's columns (the exact comparison relies on their
    pivots and shortness flags).
    """
    object.__setattr__(graph, "_signatures", signatures)
    return graph


def _exact_ratios(r: int, c: int, nonrep: np.ndarray, num: np.ndarray, den: np.ndarray
                  ) -> tuple[Fraction, ...]:
    """``rho`` of ``r + c`` nodes: 1, except ``num[k] / den[k]`` (exact) at ``r + nonrep[k]``.

    A ratio of two floats with the same significand is a power of two, so its
    float quotient is exact; those share one ``Fraction`` per value.  The
    others are built from the floats' exact integer ratios.
    """
    one = Fraction(1)
    mn, en = np.frexp(num)
    md, ed = np.frexp(den)
    pow2 = (mn == md) & (np.abs(en.astype(np.int64) - ed) < 1000)
    fast = np.flatnonzero(pow2)
    q = (num[fast] / den[fast]).tolist()
    cache = {x: Fraction(x) for x in set(q)}
    arr = np.full(r + c, one, dtype=object)
    arr[r + nonrep[fast]] = list(map(cache.__getitem__, q))
    vals: list[Fraction] = arr.tolist()
    slow = np.flatnonzero(~pow2)
    for k, a, b in zip(nonrep[slow].tolist(), num[slow].tolist(), den[slow].tolist()):
        na, da = a.as_integer_ratio()
        nb_, db = b.as_integer_ratio()
        vals[r + k] = Fraction(na * db, da * nb_)
    return tuple(vals)


def dense_lumping(graph: Any, init: np.ndarray, proportional: bool, arithmetic: str,
                  tolerance: float) -> Lumping | None:
    """The backward lumping of a biadjacency graph, or ``None`` to use the general path.

    ``init`` are the canonical initial labels (numbered by first node).
    """
    biadj: np.ndarray = graph._biadjacency
    r, c = biadj.shape
    if r and not np.array_equal(init[:r], np.arange(r)):
        return None  # a source shares its initial block: the general algorithm decides
    if c and r and int(init[r:].min()) < r:
        return None
    if arithmetic == "float":
        if tolerance == 0 or not (2.0**-800 <= tolerance <= 2.0**800):
            return None
        step = float(tolerance)
    else:
        step = 0.0
    t = biadj.T
    if not t.flags.c_contiguous:
        t = np.ascontiguousarray(t)
    sig = graph._signatures
    if sig is not None and sig.proportional == proportional and sig.step == step:
        key, radius, pivot, pval, status, short = sig[:6]
    else:
        with threads_for(t.size):
            key, radius, pivot, pval, status, short = _hash_columns(t, proportional, step,
                                                                    _coefficients(r))
    if status.any():
        if (status == _NONFINITE).any():
            check_biadjacency_finite(biadj)
        return None
    lab = init[r:]
    sign = np.sign(pval).astype(np.int64) if proportional else np.zeros(c, dtype=np.int64)
    idx = np.arange(c, dtype=np.int64)
    order = np.lexsort((key, pivot, sign, lab))
    group = _candidate_groups(order, lab, sign, pivot, key, radius)
    verify_rounds = 1
    # compare every member with its group's first (smallest) member; split on failure
    pending = idx
    while True:
        grp = group[pending]
        o = np.lexsort((pending, grp))
        ps, gs = pending[o], grp[o]
        first = np.ones(ps.size, dtype=bool)
        first[1:] = gs[1:] != gs[:-1]
        rep_pos = np.maximum.accumulate(np.where(first, np.arange(ps.size), 0))
        members, reps = ps[~first], ps[rep_pos][~first]
        if members.size == 0:
            break
        with threads_for(members.size * r):
            ok = _compare_pairs(t, members, reps, pivot, pval, short, proportional, step)
        if ok.all():
            break
        verify_rounds += 1
        failed = members[~ok]
        fresh = int(group.max()) + 1
        # the failed members of a group form a new candidate group of their own
        gf = group[failed]
        _, inv = np.unique(gf, return_inverse=True)
        group[failed] = fresh + inv.reshape(-1)
        pending = failed
    # canonical numbering: sources 0..r-1, then target blocks by smallest member
    first_member = np.full(int(group.max()) + 1 if c else 0, c, dtype=np.int64)
    np.minimum.at(first_member, group, idx)
    used = np.flatnonzero(first_member < c)
    rank = np.empty(first_member.shape[0], dtype=np.int64)
    rank[used[np.argsort(first_member[used], kind="stable")]] = np.arange(used.size)
    block_of = np.empty(r + c, dtype=np.int64)
    block_of[:r] = np.arange(r)
    block_of[r:] = r + rank[group]
    block_of.setflags(write=False)
    rho: tuple[Fraction, ...] | np.ndarray | None = None
    rho_ratio: tuple[np.ndarray, np.ndarray] | None = None
    if proportional:
        rep_of = first_member[group]
        num = pval[rep_of]
        den = pval
        nonrep = np.flatnonzero((rep_of != idx) & (den != 0))
        if arithmetic == "exact":
            rho = _exact_ratios(r, c, nonrep, num[nonrep], den[nonrep])
            ratio_num = np.ones(r + c, dtype=np.float64)
            ratio_den = np.ones(r + c, dtype=np.float64)
            ratio_num[r + nonrep] = num[nonrep]
            ratio_den[r + nonrep] = den[nonrep]
            ratio_num.setflags(write=False)
            ratio_den.setflags(write=False)
            rho_ratio = (ratio_num, ratio_den)
        else:
            arr = np.ones(r + c, dtype=np.float64)
            arr[r + nonrep] = num[nonrep] / den[nonrep]
            arr.setflags(write=False)
            rho = arr
    n_init = int(init.max()) + 1 if init.size else 0
    nb = r + int(used.size)
    return Lumping(
        block_of=block_of,
        rho=rho,
        direction="backward",
        proportional=proportional,
        arithmetic=arithmetic,  # type: ignore[arg-type]
        resolution=step if arithmetic == "float" else None,
        splits=max(nb - n_init, 0),
        rounds=int(r),
        verify_rounds=verify_rounds,
        rho_ratio=rho_ratio,
    )

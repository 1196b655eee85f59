"""The public refinement function :func:`coarsest_lumping` and :func:`block_sums`."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ._errors import LumpkitError, VerificationError
from ._graph import WeightedGraph
from ._kernels import (
    MIX128,
    P61,
    csr_by_source,
    csr_terms_float,
    csr_terms_int,
    decompose_floats,
    first_seen_labels,
    refine_exact128,
    refine_modular,
    residues_of_dyadic,
    residues_of_int64,
    verify_crt,
    verify_i128_plain,
    verify_int64,
)
from ._result import Lumping
from ._verify import VerifyOutcome, exact_block_sums, verify_partition

__all__ = ["block_sums", "coarsest_lumping"]

_DIRECTIONS = ("backward", "forward")
_ARITHMETICS = ("exact", "float")
_SUM_LIMIT = 2.0**60  # bound on any |sum| kept in int64
_MIX = np.uint64(MIX128)  # ordering key of the exact 128-bit path (a test sets a weak one)


class _ArgumentError(LumpkitError, ValueError):
    pass


class _ArgumentTypeError(LumpkitError, TypeError):
    pass


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def coarsest_lumping(
    graph: WeightedGraph,
    initial: Sequence[Hashable] | np.ndarray | None = None,
    *,
    direction: str = "backward",
    proportional: bool = False,
    arithmetic: str = "exact",
    tolerance: float = 0.0,
) -> Lumping:
    """The coarsest stable partition of a weighted graph refining an initial partition.

    For a partition of the nodes and a block ``B`` write
    ``in_B(v) = sum_{u in B} w(u, v)`` and ``out_B(v) = sum_{u in B} w(v, u)``.
    A partition is *stable* when, for every block ``B`` (the node's own block
    included) and nodes ``v, t`` of one block, ``in_B(v) = in_B(t)``
    (``direction='backward'``) or ``out_B(v) = out_B(t)``
    (``direction='forward'``).  In proportional mode there must instead be
    ``rho > 0`` with ``rho(v) in_B(v) = rho(t) in_B(t)`` for all ``B`` (the
    vectors of sums are positive multiples of each other; all-zero vectors
    are multiples of each other only).  The coarsest stable partition
    refining ``initial`` exists and is unique; this function returns it.

    With a generator matrix ``Q`` (diagonal included) ``'forward'`` gives
    ordinary lumpability, ``'backward'`` exact lumpability, and the
    proportional variants give proportional and proportional exact
    lumpability.

    Parameters
    ----------
    graph : WeightedGraph
        The weighted graph (see :class:`WeightedGraph` for the input forms).
    initial : sequence of hashable, optional
        A label per node; nodes with different labels are never merged.
        Default: all nodes start in one block.
    direction : {'backward', 'forward'}
        Compare incoming (``'backward'``) or outgoing (``'forward'``) sums.
    proportional : bool
        Compare sums up to a positive per-node factor ``rho``.
    arithmetic : {'exact', 'float'}
        ``'exact'`` (default): weights are exact rationals (floats at their
        exact binary value); the partition is verified stable in exact
        arithmetic before it is returned.  ``'float'``: every weight (parallel
        edges: their exact sum) is first rounded to the nearest multiple of
        ``resolution`` (the tolerance, or, for ``tolerance=0``, the finest power
        of two, at least ``2**-1074``, for which all sums fit in 63-bit fixed
        point), and the *exact* coarsest lumping of that rounded graph is
        returned.  This makes float mode deterministic, independent
        of node and edge order, and transitive: two sums compare equal iff
        their rounded versions are equal.  Each rounded weight differs from the
        original by at most ``resolution / 2``.
    tolerance : float
        Float arithmetic only: the grid step (>= 0) weights are rounded to.

    Returns
    -------
    Lumping
        Partition (``block_of``, ``blocks``), ``rho`` in proportional mode,
        and counters.

    Raises
    ------
    ValueError
        For an unknown ``direction``/``arithmetic``, a negative or non-finite
        tolerance, a tolerance in exact mode, or an ``initial`` of the wrong
        length; in float mode, for weights whose sums reach ``2**1024`` with
        ``tolerance=0`` (no float grid step exists) and for a factor ``rho``
        beyond float64 (use ``arithmetic='exact'``).
    TypeError
        If ``graph`` is not a :class:`WeightedGraph`, ``proportional`` is not a
        boolean, ``tolerance`` is not a real number, or a label of ``initial``
        is unhashable.

    Notes
    -----
    The compiled core runs the splitter algorithm of Valmari and
    Franceschinis in ``O(m log n)`` (every piece of a split block but the
    largest becomes a splitter).  In plain exact mode with float or integer
    weights whose sums fit in 128 bits (in units of the smallest power of
    two among the weights) it compares the exact sums themselves, so every
    split is exact and no verification pass is needed.  Otherwise it hashes
    sums modulo the prime ``2**61 - 1`` and verifies the result in exact
    integer arithmetic in one linear pass; a hash collision (never observed
    in practice) or a sign mismatch in proportional mode is repaired by
    splitting exactly and refining again.  One case is not repaired: in
    proportional mode, a node whose exact sum into a block is a non-zero
    multiple of the modulus (a weight of ``2**61 - 1``, or sums such as
    ``2**61 + (-1)``) is taken for one with no weight into that block.  The
    answer is then still verified stable, exactly, but may be finer than the
    coarsest lumping.

    A graph built by :meth:`WeightedGraph.from_biadjacency` whose row nodes
    each start in a block of their own (a layer of weights) needs a single
    step in backward mode; it is done in two compiled passes over the matrix
    (a random projection of every column over its first non-zero entry with
    a rigorous bound of its rounding error, then an exact comparison of the
    columns whose key intervals overlap) with the same result.

    References
    ----------
    .. [1] A. Valmari, G. Franceschinis, "Simple O(m log n) time Markov chain
       lumping", TACAS 2010.
    .. [2] P. Buchholz, "Exact and ordinary lumpability in finite Markov
       chains", J. Appl. Prob. 31, 1994.
    .. [3] A. Marin, C. Piazza, S. Rossi, "Proportional lumpability",
       FORMATS 2019.

    Examples
    --------
    Two states that receive the same rates from every block merge under
    backward (exact) lumping:

    >>> g = WeightedGraph.from_edges(3, [0, 0, 1, 2], [1, 2, 0, 0], [1.0, 1.0, 2.0, 2.0])
    >>> coarsest_lumping(g).blocks
    ((0,), (1, 2))

    Proportional mode merges nodes whose incoming sums are positive multiples:

    >>> g = WeightedGraph.from_edges(3, [0, 0], [1, 2], [1, 3])
    >>> lump = coarsest_lumping(g, [0, 1, 1], proportional=True)
    >>> lump.blocks, lump.rho
    (((0,), (1, 2)), (Fraction(1, 1), Fraction(1, 1), Fraction(1, 3)))
    """
    if not isinstance(graph, WeightedGraph):
        raise _ArgumentTypeError(
            f"graph must be a WeightedGraph, got {type(graph).__name__}; build one with "
            "WeightedGraph.from_edges, .from_matrix or .from_networkx"
        )
    if not isinstance(direction, str) or direction not in _DIRECTIONS:
        raise _ArgumentError(f"direction must be 'backward' or 'forward', got {direction!r}")
    if not isinstance(arithmetic, str) or arithmetic not in _ARITHMETICS:
        raise _ArgumentError(f"arithmetic must be 'exact' or 'float', got {arithmetic!r}")
    if not (isinstance(proportional, bool | np.bool_)
            or (isinstance(proportional, int | np.integer) and proportional in (0, 1))):
        raise _ArgumentTypeError(f"proportional must be True or False, got {proportional!r}")
    if isinstance(tolerance, bool | np.bool_) or not isinstance(
            tolerance, int | float | np.integer | np.floating):
        raise _ArgumentTypeError(
            f"tolerance must be a float (the grid step), got {tolerance!r} of type "
            f"{type(tolerance).__name__}")
    try:
        tolerance = float(tolerance)
    except OverflowError:
        raise _ArgumentError(
            f"tolerance must be finite and >= 0, got {tolerance!r} (beyond float64)") from None
    if not math.isfinite(tolerance) or tolerance < 0:
        raise _ArgumentError(f"tolerance must be finite and >= 0, got {tolerance!r}")
    if arithmetic == "exact" and tolerance != 0:
        raise _ArgumentError(
            f"tolerance={tolerance!r} needs arithmetic='float'; exact arithmetic has no tolerance"
        )
    n = graph.n
    init = _initial_labels(initial, n)
    if getattr(graph, "_biadjacency", None) is not None and direction == "backward":
        # a layer-shaped graph held as a dense matrix: one grouping pass (lumpcore._dense)
        from ._dense import dense_lumping

        fast = dense_lumping(graph, init, bool(proportional), arithmetic, tolerance)
        if fast is not None:
            return fast

    g = graph if direction == "backward" else graph.reversed()
    if arithmetic == "float":
        # parallel edges act as one edge carrying their sum: round the sum, not each term
        g, inexact_sums = _coalesce_parallel(g)
    if arithmetic == "exact" and not proportional:
        exact128 = _plain_exact128(g, init)
        if exact128 is not None:
            bo128, splits128, rounds128 = exact128
            bo128 = _canonical(bo128)
            bo128.setflags(write=False)
            return Lumping(
                block_of=bo128,
                rho=None,
                direction=direction,  # type: ignore[arg-type]
                proportional=False,
                arithmetic="exact",
                resolution=None,
                splits=splits128,
                rounds=rounds128,
                verify_rounds=1,
            )
    dyadic: _Dyadic | None = None
    if arithmetic == "exact":
        exact_w = _exact_integer_weights(g)
        if isinstance(exact_w, _Dyadic):
            dyadic, ints = exact_w, None
        else:
            ints = exact_w
        resolution = None
    else:
        ints, resolution = _fixed_point_weights(g, tolerance, inexact_sums)

    src, dst = g.src, g.dst
    if dyadic is not None:
        keep = dyadic.mant != 0
        if not keep.all():
            src, dst, dyadic = src[keep], dst[keep], dyadic.select(keep)
        residues = residues_of_dyadic(dyadic.mant, dyadic.shift)
    else:
        assert ints is not None
        keep = np.asarray(ints != 0, dtype=bool)
        if not keep.all():
            src, dst, ints = src[keep], dst[keep], ints[keep]
        residues = (
            residues_of_int64(ints)
            if ints.dtype == np.int64
            else np.array([int(x) % P61 for x in ints.tolist()], dtype=np.uint64)
        )
    indptr, targets, values, perm = csr_by_source(n, src, dst, residues)
    csr_ints = None
    if ints is not None and ints.dtype == np.int64:
        csr_ints = np.ascontiguousarray(ints[perm])
    crt: _CrtPlan | None = None  # built on first use
    if dyadic is not None:
        csr_mant = np.ascontiguousarray(dyadic.mant[perm])
        csr_shift = np.ascontiguousarray(dyadic.shift[perm])

    labels = init
    splits = rounds = 0
    verify_round = 0
    while True:
        verify_round += 1
        if verify_round > n + 2:  # pragma: no cover - each failed round strictly refines
            raise VerificationError(
                "exact verification did not converge; please report this graph"
            )
        nlab = int(labels.max()) + 1 if n else 0
        block_of, s, r = refine_modular(
            n, indptr, targets, values, labels, nlab, bool(proportional)
        )
        splits += int(s)
        rounds += int(r)
        nb_now = int(block_of.max()) + 1 if n else 0
        if csr_ints is not None:
            ok, collision, scale, rep_scale, sign = verify_int64(
                n, indptr, targets, csr_ints, block_of, nb_now, bool(proportional)
            )
            num: np.ndarray | None = rep_scale
            den: np.ndarray | None = scale
        elif dyadic is not None and not proportional and dyadic.bits < 125:
            ok = verify_i128_plain(n, indptr, targets, csr_mant, csr_shift, block_of, nb_now)
            collision, num, den = not ok, None, None
        else:
            if crt is None and dyadic is not None:
                crt = _CrtPlan.for_dyadic(dyadic, bool(proportional))
            if crt is None:  # Python integers only
                ok, collision = False, True
            else:
                ok, collision, scale_res, rep_res, sign = verify_crt(
                    n, indptr, targets, csr_mant, csr_shift, block_of, nb_now,
                    bool(proportional), crt.primes, crt.pow2, crt.cinv, crt.half_digits,
                )
                num, den = crt.ratios(rep_res, scale_res) if ok and proportional else (None, None)
        if ok:
            outcome = VerifyOutcome(True, num, den, None)
            break
        if not collision:  # only signs were mixed: split by the sign of each node's scale
            labels = _canonical(block_of * 3 + (sign + 1))
            continue
        if ints is None:
            assert dyadic is not None
            ints = dyadic.to_python_ints()
        outcome = verify_partition(n, src, dst, ints, block_of, bool(proportional))
        if outcome.ok:
            break
        assert outcome.new_labels is not None
        labels = _canonical(outcome.new_labels)

    block_of = _canonical(block_of)
    # every block beyond the initial ones was created by a split: of the compiled core,
    # of a sign split or of an exact repair (the core's own counter misses the last two)
    splits = (int(block_of.max()) + 1 if n else 0) - (int(init.max()) + 1 if n else 0)
    rho: tuple[Fraction, ...] | np.ndarray | None = None
    if proportional:
        assert outcome.rho_num is not None and outcome.rho_den is not None
        num, den = outcome.rho_num, outcome.rho_den
        if arithmetic == "exact":
            one = Fraction(1)
            rho = tuple(
                one if a == b else Fraction(int(a), int(b))
                for a, b in zip(num.tolist(), den.tolist())
            )
        else:
            rho = _float_ratios(num.tolist(), den.tolist())
    block_of.setflags(write=False)
    return Lumping(
        block_of=block_of,
        rho=rho,
        direction=direction,  # type: ignore[arg-type]
        proportional=bool(proportional),
        arithmetic=arithmetic,  # type: ignore[arg-type]
        resolution=resolution,
        splits=splits,
        rounds=rounds,
        verify_rounds=verify_round,
    )


def _float_ratios(num: list[Any], den: list[Any]) -> np.ndarray:
    """``num[v] / den[v]`` as a read-only float64 array (each correctly rounded).

    Raises a clear error where a factor lies beyond the range of float64 (grid
    integers of very different sizes: a tiny tolerance with huge weights).
    """
    out = np.empty(len(num), dtype=np.float64)
    for v, (a, b) in enumerate(zip(num, den)):
        try:
            out[v] = int(a) / int(b)
        except OverflowError:
            log2 = abs(int(a)).bit_length() - abs(int(b)).bit_length()
            raise _ArgumentError(
                f"the factor rho of node {v} is about 2**{log2}, beyond float64; "
                "use arithmetic='exact' or a coarser tolerance"
            ) from None
    out.setflags(write=False)
    return out


def block_sums(
    graph: WeightedGraph,
    block_of: Sequence[int] | np.ndarray,
    *,
    direction: str = "backward",
) -> dict[tuple[int, int], Fraction]:
    """Exact sums of edge weights from each block to each node.

    Parameters
    ----------
    graph : WeightedGraph
    block_of : sequence of int
        Block index of every node.
    direction : {'backward', 'forward'}
        ``'backward'``: ``S(B, v) = sum_{u in B} w(u, v)``;
        ``'forward'``: ``S(B, v) = sum_{u in B} w(v, u)``.

    Returns
    -------
    dict
        ``{(B, v): S(B, v)}`` for the non-zero sums, as exact rationals.

    Examples
    --------
    >>> g = WeightedGraph.from_edges(3, [0, 1, 2], [2, 2, 0], [0.5, 0.25, 1])
    >>> block_sums(g, [0, 0, 1])
    {(0, 2): Fraction(3, 4), (1, 0): Fraction(1, 1)}
    """
    if not isinstance(graph, WeightedGraph):
        raise _ArgumentTypeError(f"graph must be a WeightedGraph, got {type(graph).__name__}")
    if not isinstance(direction, str) or direction not in _DIRECTIONS:
        raise _ArgumentError(f"direction must be 'backward' or 'forward', got {direction!r}")
    bo = np.asarray(block_of)
    if bo.shape != (graph.n,):
        raise _ArgumentError(
            f"block_of must hold one integer block index per node ({graph.n}), got shape {bo.shape}"
        )
    if bo.size and (bo.dtype.kind not in "iu" or bo.min() < 0):
        k = next(i for i, x in enumerate(bo.tolist())
                 if not isinstance(x, int) or isinstance(x, bool) or x < 0)
        raise _ArgumentError(
            f"block_of must hold one integer block index >= 0 per node; node {k} has {bo[k]!r}")
    bo = bo.astype(np.int64)
    g = graph if direction == "backward" else graph.reversed()
    w = g.exact_weights()
    denom = math.lcm(*(q.denominator for q in w)) if w else 1
    ints = np.array([q.numerator * (denom // q.denominator) for q in w] or [], dtype=object)
    B, v, S = exact_block_sums(g.n, g.src, g.dst, ints, bo)
    return {
        (int(b), int(x)): Fraction(int(s), denom) for b, x, s in zip(B.tolist(), v.tolist(), S)
    }


# ---------------------------------------------------------------------- helpers
def _initial_labels(initial: Any, n: int) -> np.ndarray:
    if initial is None:
        return np.zeros(n, dtype=np.int64)
    if isinstance(initial, np.ndarray) and initial.ndim == 1 and initial.dtype.kind in "iub":
        arr = initial
    else:
        try:
            seq = list(initial)
        except TypeError:
            raise _ArgumentTypeError(
                f"initial must be a sequence of node labels, got {type(initial).__name__}"
            ) from None
        if len(seq) != n:
            raise _ArgumentError(
                f"initial must give one label per node: expected {n} labels, got {len(seq)}"
            )
        index: dict[Any, int] = {}
        try:
            arr = np.fromiter((index.setdefault(x, len(index)) for x in seq), np.int64, n)
        except TypeError:
            k = next(i for i, x in enumerate(seq) if not _hashable(x))
            raise _ArgumentTypeError(
                f"initial labels must be hashable; node {k} has {seq[k]!r}") from None
    if arr.shape != (n,):
        raise _ArgumentError(
            f"initial must give one label per node: expected {n} labels, got {arr.shape[0]}"
        )
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    return _canonical(arr)


def _canonical(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0.. in the order of their first (smallest) node."""
    if labels.size == 0:
        return labels.astype(np.int64)
    if labels.dtype.kind in "iu":
        lo, hi = int(labels.min()), int(labels.max())
        if lo >= 0 and hi < 4 * labels.size + 16:
            return first_seen_labels(np.ascontiguousarray(labels, dtype=np.int64), hi + 1)
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.shape[0], dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.shape[0])
    return rank[inv.reshape(-1)]


def _plain_exact128(g: WeightedGraph, init: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """Plain exact mode refined directly on exact 128-bit sums (no verification pass).

    Applies to float64 and int64 weights whose sums of absolute values into
    one node stay below ``2**125`` in units of the smallest power of two of
    the weights (always for int64; for floats unless their exponents are
    very far apart).  Returns ``None`` when it does not apply, or in the
    (never observed) case that two different sums shared an ordering key;
    the caller then takes the hashed path with exact verification.
    """
    w = g.weight
    if w.dtype not in (np.float64, np.int64):
        return None
    # large outputs allocated by numpy (on huge pages; see csr_terms_float)
    out = np.empty((w.shape[0], 3), dtype=np.uint64)
    tot = np.zeros((g.n, 2), dtype=np.uint64)
    if w.dtype == np.float64:
        indptr, edges, total, bits = csr_terms_float(
            g.n, g.src, g.dst, np.ascontiguousarray(w).view(np.int64), out, tot
        )
    else:
        indptr, edges, total, bits = csr_terms_int(g.n, g.src, g.dst, w, out, tot)
    if bits >= 125.0:
        return None
    n = g.n
    nlab = int(init.max()) + 1 if n else 0
    # work arrays allocated by numpy (huge pages; see refine_exact128)
    block_of, splits, rounds, ok = refine_exact128(
        n, indptr, edges, total, init, nlab, _MIX,
        np.empty((17, n + 2), dtype=np.int64), np.empty((3, n + 1), dtype=np.uint64),
        np.zeros((n + 1, 8), dtype=np.int64), np.zeros((n, 4), dtype=np.uint64),
        np.empty((n, 3), dtype=np.int64),
    )
    if not ok:
        return None
    return block_of.copy(), int(splits), int(rounds)


def _coalesce_parallel(g: WeightedGraph) -> tuple[WeightedGraph, dict[int, Fraction]]:
    """``g`` with its parallel edges replaced by one edge carrying their exact sum.

    Returns ``(g, {})`` when ``g`` has no parallel edges (one sort of the edge
    keys decides).  Otherwise the first edge of every group of parallel edges
    carries the group's sum and the others are dropped; the weights keep
    their type: float64 weights hold the sum rounded to a float (good enough
    for magnitude bounds) and the second result maps every edge (index into
    the new graph) whose sum is not exactly a float to that exact sum, for
    exact rounding; int64 sums beyond ``2**62`` make the weights rationals.
    """
    n, src, dst, w = g.n, g.src, g.dst, g.weight
    m = src.shape[0]
    if m < 2:
        return g, {}
    if n < 2**31:
        key = src * np.int64(n) + dst
    else:  # n * n beyond int64: number the distinct (src, dst) pairs instead
        key = np.unique(np.stack([src, dst], axis=1), axis=0, return_inverse=True)[1]
        key = key.reshape(-1).astype(np.int64)
    sk = np.sort(key)
    repeated = sk[1:] == sk[:-1]
    if not repeated.any():
        return g, {}
    dup_keys = np.unique(sk[1:][repeated])
    # every edge with a parallel twin: a bucket filter first (cheap), then exact membership
    buckets = np.int64(1048573)  # a prime near 2**20
    marked = np.zeros(int(buckets), dtype=bool)
    marked[dup_keys % buckets] = True
    candidates = np.flatnonzero(marked[key % buckets])
    members = candidates[np.isin(key[candidates], dup_keys)]
    members = members[np.argsort(key[members], kind="stable")]  # by key, then index
    mk = key[members]
    cuts = np.flatnonzero(mk[1:] != mk[:-1]) + 1
    keep = np.ones(m, dtype=bool)
    new_w = w.copy()
    inexact: dict[int, Fraction] = {}  # by old edge index
    big: dict[int, int] = {}  # int64 sums beyond 2**62, by old edge index
    for group in np.split(members, cuts):
        carrier = int(group[0])
        keep[group[1:]] = False
        terms = w[group].tolist()
        if w.dtype == np.float64:
            total = sum((Fraction(x) for x in terms), Fraction(0))
            try:
                approx = float(total)  # correctly rounded
            except OverflowError:  # beyond float64: its largest float (for bounds only)
                approx = float(np.finfo(np.float64).max) * (1.0 if total > 0 else -1.0)
            new_w[carrier] = approx
            if Fraction(approx) != total:
                inexact[carrier] = total
        elif w.dtype == np.int64:
            isum = sum(int(x) for x in terms)
            if abs(isum) > 2**62:
                big[carrier] = isum
            else:
                new_w[carrier] = isum
        else:
            new_w[carrier] = sum(terms, Fraction(0))
    if big:
        obj = np.empty(m, dtype=object)
        obj[:] = [Fraction(int(x)) for x in new_w.tolist()]
        for k, isum in big.items():
            obj[k] = Fraction(isum)
        new_w = obj
    new_index = np.cumsum(keep) - 1
    out = WeightedGraph(n, src[keep], dst[keep], new_w[keep], g.nodes)
    return out, {int(new_index[k]): v for k, v in inexact.items()}


def _in_abs_bound(g: WeightedGraph, absw: np.ndarray) -> float:
    if absw.size == 0:
        return 0.0
    return float(np.bincount(g.dst, weights=absw, minlength=g.n).max())


class _Dyadic:
    """Exact dyadic weights ``mant * 2**shift`` (times a common ``2**-emin``)."""

    def __init__(self, mant: np.ndarray, shift: np.ndarray, bits: float) -> None:
        self.mant = mant
        self.shift = shift
        #: log2 bound on every |sum| of incoming weights, in these units
        self.bits = bits

    def select(self, keep: np.ndarray) -> _Dyadic:
        return _Dyadic(self.mant[keep], self.shift[keep], self.bits)

    def to_python_ints(self) -> np.ndarray:
        obj = np.empty(self.mant.shape[0], dtype=object)
        obj[:] = [int(a) << int(b) for a, b in zip(self.mant.tolist(), self.shift.tolist())]
        return obj


def _primes_below_2_31(count: int) -> list[int]:
    out: list[int] = []
    x = 2**31 - 1
    while len(out) < count:
        if _is_prime(x):
            out.append(x)
        x -= 2
    return out


def _is_prime(x: int) -> bool:
    if x % 3 == 0:
        return False
    # deterministic Miller-Rabin for 32-bit numbers
    d, r = x - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for a in (2, 7, 61):
        y = pow(a, d, x)
        if y in (1, x - 1):
            continue
        for _ in range(r - 1):
            y = y * y % x
            if y == x - 1:
                break
        else:
            return False
    return True


class _CrtPlan:
    """Primes and tables for exact residue arithmetic with a proven magnitude bound."""

    def __init__(self, count: int, max_shift: int) -> None:
        ps = _primes_below_2_31(count)
        self.prime_list = ps
        self.primes = np.array(ps, dtype=np.int64)
        self.pow2 = np.array(
            [[pow(2, s, p) for s in range(max_shift + 1)] for p in ps], dtype=np.int64
        )
        self.cinv = np.zeros((count, count), dtype=np.int64)
        for j, pj in enumerate(ps):
            for i, pi in enumerate(ps):
                if i != j:
                    self.cinv[j, i] = pow(pj, -1, pi)
        modulus = math.prod(ps)
        self.modulus = modulus
        half = (modulus - 1) // 2
        digits = []
        for p in ps:
            digits.append(half % p)
            half //= p
        self.half_digits = np.array(digits, dtype=np.int64)

    @classmethod
    def for_dyadic(cls, dy: _Dyadic, proportional: bool) -> _CrtPlan | None:
        # compared magnitudes: sums (< 2**bits) or products of two sums
        need = (2 * dy.bits if proportional else dy.bits) + 2
        count = max(1, math.ceil(need / 30.99))
        if count > 64:
            return None  # astronomically spread exponents: Python integers instead
        return cls(count, int(dy.shift.max()) if dy.shift.size else 0)

    def ratios(self, rep_res: np.ndarray, scale_res: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(a_rep, a_v)`` per node as Python ints (1, 1 where they are equal)."""
        n = scale_res.shape[0]
        num = np.ones(n, dtype=object)
        den = np.ones(n, dtype=object)
        differ = np.flatnonzero((rep_res != scale_res).any(axis=1))
        if differ.size:
            num[differ] = self._to_ints(rep_res[differ])
            den[differ] = self._to_ints(scale_res[differ])
        return num, den

    def _to_ints(self, residues: np.ndarray) -> np.ndarray:
        """Integers in ``(-M/2, M/2)`` with the given residues (one row each; CRT)."""
        m = self.modulus
        x = np.zeros(residues.shape[0], dtype=object)
        for j, p in enumerate(self.prime_list):
            mp = m // p
            x = x + residues[:, j].astype(object) * (mp * pow(mp, -1, p))
        x = x % m
        neg = np.asarray(x > m // 2, dtype=bool)
        x[neg] = x[neg] - m
        return x


def _exact_integer_weights(g: WeightedGraph) -> np.ndarray | _Dyadic:
    """Weights times a common positive denominator, as integers (int64 when safe).

    Float weights whose integers would not fit in int64 come back as a
    :class:`_Dyadic` (mantissa and shift), handled by residue arithmetic.
    """
    w = g.weight
    if w.dtype == np.int64:
        ints = w
    elif w.dtype == np.float64:
        mant, shift, emin, max_bits, absmax, degmax = decompose_floats(w, g.dst, g.n)
        if degmax == 0:
            return np.zeros(w.shape[0], dtype=np.int64)
        if max_bits + math.log2(degmax + 1) < 60:
            return mant << shift
        if math.isfinite(absmax):
            bits = math.log2(absmax) - emin + 2 if absmax > 0 else 1.0
        else:  # the float sum overflowed: bound it by its terms instead
            bits = max_bits + math.log2(degmax) + 1
        return _Dyadic(mant, shift, bits)
    else:
        fr = w.tolist()
        denom = math.lcm(*(q.denominator for q in fr)) if fr else 1
        vals = [q.numerator * (denom // q.denominator) for q in fr]
        obj = np.empty(len(vals), dtype=object)
        obj[:] = vals
        if vals and max(abs(x) for x in vals) < 2**40:
            cand = obj.astype(np.int64)
            if _in_abs_bound(g, np.abs(cand).astype(np.float64)) < _SUM_LIMIT:
                return cand
        return obj
    if _in_abs_bound(g, np.abs(ints).astype(np.float64)) < _SUM_LIMIT:
        return ints
    obj = np.empty(ints.shape[0], dtype=object)
    obj[:] = [int(x) for x in ints.tolist()]
    return obj


def _fixed_point_weights(
    g: WeightedGraph, tolerance: float, exact_sums: dict[int, Fraction] | None = None
) -> tuple[np.ndarray, float]:
    """Round weights to the grid ``resolution * Z`` and return the integers.

    Float weights, and integers of at most 53 bits, are rounded in vectorised
    float arithmetic (exactly: entries near a half-way point or beyond float
    integers are settled with :class:`fractions.Fraction`).  Larger integers
    and rational weights are rounded exactly as themselves, never through
    their (rounded, possibly overflowing) float values.  ``exact_sums`` maps
    edges whose float weight only approximates their true weight (a sum of
    parallel edges) to that exact value, which is the one rounded.
    """
    w = g.weight
    exact_input = w.dtype == object or (
        w.dtype == np.int64 and w.size > 0 and int(np.abs(w).max()) > 2**53)
    fixes: dict[int, int]  # grid integers settled exactly
    if tolerance > 0:
        resolution = tolerance
        step = Fraction(resolution)
        if exact_input:
            return _pack_ints(g, [round(Fraction(x) / step) for x in w.tolist()]), resolution
        wf = w.astype(np.float64)  # exact: integers of at most 53 bits
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            q = wf / resolution
            scaled = np.rint(q)
            # settle in exact arithmetic (ties to the even multiple) every entry whose
            # float quotient lies near a half-way point, or is too large for exact float
            # integers (an overflowing quotient included)
            unsure = (np.abs(np.abs(q - np.floor(q)) - 0.5) <= 1e-6 + np.abs(q) * 2.0**-50) | ~(
                np.abs(q) < 2.0**50)
        fixes = {k: round(Fraction(float(wf[k])) / step) for k in np.flatnonzero(unsure).tolist()}
        fixes.update((k, round(v / step)) for k, v in (exact_sums or {}).items())
    else:
        log2_bound = _log2_in_abs_bound(g, exact_input)
        if log2_bound is None:
            return np.zeros(w.shape[0], dtype=np.int64), 1.0
        # the finest power of two for which every sum fits in 63-bit fixed point, but
        # no finer than the smallest float (every float weight is a multiple of it)
        f = min(59 - math.ceil(log2_bound), 1074)
        if f < -1023:
            raise _ArgumentError(
                f"sums of |weights| into a node reach about 2**{log2_bound:.0f}, beyond float64: "
                "float arithmetic has no grid step for them; use arithmetic='exact' or pass "
                "a tolerance")
        resolution = math.ldexp(1.0, -f)
        grid = Fraction(2) ** f
        if exact_input:  # round the exact numbers themselves, not their float values
            return _pack_ints(g, [round(Fraction(x) * grid) for x in w.tolist()]), resolution
        scaled = np.rint(np.ldexp(w.astype(np.float64), f))
        fixes = {k: round(v * grid) for k, v in (exact_sums or {}).items()}
    if fixes:
        if any(abs(v) >= 2**53 for v in fixes.values()):  # beyond float integers: Python ints
            ints = [int(x) for x in np.where(np.isfinite(scaled), scaled, 0.0).tolist()]
            for k, v in fixes.items():
                ints[k] = v
            return _pack_ints(g, ints), resolution
        scaled[np.fromiter(fixes.keys(), np.int64, len(fixes))] = np.fromiter(
            fixes.values(), np.float64, len(fixes))
    if _in_abs_bound(g, np.abs(scaled)) < _SUM_LIMIT:
        return scaled.astype(np.int64), resolution
    obj = np.empty(scaled.shape[0], dtype=object)
    obj[:] = [int(x) for x in scaled.tolist()]
    return obj, resolution


def _pack_ints(g: WeightedGraph, ints: list[int]) -> np.ndarray:
    """Grid integers as int64 when every sum into a node fits, else as Python ints."""
    if all(abs(v) < 2**53 for v in ints):
        arr = np.array(ints, dtype=np.int64)
        if _in_abs_bound(g, np.abs(arr).astype(np.float64)) < _SUM_LIMIT:
            return arr
    obj = np.empty(len(ints), dtype=object)
    obj[:] = [int(v) for v in ints]
    return obj


def _log2_in_abs_bound(g: WeightedGraph, exact_input: bool) -> float | None:
    """``log2`` of the largest sum of ``|w|`` into one node (``None``: all weights zero).

    Computed on the weights scaled by a power of two, so that neither sums of
    floats near the top of their range nor rationals beyond it overflow.
    """
    w = g.weight
    if exact_input:
        fr = [Fraction(x) for x in w.tolist()]
        nz = [q for q in fr if q != 0]
        if not nz:
            return None
        # |q| < 2**e with e = bits(numerator) - bits(denominator) + 1
        e = max(abs(q.numerator).bit_length() - q.denominator.bit_length() + 1 for q in nz)
        scaled = np.array(
            [float(Fraction(abs(q.numerator), q.denominator << e) if e >= 0
                   else Fraction(abs(q.numerator) << -e, q.denominator)) for q in fr],
            dtype=np.float64)
    else:
        absw = np.abs(w.astype(np.float64))
        top = float(absw.max()) if absw.size else 0.0
        if top == 0:
            return None
        e = math.frexp(top)[1]
        scaled = np.ldexp(absw, -e)
    return math.log2(_in_abs_bound(g, scaled)) + e

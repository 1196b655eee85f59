"""Lumping of a chain: which matrix is fed to the engine, and the quotient chain.

Every refinement is done by :func:`lumpcore.coarsest_lumping`; this module
only chooses the matrix, the direction and the initial partition
(THEORY section 2), and builds the quotient with the formulas there.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Collection, Hashable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from lumpcore import Lumping, LumpkitError, WeightedGraph, coarsest_lumping

from ._chain import CTMC, DTMC, ChainError, as_chain

__all__ = ["KINDS", "ChainLumping", "lump"]

Kind = Literal["ordinary", "exact", "strict", "proportional", "proportional-exact", "bisim"]

#: The lumping notions :func:`lump` computes.
KINDS: tuple[str, ...] = (
    "ordinary", "exact", "strict", "proportional", "proportional-exact", "bisim",
)

_FORWARD = {"ordinary", "bisim", "proportional"}
_BACKWARD = {"exact", "proportional-exact"}


#: What the quotient of each kind preserves (THEORY section 2), for :attr:`ChainLumping.preserves`.
_PRESERVES = {
    "ordinary": "block masses from any start (transient and steady state); the respected "
                "labels and rewards",
    "bisim": "block masses from any start (transient and steady state); the respected labels "
             "and rewards",
    "exact": "p(v) = p([v]) / |[v]| from a start uniform inside blocks (transient and steady "
             "state)",
    "strict": "block masses from any start, and p(v) = p([v]) / |[v]| from a start uniform "
              "inside blocks (transient and steady state)",
    "proportional": "steady state only: the quotient's pi is the block masses of pi / rho "
                    "(normalised), not of pi",
    "proportional-exact": "steady state only: pi(v) = pi([v]) / |[v]|",
}


class LumpingError(LumpkitError, ValueError):
    """A lumping request is invalid, or a lifting is not meaningful for the notion."""


@dataclass(frozen=True, eq=False)
class ChainLumping:
    """The result of :func:`lump`: the partition, ``rho`` and the quotient chain.

    Attributes
    ----------
    kind : str
        The notion: one of :data:`KINDS`.
    chain : CTMC or DTMC
        The original chain.
    quotient : CTMC or DTMC
        The quotient chain; state ``b`` is block ``b``.  Exact when the
        chain is exact and the arithmetic is ``'exact'``, float otherwise.
    block_of : numpy.ndarray of int64
        Block of every original state (blocks numbered by smallest state).
    rho : tuple of Fraction, numpy.ndarray, or None
        Proportional kinds: the factor of every state (1 at each block's
        smallest state); ``None`` otherwise.
    arithmetic : {'exact', 'float'}
        Arithmetic of the engine runs.
    engine : tuple of lumpcore.Lumping
        The engine results (one; for ``strict`` the alternating sequence).
    seconds : float
        Wall time of the engine runs (without building the quotient).
    """

    kind: str
    chain: CTMC | DTMC
    quotient: CTMC | DTMC
    block_of: np.ndarray
    rho: tuple[Fraction, ...] | np.ndarray | None
    arithmetic: str
    engine: tuple[Lumping, ...]
    seconds: float

    @property
    def preserves(self) -> str:
        """What the quotient preserves of the original chain, in words (the claims of
        THEORY section 2 that the tests check numerically; ``p([v])`` is the quotient's
        value for the block of ``v``).

        Examples
        --------
        >>> from markov import paper_example_2
        >>> lump(paper_example_2(), "proportional-exact").preserves
        'steady state only: pi(v) = pi([v]) / |[v]|'
        """
        return _PRESERVES[self.kind]

    @property
    def num_blocks(self) -> int:
        """Number of blocks (states of the quotient)."""
        return self.quotient.n

    @functools.cached_property
    def blocks(self) -> tuple[tuple[int, ...], ...]:
        """The blocks, each sorted, in block order (built on first use)."""
        if self.num_blocks == 0:  # a chain without states (np.split would give one empty block)
            return ()
        order = np.argsort(self.block_of, kind="stable")
        bounds = np.cumsum(np.bincount(self.block_of, minlength=self.num_blocks))[:-1]
        return tuple(tuple(part.tolist()) for part in np.split(order, bounds))

    @property
    def block_sizes(self) -> np.ndarray:
        """Size of every block."""
        return np.bincount(self.block_of, minlength=self.num_blocks)

    def aggregate(self, p: Any) -> np.ndarray:
        """Block masses of a distribution (or sums of any per-state vector) of the original.

        Float input gives float64; an object array of Fractions stays exact.
        """
        arr = _vector(p, self.chain.n, "p")
        if arr.dtype == object:
            out = np.empty(self.num_blocks, dtype=object)
            out[:] = [Fraction(0)] * self.num_blocks
            for s, x in zip(self.block_of.tolist(), arr.tolist(), strict=True):
                out[s] += x
            return out
        return np.bincount(self.block_of, weights=arr, minlength=self.num_blocks)

    def lift_distribution(self, pt: Any) -> np.ndarray:
        """Lift a quotient distribution: mass ``pt[J] / |J|`` on every state of block ``J``.

        Valid for ``exact`` and ``strict`` (transient and stationary, from a
        start uniform inside blocks) and for ``proportional-exact``
        (stationary distribution only).

        Raises
        ------
        LumpingError
            For forward notions (``ordinary``, ``bisim``): they determine only
            block masses; compare ``aggregate(p)`` with the quotient's result
            instead.  For ``proportional``: its quotient's stationary
            distribution is the block masses of ``pi / rho`` (normalised);
            compare ``aggregate`` of that.
        """
        if self.kind == "proportional":
            raise LumpingError(
                "a proportional lumping determines neither the distribution inside a block "
                "nor pi's block masses: its quotient's stationary distribution is the block "
                "masses of pi / rho, normalised; compare aggregate(pi / rho) / sum(pi / rho) "
                "of the original with it"
            )
        if self.kind in _FORWARD:
            raise LumpingError(
                f"a {self.kind} lumping determines only block masses, not the distribution "
                "inside a block; compare aggregate(p) of the original with the quotient result"
            )
        arr = _vector(pt, self.num_blocks, "pt")
        sizes = self.block_sizes
        if arr.dtype == object:
            out = np.empty(self.chain.n, dtype=object)
            out[:] = [arr[b] / int(sizes[b]) for b in self.block_of.tolist()]
            return out
        return arr[self.block_of] / sizes[self.block_of]

    def lift_values(self, vt: Any) -> np.ndarray:
        """Lift per-block values (e.g. reachability probabilities, expected
        rewards to go) to states: ``v[s] = vt[block(s)]``.

        Valid for forward notions (``ordinary``, ``bisim``, ``strict``),
        whose blocks agree on every such quantity.

        Raises
        ------
        LumpingError
            For backward and proportional notions.
        """
        if self.kind not in ("ordinary", "bisim", "strict"):
            raise LumpingError(
                f"per-state values are not constant on the blocks of a {self.kind} lumping; "
                "use an ordinary, bisim or strict lumping"
            )
        arr = _vector(vt, self.num_blocks, "vt")
        return arr[self.block_of]

    def __repr__(self) -> str:
        return (
            f"ChainLumping({self.kind}: {self.chain.n} states -> {self.num_blocks} blocks, "
            f"{self.arithmetic})"
        )


def _vector(p: Any, n: int, name: str) -> np.ndarray:
    if isinstance(p, np.ndarray):
        arr = p
    else:
        vals = list(p)
        exact = any(isinstance(x, Fraction) for x in vals)
        arr = np.empty(len(vals), dtype=object) if exact else np.asarray(vals, dtype=np.float64)
        if exact:
            arr[:] = vals
    if arr.ndim != 1 or arr.shape[0] != n:
        raise LumpingError(f"{name} must have length {n}, got shape {arr.shape}")
    return arr


def lump(
    chain: CTMC | DTMC,
    kind: str = "ordinary",
    *,
    arithmetic: str | None = None,
    tolerance: float = 0.0,
    labels: Collection[str] | None = None,
    rewards: Collection[str] | None = None,
) -> ChainLumping:
    """The coarsest lumping of a chain of the given kind, with its quotient.

    The engine (:func:`lumpcore.coarsest_lumping`) is fed as in THEORY
    section 2:

    ============================  =========================  ======================
    kind                          engine                     matrix
    ============================  =========================  ======================
    ``ordinary``                  forward                    Q with diagonal
    ``bisim`` (as Storm)          forward                    rates R (self-loops,
                                                             no -exit diagonal)
    ``exact``                     backward                   Q with diagonal
    ``strict``                    forward and backward,      Q with diagonal
                                  alternated until stable
    ``proportional``              forward, proportional      Q with diagonal
    ``proportional-exact``        backward, proportional     Q with diagonal
    ============================  =========================  ======================

    (For a DTMC the matrix is P; the proportional kinds are CTMC-only.)

    Initial partition: forward notions separate states that differ in a
    respected label or in any state reward (the quotient's initial
    distribution is the aggregated one, which forward notions preserve for
    any start, so ``init`` is not needed, as in Storm); backward notions
    separate states that differ in a respected label or in initial
    probability (so the start is uniform inside blocks); ``strict`` uses all
    three.

    Quotients: forward kinds ``Qt(I,J) = rho(s) Q(s,J)`` for the smallest
    state ``s`` of ``I`` (``rho = 1`` without proportionality); ``exact``
    ``Qt(I,J) = (1/|I|) sum_{u in I, v in J} Q(u,v)``; ``proportional-exact``
    ``Qt(S',S) = (R(S)/|S'|) rho(v) sum_{u in S'} Q(u,v)`` with
    ``R(S) = sum_{w in S} 1/rho(w)``.  Exact chains lumped in exact
    arithmetic give exact quotients,
    checked to be generators (stochastic matrices) exactly.  Quotient labels:
    the respected labels of each block, ``init`` on the blocks with initial
    mass.  Quotient rewards:
    forward kinds and ``strict`` keep the respected structures (constant on
    blocks); backward kinds keep every structure, averaged over each block
    (exact for expected rewards of distributions uniform inside blocks).

    Parameters
    ----------
    chain : CTMC or DTMC
    kind : {'ordinary', 'exact', 'strict', 'proportional', 'proportional-exact', 'bisim'}
    arithmetic : {'exact', 'float'}, optional
        Engine arithmetic.  Default ``'exact'``: rationals for exact chains,
        the exact binary value of every stored float for float chains, with a
        generator's diagonal taken as exactly minus its row's rate sum (the
        stored diagonal is that sum rounded, and in a summation order: rates
        0.05, 0.05, 3.3 give 3.3999999999999995, rates 0.1, 3.3 give 3.4,
        though both sum to the same rational; lumped as stored, such states
        would be kept apart, and no row would sum to exactly 0).  ``'float'``
        rounds every entry to the grid ``tolerance * Z`` first (see
        :func:`lumpcore.coarsest_lumping`); a float generator's diagonal is
        given to it as the same exact sum, in parts, each part rounded.
    tolerance : float
        Float arithmetic only: the grid ``tolerance * Z`` that the rates are
        rounded to; the values of the respected reward structures and (for
        backward kinds and ``strict``) the initial probabilities are rounded
        to it as well before states are told apart by them (values read from
        float files that differ only in their last bits fall together).
    labels : collection of str, optional
        Labels to respect; default all labels except ``init``.
    rewards : collection of str, optional
        Reward structures to respect (forward kinds and ``strict``); default
        all.  (Storm's ``preserve_all_rewards=False`` corresponds to ``()``.)

    Returns
    -------
    ChainLumping

    Raises
    ------
    LumpingError
        For an unknown kind, a proportional kind on a DTMC, or an unknown label.

    Examples
    --------
    >>> from markov import paper_example_2
    >>> res = lump(paper_example_2(), "proportional-exact")
    >>> res.blocks
    ((0,), (1, 2, 3), (4, 5, 6), (7,))
    >>> [str(r) for r in res.rho]
    ['1', '1', '2', '2', '1', '2', '2', '1']
    >>> res.quotient.exact_matrix()[1]  # (R(S)/|S'|) c(S', v) = (2/3) * 2
    {1: Fraction(-4, 3), 2: Fraction(4, 3)}
    >>> lump(paper_example_2(), "exact").blocks  # rho = 1 merges only states 2 and 3
    ((0,), (1,), (2, 3), (4,), (5,), (6,), (7,))
    """
    chain = as_chain(chain)
    if kind not in KINDS:
        raise LumpingError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if isinstance(chain, DTMC) and kind.startswith("proportional"):
        raise LumpingError(
            f"kind {kind!r} is defined for CTMCs only; lump a DTMC with ordinary, exact, strict "
            "or bisim"
        )
    if arithmetic is None:
        arithmetic = "exact"
    if arithmetic not in ("exact", "float"):
        raise LumpingError(f"arithmetic must be 'exact' or 'float', got {arithmetic!r}")
    if isinstance(tolerance, bool | np.bool_) or not isinstance(
            tolerance, int | float | np.integer | np.floating):
        raise LumpingError(f"tolerance must be a number (the grid step), got {tolerance!r}")
    try:
        step = float(tolerance)
    except OverflowError:  # (an integer beyond float64)
        step = math.inf
    if not (math.isfinite(step) and step >= 0):  # (before the rewards are rounded to it)
        raise LumpingError(f"tolerance must be finite and >= 0, got {tolerance!r}")
    respected = _respected_labels(chain, labels)
    kept_rewards = _respected_rewards(chain, rewards)
    if kind == "bisim" and isinstance(chain, CTMC):
        n, src, dst, val = chain.rate_edges()  # Storm's rate matrix: self-loops, no -exit
    else:
        n, src, dst, val = chain.to_edges()
    if val.dtype == np.float64 and kind != "bisim" and isinstance(chain, CTMC):
        # a generator's diagonal is minus the row's rate sum, which a float may not hold:
        # the engine gets it exactly, as a few self-edges summing to it where needed (in
        # float arithmetic too: the stored diagonal's rounding error would otherwise be
        # kept by the fine default grid and split states whose rates agree)
        graph = _exact_generator_graph(n, src, dst, val)
    elif val.dtype == np.float64:
        # the chain's arrays are validated (indices in range, finite values):
        # hand them to the engine as they are, without from_edges' copies
        graph = WeightedGraph(n, _readonly(src), _readonly(dst), _readonly(val))
    else:
        graph = WeightedGraph.from_edges(n, src, dst, val)
    opts: dict[str, Any] = {"arithmetic": arithmetic}
    if arithmetic == "float":
        opts["tolerance"] = tolerance
    elif tolerance:
        raise LumpingError("tolerance applies to arithmetic='float' only")

    use_rewards = kind in _FORWARD or kind == "strict"
    use_initial = kind in _BACKWARD or kind == "strict"
    initial = _initial_partition(chain, respected, kept_rewards if use_rewards else [],
                                 use_initial, tolerance if arithmetic == "float" else 0.0)

    t0 = time.perf_counter()
    runs: list[Lumping] = []
    if kind == "strict":
        block_of = initial
        direction = "forward"
        stable_count = -1
        while True:
            res = coarsest_lumping(graph, block_of, direction=direction, **opts)
            runs.append(res)
            if res.num_blocks == stable_count:
                break
            stable_count = res.num_blocks
            block_of = res.block_of
            direction = "backward" if direction == "forward" else "forward"
        eng = runs[-1]
    else:
        direction = "forward" if kind in _FORWARD else "backward"
        eng = coarsest_lumping(graph, initial, direction=direction,
                               proportional=kind.startswith("proportional"), **opts)
        runs.append(eng)
    seconds = time.perf_counter() - t0

    rho = eng.rho if kind.startswith("proportional") else None
    # float arithmetic gives float rho: build a float quotient (exact only from exact runs)
    base = chain.to_float() if arithmetic == "float" else chain
    reward_names = kept_rewards if use_rewards else sorted(chain.rewards)
    float_ctmc = isinstance(base, CTMC) and not base.exact
    edges = (n, src, dst, val) if base is chain else None
    quotient: CTMC | DTMC | None = None
    if float_ctmc and eng.num_blocks == n:
        # every state alone (rho = 1): the quotient is the chain itself, when its
        # stored exit rates are the ones the construction would compute
        assert isinstance(base, CTMC)
        quotient = _discrete_quotient(base, kind, respected, reward_names, edges or (
            base.rate_edges() if kind == "bisim" else base.to_edges()))
    if quotient is None:
        if float_ctmc and rho is None and kind in ("bisim", "ordinary", "strict"):
            assert isinstance(base, CTMC)
            quotient = _forward_quotient_float(base, kind, eng.block_of, respected,
                                               reward_names, edges)
        else:
            quotient = _quotient(base, kind, eng.block_of, rho, respected, reward_names)
    return ChainLumping(
        kind=kind, chain=chain, quotient=quotient, block_of=eng.block_of,
        rho=rho, arithmetic=arithmetic, engine=tuple(runs), seconds=seconds,
    )


def _exact_generator_graph(n: int, src: np.ndarray, dst: np.ndarray, val: np.ndarray
                           ) -> WeightedGraph:
    """The generator's graph with every diagonal exactly minus its row's rate sum.

    The stored diagonal of a float generator is the float sum of the row's
    rates, rounded: rates 0.1, 0.2, 0.3 and 0.3, 0.2, 0.1 give different
    diagonals, and no float row sums to exactly 0, so exact arithmetic on the
    stored values kept apart states that the exact generator lumps.  Rows
    whose stored diagonal is exact keep it; the others get the exact sum as
    a few self-edges (floats whose exact sum it is; the engine sums parallel
    edges exactly).
    """
    from ._kernels import exact_diagonals

    bad, rows, vals = exact_diagonals(n, src, dst, val)
    if not bad.any():
        return WeightedGraph(n, _readonly(src), _readonly(dst), _readonly(val))
    keep = ~(bad[src] & (src == dst))  # drop the inexact diagonals
    s2 = np.concatenate([src[keep], rows])
    d2 = np.concatenate([dst[keep], rows])
    v2 = np.concatenate([val[keep], vals])
    return WeightedGraph(n, _readonly(s2), _readonly(d2), _readonly(v2))


def _readonly(a: np.ndarray) -> np.ndarray:
    if a.flags.writeable:
        a = a.view()
        a.setflags(write=False)
    return a


def _forward_quotient_float(
    chain: CTMC,
    kind: str,
    block_of: np.ndarray,
    respected: list[str],
    reward_names: list[str],
    edges: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None,
) -> CTMC:
    """The quotient of a float CTMC under a forward lumping without ``rho``, in
    compiled passes: ``Qt(I, J) = M(s, J)`` for the smallest state ``s`` of
    ``I`` (``M`` = rates with self-loops for ``bisim``, else ``Q``).

    Gives the same arrays, bit for bit, as :func:`_quotient` followed by
    :meth:`CTMC.from_rates` (exit rates summed as ``_fsum_rows`` sums them:
    each row's values in ascending order, by ``numpy.add.reduceat``); the
    checks of the constructor are skipped, since the quotient of a valid
    chain under a stable partition is valid.
    """
    from ._kernels import forward_quotient

    if edges is None:
        edges = chain.rate_edges() if kind == "bisim" else chain.to_edges()
    n, src, dst, val = edges
    k = int(block_of.max()) + 1 if block_of.size else 0
    size = src.shape[0] + k  # work arrays from numpy (huge pages; see the kernel)
    # CSR row pointers of the edges (sorted by source), computed here rather than by
    # lumpcore's compiled helper: numba does not invalidate a cached caller in another file
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    rows, cols, vals, diag_at, svals, row_start, own, reps = forward_quotient(
        n, indptr, dst, val, block_of, k, np.empty(size, dtype=np.int64),
        np.empty(size, dtype=np.int64), np.empty(size), np.empty(size),
    )
    if 4 * rows.shape[0] < size:  # much smaller than the work arrays: do not keep those
        rows, cols, vals = rows.copy(), cols.copy(), vals.copy()
    if row_start.size > 1:
        vals[diag_at[diag_at >= 0]] = -np.add.reduceat(svals, row_start[:-1])
    loops: np.ndarray | None = None
    if kind == "bisim" and bool(np.any(own != 0)):  # own-block rates: the self-loops
        loops = own
    labels: dict[str, np.ndarray] = {}
    for name in respected:
        hit = np.zeros(k, dtype=bool)
        hit[block_of[chain.labels[name]]] = True
        labels[name] = np.flatnonzero(hit).astype(np.int64)
    init_mass = np.bincount(block_of, weights=chain.initial, minlength=k).astype(np.float64)
    labels["init"] = np.flatnonzero(init_mass > 0).astype(np.int64)
    rewards = {name: np.ascontiguousarray(chain.rewards[name][reps], dtype=np.float64)
               for name in reward_names}
    return CTMC._trusted_float(k, rows, cols, vals, labels=labels, initial=init_mass,
                               rewards=rewards, loops=loops)


def _discrete_quotient(
    chain: CTMC,
    kind: str,
    respected: list[str],
    reward_names: list[str],
    edges: tuple[int, np.ndarray, np.ndarray, np.ndarray],
) -> CTMC | None:
    """The quotient by the partition into singletons (numbered as the states):
    the chain's own arrays, when its stored exit rates are the ones
    :meth:`CTMC.from_rates` computes for its rates (else ``None``: build it)."""
    from ._kernels import sorted_offdiagonal_rows

    n, src, dst, val = edges
    svals = np.empty(src.shape[0])  # numpy: huge pages (see the kernels)
    rows_with, starts = sorted_offdiagonal_rows(n, src, dst, val, svals)
    # reduceat's last segment runs to the end of its input: cut svals where the values end
    filled = svals[: int(starts[rows_with.size])] if rows_with.size else svals[:0]
    exits = np.add.reduceat(filled, starts[: rows_with.size]) if rows_with.size else np.zeros(0)
    qs, qd, qv = chain._src, chain._dst, chain._val
    diag = np.flatnonzero(qs == qd)
    if not (np.array_equal(qs[diag], rows_with) and np.array_equal(qv[diag], -exits)):
        return None
    loops = None
    if kind == "bisim" and chain.loops is not None:
        loops = np.ascontiguousarray(chain.loops, dtype=np.float64)
    labels = {name: chain.labels[name] for name in respected}
    initial = np.ascontiguousarray(chain.initial, dtype=np.float64)
    labels["init"] = np.flatnonzero(initial > 0).astype(np.int64)
    rewards = {name: chain.rewards[name] for name in reward_names}
    return CTMC._trusted_float(n, qs, qd, qv, labels=labels, initial=initial,
                               rewards=rewards, loops=loops)


def _respected_labels(chain: CTMC | DTMC, labels: Collection[str] | None) -> list[str]:
    if labels is None:
        return sorted(x for x in chain.labels if x != "init")
    if isinstance(labels, str):
        raise LumpingError("labels must be a collection of label names, not a single string")
    out = []
    for name in labels:
        if name not in chain.labels:
            raise LumpingError(
                f"label {name!r} is not a label of the chain (labels: {sorted(chain.labels)})"
            )
        out.append(name)
    return sorted(set(out))


def _respected_rewards(chain: CTMC | DTMC, rewards: Collection[str] | None) -> list[str]:
    if rewards is None:
        return sorted(chain.rewards)
    if isinstance(rewards, str):
        raise LumpingError("rewards must be a collection of reward names, not a single string")
    for name in rewards:
        if name not in chain.rewards:
            raise LumpingError(
                f"reward {name!r} is not a reward structure of the chain "
                f"(rewards: {sorted(chain.rewards)})"
            )
    return sorted(set(rewards))


def _initial_partition(
    chain: CTMC | DTMC,
    respected: list[str],
    reward_names: list[str],
    use_initial: bool,
    grid: float = 0.0,
) -> np.ndarray:
    """Integer block label per state combining the chosen per-state attributes (reward
    values and initial probabilities rounded to the nearest multiple of ``grid`` when it
    is positive)."""
    n = chain.n
    cols: list[np.ndarray] = []
    exact_cols: list[list[Hashable]] = []
    # labels: one bit each, packed into an integer code (renumbered when full)
    bits = np.zeros(n, dtype=np.int64)
    bound = 1  # every code is < bound
    for name in respected:
        if bound > 2**61:
            _, inv = np.unique(bits, return_inverse=True)
            bits = inv.reshape(n).astype(np.int64)
            bound = int(bits.max(initial=0)) + 1
        bits <<= 1
        bits[chain.labels[name]] |= 1
        bound *= 2
    if respected:
        cols.append(bits.astype(np.float64) if bound <= 2**53 else
                    np.unique(bits, return_inverse=True)[1].reshape(n).astype(np.float64))
    vectors: list[np.ndarray] = [chain.rewards[k] for k in reward_names]
    if use_initial:
        vectors.append(chain.initial)
    for vec in vectors:
        if grid > 0:
            step = Fraction(grid)
            if vec.dtype == object:
                exact_cols.append([round(Fraction(x) / step) for x in vec.tolist()])
            else:
                with np.errstate(over="ignore"):
                    q = np.rint(np.asarray(vec, dtype=np.float64) / grid)
                if not np.all(np.isfinite(q)):
                    big = float(np.max(np.abs(vec)))
                    raise LumpingError(
                        f"tolerance {grid!r} is too fine for a reward or initial value of "
                        f"{big!r} (their quotient exceeds float64's range); choose a larger "
                        "tolerance")
                cols.append(q)
        elif vec.dtype == object:
            exact_cols.append(vec.tolist())
        else:
            cols.append(np.asarray(vec, dtype=np.float64))
    if exact_cols:
        keys = list(zip(*(c.tolist() for c in cols), *exact_cols, strict=True)) if cols else list(
            zip(*exact_cols, strict=True)
        )
        codes: dict[Hashable, int] = {}
        return np.asarray([codes.setdefault(k, len(codes)) for k in keys], dtype=np.int64)
    if len(cols) == 1 and respected:
        return bits if bound <= 2**53 else cols[0].astype(np.int64)
    code = np.zeros(n, dtype=np.int64)
    for col in cols:  # combine per-column codes (1-D uniques are fast)
        _, c = np.unique(col + 0.0, return_inverse=True)  # +0.0 turns -0.0 into 0.0
        _, code = np.unique(code * (int(c.max(initial=0)) + 1) + c.reshape(n),
                            return_inverse=True)
        code = code.reshape(n).astype(np.int64)
    return code


def _quotient(
    chain: CTMC | DTMC,
    kind: str,
    block_of: np.ndarray,
    rho: tuple[Fraction, ...] | np.ndarray | None,
    respected: list[str],
    reward_names: list[str],
) -> CTMC | DTMC:
    k = int(block_of.max()) + 1 if block_of.size else 0
    exact = chain.exact
    _, first = np.unique(block_of, return_index=True)  # smallest state of every block
    reps = first.astype(np.int64)
    sizes = np.bincount(block_of, minlength=k)
    is_ctmc = isinstance(chain, CTMC)
    if kind == "bisim" and isinstance(chain, CTMC):
        n, src, dst, val = chain.rate_edges()
    else:
        n, src, dst, val = chain.to_edges()

    if kind in ("exact",):
        # Qt(I,J) = (1/|I|) sum_{u in I, v in J} Q(u,v)
        qi, qj, qv = _accumulate(block_of[src], block_of[dst], val, k, exact)
        if exact:
            qv = np.asarray([x / int(sizes[i]) for x, i in zip(qv.tolist(), qi.tolist(),
                                                                strict=True)], dtype=object)
        else:
            qv = qv / sizes[qi]
    elif kind == "proportional-exact":
        # Qt(S',S) = (R(S)/|S'|) rho(v) sum_{u in S'} Q(u,v), v = smallest state of S (rho = 1)
        is_rep = np.zeros(n, dtype=bool)
        is_rep[reps] = True
        m = is_rep[dst]
        qi, qj, qv = _accumulate(block_of[src[m]], block_of[dst[m]], val[m], k, exact)
        assert rho is not None
        r_of = _block_inverse_rho_sums(rho, block_of, k, exact)
        rho_rep = [rho[int(r)] for r in reps.tolist()]
        if exact:
            qv = np.asarray(
                [r_of[j] * Fraction(rho_rep[j]) * x / int(sizes[i])
                 for x, i, j in zip(qv.tolist(), qi.tolist(), qj.tolist(), strict=True)],
                dtype=object,
            )
        else:
            rho_f = np.asarray([float(x) for x in rho_rep])
            qv = np.asarray(r_of, dtype=np.float64)[qj] * rho_f[qj] * qv / sizes[qi]
    else:
        # forward kinds and strict: Qt(I,J) = rho(s) Q(s,J), s the smallest state of I
        is_rep = np.zeros(n, dtype=bool)
        is_rep[reps] = True
        m = is_rep[src]
        qi, qj, qv = _accumulate(block_of[src[m]], block_of[dst[m]], val[m], k, exact)
        if rho is not None:
            rr: list[Any] = [rho[int(r)] for r in reps.tolist()]
            if exact:
                qv = np.asarray([Fraction(rr[i]) * x for x, i in zip(qv.tolist(), qi.tolist(),
                                                                     strict=True)], dtype=object)
            else:
                qv = qv * np.asarray([float(x) for x in rr])[qi]

    labels: dict[str, list[int]] = {
        name: sorted(set(block_of[chain.labels[name]].tolist())) for name in respected
    }
    init_mass = _aggregate(chain.initial, block_of, k)
    labels["init"] = [b for b, x in enumerate(init_mass.tolist()) if x > 0]
    rewards: dict[str, Any] = {}
    for name in reward_names:
        vec = chain.rewards[name]
        if kind in _BACKWARD:
            sums = _aggregate(vec, block_of, k)
            rewards[name] = [s / int(sizes[b]) for b, s in enumerate(sums.tolist())]
        else:
            rewards[name] = vec[reps]
    from ._chain import _Edges

    try:
        if not is_ctmc:
            return DTMC(_Edges(k, qi, qj, qv), labels=labels, initial=init_mass, rewards=rewards,
                        exact=exact)
        if kind == "bisim":  # own-block rates become the quotient's self-loops, as in Storm
            return CTMC.from_rates((k, qi, qj, qv), labels=labels, initial=init_mass,
                                   rewards=rewards, exact=exact)
        if not exact:
            off = qi != qj
            return CTMC.from_rates((k, qi[off], qj[off], qv[off]), labels=labels,
                                   initial=init_mass, rewards=rewards, exact=exact)
        return CTMC(_Edges(k, qi, qj, qv), labels=labels, initial=init_mass, rewards=rewards,
                    exact=True)
    except ChainError as exc:  # pragma: no cover - would be a bug in the engine or here
        raise LumpkitError(
            f"internal error: the {kind} quotient is not a valid chain ({exc}); please report"
        ) from exc


def _accumulate(
    bi: np.ndarray, bj: np.ndarray, val: np.ndarray, k: int, exact: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum values by (bi, bj) pairs; returns sorted unique pairs and sums."""
    if bi.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0, dtype=object if exact else np.float64)
    key = bi.astype(np.int64) * k + bj.astype(np.int64)
    uniq, inv = np.unique(key, return_inverse=True)
    if exact:
        sums: list[Fraction] = [Fraction(0)] * uniq.size
        for t, x in zip(inv.tolist(), val.tolist(), strict=True):
            sums[t] += x
        out = np.empty(uniq.size, dtype=object)
        out[:] = sums
    else:
        out = np.bincount(inv, weights=val, minlength=uniq.size)
    return uniq // k, uniq % k, out


def _aggregate(vec: np.ndarray, block_of: np.ndarray, k: int) -> np.ndarray:
    if vec.dtype == object:
        out = np.empty(k, dtype=object)
        out[:] = [Fraction(0)] * k
        for b, x in zip(block_of.tolist(), vec.tolist(), strict=True):
            out[b] += x
        return out
    return np.bincount(block_of, weights=vec, minlength=k)


def _block_inverse_rho_sums(
    rho: tuple[Fraction, ...] | np.ndarray, block_of: np.ndarray, k: int, exact: bool
) -> list[Any]:
    if exact:
        out: list[Any] = [Fraction(0)] * k
        for b, r in zip(block_of.tolist(), list(rho), strict=True):
            out[b] += 1 / Fraction(r)
        return out
    inv = 1.0 / np.asarray([float(r) for r in rho])
    return np.bincount(block_of, weights=inv, minlength=k).tolist()

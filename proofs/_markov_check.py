"""Exact, independent check of a Markov-chain partition (THEORY section 2).

Does not call :func:`lumpcore.coarsest_lumping`: it only sums the matrix
entries per (block, state) in exact rational arithmetic, in one pass over
the entries, and compares.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from lumpcore import LumpkitError, to_rational

from ._verdict import CheckResult

__all__ = ["NOTIONS", "check_markov_lumping"]

#: Notions understood by :func:`check_markov_lumping` -> (directions, proportional).
NOTIONS: dict[str, tuple[tuple[str, ...], bool]] = {
    "ordinary": (("forward",), False),
    "exact": (("backward",), False),
    "strict": (("forward", "backward"), False),
    "proportional": (("forward",), True),
    "proportional_exact": (("backward",), True),
}


class _BadInput(LumpkitError, ValueError):
    pass


def _edges(chain: Any) -> tuple[int, list[int], list[int], list[Fraction]]:
    if hasattr(chain, "to_edges"):
        n, src, dst, val = chain.to_edges()
    elif isinstance(chain, tuple) and len(chain) == 4:
        n, src, dst, val = chain
    else:
        try:
            import scipy.sparse as sp
        except ImportError:  # pragma: no cover
            sp = None
        if sp is not None and sp.issparse(chain):
            coo = sp.coo_array(chain)
            n, src, dst, val = coo.shape[0], coo.row, coo.col, coo.data
        else:
            try:
                rows = [list(r) for r in chain]
            except TypeError:
                raise _BadInput("the chain must be a square matrix (rows of numbers), a "
                                "markov chain, a scipy sparse matrix or (n, src, dst, values)"
                                ) from None
            n = len(rows)
            if any(len(r) != n for r in rows):
                raise _BadInput("the matrix must be square (one row and column per state)")
            src, dst, val = [], [], []
            for i, r in enumerate(rows):
                for j, x in enumerate(r):
                    if x != 0:
                        src.append(i)
                        dst.append(j)
                        val.append(x)
    n = int(n)
    s = [int(x) for x in np.asarray(src).tolist()]
    d = [int(x) for x in np.asarray(dst).tolist()]
    v = val.tolist() if isinstance(val, np.ndarray) else list(val)
    if not len(s) == len(d) == len(v):
        raise _BadInput("src, dst and values must have the same length")
    for k, (a, b) in enumerate(zip(s, d, strict=True)):
        if not (0 <= a < n and 0 <= b < n):
            raise _BadInput(f"entry {k} ({a}, {b}) is outside the {n} states")
    q = [to_rational(x) for x in v]
    if _is_ctmc(chain):
        # a generator's diagonal is minus its rate sum, exactly; a float chain stores that
        # sum rounded (rates 0.1, 0.2, 0.3 sum to 0.6000000000000001 in one order, 0.6 in
        # another), as markov.lump also takes it
        exit_rate = [Fraction(0)] * n
        for a, b, x in zip(s, d, q, strict=True):
            if a != b:
                exit_rate[a] += x
        keep = [k for k, (a, b) in enumerate(zip(s, d, strict=True)) if a != b]
        s = [s[k] for k in keep] + list(range(n))
        d = [d[k] for k in keep] + list(range(n))
        q = [q[k] for k in keep] + [-e for e in exit_rate]
    return n, s, d, q


def _is_ctmc(chain: Any) -> bool:
    try:
        from markov import CTMC
    except ImportError:  # pragma: no cover - markov ships with proofs
        return False
    return isinstance(chain, CTMC)


def _state(x: Any, where: str) -> int:
    """A state index: an integer (or an integral float / numpy integer), never truncated."""
    if isinstance(x, bool | np.bool_):
        raise _BadInput(f"{where}: state {x!r} is a boolean, not a state index")
    try:
        k = int(x)
    except (TypeError, ValueError):
        raise _BadInput(f"{where}: state {x!r} is not an integer state index") from None
    if k != x:
        raise _BadInput(f"{where}: state {x!r} is not an integer state index")
    return k


def _blocks(partition: Any, n: int) -> tuple[list[list[int]], list[int]]:
    if isinstance(partition, np.ndarray) and partition.ndim != 1:
        raise _BadInput(f"a partition array must be 1-D (one label per state), got shape "
                        f"{partition.shape}")
    try:
        items = list(partition)
    except TypeError:
        raise _BadInput(f"the partition must be a sequence of blocks or one label per state, "
                        f"got {partition!r}") from None
    if items and all(isinstance(b, list | tuple | set | frozenset)
                     or (isinstance(b, np.ndarray) and b.ndim == 1) for b in items):
        blocks = [sorted(_state(x, f"block {k}") for x in b) for k, b in enumerate(items)]
        block_of = [-1] * n
        for k, b in enumerate(blocks):
            if not b:
                raise _BadInput(f"block {k} is empty; a partition has non-empty blocks only")
            for s in b:
                if not 0 <= s < n:
                    raise _BadInput(f"state {s} of block {k} is outside the {n} states")
                if block_of[s] != -1:
                    raise _BadInput(f"state {s} is in blocks {block_of[s]} and {k}")
                block_of[s] = k
        if -1 in block_of:
            raise _BadInput(f"state {block_of.index(-1)} is in no block")
        return blocks, block_of
    if len(items) != n:
        raise _BadInput(f"partition has {len(items)} labels for {n} states; give one per state")
    ids: dict[Any, int] = {}
    block_of = []
    for s, lab in enumerate(items):
        key = lab.item() if isinstance(lab, np.generic) else lab
        try:
            block_of.append(ids.setdefault(key, len(ids)))
        except TypeError:
            raise _BadInput(f"label {lab!r} of state {s} cannot be a block label (labels are "
                            "numbers or strings; blocks are lists of states)") from None
    blocks = [[] for _ in ids]
    for s, k in enumerate(block_of):
        blocks[k].append(s)
    return blocks, block_of


def check_markov_lumping(
    chain: Any,
    partition: Any,
    notion: str = "ordinary",
    *,
    rho: Sequence[Any] | None = None,
) -> CheckResult:
    """Check exactly that a partition is a lumping of a chain for a notion.

    Parameters
    ----------
    chain : markov.CTMC / DTMC, ``(n, src, dst, values)``, or a square matrix
        Generator ``Q`` (with its diagonal) or transition matrix ``P``.
        Floats are taken at their exact binary value; the diagonal of a
        ``markov.CTMC`` is taken as exactly minus its row's rate sum (a float
        chain stores that sum rounded).
    partition : sequence of blocks, or one label per state
    notion : {"ordinary", "exact", "strict", "proportional", "proportional_exact"}
        ordinary: equal outgoing sums ``sum_{u in B} Q(s, u)`` inside a block;
        exact: equal incoming sums; strict: both; proportional: outgoing sums
        equal up to a positive factor per state, ``rho(s) out_B(s)``;
        proportional_exact: the same for incoming sums (Ressi et al. Def. 5).
        Every block ``B`` counts, the own block included.
    rho : sequence of positive numbers, optional
        The factors for the proportional notions; if omitted the checker
        derives them (representative: the smallest state of its block, factor 1).

    Returns
    -------
    CheckResult
        The first violated condition with the blocks, states and exact sums.

    Raises
    ------
    ValueError
        For an unknown notion, a malformed chain, partition or rho.

    Examples
    --------
    >>> Q = [[-2, 1, 1], [1, -2, 1], [1, 1, -2]]
    >>> check_markov_lumping(Q, [[0], [1, 2]], "ordinary").valid
    True
    >>> bad = check_markov_lumping([[-1, 1, 0], [1, -2, 1], [0, 3, -3]], [[0, 2], [1]], "exact")
    >>> bad.condition, bad.location["states"]
    ('equal incoming sums (exact)', [0, 2])
    """
    start = time.perf_counter()
    if not isinstance(notion, str):
        raise _BadInput(f"notion must be a string, one of {', '.join(NOTIONS)}; got {notion!r}")
    key = notion.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in NOTIONS:
        raise _BadInput(f"unknown notion {notion!r}; use one of {', '.join(NOTIONS)}")
    directions, proportional = NOTIONS[key]
    n, src, dst, val = _edges(chain)
    blocks, block_of = _blocks(partition, n)
    factors: list[Fraction] | None = None
    if rho is not None:
        if not proportional:
            raise _BadInput(f"rho is only meaningful for the proportional notions, not {notion!r}")
        factors = [to_rational(x) for x in rho]
        if len(factors) != n:
            raise _BadInput(f"rho has {len(factors)} entries for {n} states")
        for s, f in enumerate(factors):
            if f <= 0:
                raise _BadInput(f"rho of state {s} is {f}; factors must be positive")
    for direction in directions:
        sums: list[dict[int, Fraction]] = [{} for _ in range(n)]
        for a, b, x in zip(src, dst, val, strict=True):
            state, other = (a, b) if direction == "forward" else (b, a)
            blk = block_of[other]
            row = sums[state]
            row[blk] = row.get(blk, Fraction(0)) + x
        what = "outgoing" if direction == "forward" else "incoming"
        for K, members in enumerate(blocks):
            r = members[0]
            ref = {B: x for B, x in sums[r].items() if x}
            for t in members[1:]:
                mine = {B: x for B, x in sums[t].items() if x}
                if not proportional:
                    bad = next((B for B in sorted(set(ref) | set(mine))
                                if ref.get(B, 0) != mine.get(B, 0)), None)
                    if bad is not None:
                        return _fail(start, f"equal {what} sums ({key})", K, [r, t], bad,
                                     ref.get(bad, Fraction(0)), mine.get(bad, Fraction(0)))
                    continue
                if factors is not None:
                    fr, ft = factors[r], factors[t]
                else:
                    fr = Fraction(1)
                    common = sorted(set(ref) & set(mine))
                    ft = ref[common[0]] / mine[common[0]] if common else Fraction(1)
                    if ft <= 0:
                        return _fail(start, f"positive factor ({key})", K, [r, t], common[0],
                                     ref[common[0]], mine[common[0]])
                bad = next((B for B in sorted(set(ref) | set(mine))
                            if fr * ref.get(B, 0) != ft * mine.get(B, 0)), None)
                if bad is not None:
                    return _fail(start, f"proportional {what} sums ({key})", K, [r, t], bad,
                                 fr * ref.get(bad, Fraction(0)), ft * mine.get(bad, Fraction(0)),
                                 scaled=True)
    return CheckResult(True, f"{key} lumpability of {n} states in {len(blocks)} blocks "
                       "(exact sums, every block including the own one)",
                       seconds=time.perf_counter() - start)


def _fail(start: float, condition: str, K: int, states: list[int], B: int,
          a: Fraction, b: Fraction, scaled: bool = False) -> CheckResult:
    from lumpcore import rational_to_str
    pre = "rho*" if scaled else ""
    return CheckResult(
        False, "Markov-chain lumping", condition,
        {"block": K, "states": states, "summed over block": B},
        {f"{pre}sum(state {states[0]})": rational_to_str(a),
         f"{pre}sum(state {states[1]})": rational_to_str(b)},
        time.perf_counter() - start)

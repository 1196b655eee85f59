"""Numerical analyses that show what a lumping preserves: stationary and
transient distributions and expected rewards."""

from __future__ import annotations

import math
import numbers
from fractions import Fraction
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

from lumpcore import to_rational

from ._chain import CTMC, DTMC, ChainError, as_chain

__all__ = ["expected_reward", "stationary", "transient"]

#: Largest chain solved in exact rational arithmetic (dense elimination).
_EXACT_LIMIT = 400


def _generator(chain: CTMC | DTMC) -> sp.csr_array:
    """Q for a CTMC, P - I for a DTMC (float64)."""
    m = chain.matrix
    if isinstance(chain, DTMC):
        m = (m - sp.identity(chain.n, format="csr")).tocsr()
    return sp.csr_array(m)


def _bottom_sccs(chain: CTMC | DTMC) -> tuple[list[np.ndarray], np.ndarray]:
    n, src, dst, _ = chain.to_edges()
    off = src != dst
    adj = sp.csr_array((np.ones(int(off.sum())), (src[off], dst[off])), shape=(n, n))
    ncomp, comp = csgraph.connected_components(adj, directed=True, connection="strong")
    leaves = np.ones(ncomp, dtype=bool)
    cross = comp[src[off]] != comp[dst[off]]
    leaves[comp[src[off]][cross]] = False
    return [np.flatnonzero(comp == c) for c in np.flatnonzero(leaves)], comp


def stationary(chain: CTMC | DTMC, *, exact: bool = False, initial: Any = None) -> np.ndarray:
    """The stationary (long-run) distribution ``pi`` (``pi Q = 0`` or ``pi P = pi``).

    Irreducible chains are solved directly (sparse LU).  A chain with
    transient states but a single bottom strongly connected component
    (BSCC) has a unique stationary distribution: it is computed on the BSCC
    and is 0 on transient states.  With several BSCCs the long-run
    distribution depends on the start, and is the one from ``initial``
    (default: the chain's initial distribution), as PRISM's and Storm's
    steady-state probabilities are: ``sum_B P(reach B) pi_B``, with the
    probabilities of reaching each BSCC ``B`` from the start (the embedded
    jump chain of a CTMC) and ``pi_B`` the stationary distribution of ``B``
    alone.  For a periodic DTMC it is the Cesaro (time-average) limit.

    Parameters
    ----------
    chain : CTMC or DTMC
    exact : bool
        Solve in exact rationals (exact chains whose BSCCs, and transient
        part when there are several BSCCs, have at most 400 states);
        returns an object array of Fractions.
    initial : array_like, optional
        Start distribution, used only when the chain has several BSCCs.

    Returns
    -------
    numpy.ndarray
        float64 (or Fractions with ``exact=True``).

    Raises
    ------
    ChainError
        For ``exact=True`` on a float or too large chain, or an ``initial``
        distribution of the wrong length.

    Examples
    --------
    >>> from markov import CTMC
    >>> stationary(CTMC([[-1, 1], [2, -2]])).round(6).tolist()
    [0.666667, 0.333333]
    >>> stationary(CTMC([[-1, 1], [2, -2]], exact=True), exact=True).tolist()
    [Fraction(2, 3), Fraction(1, 3)]

    Two absorbing states reached with probabilities 1/4 and 3/4 from state 0:

    >>> two = CTMC.from_rates([[0, 1, 3], [0, 0, 0], [0, 0, 0]], exact=True)
    >>> stationary(two, exact=True).tolist()
    [Fraction(0, 1), Fraction(1, 4), Fraction(3, 4)]
    """
    chain = as_chain(chain)
    if chain.n == 0:
        return np.zeros(0)
    if exact and not chain.exact:
        raise ChainError("exact=True needs an exact chain; build it with exact=True")
    if initial is not None and np.shape(initial) != (chain.n,):  # checked for every chain,
        raise ChainError(  # not only those with several BSCCs (where it is used)
            f"initial distribution must have {chain.n} entries, got shape {np.shape(initial)}")
    if initial is not None:
        try:
            _check_distribution(np.array([float(x) for x in np.asarray(initial).tolist()],
                                         dtype=np.float64))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ChainError):
                raise
            raise ChainError(f"initial distribution: {exc}") from None
    bsccs, _ = _bottom_sccs(chain)
    if len(bsccs) == 1:
        return _on_bscc(chain, bsccs[0], exact)
    weights = _reach_probabilities(chain, bsccs, initial, exact)
    if exact:
        out = np.empty(chain.n, dtype=object)
        out[:] = [Fraction(0)] * chain.n
    else:
        out = np.zeros(chain.n)
    for support, w in zip(bsccs, weights, strict=True):
        if w != 0:
            out = out + w * _on_bscc(chain, support, exact)
    return out


def _on_bscc(chain: CTMC | DTMC, support: np.ndarray, exact: bool) -> np.ndarray:
    """The stationary distribution of the BSCC ``support`` alone (0 elsewhere)."""
    if exact:
        return _stationary_exact(chain, support)
    g = _generator(chain)
    sub = g[support][:, support] if support.size < chain.n else g
    k = support.size
    a = sp.lil_array(sub.T)
    a[k - 1, :] = np.ones(k)
    b = np.zeros(k)
    b[k - 1] = 1.0
    x = spla.spsolve(sp.csc_array(a), b) if k > 1 else np.ones(1)
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    x = np.where(np.abs(x) < 1e-300, 0.0, x)
    x = np.clip(x, 0.0, None)
    x /= x.sum()
    out = np.zeros(chain.n)
    out[support] = x
    return out


def _check_distribution(p0: np.ndarray) -> None:
    """A user's start distribution: finite, non-negative, summing to 1 (to 1e-9)."""
    bad = np.flatnonzero(~np.isfinite(p0) | (p0 < 0))
    if bad.size:
        k = int(bad[0])
        raise ChainError(
            f"initial distribution: entry {k} is {float(p0[k])!r}; a distribution has finite, "
            "non-negative masses")
    total = float(p0.sum())
    if abs(total - 1.0) > 1e-9:
        raise ChainError(
            f"initial distribution sums to {total!r}, not 1; divide it by its sum")


def _reach_probabilities(chain: CTMC | DTMC, bsccs: list[np.ndarray], initial: Any,
                         exact: bool) -> list[Any]:
    """Probability of ending in each BSCC from ``initial`` (default: the chain's).

    Transient states ``T``: ``(I - P_TT) X = P_TB`` with ``P`` the transition
    probabilities (the embedded jump chain of a CTMC), one column per BSCC.
    """
    n = chain.n
    p0 = chain.initial if initial is None else np.asarray(initial, dtype=object)
    if p0.shape != (n,):
        raise ChainError(f"initial distribution must have {n} entries, got {p0.shape}")
    if initial is not None:
        _check_distribution(np.array([float(x) for x in p0.tolist()], dtype=np.float64))
    which = np.full(n, -1, dtype=np.int64)
    for k, support in enumerate(bsccs):
        which[support] = k
    trans = np.flatnonzero(which < 0)
    pos = np.full(n, -1, dtype=np.int64)
    pos[trans] = np.arange(trans.size)
    _, src, dst, val = chain.to_edges()
    is_ctmc = not isinstance(chain, DTMC)
    nb = len(bsccs)
    if exact:
        p0f = [to_rational(x) for x in p0.tolist()]
        if trans.size > _EXACT_LIMIT:
            raise ChainError(
                f"exact long-run probabilities are limited to {_EXACT_LIMIT} transient states "
                f"(the chain has {trans.size}); use exact=False")
        m = trans.size
        exit_rate = [Fraction(0)] * n
        if is_ctmc:
            for u, v, w in zip(src.tolist(), dst.tolist(), val.tolist(), strict=True):
                if u != v and which[u] < 0:
                    exit_rate[u] += w
        a = [[Fraction(int(i == j)) for j in range(m)] for i in range(m)]
        rhs = [[Fraction(0)] * nb for _ in range(m)]
        for u, v, w in zip(src.tolist(), dst.tolist(), val.tolist(), strict=True):
            if which[u] >= 0 or (is_ctmc and u == v):
                continue
            prob = w / exit_rate[u] if is_ctmc else w
            if which[v] >= 0:
                rhs[pos[u]][which[v]] += prob
            else:
                a[pos[u]][pos[v]] -= prob
        cols = [_solve_exact([row[:] for row in a], [r[k] for r in rhs]) if m else []
                for k in range(nb)]
        return [sum((p0f[t] * cols[k][pos[t]] for t in trans.tolist()), Fraction(0))
                + sum((p0f[s] for s in bsccs[k].tolist()), Fraction(0)) for k in range(nb)]
    p0v = np.asarray([float(x) for x in p0.tolist()], dtype=np.float64)
    valf = np.asarray([float(x) for x in val.tolist()], dtype=np.float64)
    off = src != dst if is_ctmc else np.ones(src.size, dtype=bool)
    keep = off & (which[src] < 0)
    su, sv, sw = src[keep], dst[keep], valf[keep]
    if is_ctmc:
        exit_f = np.bincount(su, weights=sw, minlength=n)
        sw = sw / exit_f[su]
    to_t = which[sv] < 0
    m = trans.size
    a = sp.identity(m, format="csc") - sp.csc_array(
        (sw[to_t], (pos[su[to_t]], pos[sv[to_t]])), shape=(m, m))
    b = np.zeros((m, nb))
    np.add.at(b, (pos[su[~to_t]], which[sv[~to_t]]), sw[~to_t])
    x = spla.spsolve(a, b) if m else np.zeros((0, nb))
    x = np.asarray(x, dtype=np.float64).reshape(m, nb)
    weights = p0v[trans] @ x + np.array([p0v[bs].sum() for bs in bsccs])
    return [float(w) for w in np.clip(weights, 0.0, None)]


def _stationary_exact(chain: CTMC | DTMC, support: np.ndarray) -> np.ndarray:
    k = int(support.size)
    if k > _EXACT_LIMIT:
        raise ChainError(
            f"exact stationary solution is limited to {_EXACT_LIMIT} states (the chain's "
            f"recurrent part has {k}); use exact=False"
        )
    index = {int(s): i for i, s in enumerate(support.tolist())}
    # rows of A: equations sum_u pi_u G(u, v) = 0 for v in support, last replaced by sum pi = 1
    a = [[Fraction(0)] * k for _ in range(k)]
    is_dtmc = isinstance(chain, DTMC)
    for u, v, w in zip(*(x.tolist() for x in chain.to_edges()[1:]), strict=True):
        if u in index and v in index:
            a[index[v]][index[u]] += w
    if is_dtmc:
        for i in range(k):
            a[i][i] -= 1
    a[k - 1] = [Fraction(1)] * k
    rhs = [Fraction(0)] * k
    rhs[k - 1] = Fraction(1)
    x = _solve_exact(a, rhs)
    out = np.empty(chain.n, dtype=object)
    out[:] = [Fraction(0)] * chain.n
    for s, i in index.items():
        out[s] = x[i]
    return out


def _solve_exact(a: list[list[Fraction]], b: list[Fraction]) -> list[Fraction]:
    """Gauss-Jordan elimination in rationals (``a`` non-singular)."""
    k = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for col in range(k):
        piv = next((r for r in range(col, k) if m[r][col] != 0), None)
        if piv is None:  # pragma: no cover - the system is non-singular for one BSCC
            raise ChainError("singular system in the exact stationary solve")
        m[col], m[piv] = m[piv], m[col]
        pv = m[col][col]
        prow = [x / pv for x in m[col]]
        m[col] = prow
        for r in range(k):
            if r != col and m[r][col] != 0:
                f = m[r][col]
                m[r] = [x - f * y for x, y in zip(m[r], prow, strict=True)]
    return [m[i][k] for i in range(k)]


def transient(chain: CTMC | DTMC, t: float, initial: Any = None) -> np.ndarray:
    """The distribution at time ``t``: ``p0 exp(Q t)`` (CTMC) or ``p0 P^t`` (DTMC).

    CTMCs use :func:`scipy.sparse.linalg.expm_multiply` in float64; a DTMC
    needs an integer number of steps ``t``.

    Parameters
    ----------
    chain : CTMC or DTMC
    t : float
        Time (>= 0); number of steps for a DTMC.
    initial : array_like, optional
        Start distribution; default the chain's initial distribution.

    Returns
    -------
    numpy.ndarray of float64

    Examples
    --------
    >>> import numpy as np
    >>> from markov import CTMC
    >>> p = transient(CTMC([[-1, 1], [0, 0]]), 1.0)
    >>> bool(np.isclose(p[0], np.exp(-1)))
    True
    """
    chain = as_chain(chain)
    if isinstance(t, bool | np.bool_) or not isinstance(t, numbers.Real):
        raise ChainError(f"time t must be a number, got {t!r}")
    if not math.isfinite(float(t)) or t < 0:
        raise ChainError(f"time t must be finite and >= 0, got {t!r}")
    p0 = np.asarray(
        [float(x) for x in (chain.initial if initial is None else initial)], dtype=np.float64
    )
    if p0.shape != (chain.n,):
        raise ChainError(f"initial distribution must have {chain.n} entries, got {p0.shape}")
    if initial is not None:
        _check_distribution(p0)
    if isinstance(chain, DTMC):
        if float(t) != int(t):
            raise ChainError(f"a DTMC moves in whole steps; got t = {t!r}")
        pt = chain.matrix.T.tocsr()
        p = p0
        for _ in range(int(t)):
            p = pt @ p
        return np.asarray(p)
    if t == 0 or chain.n == 0:  # (scipy's expm_multiply fails on a 0 x 0 matrix)
        return p0.copy()
    q = chain.matrix
    out = spla.expm_multiply(q.T.tocsc() * float(t), p0)
    return np.clip(np.asarray(out, dtype=np.float64), 0.0, None)


def expected_reward(
    chain: CTMC | DTMC, reward: str | Any, t: float | None = None, initial: Any = None
) -> float:
    """Expected state reward ``sum_v p_v r(v)``, stationary (``t=None``) or at time ``t``.

    Parameters
    ----------
    chain : CTMC or DTMC
    reward : str or array_like
        The name of one of ``chain.rewards``, or one value per state.
    t : float, optional
        Time; ``None`` for the stationary distribution (see :func:`stationary`).
    initial : array_like, optional
        Start distribution for ``t``, and for the long run of a chain with
        several BSCCs (default: the chain's).

    Returns
    -------
    float

    Examples
    --------
    >>> from markov import CTMC
    >>> round(expected_reward(CTMC([[-1, 1], [2, -2]]), [0.0, 3.0]), 6)
    1.0
    """
    chain = as_chain(chain)
    if isinstance(reward, str):
        if reward not in chain.rewards:
            raise ChainError(
                f"no reward structure {reward!r}; the chain has {sorted(chain.rewards)}"
            )
        r = chain.rewards[reward]
    else:
        r = reward
    rv = np.asarray([float(x) for x in r], dtype=np.float64)
    if rv.shape != (chain.n,):
        raise ChainError(f"reward must have {chain.n} values, got {rv.shape}")
    p = stationary(chain, initial=initial) if t is None else transient(chain, t, initial)
    return float(p @ rv)

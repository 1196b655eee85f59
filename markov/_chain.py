"""The chain types: :class:`CTMC` (generator) and :class:`DTMC` (transition matrix).

A chain is immutable once built.  Its matrix is stored once, in canonical
form: coordinate arrays sorted by (row, column), duplicates summed, zeros
dropped, diagonal included.  Float chains hold ``float64`` values (and a
cached scipy CSR view); exact chains hold an ``object`` array of
:class:`fractions.Fraction` (scipy sparse cannot hold Fractions).

Validation happens once, here, at construction: every error names the state
(and column) and the offending value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from lumpcore import LumpkitError, ModelFormatError, to_rational

__all__ = ["CTMC", "DTMC", "ChainError"]


class ChainError(LumpkitError, ValueError):
    """A chain (generator, transition matrix, labels, initial distribution or
    rewards) is invalid; the message names the state and the value.

    ``state`` (and ``column``) are the entry the error is about, when it is
    about one (``None`` otherwise): file readers turn them into line numbers.
    """

    def __init__(self, message: str, *, state: int | None = None,
                 column: int | None = None) -> None:
        super().__init__(message)
        self.state = state
        self.column = column


#: Relative tolerance for row sums of float chains (exact chains: exactly).
_FLOAT_ROW_RTOL = 1e-9


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _is_exact_value(x: Any) -> bool:
    return not isinstance(x, float | int | np.floating | np.integer | bool | np.bool_)


def _coo_from_any(matrix: Any, what: str) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, bool]:
    """Any square matrix -> (n, rows, cols, values, exact); values float64 or object."""
    if isinstance(matrix, _Edges):
        val = matrix.val
        return (matrix.n, np.asarray(matrix.src, np.int64), np.asarray(matrix.dst, np.int64),
                val, val.dtype == object)
    if sp.issparse(matrix):
        m = sp.coo_array(matrix)
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ChainError(f"{what} must be a square matrix, got shape {m.shape}")
        data = np.asarray(m.data)
        if data.dtype == object:
            vals = np.empty(data.shape[0], dtype=object)
            for k, x in enumerate(data.tolist()):
                vals[k] = _exact_entry(x, int(m.row[k]), int(m.col[k]), what)
            rows_ = np.asarray(m.row, np.int64)
            return int(m.shape[0]), rows_, np.asarray(m.col, np.int64), vals, True
        if data.dtype.kind not in "fiu":
            raise ChainError(f"{what} must hold numbers, got dtype {data.dtype}")
        return (
            int(m.shape[0]),
            np.asarray(m.row, np.int64),
            np.asarray(m.col, np.int64),
            data.astype(np.float64),
            False,
        )
    exact = _any_exact(matrix)
    try:
        arr = np.asarray(matrix, dtype=object if exact else None)
    except ValueError as exc:  # ragged nested lists
        raise ChainError(f"{what} must be a square 2-D matrix: {exc}") from None
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ChainError(f"{what} must be a square 2-D matrix, got shape {arr.shape}")
    n = int(arr.shape[0])
    if exact:
        rl: list[int] = []
        cl: list[int] = []
        ql: list[Fraction] = []
        for i in range(n):
            for j in range(n):
                q = _exact_entry(arr[i, j], i, j, what)
                if q != 0:
                    rl.append(i)
                    cl.append(j)
                    ql.append(q)
        v = np.empty(len(ql), dtype=object)
        v[:] = ql
        return n, np.asarray(rl, np.int64), np.asarray(cl, np.int64), v, True
    if arr.dtype.kind not in "fiu":
        raise ChainError(f"{what} must hold numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    rows, cols = np.nonzero(arr)
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = (int(x[0]) for x in np.nonzero(bad))
        raise ChainError(f"{what}: state {i}, column {j}: value {float(arr[i, j])!r} is not finite")
    return n, rows.astype(np.int64), cols.astype(np.int64), arr[rows, cols], False


def _any_exact(values: Any) -> bool:
    if isinstance(values, np.ndarray):
        return values.dtype == object
    if isinstance(values, list | tuple):
        return any(_any_exact(v) for v in values)
    return _is_exact_value(values)


def _exact_entry(x: Any, i: int, j: int, what: str) -> Fraction:
    try:
        return to_rational(x)
    except ValueError as exc:
        raise ChainError(
            f"{what}: state {i}, column {j}: value {x!r} is not usable: {exc}"
        ) from None


#: the most states a chain may have: ``n * n`` fits an int64
_MAX_STATES = 3_037_000_499


def _canonical(
    n: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, exact: bool, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort by (row, col), sum duplicates, drop zeros; check finiteness and range."""
    if n > _MAX_STATES:
        raise ChainError(
            f"{what}: {n} states; lumpkit holds chains of at most {_MAX_STATES} states (a "
            "transition's key, source x states + target, is a 64-bit integer)")
    if rows.size:
        for name, arr in (("row", rows), ("column", cols)):
            bad = np.flatnonzero((arr < 0) | (arr >= n))
            if bad.size:
                k = int(bad[0])
                raise ChainError(
                    f"{what}: entry {k} has {name} index {int(arr[k])}, but the chain has "
                    f"{n} states (valid: 0..{n - 1})"
                )
    if not exact:
        bad = np.flatnonzero(~np.isfinite(vals))
        if bad.size:
            k = int(bad[0])
            raise ChainError(
                f"{what}: state {int(rows[k])}, column {int(cols[k])}: value "
                f"{float(vals[k])!r} is not finite; NaN and infinite entries are not allowed",
                state=int(rows[k]), column=int(cols[k])
            )
    key = rows * max(n, 1) + cols
    if rows.size > 1 and not bool(np.all(key[1:] > key[:-1])):  # not yet canonical
        order = np.argsort(key, kind="stable")
        rows, cols, vals, key = rows[order], cols[order], vals[order], key[order]
    if rows.size > 1:
        dup = np.flatnonzero(key[1:] == key[:-1])
        if dup.size:
            starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
            if exact:
                sums = np.empty(starts.size, dtype=object)
                ends = np.append(starts[1:], key.size)
                for b, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
                    sums[b] = sum(vals[s:e].tolist(), Fraction(0))
                vals = sums
            else:
                vals = np.add.reduceat(vals, starts)
            rows, cols = rows[starts], cols[starts]
    keep = vals != 0
    if exact:
        keep = np.asarray([v != 0 for v in vals.tolist()], dtype=bool)
    return (
        np.ascontiguousarray(rows[keep]),
        np.ascontiguousarray(cols[keep]),
        np.ascontiguousarray(vals[keep]),
    )


#: common denominators up to this many bits make exact row sums integer sums
_COMMON_DENOMINATOR_BITS = 256


def _row_sums(n: int, rows: np.ndarray, vals: np.ndarray, exact: bool) -> np.ndarray:
    if not exact:
        return np.bincount(rows, weights=vals, minlength=n)
    out = np.empty(n, dtype=object)
    vl = vals.tolist()
    rational = set(map(type, vl)) <= {Fraction, int}
    dens = {v.denominator for v in vl} if rational else set()
    den = math.lcm(*dens) if dens else 1
    if not rational or den.bit_length() > _COMMON_DENOMINATOR_BITS:
        # other numbers, or many unrelated denominators: plain sums
        out[:] = [Fraction(0)] * n
        for r, v in zip(rows.tolist(), vl, strict=True):
            out[r] += v
        return out
    # sums of integers over one common denominator (a model has few distinct rates):
    # exact, and much faster than adding Fractions
    mult = {d: den // d for d in dens}
    ints = [v.numerator * mult[v.denominator] for v in vl]
    widest = max(map(abs, ints), default=0)
    longest = int(np.bincount(rows, minlength=1).max()) if rows.size else 0
    if widest * max(longest, 1) < 2**62:
        acc = np.zeros(n, dtype=np.int64)
        np.add.at(acc, rows, np.asarray(ints, dtype=np.int64))
        sums: list[int] = acc.tolist()
    else:
        sums = [0] * n
        for r, x in zip(rows.tolist(), ints, strict=True):
            sums[r] += x
    out[:] = [Fraction(s, den) for s in sums]
    return out


class _Chain:
    """Common part of :class:`CTMC` and :class:`DTMC` (not public)."""

    kind: ClassVar[str] = ""
    _matrix_name: ClassVar[str] = ""

    __slots__ = (
        "_csr",
        "_dst",
        "_src",
        "_val",
        "exact",
        "initial",
        "labels",
        "loops",
        "n",
        "rewards",
        "valuations",
        "variables",
    )

    n: int
    exact: bool
    _src: np.ndarray
    _dst: np.ndarray
    _val: np.ndarray
    _csr: sp.csr_array | None
    labels: Mapping[str, np.ndarray]
    loops: np.ndarray | None
    initial: np.ndarray
    rewards: Mapping[str, np.ndarray]
    variables: tuple[str, ...]
    valuations: tuple[tuple[Any, ...], ...] | None

    def __init__(
        self,
        matrix: Any,
        *,
        labels: Mapping[str, Iterable[int]] | None = None,
        initial: Any = None,
        rewards: Mapping[str, Any] | None = None,
        exact: bool | None = None,
        variables: Sequence[str] = (),
        valuations: Sequence[Sequence[Any]] | None = None,
    ) -> None:
        n, rows, cols, vals, is_exact = _coo_from_any(matrix, self._matrix_name)
        self._setup(n, rows, cols, vals, is_exact, labels, initial, rewards, exact,
                    variables, valuations, diagonal_given=True)

    # ------------------------------------------------------------ construction
    def _setup(
        self,
        n: int,
        rows: np.ndarray,
        cols: np.ndarray,
        vals: np.ndarray,
        is_exact: bool,
        labels: Mapping[str, Iterable[int]] | None,
        initial: Any,
        rewards: Mapping[str, Any] | None,
        exact: bool | None,
        variables: Sequence[str],
        valuations: Sequence[Sequence[Any]] | None,
        diagonal_given: bool,
        loops: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        want_exact = is_exact if exact is None else bool(exact)
        if want_exact and not is_exact:
            v = np.empty(vals.shape[0], dtype=object)
            for k, x in enumerate(vals.tolist()):
                v[k] = _exact_entry(x, int(rows[k]), int(cols[k]), self._matrix_name)
            vals = v
        elif is_exact and not want_exact:
            vals = np.asarray([float(x) for x in vals.tolist()], dtype=np.float64)
        rows, cols, vals = _canonical(n, rows, cols, vals, want_exact, self._matrix_name)
        if not diagonal_given:
            rows, cols, vals = self._add_diagonal(n, rows, cols, vals, want_exact)
        self._validate_matrix(n, rows, cols, vals, want_exact)
        set_ = object.__setattr__
        set_(self, "n", n)
        set_(self, "exact", want_exact)
        set_(self, "_src", _readonly(rows))
        set_(self, "_dst", _readonly(cols))
        set_(self, "_val", _readonly(vals))
        set_(self, "_csr", None)
        set_(self, "labels", _check_labels(n, labels))
        set_(self, "initial", _check_initial(n, initial, self.labels, want_exact))
        set_(self, "rewards", _check_rewards(n, rewards, want_exact))
        vars_, vals_ = _check_valuations(n, variables, valuations)
        set_(self, "variables", vars_)
        set_(self, "valuations", vals_)
        set_(self, "loops", _check_loops(n, loops, want_exact))

    def _add_diagonal(
        self, n: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, exact: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _validate_matrix(
        self, n: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, exact: bool
    ) -> None:
        raise NotImplementedError

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; build a new chain instead")

    # ------------------------------------------------------------------ views
    def to_edges(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """The matrix as edges ``(n, src, dst, values)``, diagonal included.

        Returns
        -------
        n : int
            Number of states.
        src, dst : numpy.ndarray of int64
            Entry ``k`` is the matrix entry ``(src[k], dst[k])``; sorted by
            (row, column), no duplicates, no zeros.  Read-only.
        values : numpy.ndarray
            ``float64`` for float chains, ``object`` array of
            :class:`fractions.Fraction` for exact chains.  Read-only.

        Examples
        --------
        >>> n, src, dst, val = CTMC([[-1, 1], [2, -2]]).to_edges()
        >>> n, src.tolist(), dst.tolist(), val.tolist()
        (2, [0, 0, 1, 1], [0, 1, 0, 1], [-1.0, 1.0, 2.0, -2.0])
        """
        return self.n, self._src, self._dst, self._val

    @property
    def matrix(self) -> sp.csr_array:
        """The matrix as a float64 scipy CSR array (exact chains are converted)."""
        if self._csr is None:
            vals = self._val if not self.exact else np.asarray(
                [float(x) for x in self._val.tolist()], dtype=np.float64
            )
            m = sp.csr_array((vals, (self._src, self._dst)), shape=(self.n, self.n))
            m.sort_indices()
            object.__setattr__(self, "_csr", m)
        assert self._csr is not None
        return self._csr

    def exact_matrix(self) -> list[dict[int, Fraction]]:
        """Row ``i`` as a dict ``{column: Fraction}`` (floats at their exact binary value)."""
        out: list[dict[int, Fraction]] = [{} for _ in range(self.n)]
        for r, c, v in zip(self._src.tolist(), self._dst.tolist(), self._val.tolist(), strict=True):
            out[r][c] = to_rational(v)
        return out

    @property
    def num_transitions(self) -> int:
        """Number of non-zero off-diagonal entries (the transitions between states)."""
        return int(np.count_nonzero(self._src != self._dst))

    def off_diagonal(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(src, dst, values)`` of the non-zero off-diagonal entries."""
        keep = self._src != self._dst
        return self._src[keep], self._dst[keep], self._val[keep]

    def state_labels(self) -> list[frozenset[str]]:
        """The set of labels of every state."""
        out: list[set[str]] = [set() for _ in range(self.n)]
        for name, states in self.labels.items():
            for s in states.tolist():
                out[s].add(name)
        return [frozenset(s) for s in out]

    @property
    def initial_states(self) -> np.ndarray:
        """States with positive initial probability."""
        if self.exact:
            return np.asarray([i for i, p in enumerate(self.initial.tolist()) if p > 0], np.int64)
        return np.flatnonzero(self.initial > 0).astype(np.int64)

    def to_float(self) -> Self:
        """The same chain with float64 values (a no-op for float chains)."""
        if not self.exact:
            return self
        return self._replace(exact=False)

    def to_exact(self) -> Self:
        """The same chain with exact rationals (floats taken at their exact binary value).

        For a CTMC the diagonal is recomputed exactly from the off-diagonal
        rates, so the result is an exact generator.

        Raises
        ------
        ChainError
            When a DTMC row, or the initial distribution, does not sum to
            exactly 1 at the binary values of its floats (``0.1, 0.2, 0.7``
            sums to ``1 - 2**-55``): nothing is adjusted silently.  Read or
            build the chain with ``exact=True`` from its decimal values
            instead.
        """
        if self.exact:
            return self
        try:
            return self._replace(exact=True)
        except ChainError as exc:
            raise ChainError(
                f"to_exact: {exc} (at the exact binary values of the floats; read or build "
                "the chain with exact=True from its decimal values instead)"
            ) from None

    def _replace(self, **kw: Any) -> Self:
        raise NotImplementedError

    def _common_kw(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "initial": self.initial,
            "rewards": self.rewards,
            "variables": self.variables,
            "valuations": self.valuations,
        }

    def __repr__(self) -> str:
        arith = "exact" if self.exact else "float"
        return (
            f"{type(self).__name__}({self.n} states, {self.num_transitions} transitions, "
            f"{arith}, labels={sorted(self.labels)})"
        )


class CTMC(_Chain):
    """A continuous-time Markov chain given by its generator ``Q``.

    Parameters
    ----------
    matrix : scipy sparse matrix, numpy array, or nested lists
        The generator: ``Q[i, j]`` (``i != j``) is the rate from state ``i`` to ``j``
        (non-negative); every row sums to 0 (exactly for exact chains, up to a
        relative ``1e-9`` for float chains).  Nested lists or object arrays
        holding ``Fraction``/sympy numbers/``'p/q'`` strings give an exact
        chain.  Use :meth:`from_rates` to give only the off-diagonal rates.
    labels : mapping str -> iterable of int, optional
        Atomic propositions: the states carrying each label.
    initial : array_like, optional
        Initial distribution (length n, non-negative, sums to 1).  Default:
        uniform over the states labelled ``"init"`` if that label exists,
        else all mass on state 0.
    rewards : mapping str -> array_like, optional
        State reward structures, one value per state.
    exact : bool, optional
        Force exact rationals (True) or float64 (False); default: exact iff
        the input holds exact numbers.
    variables, valuations : optional
        State variable names and one tuple of values per state (PRISM
        ``.sta`` files).

    Attributes
    ----------
    n : int
        Number of states.
    exact : bool
        Whether values are exact :class:`fractions.Fraction`.
    labels : dict str -> numpy.ndarray of int64
        Sorted states of every label (read-only arrays).
    initial : numpy.ndarray
        The initial distribution (float64 or object of Fraction).
    rewards : dict str -> numpy.ndarray
        State rewards.
    loops : numpy.ndarray or None
        Self-loop rates given to :meth:`from_rates` (no effect on ``Q``;
        see there), or ``None``.
    variables : tuple of str
    valuations : tuple of tuple, or None

    Raises
    ------
    ChainError
        (a ``ValueError``) naming the state and value: negative off-diagonal
        rate, row not summing to 0, NaN/inf, bad label state, bad initial
        distribution or reward.

    Examples
    --------
    >>> from fractions import Fraction
    >>> c = CTMC([[-1, 1], [Fraction(1, 2), Fraction(-1, 2)]], labels={"up": [0]})
    >>> c
    CTMC(2 states, 2 transitions, exact, labels=['up'])
    >>> c.exit_rates().tolist()
    [Fraction(1, 1), Fraction(1, 2)]
    >>> CTMC([[-1, 2], [0, 0]])
    Traceback (most recent call last):
    ...
    markov._chain.ChainError: generator: row of state 0 sums to 1.0, not 0...
    """

    kind: ClassVar[str] = "ctmc"
    _matrix_name: ClassVar[str] = "generator"
    __slots__ = ()

    @classmethod
    def from_rates(
        cls,
        rates: Any,
        *,
        labels: Mapping[str, Iterable[int]] | None = None,
        initial: Any = None,
        rewards: Mapping[str, Any] | None = None,
        exact: bool | None = None,
        variables: Sequence[str] = (),
        valuations: Sequence[Sequence[Any]] | None = None,
    ) -> Self:
        """Build a CTMC from its rate matrix ``R``.

        The generator is ``Q = R - diag(R 1)`` over the off-diagonal rates.
        Diagonal entries of ``R`` (self-loops) do not change the CTMC (its
        generator, transient and stationary behaviour); they are kept in
        :attr:`loops` because Storm counts them (in exit rates and in strong
        bisimulation), written back by the file writers, and used only by
        ``lump(..., kind="bisim")``.  Accepts the same matrix forms as the
        constructor, or a tuple ``(n, src, dst, values)`` of edge arrays.

        Examples
        --------
        >>> c = CTMC.from_rates([[5, 2], [3, 0]])
        >>> c.matrix.toarray().tolist(), c.loops.tolist()
        ([[-2.0, 2.0], [3.0, -3.0]], [5.0, 0.0])
        """
        if isinstance(rates, tuple) and len(rates) == 4:
            n = int(rates[0])
            rows = np.asarray(rates[1], dtype=np.int64).reshape(-1)
            cols = np.asarray(rates[2], dtype=np.int64).reshape(-1)
            v = rates[3]
            if n < 0 or not rows.shape[0] == cols.shape[0] == len(v):
                raise ChainError(
                    f"rates (n, src, dst, values): need n >= 0 and arrays of one length, got "
                    f"n = {n} and lengths {rows.shape[0]}, {cols.shape[0]}, {len(v)}")
            is_exact = (isinstance(v, np.ndarray) and v.dtype == object) or (
                not isinstance(v, np.ndarray) and _any_exact(list(v))
            )
            if is_exact:
                vals = np.empty(len(v), dtype=object)
                for k, x in enumerate(list(v)):
                    vals[k] = _exact_entry(x, int(rows[k]), int(cols[k]), "rates")
            else:
                vals = np.asarray(v, dtype=np.float64)
        else:
            n, rows, cols, vals, is_exact = _coo_from_any(rates, "rates")
        keep = rows != cols
        self = cls.__new__(cls)
        loops = (rows[~keep], vals[~keep]) if not keep.all() else None
        self._setup(n, rows[keep], cols[keep], vals[keep], is_exact, labels, initial, rewards,
                    exact, variables, valuations, diagonal_given=False, loops=loops)
        return self

    @classmethod
    def _trusted_float(
        cls,
        n: int,
        src: np.ndarray,
        dst: np.ndarray,
        val: np.ndarray,
        *,
        labels: dict[str, np.ndarray],
        initial: np.ndarray,
        rewards: dict[str, np.ndarray],
        loops: np.ndarray | None,
    ) -> Self:
        """Internal: a float CTMC from arrays that are already valid and canonical.

        For chains derived from a validated chain (lumping quotients): the
        generator sorted by (row, column) without duplicates or zeros, its
        diagonal minus the exit rate exactly as :meth:`from_rates` computes
        it; labels sorted int64 state arrays; ``loops`` all >= 0 with a
        non-zero entry, or ``None``.  Nothing is checked again.
        """
        self = cls.__new__(cls)
        set_ = object.__setattr__
        set_(self, "n", int(n))
        set_(self, "exact", False)
        set_(self, "_src", _readonly(src))
        set_(self, "_dst", _readonly(dst))
        set_(self, "_val", _readonly(val))
        set_(self, "_csr", None)
        set_(self, "labels", {k: _readonly(v) for k, v in labels.items()})
        set_(self, "initial", _readonly(initial))
        set_(self, "rewards", {k: _readonly(v) for k, v in rewards.items()})
        set_(self, "variables", ())
        set_(self, "valuations", None)
        set_(self, "loops", None if loops is None else _readonly(loops))
        return self

    def _add_diagonal(
        self, n: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, exact: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        off = rows != cols
        rows, cols, vals = rows[off], cols[off], vals[off]
        if exact:
            diag = _row_sums(n, rows, vals, True)
            dvals = np.empty(n, dtype=object)
            dvals[:] = [-x for x in diag.tolist()]
        else:
            dvals = -_fsum_rows(n, rows, vals)
        # rows, cols are canonical (sorted, unique): insert each diagonal entry in place
        keep = np.flatnonzero(np.asarray([x != 0 for x in dvals.tolist()], dtype=bool)
                              if exact else dvals != 0)
        pos = np.searchsorted(rows * max(n, 1) + cols, keep * (max(n, 1) + 1))
        return (np.insert(rows, pos, keep), np.insert(cols, pos, keep),
                np.insert(vals, pos, dvals[keep]))

    def _validate_matrix(
        self, n: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, exact: bool
    ) -> None:
        off = rows != cols
        if exact:
            for r, c, v in zip(rows[off].tolist(), cols[off].tolist(), vals[off].tolist(),
                               strict=True):
                if v < 0:
                    raise ChainError(
                        f"generator: state {r}, column {c}: off-diagonal rate {v} is negative; "
                        "rates must be >= 0", state=r, column=c
                    )
            sums = _row_sums(n, rows, vals, True)
            for i, s in enumerate(sums.tolist()):
                if s != 0:
                    raise ChainError(
                        f"generator: row of state {i} sums to {s}, not 0; set the diagonal to "
                        "minus the sum of the row's rates (or use CTMC.from_rates)", state=i
                    )
            return
        neg = np.flatnonzero(off & (vals < 0))
        if neg.size:
            k = int(neg[0])
            raise ChainError(
                f"generator: state {int(rows[k])}, column {int(cols[k])}: off-diagonal rate "
                f"{float(vals[k])!r} is negative; rates must be >= 0", state=int(rows[k]),
                column=int(cols[k])
            )
        sums = np.bincount(rows, weights=vals, minlength=n)
        scale = np.bincount(rows, weights=np.abs(vals), minlength=n)
        bad = np.flatnonzero(np.abs(sums) > _FLOAT_ROW_RTOL * np.maximum(scale, 1e-300))
        if bad.size:
            i = int(bad[0])
            raise ChainError(
                f"generator: row of state {i} sums to {float(sums[i])!r}, not 0 (relative "
                f"tolerance {_FLOAT_ROW_RTOL}); set the diagonal to minus the sum of the row's "
                "rates (or use CTMC.from_rates)", state=i
            )

    def exit_rates(self) -> np.ndarray:
        """Exit rate ``-Q[i, i]`` of every state (float64 or object of Fraction)."""
        diag = self._src == self._dst
        if self.exact:
            out = np.empty(self.n, dtype=object)
            out[:] = [Fraction(0)] * self.n
            for s, v in zip(self._src[diag].tolist(), self._val[diag].tolist(), strict=True):
                out[s] = -v
            return out
        out_f = np.zeros(self.n)
        out_f[self._src[diag]] = -self._val[diag]
        return out_f

    def _replace(self, **kw: Any) -> Self:
        args = self._common_kw()
        args.update(kw)
        return type(self).from_rates(self.rate_edges(), **args)

    def rate_edges(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """The rate matrix ``R`` as edges ``(n, src, dst, values)``: the off-diagonal
        rates plus the self-loops of :attr:`loops` (Storm's transition matrix)."""
        if not self.exact:
            from ._kernels import rate_edges_float

            loops = self.loops if self.loops is not None else np.zeros(0)
            size = self._src.shape[0] + int(np.count_nonzero(loops))
            rs = np.empty(size, dtype=np.int64)  # numpy: huge pages (see the kernel)
            rd = np.empty(size, dtype=np.int64)
            rv = np.empty(size, dtype=np.float64)
            p = rate_edges_float(self.n, self._src, self._dst, self._val, loops,
                                 self.loops is not None, rs, rd, rv)
            return self.n, _readonly(rs[:p]), _readonly(rd[:p]), _readonly(rv[:p])
        src, dst, val = self.off_diagonal()
        if self.loops is None:
            return self.n, src, dst, val
        idx = np.flatnonzero(np.asarray([x != 0 for x in self.loops.tolist()], dtype=bool))
        s2 = np.concatenate((src, idx))
        d2 = np.concatenate((dst, idx))
        v2 = np.concatenate((val, self.loops[idx]))
        order = np.lexsort((d2, s2))
        return self.n, s2[order], d2[order], v2[order]


class DTMC(_Chain):
    """A discrete-time Markov chain given by its transition matrix ``P``.

    Parameters are those of :class:`CTMC`, with ``matrix`` a stochastic
    matrix: entries in ``[0, 1]``, rows summing to 1 (exactly for exact
    chains, up to a relative ``1e-9`` for float chains).

    Examples
    --------
    >>> DTMC([["1/2", "1/2"], [0, 1]], labels={"goal": [1]})
    DTMC(2 states, 1 transitions, exact, labels=['goal'])
    >>> DTMC([[0.5, 0.6], [0, 1]])
    Traceback (most recent call last):
    ...
    markov._chain.ChainError: transition matrix: row of state 0 sums to 1.1, not 1...
    """

    kind: ClassVar[str] = "dtmc"
    _matrix_name: ClassVar[str] = "transition matrix"
    __slots__ = ()

    def _validate_matrix(
        self, n: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, exact: bool
    ) -> None:
        if exact:
            for r, c, v in zip(rows.tolist(), cols.tolist(), vals.tolist(), strict=True):
                if v < 0 or v > 1:
                    raise ChainError(
                        f"transition matrix: state {r}, column {c}: probability {v} is not in "
                        "[0, 1]", state=r, column=c
                    )
            sums = _row_sums(n, rows, vals, True)
            for i, s in enumerate(sums.tolist()):
                if s != 1:
                    raise ChainError(
                        f"transition matrix: row of state {i} sums to {s}, not 1; every state "
                        "needs a distribution over successors (add a self-loop to absorb)",
                        state=i
                    )
            return
        bad = np.flatnonzero((vals < 0) | (vals > 1 + _FLOAT_ROW_RTOL))
        if bad.size:
            k = int(bad[0])
            raise ChainError(
                f"transition matrix: state {int(rows[k])}, column {int(cols[k])}: probability "
                f"{float(vals[k])!r} is not in [0, 1]", state=int(rows[k]), column=int(cols[k])
            )
        sums = np.bincount(rows, weights=vals, minlength=n)
        bad = np.flatnonzero(np.abs(sums - 1.0) > _FLOAT_ROW_RTOL)
        if bad.size:
            i = int(bad[0])
            raise ChainError(
                f"transition matrix: row of state {i} sums to {float(sums[i])!r}, not 1; every "
                "state needs a distribution over successors (add a self-loop to absorb)", state=i
            )

    def _replace(self, **kw: Any) -> Self:
        args = self._common_kw()
        args.update(kw)
        n, src, dst, val = self.to_edges()
        return type(self)(_Edges(n, src, dst, val), **args)


class _Edges:
    """Internal: edge arrays passed as a 'matrix' to a constructor."""

    __slots__ = ("dst", "n", "src", "val")

    def __init__(self, n: int, src: np.ndarray, dst: np.ndarray, val: np.ndarray) -> None:
        self.n, self.src, self.dst, self.val = n, src, dst, val


def _fsum_rows(n: int, rows: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """Row sums, each summed in ascending order of the values.

    The result depends only on the multiset of values in each row, so it is
    independent of the order of states and entries (a relabelled chain gets
    bit-identical exit rates), which exact-arithmetic lumping of float chains
    relies on.
    """
    out = np.zeros(n)
    if rows.size == 0:
        return out
    order = np.lexsort((vals, rows))
    r, v = rows[order], vals[order]
    starts = np.flatnonzero(np.concatenate(([True], r[1:] != r[:-1])))
    out[r[starts]] = np.add.reduceat(v, starts)
    return out


# ---------------------------------------------------------------- annotations
def _check_labels(n: int, labels: Mapping[str, Iterable[int]] | None) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    if labels is None:
        return out
    if not isinstance(labels, Mapping):
        raise ChainError(
            f"labels must be a mapping label -> states, got {type(labels).__name__}"
        )
    for name, states in labels.items():
        if not isinstance(name, str) or not name:
            raise ChainError(f"label names must be non-empty strings, got {name!r}")
        arr = _label_states(name, states, n)
        bad = np.flatnonzero((arr < 0) | (arr >= n))
        if bad.size:
            raise ChainError(
                f"label {name!r}: state {int(arr[bad[0]])} does not exist (valid: 0..{n - 1})"
            )
        out[name] = _readonly(arr)
    return out


def _label_states(name: str, states: Any, n: int) -> np.ndarray:
    """The sorted distinct state indices of one label; refuses anything but integers
    (1.5 was read as state 1, the string '12' as states 1 and 2, a boolean mask as
    states 0 and 1)."""
    hint = "give the label's states as integer indices, e.g. [0, 3]"
    if isinstance(states, np.ndarray):
        if states.dtype.kind in "iu":
            return np.unique(states).astype(np.int64).reshape(-1)
        if states.dtype.kind == "b":
            raise ChainError(f"label {name!r}: got a boolean mask; {hint} "
                             "(np.flatnonzero(mask))")
        states = states.tolist()
    if isinstance(states, str | bytes) or not isinstance(states, Iterable):
        raise ChainError(f"label {name!r}: expected a collection of states, got {states!r}; "
                         f"{hint}")
    out: set[int] = set()
    for x in states:
        if isinstance(x, bool | np.bool_) or not isinstance(
                x, int | np.integer | float | np.floating | Fraction):
            raise ChainError(f"label {name!r}: {x!r} is not a state index; {hint}")
        integral = (isinstance(x, int | np.integer)
                    or (isinstance(x, Fraction) and x.denominator == 1)
                    or (isinstance(x, float | np.floating) and float(x).is_integer()))
        if not integral:
            raise ChainError(f"label {name!r}: {x!r} is not a state index; {hint}")
        if not 0 <= int(x) < n:
            raise ChainError(f"label {name!r}: state {int(x)} does not exist (valid: 0..{n - 1})")
        out.add(int(x))
    return np.asarray(sorted(out), dtype=np.int64)


def _check_initial(
    n: int, initial: Any, labels: Mapping[str, np.ndarray], exact: bool
) -> np.ndarray:
    if initial is None:
        states = labels.get("init")
        if states is None:
            states = np.asarray([0] if n else [], dtype=np.int64)
        if n and states.size == 0:
            raise ChainError("label 'init' holds no state; give an initial distribution")
        if exact:
            init = np.empty(n, dtype=object)
            init[:] = [Fraction(0)] * n
            for s in states.tolist():
                init[s] = Fraction(1, int(states.size))
        else:
            init = np.zeros(n)
            if states.size:  # (a chain without states has no initial mass to place)
                init[states] = 1.0 / states.size
        return _readonly(init)
    vals = list(initial.tolist() if isinstance(initial, np.ndarray) else initial)
    if len(vals) != n:
        raise ChainError(f"initial distribution has {len(vals)} entries, the chain {n} states")
    if exact:
        init = np.empty(n, dtype=object)
        for i, x in enumerate(vals):
            try:
                init[i] = to_rational(x)
            except ValueError as exc:
                raise ChainError(f"initial distribution: state {i}: {exc}") from None
            if init[i] < 0:
                raise ChainError(f"initial distribution: state {i} has negative mass {init[i]}")
        total = sum(init.tolist(), Fraction(0))
        if n and total != 1:
            raise ChainError(f"initial distribution sums to {total}, not 1")
        return _readonly(init)
    try:
        initf = np.asarray([float(x) for x in vals], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ChainError(f"initial distribution must hold numbers: {exc}") from None
    bad = np.flatnonzero(~np.isfinite(initf) | (initf < 0))
    if bad.size:
        i = int(bad[0])
        raise ChainError(f"initial distribution: state {i} has invalid mass {float(initf[i])!r}")
    if n and abs(float(initf.sum()) - 1.0) > _FLOAT_ROW_RTOL:
        raise ChainError(f"initial distribution sums to {float(initf.sum())!r}, not 1")
    return _readonly(initf)


def _check_rewards(
    n: int, rewards: Mapping[str, Any] | None, exact: bool
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    if not rewards:
        return out
    for name, values in rewards.items():
        vals = list(values.tolist() if isinstance(values, np.ndarray) else values)
        if len(vals) != n:
            raise ChainError(f"reward {name!r} has {len(vals)} values, the chain {n} states")
        if exact:
            arr = np.empty(n, dtype=object)
            for i, x in enumerate(vals):
                try:
                    arr[i] = to_rational(x)
                except ValueError as exc:
                    raise ChainError(f"reward {name!r}: state {i}: {exc}") from None
        else:
            try:
                arr = np.asarray([float(x) for x in vals], dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ChainError(f"reward {name!r} must hold numbers: {exc}") from None
            bad = np.flatnonzero(~np.isfinite(arr))
            if bad.size:
                i = int(bad[0])
                raise ChainError(f"reward {name!r}: state {i} has value {float(arr[i])!r}")
        out[str(name)] = _readonly(arr)
    return out


def _check_loops(
    n: int, loops: tuple[np.ndarray, np.ndarray] | None, exact: bool
) -> np.ndarray | None:
    if loops is None:
        return None
    idx, vals = loops
    out: np.ndarray
    if exact:
        out = np.empty(n, dtype=object)
        out[:] = [Fraction(0)] * n
        for i, x in zip(idx.tolist(), vals.tolist(), strict=True):
            out[i] += _exact_entry(x, i, i, "rates")
    else:
        fv = np.asarray([float(x) for x in vals.tolist()], dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(fv))
        if bad.size:
            i = int(idx[bad[0]])
            raise ChainError(f"rates: state {i}, column {i}: value {float(fv[bad[0]])!r} is "
                             "not finite")
        out = np.bincount(idx, weights=fv, minlength=n)
    for i, x in enumerate(out.tolist()):
        if x < 0:
            raise ChainError(f"rates: state {i}, column {i}: self-loop rate {x} is negative",
                             state=i, column=i)
    if all(x == 0 for x in out.tolist()):
        return None
    return _readonly(out)


def _check_valuations(
    n: int, variables: Sequence[str], valuations: Sequence[Sequence[Any]] | None
) -> tuple[tuple[str, ...], tuple[tuple[Any, ...], ...] | None]:
    names = tuple(str(v) for v in variables)
    if valuations is None:
        return names, None
    vals = tuple(tuple(v) for v in valuations)
    if len(vals) != n:
        raise ChainError(f"valuations has {len(vals)} rows, the chain {n} states")
    for i, row in enumerate(vals):
        if len(row) != len(names):
            raise ChainError(
                f"valuation of state {i} has {len(row)} values for {len(names)} variables"
            )
    return names, vals


def as_chain(obj: Any) -> CTMC | DTMC:
    """Return ``obj`` if it is a chain, else raise a clear TypeError."""
    if isinstance(obj, CTMC | DTMC):
        return obj
    raise ModelFormatError(
        f"expected a markov.CTMC or markov.DTMC, got {type(obj).__name__}; build one with "
        "CTMC(Q), CTMC.from_rates(R) or a reader such as read_model(path)"
    )


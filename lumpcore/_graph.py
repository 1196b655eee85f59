"""The weighted directed graph the engine refines, and its constructors.

This is the boundary of :mod:`lumpcore`: every accepted input form (edge
arrays, scipy sparse or dense matrices, networkx graphs) is validated and
normalised here, once, into one canonical form.  The refinement core trusts
what it receives.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import LumpkitError
from ._numbers import to_rational

__all__ = ["WeightedGraph"]


class _GraphInputError(LumpkitError, ValueError):
    pass


class _GraphTypeError(LumpkitError, TypeError):
    pass


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


class WeightedGraph:
    """A finite directed graph with weighted edges (self-loops and negative weights allowed).

    Parallel edges are allowed and act as one edge carrying the sum of their
    weights.  Build instances with :meth:`from_edges`, :meth:`from_matrix`
    (scipy sparse or dense), :meth:`from_biadjacency` (a bipartite, layer-shaped
    graph given as a dense matrix) or :meth:`from_networkx`.  Instances are
    immutable.

    Attributes
    ----------
    n : int
        Number of nodes; nodes are ``0 .. n-1``.
    src, dst : numpy.ndarray of int64
        Edge ``k`` goes from ``src[k]`` to ``dst[k]``.  Read-only.  For a
        graph built by :meth:`from_biadjacency` they are built from the
        matrix on first access.
    weight : numpy.ndarray
        Edge weights, read-only.  ``float64`` for float input, ``int64`` for
        integer input, or ``object`` holding :class:`fractions.Fraction` for
        exact rational input.
    nodes : tuple or None
        Original node names (from networkx), in index order; ``None`` when
        nodes were given as integers.

    Examples
    --------
    >>> g = WeightedGraph.from_edges(3, [0, 1, 2], [1, 2, 0], [1.0, 2.0, -0.5])
    >>> g.n, g.num_edges, g.weight_kind
    (3, 3, 'float')
    """

    __slots__ = ("_biadjacency", "_edges", "_signatures", "n", "nodes")

    n: int
    nodes: tuple[Hashable, ...] | None
    _edges: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    _biadjacency: np.ndarray | None
    _signatures: Any  # lumpcore._dense.Signatures of a biadjacency, computed by the caller

    def __init__(
        self,
        n: int,
        src: np.ndarray,
        dst: np.ndarray,
        weight: np.ndarray,
        nodes: tuple[Hashable, ...] | None = None,
    ) -> None:
        # trusted internal constructor: the classmethods validate and normalise
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "_edges", (src, dst, weight))
        object.__setattr__(self, "_biadjacency", None)
        object.__setattr__(self, "_signatures", None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"WeightedGraph is immutable; cannot set {name!r}")

    def __repr__(self) -> str:
        return f"WeightedGraph(n={self.n}, num_edges={self.num_edges}, weights={self.weight_kind})"

    # ------------------------------------------------------------------ views
    def _edge_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        edges = self._edges
        if edges is None:
            assert self._biadjacency is not None
            edges = _edges_of_biadjacency(self._biadjacency)
            object.__setattr__(self, "_edges", edges)
        return edges

    @property
    def src(self) -> np.ndarray:
        """Edge sources (int64, read-only)."""
        return self._edge_arrays()[0]

    @property
    def dst(self) -> np.ndarray:
        """Edge targets (int64, read-only)."""
        return self._edge_arrays()[1]

    @property
    def weight(self) -> np.ndarray:
        """Edge weights (read-only)."""
        return self._edge_arrays()[2]

    @property
    def num_edges(self) -> int:
        """Number of stored edges (parallel edges counted separately)."""
        if self._edges is None and self._biadjacency is not None:
            return int(np.count_nonzero(self._biadjacency))
        return int(self.src.shape[0])

    @property
    def weight_kind(self) -> str:
        """``'float'``, ``'int'`` or ``'rational'``, from the weight dtype."""
        dtype = self._biadjacency.dtype if self._edges is None and self._biadjacency is not None \
            else self.weight.dtype
        if dtype == np.float64:
            return "float"
        if dtype == np.int64:
            return "int"
        return "rational"

    def reversed(self) -> WeightedGraph:
        """The graph with every edge reversed (forward sums become backward sums)."""
        return WeightedGraph(self.n, self.dst, self.src, self.weight, self.nodes)

    def exact_weights(self) -> list[Fraction]:
        """The weights as exact rationals (floats at their exact binary value)."""
        return [to_rational(w) for w in self.weight.tolist()]

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_edges(
        cls,
        n: int,
        src: npt.ArrayLike,
        dst: npt.ArrayLike,
        weight: npt.ArrayLike | Sequence[Any],
    ) -> WeightedGraph:
        """Build a graph from parallel arrays of sources, targets and weights.

        Parameters
        ----------
        n : int
            Number of nodes.
        src, dst : array_like of int
            Endpoints, each in ``0 .. n-1``.
        weight : array_like
            Floats, ints, or exact numbers (``Fraction``, sympy ``Rational``,
            ``'p/q'`` strings), one per edge.  A float array stays float; any
            exact number makes the weights exact rationals.

        Raises
        ------
        ValueError
            If lengths differ, an endpoint is out of range, or a weight is
            NaN or infinite (the message names the edge).
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or int(n) < 0:
            raise _GraphInputError(f"n must be a non-negative integer, got {n!r}")
        n = int(n)
        s = _as_index_array(src, "src")
        d = _as_index_array(dst, "dst")
        w = _as_weight_array(weight)  # type: ignore[arg-type]
        if not (s.shape[0] == d.shape[0] == w.shape[0]):
            raise _GraphInputError(
                f"src, dst and weight must have the same length, got {s.shape[0]}, "
                f"{d.shape[0]} and {w.shape[0]}"
            )
        for name, arr in (("src", s), ("dst", d)):
            if arr.shape[0]:
                bad = np.flatnonzero((arr < 0) | (arr >= n))
                if bad.size:
                    k = int(bad[0])
                    raise _GraphInputError(
                        f"edge {k}: {name} = {int(arr[k])} is not a node of a graph with n = {n} "
                        f"nodes (valid: 0..{n - 1})"
                    )
        return cls(n, _readonly(s), _readonly(d), _readonly(w))

    @classmethod
    def from_matrix(cls, matrix: Any) -> WeightedGraph:
        """Build a graph from a square matrix: entry ``(i, j)`` is the weight of ``i -> j``.

        Accepts scipy sparse matrices/arrays, numpy arrays, and nested lists
        (which may hold ``Fraction`` or sympy numbers).  Explicit zeros of a
        sparse matrix are dropped.

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> g = WeightedGraph.from_matrix(sp.csr_array([[0, 2.0], [1.5, 0]]))
        >>> g.num_edges
        2
        """
        try:
            import scipy.sparse as sp
        except ImportError:  # pragma: no cover - scipy is a core dependency
            sp = None
        if sp is not None and sp.issparse(matrix):
            m = sp.coo_array(matrix)
            if m.shape[0] != m.shape[1]:
                raise _GraphInputError(f"matrix must be square, got shape {m.shape}")
            data = np.asarray(m.data)
            keep = data != 0
            return cls.from_edges(
                int(m.shape[0]), np.asarray(m.row)[keep], np.asarray(m.col)[keep], data[keep]
            )
        arr = _as_matrix(matrix, "matrix")
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
            raise _GraphInputError(f"matrix must be square 2-D, got shape {arr.shape}")
        if arr.dtype == object:
            rows, cols = np.nonzero(np.vectorize(lambda x: to_rational(x) != 0, otypes=[bool])(arr))
        else:
            rows, cols = np.nonzero(arr)
        return cls.from_edges(int(arr.shape[0]), rows, cols, arr[rows, cols])

    @classmethod
    def from_biadjacency(cls, matrix: npt.ArrayLike) -> WeightedGraph:
        """Build a bipartite graph from its biadjacency matrix (a layer of weights).

        For a matrix of shape ``(r, c)`` the graph has ``r + c`` nodes: the
        rows are nodes ``0 .. r-1`` and the columns nodes ``r .. r+c-1``;
        entry ``(i, j)`` is the weight of the edge ``i -> r + j`` (zero: no
        edge).  This is the layout of :func:`networkx.bipartite.from_biadjacency_matrix`.

        A float64 matrix is kept as it is (no copy, no edge list): when
        every row node starts in a block of its own, :func:`coarsest_lumping`
        then lumps the column nodes (backward) in one compiled pass over the
        matrix.  Pass ``W.T`` of a C-ordered ``(targets, sources)`` weight
        array to make that pass read contiguous memory.  Non-finite entries are
        reported when the graph is first used.

        Parameters
        ----------
        matrix : array_like, 2-D
            Floats, ints, or exact numbers (exact input is stored as edges).

        Raises
        ------
        ValueError
            If the matrix is not 2-D, or (exact or integer input) holds a
            NaN or infinite value.

        Examples
        --------
        >>> g = WeightedGraph.from_biadjacency([[1.0, 2.0, 0.0], [0.0, 4.0, 0.0]])
        >>> g.n, g.num_edges
        (5, 3)
        >>> g.src.tolist(), g.dst.tolist(), g.weight.tolist()
        ([0, 0, 1], [2, 3, 3], [1.0, 2.0, 4.0])
        """
        arr = _as_matrix(matrix, "biadjacency matrix")
        if arr.ndim != 2:
            raise _GraphInputError(
                f"a biadjacency matrix must be 2-D (rows = sources, columns = targets), "
                f"got shape {arr.shape}"
            )
        r, c = (int(x) for x in arr.shape)
        if arr.dtype in (np.float16, np.float32):
            arr = arr.astype(np.float64)  # exact: every such value is a float64
        if arr.dtype != np.float64 or arr.dtype.kind == "b":
            if arr.dtype.kind == "b":
                raise _GraphTypeError("weights must be numbers, not booleans")
            if arr.dtype == object:
                rows, cols = np.nonzero(
                    np.vectorize(lambda x: to_rational(x) != 0, otypes=[bool])(arr)
                ) if arr.size else (np.zeros(0, np.int64), np.zeros(0, np.int64))
            else:
                rows, cols = np.nonzero(arr)
            return cls.from_edges(r + c, rows, r + cols, arr[rows, cols])
        g = cls.__new__(cls)
        object.__setattr__(g, "n", r + c)
        object.__setattr__(g, "nodes", None)
        object.__setattr__(g, "_edges", None)
        object.__setattr__(g, "_biadjacency", arr)
        object.__setattr__(g, "_signatures", None)
        return g

    @classmethod
    def from_networkx(
        cls, graph: Any, weight: str = "weight", nodelist: Sequence[Hashable] | None = None
    ) -> WeightedGraph:
        """Build a graph from a networkx ``DiGraph`` (or ``MultiDiGraph``).

        Parameters
        ----------
        graph : networkx.DiGraph
        weight : str
            Edge attribute holding the weight; every edge must have it.
        nodelist : sequence, optional
            Node order (defaults to ``graph.nodes`` order).  Stored in
            :attr:`nodes`.

        Examples
        --------
        >>> import networkx as nx
        >>> G = nx.DiGraph()
        >>> G.add_edge("a", "b", weight=1.0)
        >>> WeightedGraph.from_networkx(G).nodes
        ('a', 'b')
        """
        if not hasattr(graph, "is_directed") or not graph.is_directed():
            raise _GraphTypeError(
                f"expected a networkx DiGraph, got {type(graph).__name__}; "
                "convert undirected graphs with G.to_directed()"
            )
        order = list(graph.nodes) if nodelist is None else list(nodelist)
        try:
            index = {v: i for i, v in enumerate(order)}
        except TypeError:
            raise _GraphTypeError(
                "nodelist must hold the graph's (hashable) nodes, got an unhashable entry"
            ) from None
        if len(index) != len(order) or set(index) != set(graph.nodes):
            raise _GraphInputError("nodelist must list every node of the graph exactly once")
        src, dst, w = [], [], []
        for u, v, data in graph.edges(data=True):
            if weight not in data:
                raise _GraphInputError(
                    f"edge ({u!r}, {v!r}) has no attribute {weight!r}; set it or pass weight=..."
                )
            src.append(index[u])
            dst.append(index[v])
            w.append(data[weight])
        g = cls.from_edges(len(order), src, dst, w)
        return cls(g.n, g.src, g.dst, g.weight, tuple(order))


def _edges_of_biadjacency(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    check_biadjacency_finite(arr)
    rows, cols = np.nonzero(arr)
    w = _as_weight_array(arr[rows, cols])
    r = arr.shape[0]
    src = np.ascontiguousarray(rows, dtype=np.int64)
    dst = np.ascontiguousarray(cols, dtype=np.int64) + r
    return _readonly(src), _readonly(dst), _readonly(w)


def _as_matrix(matrix: Any, what: str) -> np.ndarray:
    """``matrix`` as a numpy array (object dtype when it holds exact numbers)."""
    try:
        return np.asarray(matrix, dtype=object if _has_exact(matrix) else None)
    except (ValueError, TypeError) as exc:
        raise _GraphInputError(
            f"{what} must be a rectangular array of numbers (rows of equal length): {exc}"
        ) from None


def _has_exact(values: Any) -> bool:
    if isinstance(values, np.ndarray):
        return values.dtype == object
    if isinstance(values, list | tuple):
        return any(_has_exact(v) for v in values)
    return not isinstance(values, int | float | np.integer | np.floating | bool)


def _as_index_array(a: npt.ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise _GraphInputError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:
        k = int(np.argmax(arr > np.iinfo(np.int64).max))
        raise _GraphInputError(f"edge {k}: {name} = {int(arr[k])} is not a node index")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            flat = arr.tolist()
            bad = next((i for i, x in enumerate(flat) if not _index_value(x)), None)
            if bad is not None:
                raise _GraphTypeError(f"{name} must hold integer node indices; edge {bad} "
                                      f"has {flat[bad]!r}")
            arr = np.array([int(x) for x in flat], dtype=np.int64)  # (whole numbers)
    return np.ascontiguousarray(arr, dtype=np.int64).copy()


def _index_value(x: Any) -> bool:
    """Whether ``x`` is a whole number that an int64 node index can hold."""
    if isinstance(x, bool) or not isinstance(x, int | np.integer | float):
        return False
    if isinstance(x, float) and not x.is_integer():
        return False
    return -(2**63) <= int(x) < 2**63


def _as_weight_array(weight: Iterable[Any]) -> np.ndarray:
    if isinstance(weight, np.ndarray) and weight.dtype.kind == "f" and weight.dtype.itemsize > 8:
        # extended precision (numpy.longdouble): float64 only where it holds every value
        # exactly, else exact rationals (non-finite values are reported below either way)
        with np.errstate(over="ignore"):
            as64 = weight.astype(np.float64)
        if weight.ndim == 1 and np.all(np.isfinite(weight)) and np.any(
                as64.astype(weight.dtype) != weight):
            return _as_weight_array([to_rational(x) for x in weight])
        weight = as64
    if isinstance(weight, np.ndarray) and weight.dtype.kind in "fiub":
        arr = weight
    else:
        if isinstance(weight, str | bytes) or not isinstance(weight, Iterable):
            raise _GraphTypeError(
                f"weight must be a sequence of numbers (one per edge), got {type(weight).__name__}"
            )
        seq = list(weight) if not isinstance(weight, np.ndarray) else weight.tolist()
        plain = all(
            isinstance(x, float | int | np.floating | np.integer) and not isinstance(x, bool)
            for x in seq
        )
        # Python ints beyond 2**53 would lose digits in a float64 array, and
        # beyond int64 in an int64 array: keep those exact
        big = plain and any(isinstance(x, int) and abs(x) > 2**53 for x in seq)
        if big and all(isinstance(x, int | np.integer) for x in seq):
            big = any(abs(int(x)) > 2**62 for x in seq)
        if plain and not big:
            arr = np.asarray(seq)
        else:
            exact = np.empty(len(seq), dtype=object)
            for k, x in enumerate(seq):
                try:
                    exact[k] = to_rational(x)
                except ValueError as exc:
                    raise _GraphInputError(f"edge {k}: weight {x!r} is not usable: {exc}") from None
            return exact
    if arr.ndim != 1:
        raise _GraphInputError(f"weight must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "b":
        raise _GraphTypeError("weights must be numbers, not booleans")
    if arr.dtype.kind in "iu":
        if arr.size and (arr.max() > 2**62 or arr.min() < -(2**62)):
            return _as_weight_array([Fraction(int(x)) for x in arr.tolist()])
        return np.ascontiguousarray(arr, dtype=np.int64).copy()
    arr = np.ascontiguousarray(arr, dtype=np.float64).copy()
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        k = int(bad[0])
        raise _GraphInputError(
            f"edge {k}: weight {arr[k]!r} is not finite; NaN and infinite weights are not allowed"
        )
    if arr.size and not math.isfinite(float(np.abs(arr).max())):
        raise _GraphInputError("weights overflow float64")
    return arr


def check_biadjacency_finite(arr: np.ndarray) -> None:
    """Raise a ValueError naming the first NaN or infinite entry of a float matrix."""
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        i, j = (int(x) for x in bad[0])
        raise _GraphInputError(
            f"biadjacency matrix entry ({i}, {j}) = {float(arr[i, j])!r} is not finite; "
            "NaN and infinite weights are not allowed"
        )

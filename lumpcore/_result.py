"""The result type of the refinement engine."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Literal

import numpy as np

__all__ = ["Lumping"]

Direction = Literal["backward", "forward"]
Arithmetic = Literal["exact", "float"]


@dataclass(frozen=True, eq=False)
class Lumping:
    """The coarsest stable partition found by :func:`coarsest_lumping`.

    Attributes
    ----------
    block_of : numpy.ndarray of int64
        ``block_of[v]`` is the block index of node ``v``.  Blocks are
        numbered ``0 .. num_blocks-1`` in the order of their smallest node.
        Read-only.
    blocks : tuple of tuple of int
        The blocks, each sorted, in block-index order (computed from
        ``block_of`` on first access, then cached).
    rho : tuple of Fraction, numpy.ndarray of float64, or None
        Proportional mode only: the positive factor of every node, normalised
        so that the smallest node of each block has ``rho = 1``.  For nodes
        ``v, t`` of one block and every block ``B``,
        ``rho[v] * sum_B(v) == rho[t] * sum_B(t)``.  Exact rationals in exact
        arithmetic, floats in float arithmetic, ``None`` in plain mode.
    direction : {'backward', 'forward'}
        ``'backward'`` compares incoming sums ``sum_{u in B} w(u, v)``,
        ``'forward'`` outgoing sums ``sum_{u in B} w(v, u)``.
    proportional : bool
        Whether sums were compared up to a positive per-node factor.
    arithmetic : {'exact', 'float'}
        ``'exact'``: weights taken as exact rationals; the partition was
        verified stable in exact arithmetic.  ``'float'``: weights were first
        rounded to the grid ``resolution * Z`` and the partition is the exact
        coarsest one of that rounded graph.
    resolution : float or None
        Float arithmetic only: the grid step the weights were rounded to
        (the tolerance, or the finest safe fixed-point step, a power of two
        no smaller than ``2**-1074``, when the tolerance is 0).
    splits : int
        Number of new blocks created by splitting: ``num_blocks`` minus the
        number of initial blocks (repairs after a verification pass included).
    rounds : int
        Number of splitter blocks processed by the compiled core.
    verify_rounds : int
        Number of exact verification passes (1 unless a hash collision had
        to be repaired or a sign split was needed; also 1 when the
        refinement compared exact 128-bit sums and needed no separate pass).
    rho_ratio : tuple of two numpy.ndarray of float64, or None
        Exact proportional lumpings of a float biadjacency graph (see
        :meth:`WeightedGraph.from_biadjacency`) only: arrays ``(num, den)``
        with ``rho[v] == Fraction(num[v]) / Fraction(den[v])`` exactly, for
        callers that want the factors of many nodes without building
        ``Fraction`` objects.  ``None`` otherwise.  Read-only.
    """

    block_of: np.ndarray
    rho: tuple[Fraction, ...] | np.ndarray | None
    direction: Direction
    proportional: bool
    arithmetic: Arithmetic
    resolution: float | None
    splits: int
    rounds: int
    verify_rounds: int
    rho_ratio: tuple[np.ndarray, np.ndarray] | None = None

    @cached_property
    def blocks(self) -> tuple[tuple[int, ...], ...]:
        """The blocks, each sorted, in block-index order."""
        nb = self.num_blocks
        members = np.argsort(self.block_of, kind="stable").tolist()
        ends = np.cumsum(np.bincount(self.block_of, minlength=nb)).tolist() if nb else []
        starts = [0, *ends[:-1]]
        return tuple(tuple(members[a:b]) for a, b in zip(starts, ends))

    @property
    def num_blocks(self) -> int:
        """Number of blocks."""
        return int(self.block_of.max()) + 1 if self.block_of.size else 0

    @property
    def num_nodes(self) -> int:
        """Number of nodes."""
        return int(self.block_of.shape[0])

    @property
    def representatives(self) -> tuple[int, ...]:
        """The smallest node of each block (the node with ``rho = 1``)."""
        _, first = np.unique(self.block_of, return_index=True)
        return tuple(first.tolist())

    def __repr__(self) -> str:
        mode = ("proportional " if self.proportional else "") + self.direction
        return (
            f"Lumping({self.num_nodes} nodes -> {self.num_blocks} blocks, {mode}, "
            f"{self.arithmetic})"
        )

"""Small networks that show where a reduction is (not) sound.

Both helpers return hand-built exact networks (``nnreduce.Network`` with
``Fraction`` weights) together with the questionable reduction, so that the
SMT backend can refute it and the demo and notebooks can show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from lumpcore import to_rational

__all__ = ["ExampleReduction", "erratum_example", "linear_combination_example"]


@dataclass(frozen=True, eq=False)
class ExampleReduction:
    """An original network and a (possibly unsound) reduction of it.

    Attributes
    ----------
    original : nnreduce.Network
        The network, exact rational weights.
    reduced : nnreduce.Network
        The reduction under discussion.
    description : str
        What the reduction does and why it is (un)sound.
    exact_box : tuple of (Fraction, Fraction) or None
        An input box on which the reduction is exact (None: nowhere in general).
    witness : tuple of Fraction
        An input where the two networks differ (checked by the tests).
    """

    original: Any
    reduced: Any
    description: str
    exact_box: tuple[tuple[Fraction, Fraction], ...] | None
    witness: tuple[Fraction, ...]


def _net(layers: list[tuple[list[list[Any]], list[Any], str]], n_inputs: int) -> Any:
    import numpy as np

    from nnreduce import Activation, Dense, Network

    out: list[Any] = []
    for W, b, act in layers:
        w = np.array([[to_rational(x) for x in row] for row in W], dtype=object)
        bb = np.array([to_rational(x) for x in b], dtype=object)
        out.append(Dense(w, bb))
        if act != "identity":
            out.append(Activation(act))
    return Network(tuple(out), (n_inputs,))


def erratum_example() -> ExampleReduction:
    """The network of THEORY section 3 and the reduction the paper's printed Def. 6 allows.

    One input ``x``; ``u1 = ReLU(x)``, ``u2 = ReLU(2x)``; ``v = ReLU(u1)``,
    ``t = ReLU(u2)``; output ``o = v - t = -ReLU(x)``.  Comparing *unscaled*
    block sums (Def. 6 as printed) merges ``v`` and ``t`` with factor 1;
    Def. 7 then builds a network computing ``o = 0``.  The sound (scaled)
    condition merges them with ``rho(t) = 1/2`` and keeps ``o = -ReLU(x)``.

    Returns
    -------
    ExampleReduction
        ``original`` and ``reduced`` (the unsound reduction); the witness is
        ``x = 1`` (outputs ``-1`` and ``0``).

    Examples
    --------
    >>> from nnreduce import evaluate_exact
    >>> ex = erratum_example()
    >>> evaluate_exact(ex.original, [1]), evaluate_exact(ex.reduced, [1])
    (array([Fraction(-1, 1)], dtype=object), array([Fraction(0, 1)], dtype=object))
    """
    original = _net([
        ([[1], [2]], [0, 0], "relu"),
        ([[1, 0], [0, 1]], [0, 0], "relu"),
        ([[1, -1]], [0], "identity"),
    ], 1)
    # Def. 7 with the unscaled Def. 6 relation: layer 1 block {u1, u2} (rho 1, 1/2),
    # representative u1; layer 2 block {v, t} with rho 1, 1 (unscaled sums both 1).
    # W'([u],[v]) = 1 * (W(u1,v)/1 + W(u2,v)/(1/2)) = 1; W'([v],o) = 1/1 - 1/1 = 0.
    reduced = _net([
        ([[1]], [0], "relu"),
        ([[1]], [0], "relu"),
        ([[0]], [0], "identity"),
    ], 1)
    return ExampleReduction(
        original, reduced,
        "THEORY erratum: the unscaled condition of the paper's printed Definition 6 merges "
        "v = ReLU(u1) and t = ReLU(u2) with factor 1 although u2 = 2 u1; the reduced network "
        "computes 0 instead of -ReLU(x).",
        None, (Fraction(1),))


def linear_combination_example() -> ExampleReduction:
    """The paper's linear-combination relaxation, and a box on which it is exact.

    Two inputs; hidden ReLUs ``v1 = ReLU(y1)``, ``v2 = ReLU(y2)`` with
    ``y1 = x1 + x2`` and ``y2 = x1 - x2``, and ``t = ReLU(y1 + 2 y2)``
    (incoming weights ``a1 w(v1) + a2 w(v2)`` with ``a = (1, 2)``); output
    ``o = v1 - v2 + 3 t``.  The relaxation drops ``t`` and adds its outgoing
    weight to ``v1`` and ``v2`` scaled by ``a``: ``o' = 4 v1 + 5 v2``.
    This is exact where ``y1 * y2 >= 0`` because
    ``ReLU(r1 y1 + r2 y2) = r1 ReLU(y1) + r2 ReLU(y2)`` exactly then; the box
    ``x1 in [2, 3], x2 in [-1, 1]`` forces ``y1, y2 >= 1``.

    Returns
    -------
    ExampleReduction
        The witness ``x = (0, 1)`` gives ``y1 = 1``, ``y2 = -1``:
        ``o = 1 + 0 = 1`` but ``o' = 4``.

    Examples
    --------
    >>> from nnreduce import evaluate_exact
    >>> ex = linear_combination_example()
    >>> evaluate_exact(ex.original, [0, 1]), evaluate_exact(ex.reduced, [0, 1])
    (array([Fraction(1, 1)], dtype=object), array([Fraction(4, 1)], dtype=object))
    """
    original = _net([
        ([[1, 1], [1, -1], [3, -1]], [0, 0, 0], "relu"),
        ([[1, -1, 3]], [0], "identity"),
    ], 2)
    reduced = _net([
        ([[1, 1], [1, -1]], [0, 0], "relu"),
        ([[4, 5]], [0], "identity"),
    ], 2)
    box = ((Fraction(2), Fraction(3)), (Fraction(-1), Fraction(1)))
    return ExampleReduction(
        original, reduced,
        "linear-combination relaxation (Ressi et al., end of section 4): t with incoming "
        "weights 1*w(v1) + 2*w(v2) removed, its outgoing weight added to v1 and v2 scaled by "
        "1 and 2; exact only where the pre-activations y1, y2 of v1, v2 satisfy y1*y2 >= 0.",
        box, (Fraction(0), Fraction(1)))

"""Result types of the checkers in ``proofs``."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from lumpcore import rational_to_str

__all__ = ["CheckResult", "Verdict"]


def _strs(xs: tuple[Fraction, ...] | None) -> list[str] | None:
    return None if xs is None else [rational_to_str(x) for x in xs]


@dataclass(frozen=True)
class Verdict:
    """The answer of :func:`proofs.check_equivalence`.

    Attributes
    ----------
    equivalent : bool
        True when the solver proved that no input (in ``box``, if given)
        makes an output of the two networks differ; False when a
        counterexample was found and confirmed by exact evaluation.
    method : str
        How the answer was obtained (for example ``"z3-shared-cegar"``).
    seconds : float
        Wall-clock time of the check.
    statement : str
        What exactly was proved (or refuted), in words.
    input : tuple of Fraction or None
        The counterexample input (None when equivalent).
    outputs : tuple of two tuples of Fraction, or None
        ``(original(input), reduced(input))`` evaluated exactly.
    box : tuple of (Fraction, Fraction) or None
        The input box the statement is about (None: all of R^n).
    refinements : int
        Number of counterexample-guided refinement rounds.
    shared_neurons : int
        Original neurons identified with a (scaled) reduced neuron by an exact
        linear identity before the solver was called.
    second_opinion : str or None
        The answer of the second solver (``"unsat"``/``"sat"``) when one was
        asked for.
    """

    equivalent: bool
    method: str
    seconds: float
    statement: str
    input: tuple[Fraction, ...] | None = None
    outputs: tuple[tuple[Fraction, ...], tuple[Fraction, ...]] | None = None
    box: tuple[tuple[Fraction, Fraction], ...] | None = None
    refinements: int = 0
    shared_neurons: int = 0
    second_opinion: str | None = None

    @property
    def verdict(self) -> str:
        """``"equivalent"`` or ``"counterexample"``."""
        return "equivalent" if self.equivalent else "counterexample"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary (numbers as exact ``"p/q"`` strings)."""
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "method": self.method,
            "seconds": round(self.seconds, 6),
            "statement": self.statement,
            "refinements": self.refinements,
            "shared_neurons": self.shared_neurons,
        }
        if self.box is not None:
            out["box"] = [[rational_to_str(lo), rational_to_str(hi)] for lo, hi in self.box]
        if self.input is not None:
            out["input"] = _strs(self.input)
            out["input_float"] = [float(x) for x in self.input]
        if self.outputs is not None:
            out["outputs"] = {"original": _strs(self.outputs[0]),
                              "reduced": _strs(self.outputs[1])}
        if self.second_opinion is not None:
            out["second_opinion"] = self.second_opinion
        return out


@dataclass(frozen=True)
class CheckResult:
    """The answer of an independent certificate or lumping check.

    Attributes
    ----------
    valid : bool
        True when every condition holds (exactly).
    checked : str
        What was checked, in words.
    condition : str or None
        The first violated condition (None when valid), e.g.
        ``"reduced weight"`` or ``"proportional backward sums"``.
    location : dict
        Where it is violated (layer, neurons, blocks, states ...).
    values : dict
        The exact values that disagree, as ``"p/q"`` strings.
    seconds : float
        Wall-clock time of the check.
    exact : bool or None
        :func:`proofs.check_certificate` only: True when the reduced network
        computes exactly the original's function, as checked in exact
        arithmetic: the certificate is valid, every scaled lumping condition
        holds with deviation 0 (not merely within ``max_weight_deviation``),
        and every stored reduced weight and bias equals the exact value the
        conditions give (nothing rounded, whatever the certificate's mode).
        False otherwise (for a valid exact-mode certificate: exactly when it
        is ``rounded``). None for checks where the question does not arise
        (:func:`proofs.check_markov_lumping`).
    """

    valid: bool
    checked: str
    condition: str | None = None
    location: dict[str, Any] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    exact: bool | None = None

    @property
    def message(self) -> str:
        """One line saying what holds or what failed where."""
        if self.valid:
            return f"valid: {self.checked}"
        loc = ", ".join(f"{k} {v}" for k, v in self.location.items())
        vals = ", ".join(f"{k} = {v}" for k, v in self.values.items())
        where = f" at {loc}" if loc else ""  # (a condition of the whole network has no place)
        return f"violated: {self.condition}{where}: {vals}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "verdict": "valid" if self.valid else "violated",
            "checked": self.checked,
            "condition": self.condition,
            "location": self.location,
            "values": self.values,
            "seconds": round(self.seconds, 6),
            "message": self.message,
            "exact": self.exact,
        }

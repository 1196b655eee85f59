"""proofs: independent checks of every reduction, proofs, and counterexamples.

Public API
----------
check_equivalence
    Exact SMT (z3) proof that two ReLU networks compute the same function on
    all inputs or on a box, or a counterexample re-checked in exact arithmetic.
Verdict
    The frozen answer of :func:`check_equivalence`.
parse_box
    Normalise an input box (``"LO:HI,..."`` or pairs) to exact rationals.
check_certificate
    Independent, linear-time check of an ``nnreduce`` certificate.
check_markov_lumping
    Exact check of a Markov-chain partition for a lumpability notion.
CheckResult
    The frozen answer of the two checkers (first violated condition named).
leo_reduce
    LEO: remove stably inactive and fold stably active ReLUs on an input box.
LeoResult
    The frozen answer of :func:`leo_reduce`.
erratum_example, linear_combination_example, ExampleReduction
    Hand-built networks and unsound reductions (THEORY section 3).
"""

from ._examples import ExampleReduction, erratum_example, linear_combination_example
from ._leo import LeoResult, leo_reduce
from ._markov_check import check_markov_lumping
from ._nncert import check_certificate
from ._smt import check_equivalence, parse_box
from ._verdict import CheckResult, Verdict

__all__ = [
    "CheckResult",
    "ExampleReduction",
    "LeoResult",
    "Verdict",
    "check_certificate",
    "check_equivalence",
    "check_markov_lumping",
    "erratum_example",
    "leo_reduce",
    "linear_combination_example",
    "parse_box",
]

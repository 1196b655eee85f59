"""lumpcore: one partition-refinement engine over weighted directed graphs.

Public API
----------
WeightedGraph
    A weighted directed graph (self-loops, negative weights, parallel edges
    allowed), built from edge arrays, scipy/numpy matrices, networkx, or a
    dense biadjacency matrix (a layer of weights, lumped in one compiled pass).
coarsest_lumping
    The coarsest partition refining an initial one that is stable for
    backward (incoming) or forward (outgoing) block sums, plain or
    proportional, in exact rational or float arithmetic.
Lumping
    The frozen result of :func:`coarsest_lumping`.
block_sums
    Exact per-(block, node) sums for a given partition (used by checkers).
Rational, to_rational, to_rationals, rational_to_str
    The exact number type of lumpkit and conversions to it.
LumpkitError and its subclasses, LumpkitWarning
    The exception tree shared by all lumpkit packages, and the warning for
    input that lumpkit leaves out on purpose.
"""

from ._errors import (
    CertificateError,
    LumpkitError,
    LumpkitWarning,
    ModelFormatError,
    SolverUnknownError,
    UnsupportedLayerError,
    VerificationError,
)
from ._graph import WeightedGraph
from ._numbers import Rational, rational_to_str, to_rational, to_rationals
from ._refine import block_sums, coarsest_lumping
from ._result import Lumping

__all__ = [
    "CertificateError",
    "Lumping",
    "LumpkitError",
    "LumpkitWarning",
    "ModelFormatError",
    "Rational",
    "SolverUnknownError",
    "UnsupportedLayerError",
    "VerificationError",
    "WeightedGraph",
    "block_sums",
    "coarsest_lumping",
    "rational_to_str",
    "to_rational",
    "to_rationals",
]

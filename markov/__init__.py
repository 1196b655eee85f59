"""markov: Markov chains, their file formats, lumping and what lumping preserves.

Public API
----------
CTMC, DTMC
    Immutable chains (generator / transition matrix) over float64 or exact
    rationals, with labels, an initial distribution and state rewards.
ChainError
    Raised for an invalid chain (names the state and value).
paper_example_2
    The 8-state proportionally exact lumpable CTMC of Ressi et al. (2022).
"""

from ._chain import CTMC, DTMC, ChainError
from ._examples import paper_example_2

__all__ = ["CTMC", "DTMC", "ChainError", "paper_example_2"]

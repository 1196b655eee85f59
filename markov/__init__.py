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
lump, ChainLumping, KINDS
    Coarsest lumping of a chain (ordinary, exact, strict, proportional,
    proportional exact, Storm-compatible bisimulation) with its quotient.
read_prism_explicit, write_prism_explicit
    PRISM explicit files (.tra, .lab, .sta, .srew).
read_drn, write_drn
    Storm's DRN format.
read_prism, from_stormpy
    PRISM-language and JANI models through stormpy (optional extra).
to_networkx, from_networkx
    networkx DiGraph out and in.
read_model
    Read any supported model file by its extension.
RewardFoldingWarning
    The readers folded transition or action rewards into state reward rates
    (names the reward structures).
stationary, transient, expected_reward
    Numerical analyses (to check what a lumping preserves).
"""

from ._analysis import expected_reward, stationary, transient
from ._chain import CTMC, DTMC, ChainError
from ._drn import read_drn, write_drn
from ._examples import paper_example_2
from ._explicit import read_prism_explicit, write_prism_explicit
from ._fileio import RewardFoldingWarning
from ._lump import KINDS, ChainLumping, lump
from ._nx import from_networkx, to_networkx
from ._read import read_model
from ._storm import from_stormpy, read_prism

__all__ = [  # noqa: RUF022 - plain sorted(), as tests/test_public_api.py checks
    "CTMC",
    "ChainError",
    "ChainLumping",
    "DTMC",
    "KINDS",
    "RewardFoldingWarning",
    "expected_reward",
    "from_networkx",
    "from_stormpy",
    "lump",
    "paper_example_2",
    "read_drn",
    "read_model",
    "read_prism",
    "read_prism_explicit",
    "stationary",
    "to_networkx",
    "transient",
    "write_drn",
    "write_prism_explicit",
]

"""lumpkit: the command line of the lumpkit toolkit.

This package holds argument parsing and printing only; the algorithms live
in :mod:`lumpcore`, :mod:`markov`, :mod:`nnreduce` and :mod:`proofs`.
Run ``lumpkit --help``.
"""

from ._cli import main

__all__ = ["main"]

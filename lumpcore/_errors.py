"""The exception tree shared by every lumpkit package.

All errors raised on purpose by lumpkit derive from :class:`LumpkitError`.
Errors caused by bad input also derive from the matching built-in type, so
``except ValueError`` keeps working for callers that do not know lumpkit.
"""

from __future__ import annotations

__all__ = [
    "CertificateError",
    "LumpkitError",
    "LumpkitWarning",
    "ModelFormatError",
    "SolverUnknownError",
    "UnsupportedLayerError",
    "VerificationError",
]


class LumpkitError(Exception):
    """Base class of every error lumpkit raises on purpose."""


class ModelFormatError(LumpkitError, ValueError):
    """A model file or in-memory model is malformed.

    The message names the file (or object), the line or position where
    known, and what was expected.
    """


class UnsupportedLayerError(LumpkitError, TypeError):
    """A network uses a layer or operator that lumpkit cannot represent.

    The message names the operator and its position in the model.
    """


class CertificateError(LumpkitError, ValueError):
    """A certificate is malformed (not: a well-formed certificate that fails).

    A certificate that parses but whose conditions do not hold is reported
    as a failing verdict, not as this exception.
    """


class SolverUnknownError(LumpkitError):
    """A solver answered *unknown* or ran out of time.

    Never turned into a verdict: the caller must decide what to do.
    """


class VerificationError(LumpkitError, AssertionError):
    """An internal exact self-check failed (a bug in lumpkit: please report)."""


class LumpkitWarning(UserWarning):
    """Something of the input that lumpkit leaves out on purpose and says so (for example a
    reward structure with transition rewards, which a chain does not keep)."""

"""PyTorch modules for a :class:`~nnreduce.Normalization` (imported only with torch).

:func:`~nnreduce.to_torch` puts an :class:`InputNormalization` first and an
:class:`OutputNormalization` last when the network has a normalisation, so
that an exported ``.pt`` computes the same function; the readers recognise
them by name.  Their parameters are float64 buffers holding the exact values;
they are cast to the data's dtype in ``forward``.  TorchScript files carry
their code; a pickled ``nn.Sequential`` holding them needs lumpkit to load.
"""

# no "from __future__ import annotations": TorchScript reads these annotations
import torch
from torch import nn

__all__ = ["InputNormalization", "OutputNormalization"]


class InputNormalization(nn.Module):
    """``x -> (clamp(x, lo, hi) - mean) / range``, per input value (C order).

    ``lo``/``hi`` are ``-inf``/``inf`` where the input is not clipped.
    """

    mean: torch.Tensor
    range: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor

    def __init__(self, mean: torch.Tensor, rng: torch.Tensor, lo: torch.Tensor,
                 hi: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.double().reshape(-1))
        self.register_buffer("range", rng.double().reshape(-1))
        self.register_buffer("lo", lo.double().reshape(-1))
        self.register_buffer("hi", hi.double().reshape(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        flat = torch.minimum(torch.maximum(flat, self.lo.to(x.dtype)), self.hi.to(x.dtype))
        flat = (flat - self.mean.to(x.dtype)) / self.range.to(x.dtype)
        return flat.reshape(x.shape)


class OutputNormalization(nn.Module):
    """``y -> y * range + mean`` on a (batch, n) output."""

    mean: torch.Tensor
    range: torch.Tensor

    def __init__(self, mean: torch.Tensor, rng: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.double().reshape(-1))
        self.register_buffer("range", rng.double().reshape(-1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.range.to(y.dtype) + self.mean.to(y.dtype)

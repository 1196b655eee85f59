"""lumpkit's own PyTorch modules (imported only with torch).

:func:`~nnreduce.to_torch` puts an :class:`InputNormalization` first and an
:class:`OutputNormalization` last when the network has a normalisation, so
that an exported ``.pt`` computes the same function, and
:class:`CastFloat64`/:class:`CastFloat32` around float64 layers of a model
whose inputs and outputs are float32, and :class:`CastFloat32` (or
:class:`CastFloat64`) first and :class:`CastFloat16`/:class:`CastBFloat16`
last in a reduced half-precision model (so that it stays a drop-in
replacement).  The readers recognise them by name.  The normalisation
parameters are float64 buffers holding the exact values; they are cast to
the data's dtype in ``forward``.  TorchScript files carry their code; a
pickled ``nn.Sequential`` holding them needs lumpkit to load.
"""

# no "from __future__ import annotations": TorchScript reads these annotations
import torch
from torch import nn

__all__ = ["CastBFloat16", "CastFloat16", "CastFloat32", "CastFloat64", "InputNormalization",
           "OutputNormalization"]


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
    """``y -> y * range + mean`` on a (batch, ...) output, one value per output element
    (held flat, applied in the output's shape)."""

    mean: torch.Tensor
    range: torch.Tensor

    def __init__(self, mean: torch.Tensor, rng: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.double().reshape(-1))
        self.register_buffer("range", rng.double().reshape(-1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        shape = y.shape[1:]
        return y * self.range.to(y.dtype).reshape(shape) + self.mean.to(y.dtype).reshape(shape)


class CastFloat64(nn.Module):
    """``x -> x`` as float64 (exact): the model's float32 inputs enter float64 layers."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.double()


class CastFloat32(nn.Module):
    """``y -> y`` rounded to float32: a float64 model gives float32 outputs like the
    model it replaces (lumpkit's exact semantics ignore roundings, like float arithmetic's)."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y.float()


class CastFloat16(nn.Module):
    """``y -> y`` rounded to float16: the outputs of a reduced float16 model (its layers
    compute in float32 or float64) have the type of the model it replaces."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y.to(torch.float16)


class CastBFloat16(nn.Module):
    """``y -> y`` rounded to bfloat16 (:class:`CastFloat16` for a bfloat16 model)."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y.to(torch.bfloat16)

"""nnreduce: lossless, data-free reduction of neural networks, with certificates.

Public API
----------
Network, Dense, Conv2d, MaxPool2d, AvgPool2d, Flatten, Permute, BatchNorm, Activation, Normalization
    The network model (frozen; float32/float64 or exact rational weights).
as_exact, as_float
    Convert every parameter to exact rationals / float64.
evaluate, evaluate_exact
    Batched float64 evaluation and exact rational evaluation.
dense_layers
    View a network as a list of ``(W, b, activation)`` dense layers.
reduce_network, Reduction, LayerReduction
    Maximum proportional exact lumping of the hidden layers, with a certificate.
save_certificate
    Write a reduction's JSON certificate (docs/certificate-format.md).
load_network, save_network
    Read/write ``.onnx``, ``.nnet``, ``.pt`` (nn.Sequential / TorchScript) and ``.npz``.
from_torch, to_torch
    Convert between an in-memory PyTorch ``nn.Sequential`` and a Network.
network_sha256
    Canonical hash of a network (docs/certificate-format.md, section 5).
"""

from ._evaluate import dense_layers, evaluate, evaluate_exact
from ._hash import network_sha256
from ._io import load_network, save_network
from ._io_torch import from_torch, to_torch
from ._network import (
    Activation,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    Network,
    Normalization,
    Permute,
    as_exact,
    as_float,
)
from ._reduce import LayerReduction, Reduction, reduce_network, save_certificate

__all__ = [
    "Activation",
    "AvgPool2d",
    "BatchNorm",
    "Conv2d",
    "Dense",
    "Flatten",
    "LayerReduction",
    "MaxPool2d",
    "Network",
    "Normalization",
    "Permute",
    "Reduction",
    "as_exact",
    "as_float",
    "dense_layers",
    "evaluate",
    "evaluate_exact",
    "from_torch",
    "load_network",
    "network_sha256",
    "reduce_network",
    "save_certificate",
    "save_network",
    "to_torch",
]

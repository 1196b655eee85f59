"""Layers of a *traced* TorchScript module (``torch.jit.trace``), read from their graphs.

``torch.jit.script`` keeps a layer's settings (a convolution's ``padding``, a
softmax's ``dim``, ...) as attributes of the saved module; ``torch.jit.trace``
keeps only its parameters and buffers and writes the settings as constants
into the recorded ``forward`` graph.  :func:`traced_view` reads them back from
that graph, by the names of the recorded operator's arguments (which are the
module's attribute names), so that :func:`nnreduce.from_torch` reads both
kinds of TorchScript the same way.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from lumpcore import UnsupportedLayerError

__all__ = ["needs_traced_view", "traced_view"]

#: per module kind: an attribute that a scripted (or pickled) module has and a traced one
#: lacks, and the operators its traced forward may record (one of them, alone)
_TRACED: dict[str, tuple[str, tuple[str, ...]]] = {
    "Conv2d": ("padding", ("aten::_convolution", "aten::_convolution_mode")),
    "BatchNorm1d": ("eps", ("aten::batch_norm",)),
    "BatchNorm2d": ("eps", ("aten::batch_norm",)),
    "MaxPool2d": ("kernel_size", ("aten::max_pool2d",)),
    "AvgPool2d": ("kernel_size", ("aten::avg_pool2d",)),
    "AdaptiveAvgPool2d": ("output_size", ("aten::adaptive_avg_pool2d",)),
    "AdaptiveMaxPool2d": ("output_size", ("aten::adaptive_max_pool2d",)),
    "Flatten": ("start_dim", ("aten::flatten",)),
    "LeakyReLU": ("negative_slope", ("aten::leaky_relu",)),
    "Softmax": ("dim", ("aten::softmax",)),
    "LogSoftmax": ("dim", ("aten::log_softmax",)),
    "GELU": ("approximate", ("aten::gelu",)),
    "ELU": ("alpha", ("aten::elu",)),
    "CELU": ("alpha", ("aten::celu",)),
    "Softplus": ("beta", ("aten::softplus",)),
    "Hardtanh": ("min_val", ("aten::hardtanh",)),
    "ZeroPad2d": ("padding", ("aten::pad", "aten::constant_pad_nd")),
    "ConstantPad2d": ("padding", ("aten::pad", "aten::constant_pad_nd")),
}
#: operator argument names that differ from the module's attribute names
_ALIAS = {"pad": "padding"}


def needs_traced_view(m: Any, kind: str) -> bool:
    """Whether ``m`` is a traced TorchScript layer whose settings live in its graph only."""
    import torch

    return (isinstance(m, torch.jit.ScriptModule) and kind in _TRACED
            and not hasattr(m, _TRACED[kind][0]))


def _value(m: Any, v: Any, where: str) -> Any:
    """The constant (or the module's tensor) a traced graph passes as an argument."""
    node = v.node()
    k = node.kind()
    if k == "prim::Constant":
        return v.toIValue()
    if k == "prim::ListConstruct":
        return [_value(m, i, where) for i in node.inputs()]
    if k == "prim::GetAttr":
        return getattr(m, node.s("name"))
    raise UnsupportedLayerError(
        f"{where}: the traced graph computes an argument with {k}, not a constant; "
        "lumpkit reads traced layers with constant settings (script the model with "
        "torch.jit.script, save it with torch.save, or export it to ONNX)")


def traced_view(m: Any, kind: str, where: str) -> Any:
    """A stand-in for the traced layer ``m`` with the attributes :func:`from_torch` reads.

    Raises
    ------
    UnsupportedLayerError
        When the traced forward records anything but one of the operators the
        module kind computes (a convolution with ``padding_mode='reflect'``
        records a pad first), naming the module and the operators.
    """
    import torch

    ops = [n for n in m.graph.nodes() if n.kind().startswith("aten::")]
    allowed = _TRACED[kind][1]
    if len(ops) != 1 or ops[0].kind() not in allowed:
        got = ", ".join(n.kind() for n in ops) or "no operator"
        raise UnsupportedLayerError(
            f"{where}: its traced forward records {got}, not one {' or '.join(allowed)}; "
            "lumpkit cannot read this traced layer (script the model with torch.jit.script, "
            "save it with torch.save, or export it to ONNX)")
    node = ops[0]
    schema = torch._C.parse_schema(node.schema())
    attrs: dict[str, Any] = {}
    inputs = list(node.inputs())
    for arg, v in zip(schema.arguments[1:], inputs[1:], strict=False):
        attrs[_ALIAS.get(arg.name, arg.name)] = _value(m, v, where)
    attrs["original_name"] = kind
    if kind == "Conv2d":
        if attrs.get("transposed"):
            raise UnsupportedLayerError(f"{where}: a transposed convolution")
        attrs["padding_mode"] = "zeros"
        attrs["in_channels"] = int(attrs["weight"].shape[1]) * int(attrs["groups"])
    elif kind.startswith("BatchNorm"):
        attrs["batch_statistics"] = bool(attrs.pop("training"))
    elif kind == "ELU" and (float(attrs["scale"]) != 1.0 or float(attrs["input_scale"]) != 1.0):
        raise UnsupportedLayerError(f"{where}: an elu with scale {attrs['scale']} and input "
                                    f"scale {attrs['input_scale']} (nn.ELU has 1 and 1)")
    elif kind in ("ZeroPad2d", "ConstantPad2d"):
        if attrs.get("mode", "constant") != "constant":
            raise UnsupportedLayerError(f"{where}: padding mode {attrs['mode']!r}")
        attrs["value"] = 0.0 if attrs.get("value") is None else attrs["value"]
    elif kind == "AvgPool2d" and not attrs.get("stride"):
        attrs["stride"] = None  # F.avg_pool2d's default: the kernel size
    return SimpleNamespace(**attrs)

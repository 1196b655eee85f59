"""Grouped and dilated 2-D convolutions as lumpkit's plain :class:`Conv2d`, and back.

lumpkit's :class:`~nnreduce.Conv2d` has no ``groups`` or ``dilation``: the
importers expand such a convolution into the plain one computing exactly the
same function, and the exporters write the smallest equivalent convolution.

* Groups ``g``: a weight ``(O, C/g, kh, kw)`` is the weight ``(O, C, kh, kw)``
  that is zero outside each output channel's group (output channels
  ``[j O/g, (j+1) O/g)`` read input channels ``[j C/g, (j+1) C/g)`` only):
  block-diagonal in the two channel axes.
* Dilation ``(dh, dw)``: a kernel ``(kh, kw)`` whose taps are ``dh``/``dw``
  apart is the kernel ``((kh-1) dh + 1, (kw-1) dw + 1)`` with zeros between
  the taps.  Padding and stride stay as they are: the output size
  ``(H + pads - ((kh-1) dh + 1)) // s + 1`` is the plain formula with the
  expanded kernel, and output ``(i, j)`` reads the same padded pixels.

The zeros are exact in every float type, so the expansion is exact.  It can
be large (a depthwise convolution of ``C`` channels grows ``C``-fold):
:func:`expand_conv_weight` refuses an expansion that would be both more than
:data:`MAX_EXPANSION_RATIO` times the original and above
:data:`MAX_EXPANSION_BYTES`.
"""

from __future__ import annotations

import numpy as np

from lumpcore import ModelFormatError, UnsupportedLayerError

__all__ = ["MAX_EXPANSION_BYTES", "MAX_EXPANSION_RATIO", "compact_conv_weight",
           "expand_conv_weight"]

#: An expansion is refused when it is more than this many times the original weight ...
MAX_EXPANSION_RATIO = 64
#: ... and the expanded weight takes more bytes than this.
MAX_EXPANSION_BYTES = 256 * 2**20


def expand_conv_weight(weight: np.ndarray, groups: int, dilation: tuple[int, int],
                       in_channels: int, where: str) -> np.ndarray:
    """The plain convolution weight equal to a grouped and/or dilated one.

    Parameters
    ----------
    weight : numpy.ndarray, shape (O, C / groups, kh, kw)
        The weight as PyTorch and ONNX store it.
    groups : int
        Number of groups; must divide ``O`` and ``in_channels``.
    dilation : tuple of int (dh, dw)
        Spacing of the kernel taps, ``>= 1``.
    in_channels : int
        ``C``, the channels of the convolution's input.
    where : str
        The layer's name for error messages.

    Returns
    -------
    numpy.ndarray, shape (O, C, (kh-1) dh + 1, (kw-1) dw + 1)
        Same dtype; ``weight`` itself when ``groups == 1`` and no dilation.

    Raises
    ------
    ModelFormatError
        When the shapes and ``groups`` do not fit, or a dilation is below 1.
    UnsupportedLayerError
        When the expanded weight would be more than :data:`MAX_EXPANSION_RATIO`
        times the original and above :data:`MAX_EXPANSION_BYTES`.

    Examples
    --------
    >>> import numpy as np
    >>> w = expand_conv_weight(np.ones((2, 1, 1, 2)), 2, (1, 2), 2, "conv")
    >>> w.shape, w[1, :, 0, :].tolist()
    ((2, 2, 1, 3), [[0.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    """
    if weight.ndim != 4:
        raise ModelFormatError(f"{where}: expected a 4-D weight, got shape {weight.shape}")
    o, cg, kh, kw = (int(s) for s in weight.shape)
    dh, dw = (int(d) for d in dilation)
    if groups < 1 or o % groups or cg * groups != in_channels:
        raise ModelFormatError(
            f"{where}: {groups} groups do not fit a weight of shape {weight.shape} on "
            f"{in_channels} input channels (needs O and C divisible by the groups, "
            "weight (O, C / groups, kh, kw))")
    if dh < 1 or dw < 1:
        raise ModelFormatError(f"{where}: dilation must be >= 1, got {tuple(dilation)}")
    if groups == 1 and (dh, dw) == (1, 1):
        return weight
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    size = o * in_channels * eh * ew
    nbytes = size * weight.dtype.itemsize
    if size > MAX_EXPANSION_RATIO * max(weight.size, 1) and nbytes > MAX_EXPANSION_BYTES:
        raise UnsupportedLayerError(
            f"{where}: lumpkit holds a convolution with groups={groups}, "
            f"dilation={(dh, dw)} as the plain convolution it equals, here a weight of "
            f"shape {(o, in_channels, eh, ew)}: {_size(nbytes)}, "
            f"{size / max(weight.size, 1):.0f} times the original; expansions of more than "
            f"{MAX_EXPANSION_RATIO} times and {_size(MAX_EXPANSION_BYTES)} are refused to keep "
            "memory in bounds")
    out = np.zeros((o, in_channels, eh, ew), dtype=weight.dtype)
    og = o // groups
    for j in range(groups):  # group j: outputs [j og, (j+1) og) read inputs [j cg, (j+1) cg)
        out[j * og:(j + 1) * og, j * cg:(j + 1) * cg, ::dh, ::dw] = weight[j * og:(j + 1) * og]
    return out


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def _dilation(nonzero: np.ndarray) -> int:
    """The largest ``d`` with ``d | (k - 1)`` and taps only at multiples of ``d``
    (``nonzero[i]``: whether tap ``i`` of ``k`` has a non-zero weight)."""
    k = nonzero.shape[0]
    if k == 1:
        return 1
    taps = np.flatnonzero(nonzero)
    for d in range(k - 1, 1, -1):
        if (k - 1) % d == 0 and not np.any(taps % d):
            return d  # valid ones are closed under lcm, so the largest is the best
    return 1


def _groups(links: np.ndarray) -> int:
    """The largest ``g`` dividing both channel counts with ``links`` (``(O, C)``:
    whether output ``o`` reads input ``c``) block-diagonal in ``g`` equal blocks."""
    o, c = links.shape
    if links.all():  # every output reads every input: one group (the common, dense case)
        return 1
    for g in range(int(np.gcd(o, c)), 1, -1):
        if o % g or c % g:
            continue
        same = (np.arange(o)[:, None] // (o // g)) == (np.arange(c)[None, :] // (c // g))
        if not np.any(links & ~same):
            return g
    return 1


def compact_conv_weight(weight: np.ndarray) -> tuple[np.ndarray, int, tuple[int, int]]:
    """The smallest grouped, dilated convolution equal to a plain one.

    Finds the largest number of equal groups ``g`` (dividing both channel
    counts) for which ``weight`` is block-diagonal in the channel axes, and
    the largest dilation per spatial axis for which every non-zero tap lies
    on the dilated grid (the first and last taps are always on it).  The
    inverse of :func:`expand_conv_weight` on what that function makes; any
    other weight gives its own smallest form (a plain weight gives itself).

    Parameters
    ----------
    weight : numpy.ndarray, shape (O, C, kh, kw)

    Returns
    -------
    weight : numpy.ndarray, shape (O, C / g, (kh-1) / dh + 1, (kw-1) / dw + 1)
    groups : int
    dilation : tuple of int (dh, dw)

    Examples
    --------
    >>> import numpy as np
    >>> w = expand_conv_weight(np.arange(1.0, 9.0).reshape(4, 1, 2, 1), 4, (3, 1), 4, "c")
    >>> small, g, d = compact_conv_weight(w)
    >>> small.shape, g, d, bool(np.array_equal(small.reshape(-1), np.arange(1.0, 9.0)))
    ((4, 1, 2, 1), 4, (3, 1), True)
    """
    o, c, kh, kw = weight.shape
    nonzero = weight != 0
    links = np.asarray(np.any(nonzero, axis=(2, 3)), dtype=bool)
    dh = _dilation(np.asarray(np.any(nonzero, axis=(0, 1, 3)), dtype=bool))
    dw = _dilation(np.asarray(np.any(nonzero, axis=(0, 1, 2)), dtype=bool))
    g = _groups(links)
    if g == 1 and (dh, dw) == (1, 1):
        return weight, 1, (1, 1)
    og, cg = o // g, c // g
    blocks = weight.reshape(g, og, g, cg, kh, kw)
    idx = np.arange(g)
    small = blocks[idx, :, idx]  # (g, og, cg, kh, kw): each group's diagonal block
    small = small.reshape(o, cg, kh, kw)[:, :, ::dh, ::dw]
    return np.ascontiguousarray(small), g, (dh, dw)


def ceil_mode_changes_nothing(shape: tuple[int, ...], kernel: tuple[int, int],
                              stride: tuple[int, int], padding: tuple[int, int, int, int],
                              where: str) -> None:
    """Accept a pooling with ``ceil_mode`` on a ``(C, H, W)`` input where rounding the
    output size up gives the same size as rounding down (every window fits); else raise
    :class:`UnsupportedLayerError` naming ``where``."""
    if len(shape) != 3:
        raise UnsupportedLayerError(f"{where}: ceil_mode on a (batch, *{shape}) tensor")
    spans = (shape[1] + padding[0] + padding[2] - kernel[0],
             shape[2] + padding[1] + padding[3] - kernel[1])
    if any(span % st for span, st in zip(spans, stride, strict=True)):
        raise UnsupportedLayerError(
            f"{where}: ceil_mode adds a partial window on the {shape[1]}x{shape[2]} input "
            f"(kernel {kernel}, stride {stride}, padding {padding}); lumpkit reads ceil_mode "
            "only where the windows fit exactly (then it changes nothing): export without it")

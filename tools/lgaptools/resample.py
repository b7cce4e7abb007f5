"""Pillow's Image.resize as a differentiable linear map, for attacks that differentiate through a
preprocessing step lgap runs with PIL (BLIP's image processor, a classifier's resize).

Pillow (libImaging/Resample.c; ported bit for bit in Sources/ImageIO/PILResample.swift) resizes 8-bit
images in two separable passes, horizontal then vertical, each output pixel a normalised weighted sum
of the input pixels under the filter, whose support is widened by the shrink factor (antialiasing);
each pass rounds and clips to 8 bits. `pil_resize` applies the same weights to a float image and
clamps to [0, 1] after each pass, without the rounding: on an 8-bit image it differs from Pillow's
result by at most half an 8-bit step per pass (carried through the second pass's weights), see
`rounding_bound`.
"""
import math

import torch

SUPPORT = {"bilinear": 1.0, "bicubic": 2.0, "lanczos": 3.0}


def _weight(kind, x):
    ax = abs(x)
    if kind == "bilinear":
        return 1 - ax if ax < 1 else 0.0
    if kind == "bicubic":  # Pillow's a = −0.5
        a = -0.5
        if ax < 1:
            return ((a + 2) * ax - (a + 3)) * ax * ax + 1
        return (((ax - 5) * ax + 8) * ax - 4) * a if ax < 2 else 0.0

    def sinc(v):
        return 1.0 if v == 0 else math.sin(math.pi * v) / (math.pi * v)
    return sinc(x) * sinc(x / 3) if -3 <= x < 3 else 0.0


def pil_weights(in_size, out_size, kind):
    """[out_size, in_size] float64: row i holds the normalised weights Pillow gives output pixel i."""
    if kind not in SUPPORT:
        raise ValueError(f"unknown PIL filter {kind!r}; expected one of {sorted(SUPPORT)}")
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = SUPPORT[kind] * filter_scale
    m = torch.zeros(out_size, in_size, dtype=torch.float64)
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        w = [_weight(kind, (j - center + 0.5) / filter_scale) for j in range(lo, hi)]
        total = sum(w)
        for j, v in zip(range(lo, hi), w):
            m[i, j] = v / total if total != 0 else v
    return m


def pil_resize(x, size, kind):
    """x: [N, C, H, W] in [0, 1] → [N, C, h, w]: Pillow's resize to size = (h, w) without its 8-bit
    rounding (clamped after each pass as Pillow clips). Differentiable; the identity when sizes match."""
    h, w = size
    if x.shape[3] != w:
        x = torch.einsum("nchw,vw->nchv", x, pil_weights(x.shape[3], w, kind).to(x)).clamp(0, 1)
    if x.shape[2] != h:
        x = torch.einsum("nchw,uh->ncuw", x, pil_weights(x.shape[2], h, kind).to(x)).clamp(0, 1)
    return x


def rounding_bound(in_hw, size, kind):
    """The largest |pil_resize − Pillow| on [0, 1] images: half a step from each pass's rounding, the
    first pass's carried through the second pass's weights."""
    step = 0.5 / 255
    h, w = size
    first = step if in_hw[1] != w else 0.0
    if in_hw[0] == h:
        return first
    return first * float(pil_weights(in_hw[0], h, kind).abs().sum(1).max()) + step

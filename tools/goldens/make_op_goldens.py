#!/usr/bin/env python3
"""Writes Tests/Fixtures/ops.safetensors: inputs and PyTorch outputs for every tensor-engine op.

Each case is a group of tensors named "<case>.<role>" (inputs, then "<case>.out"); the case's
parameters are JSON in the file's __metadata__ under the case name. Inputs come from fixed seeds, so
rerunning the script reproduces the file exactly. The Swift tests in Tests/TensorTests read it and
compare every element with |a − b| ≤ atol + rtol·|b|.

Run: $LGAP_PYTHON tools/goldens/make_op_goldens.py   (the venv of tools/setup-venv.sh)
"""
import json

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from lgaptools import locations

OUT = locations.repo() / "Tests" / "Fixtures" / "ops.safetensors"
tensors, meta = {}, {}
gen = torch.Generator().manual_seed(20261125)


def rnd(*shape, scale=1.0):
    return torch.randn(*shape, generator=gen) * scale


def case(name, params=None, **arrays):
    for role, t in arrays.items():
        tensors[f"{name}.{role}"] = t.contiguous().clone()
    meta[name] = json.dumps(params or {})


# --- GEMMs
a, b = rnd(2, 3, 5, 7), rnd(7, 4)
case("matmul.4d", a=a, b=b, out=a @ b)
a, b = rnd(17, 33), rnd(33, 9)
case("matmul.2d", a=a, b=b, out=a @ b)
x, w, bias = rnd(2, 5, 12), rnd(7, 12), rnd(7)
case("linear.bias", x=x, w=w, b=bias, out=F.linear(x, w, bias))
x, w = rnd(1, 64), rnd(10, 64)
case("linear.nobias", x=x, w=w, out=F.linear(x, w))
a, b = rnd(3, 5, 7), rnd(3, 7, 4)
case("bmm.plain", {"transposeB": False}, a=a, b=b, out=torch.bmm(a, b))
a, b = rnd(2, 6, 8), rnd(2, 5, 8)
case("bmm.transB", {"transposeB": True}, a=a, b=b, out=torch.bmm(a, b.transpose(1, 2)))

# --- convolutions
for name, (n, cin, h, w_, cout, k, s, p, has_bias) in {
    "conv.k3s1p1": (2, 3, 9, 7, 5, 3, 1, 1, True),
    "conv.k1": (2, 8, 5, 6, 4, 1, 1, 0, True),
    "conv.k3s2p1": (1, 4, 11, 10, 6, 3, 2, 1, True),
    "conv.k4s4": (2, 3, 16, 16, 8, 4, 4, 0, True),
    "conv.k7s2p3.nobias": (1, 3, 15, 13, 5, 7, 2, 3, False),
    "conv.k5p2": (1, 2, 6, 9, 3, 5, 1, 2, True),
    "conv.k1s2": (2, 6, 7, 8, 4, 1, 2, 0, False),
    "conv.wide": (1, 64, 12, 12, 32, 3, 1, 1, True),
}.items():
    x, wt = rnd(n, cin, h, w_), rnd(cout, cin, k, k, scale=0.3)
    bb = rnd(cout) if has_bias else None
    arrays = dict(x=x, w=wt, out=F.conv2d(x, wt, bb, stride=s, padding=p))
    if has_bias:
        arrays["b"] = bb
    case(name, {"stride": s, "padding": p}, **arrays)

# conv → batch norm (eval) vs the folded conv
x, wt, bb = rnd(2, 4, 6, 6), rnd(5, 4, 3, 3, scale=0.3), rnd(5)
gamma, beta, mean, var = rnd(5), rnd(5), rnd(5, scale=0.5), torch.rand(5, generator=gen) + 0.5
y = F.batch_norm(F.conv2d(x, wt, bb, padding=1), mean, var, gamma, beta, training=False, eps=1e-5)
case("convbn", {"eps": 1e-5}, x=x, w=wt, b=bb, gamma=gamma, beta=beta, mean=mean, var=var, out=y)
x = rnd(2, 4, 5, 5)
case("batchnorm", {"eps": 1e-5}, x=x, gamma=gamma[:4], beta=beta[:4], mean=mean[:4], var=var[:4],
     out=F.batch_norm(x, mean[:4], var[:4], gamma[:4], beta[:4], training=False, eps=1e-5))

# --- norms
for name, shape, groups, eps in [("groupnorm.a", (2, 8, 5, 3), 4, 1e-5), ("groupnorm.b", (1, 32, 7, 7), 32, 1e-6),
                                 ("groupnorm.c", (3, 6, 10), 2, 1e-5), ("groupnorm.offset", (2, 64, 4, 4), 32, 1e-6)]:
    x = rnd(*shape) + (3.0 if name.endswith("offset") else 0.0)
    wt, bb = rnd(shape[1]), rnd(shape[1])
    case(name, {"groups": groups, "eps": eps}, x=x, w=wt, b=bb, out=F.group_norm(x, groups, wt, bb, eps))
for name, shape, eps in [("layernorm.a", (2, 5, 12), 1e-5), ("layernorm.b", (3, 7), 1e-12), ("layernorm.c", (4, 768), 1e-5)]:
    x, wt, bb = rnd(*shape) * 2 + 1, rnd(shape[-1]), rnd(shape[-1])
    case(name, {"eps": eps}, x=x, w=wt, b=bb, out=F.layer_norm(x, (shape[-1],), wt, bb, eps))

# --- activations and softmax
x = torch.cat([torch.linspace(-12, 12, 2401), rnd(600, scale=3.0), torch.tensor([-100.0, 100.0, 0.0, -0.0, 1e-6])])
case("act.relu", x=x, out=F.relu(x))
case("act.silu", x=x, out=F.silu(x))
case("act.gelu", x=x, out=F.gelu(x))
case("act.gelu_tanh", x=x, out=F.gelu(x, approximate="tanh"))
case("act.quick_gelu", x=x, out=x * torch.sigmoid(1.702 * x))
x = rnd(3, 7)
case("softmax.a", x=x, out=F.softmax(x, -1))
x = rnd(2, 4, 129, scale=20.0)
case("softmax.big", x=x, out=F.softmax(x, -1))


# --- attention (the reference written with plain torch ops, as the models' attention does)
def ref_attention(q, k, v, heads, causal=False, key_mask=None):
    b, lq, c = q.shape
    lk = k.shape[1]
    d, dv = c // heads, v.shape[2] // heads
    qh = q.view(b, lq, heads, d).transpose(1, 2)
    kh = k.view(b, lk, heads, d).transpose(1, 2)
    vh = v.view(b, lk, heads, dv).transpose(1, 2)
    s = qh @ kh.transpose(-1, -2) / d ** 0.5
    if causal:
        pos_q = torch.arange(lq).view(-1, 1) + (lk - lq)
        s = s.masked_fill(torch.arange(lk).view(1, -1) > pos_q, float("-inf"))
    if key_mask is not None:
        s = s.masked_fill(key_mask.view(b, 1, 1, lk) == 0, float("-inf"))
    return (s.softmax(-1) @ vh).transpose(1, 2).reshape(b, lq, heads * dv)


q, k, v = rnd(2, 9, 24), rnd(2, 9, 24), rnd(2, 9, 24)
case("attn.self", {"heads": 3}, q=q, k=k, v=v, out=ref_attention(q, k, v, 3))
case("attn.causal", {"heads": 3, "causal": True}, q=q, k=k, v=v, out=ref_attention(q, k, v, 3, causal=True))
q, k, v = rnd(2, 9, 32), rnd(2, 5, 32), rnd(2, 5, 16)
case("attn.cross", {"heads": 4}, q=q, k=k, v=v, out=ref_attention(q, k, v, 4))
q, k, v = rnd(3, 1, 16), rnd(3, 6, 16), rnd(3, 6, 16)
case("attn.cached", {"heads": 2, "causal": True}, q=q, k=k, v=v, out=ref_attention(q, k, v, 2, causal=True))
q, k, v = rnd(2, 4, 16), rnd(2, 7, 16), rnd(2, 7, 16)
mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]], dtype=torch.float32)
case("attn.mask", {"heads": 2}, q=q, k=k, v=v, mask=mask, out=ref_attention(q, k, v, 2, key_mask=mask))
q, k, v = rnd(1, 300, 64), rnd(1, 77, 64), rnd(1, 77, 64)
case("attn.long", {"heads": 8}, q=q, k=k, v=v, out=ref_attention(q, k, v, 8))

# --- spatial
x = rnd(2, 3, 4, 5)
case("upsample2x", x=x, out=F.interpolate(x, scale_factor=2.0, mode="nearest"))
x = rnd(2, 3, 8, 6)
case("avgpool.k2", {"kernel": 2, "stride": 2, "padding": 0}, x=x, out=F.avg_pool2d(x, 2))
x = rnd(1, 2, 7, 5)
case("avgpool.k3p1", {"kernel": 3, "stride": 1, "padding": 1}, x=x, out=F.avg_pool2d(x, 3, 1, 1))
x = rnd(2, 5, 7, 3)
case("gap", x=x, out=x.mean(dim=(2, 3)))
table = rnd(11, 6)
ids = torch.tensor([3, 0, 10, 3, 7], dtype=torch.int64)
case("embedding", table=table, ids=ids, out=F.embedding(ids, table))

# --- layout
a, b, c = rnd(2, 3, 4), rnd(2, 5, 4), rnd(2, 1, 4)
case("concat.axis1", {"axis": 1}, a=a, b=b, c=c, out=torch.cat([a, b, c], 1))
x = rnd(2, 3, 4, 5)
case("permute.0231", {"dims": [0, 2, 3, 1]}, x=x, out=x.permute(0, 2, 3, 1))
case("permute.3102", {"dims": [3, 1, 0, 2]}, x=x, out=x.permute(3, 1, 0, 2))
case("split.axis3", {"sizes": [2, 1, 2], "axis": 3}, x=x, out0=x[..., :2], out1=x[..., 2:3], out2=x[..., 3:])
case("subsample2", x=x, out=x[:, :, ::2, ::2])

# --- broadcasting
a, b = rnd(2, 3, 4, 5), rnd(3, 1, 1)
case("bcast.add.chan", {"op": "add"}, a=a, b=b, out=a + b)
a, b = rnd(2, 3, 4, 5), rnd(5)
case("bcast.mul.last", {"op": "mul"}, a=a, b=b, out=a * b)
a, b = rnd(4, 1, 5), rnd(3, 1)
case("bcast.add.both", {"op": "add"}, a=a, b=b, out=a + b)
a, b = rnd(2, 6, 3, 3), rnd(2, 6, 1, 1)
case("bcast.sub.nc11", {"op": "sub"}, a=a, b=b, out=a - b)
a, b = rnd(3, 4), rnd(3, 4)
case("bcast.mul.same", {"op": "mul"}, a=a, b=b, out=a * b)

# --- float resizing (torch F.interpolate, align_corners=False, antialias=False)
x = torch.rand(1, 3, 7, 5, generator=gen)
for mode in ("bilinear", "bicubic"):
    case(f"interp.{mode}.up", {"mode": mode, "size": [15, 11]}, x=x,
         out=F.interpolate(x, size=(15, 11), mode=mode, align_corners=False))
    case(f"interp.{mode}.down", {"mode": mode, "size": [4, 3]}, x=x,
         out=F.interpolate(x, size=(4, 3), mode=mode, align_corners=False))
x32 = torch.rand(1, 3, 32, 32, generator=gen)
case("interp.bicubic.x3", {"mode": "bicubic", "size": [96, 96]}, x=x32,
     out=F.interpolate(x32, size=(96, 96), mode="bicubic", align_corners=False))

# --- PIL resizing of 8-bit RGB (what BLIP's and torchvision's processors do)
rng = np.random.default_rng(7)
for name, (h, w_), (oh, ow), flt in [("pil.bicubic.up", (32, 32), (384, 384), Image.BICUBIC),
                                     ("pil.bicubic.down", (37, 23), (16, 11), Image.BICUBIC),
                                     ("pil.bilinear.mixed", (37, 23), (16, 50), Image.BILINEAR),
                                     ("pil.lanczos.down", (40, 40), (13, 17), Image.LANCZOS)]:
    img = rng.integers(0, 256, (h, w_, 3), dtype=np.uint8)
    out = np.asarray(Image.fromarray(img).resize((ow, oh), resample=flt))
    case(name, {"filter": {Image.BICUBIC: "bicubic", Image.BILINEAR: "bilinear", Image.LANCZOS: "lanczos"}[flt]},
         x=torch.from_numpy(img.copy()), out=torch.from_numpy(out.copy()))

# --- convolutions wide enough for the Winograd F(2x2,3x3) path: odd output sizes (partial tiles),
# padding 0 and 2, and more input channels than one GEMM K slice (256). Kept last so the cases above
# keep their random draws.
for name, (n, cin, h, w_, cout, p, has_bias) in {
    "conv.winograd.odd": (3, 40, 11, 7, 36, 1, True),
    "conv.winograd.p0": (2, 33, 10, 9, 40, 0, False),
    "conv.winograd.p2k300": (1, 300, 5, 6, 34, 2, True),
}.items():
    x, wt = rnd(n, cin, h, w_), rnd(cout, cin, 3, 3, scale=0.1)
    bb = rnd(cout) if has_bias else None
    arrays = dict(x=x, w=wt, out=F.conv2d(x, wt, bb, stride=1, padding=p))
    if has_bias:
        arrays["b"] = bb
    case(name, {"stride": 1, "padding": p}, **arrays)

OUT.parent.mkdir(parents=True, exist_ok=True)
save_file(tensors, str(OUT), metadata=meta)
print(f"wrote {len(tensors)} tensors in {len(meta)} cases to {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")

#!/usr/bin/env python3
"""PyTorch side of `lgap-bench ops`: times the same op cases with torch on the same machine.

Reads a JSON list of cases on stdin ({"name", "op", shapes and parameters}), prints one JSON object
{name: seconds per call (median)} on stdout. Threads: --threads (torch.set_num_threads); the caller
sets OPENBLAS_CORETYPE / OPENBLAS_NUM_THREADS in the environment and reports them.
Run by lgap-bench; by hand: echo '[...]' | $LGAP_PYTHON tools/bench/torch_ops.py --threads 2
"""
import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F


def timed(fn, repeat, warmup=2):
    """Median of at least `repeat` calls; short ops repeat until ~0.3 s (at most 300 calls), as lgap-bench does."""
    for _ in range(warmup - 1):
        fn()
    t = time.perf_counter()
    fn()
    first = max(1e-6, time.perf_counter() - t)
    times = []
    for _ in range(max(repeat, min(300, int(0.3 / first)))):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def attention(q, k, v, heads):
    b, lq, c = q.shape
    lk = k.shape[1]
    d = c // heads
    qh = q.view(b, lq, heads, d).transpose(1, 2)
    kh = k.view(b, lk, heads, d).transpose(1, 2)
    vh = v.view(b, lk, heads, d).transpose(1, 2)
    s = torch.baddbmm(torch.empty(b * heads, lq, lk), qh.reshape(b * heads, lq, d), kh.reshape(b * heads, lk, d).transpose(1, 2),
                      beta=0, alpha=d ** -0.5)
    return (s.softmax(-1) @ vh.reshape(b * heads, lk, d)).view(b, heads, lq, d).transpose(1, 2).reshape(b, lq, c)


def make(case):
    op = case["op"]
    r = torch.randn
    if op == "conv2d":
        x, w = r(*case["x"]), r(*case["w"]) * 0.05
        b = r(case["w"][0])
        s, p = case["stride"], case["padding"]
        return lambda: F.conv2d(x, w, b, stride=s, padding=p)
    if op == "linear":
        x, w, b = r(*case["x"]), r(*case["w"]), r(case["w"][0])
        return lambda: F.linear(x, w, b)
    if op == "matmul":
        a, b = r(*case["a"]), r(*case["b"])
        return lambda: a @ b
    if op == "attention":
        q, k, v = r(*case["q"]), r(*case["k"]), r(*case["v"])
        return lambda: attention(q, k, v, case["heads"])
    if op == "groupnorm":
        x = r(*case["x"])
        w, b = r(case["x"][1]), r(case["x"][1])
        return lambda: F.group_norm(x, case["groups"], w, b, 1e-5)
    if op == "layernorm":
        x = r(*case["x"])
        w, b = r(case["x"][-1]), r(case["x"][-1])
        return lambda: F.layer_norm(x, (case["x"][-1],), w, b, 1e-5)
    if op in ("gelu", "silu"):
        x = r(*case["x"])
        f = F.gelu if op == "gelu" else F.silu
        return lambda: f(x)
    if op == "softmax":
        x = r(*case["x"])
        return lambda: x.softmax(-1)
    if op == "upsample2x":
        x = r(*case["x"])
        return lambda: F.interpolate(x, scale_factor=2.0, mode="nearest")
    raise ValueError(op)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cases = json.load(sys.stdin)
    out = {}
    with torch.no_grad():
        for c in cases:
            out[c["name"]] = timed(make(c), c.get("repeat", args.repeat))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

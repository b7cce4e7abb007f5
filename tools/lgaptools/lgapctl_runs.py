"""Running `lgapctl purify` over image folders for evaluations, and the statistics the reports print
(Wilson 95% intervals). Shared by tools/eval/evaluate.py and tools/eval/sweep.py.
"""
import json
import math
import subprocess
import time

SETTINGS = {"none": ["--no-purify"], "empty": ["--empty-caption"], "lgap": [], "lgap-k5": ["--ensemble", "5"]}


def wilson(k, n, z=1.96):
    if n == 0:
        return (0.0, 0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (p, max(0.0, c - h), min(1.0, c + h))


def fmt(k, n):
    p, lo, hi = wilson(k, n)
    return f"{100 * p:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] (n={n})"


def run(lgapctl, folder, setting, extra, out_jsonl, seed):
    if out_jsonl.exists() and out_jsonl.stat().st_size > 0:
        return [json.loads(l) for l in out_jsonl.read_text().splitlines() if l.strip()]
    cmd = [lgapctl, "purify", "--json", "--seed", str(seed), "--batch", "32"] + SETTINGS[setting] + extra + [str(folder)]
    t0 = time.time()
    with open(out_jsonl, "w") as f:
        subprocess.run(cmd, stdout=f, check=True)
    print(f"  {setting} on {folder}: {time.time() - t0:.0f} s", flush=True)
    return [json.loads(l) for l in out_jsonl.read_text().splitlines() if l.strip()]

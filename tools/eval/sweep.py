#!/usr/bin/env python3
"""Chooses a pack's default purification parameters by measurement: runs `lgapctl purify` over a
tuning set (clean and adversarial, disjoint from the evaluation set) for a grid of strength × guidance,
with the generated caption and with the empty caption, and writes one table of accuracies with 95%
Wilson intervals.

Run: tools/eval/sweep.py --clean $LGAP_EVAL/tune-200/clean --adv $LGAP_EVAL/tune-200/adv \\
        --strengths 0.1,0.2,0.3,0.4 --guidances 1,2,4 --out $LGAP_EVAL/sweep.md
Raw JSON lines go beside --out (<out>.<set>.<setting>-s<strength>-g<guidance>.jsonl; reruns reuse them).
"""
import argparse
from pathlib import Path

from lgaptools import locations
from lgaptools.lgapctl_runs import fmt, run


def accuracy(rows):
    done = [r for r in rows if r.get("status") == "done"]
    return sum(r.get("label") == Path(r["file"]).parent.name for r in done), len(done)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clean", required=True)
    p.add_argument("--adv", required=True)
    p.add_argument("--strengths", default="0.1,0.2,0.3,0.4")
    p.add_argument("--guidances", default="1,2,4")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--lgapctl", default=str(locations.repo() / ".build" / "release" / "lgapctl"))
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["| strength | guidance | caption | clean accuracy | adversarial accuracy |", "|---|---|---|---|---|"]
    for s in args.strengths.split(","):
        # The empty caption makes both CFG branches identical, so guidance does not matter for it.
        grid = [("empty", "1")] + [("lgap", g) for g in args.guidances.split(",")]
        for setting, g in grid:
            extra = ["--strength", s, "--steps", str(args.steps), "--guidance", g]
            cells = []
            for name, folder in (("clean", args.clean), ("adv", args.adv)):
                rows = run(args.lgapctl, folder, setting, extra, Path(f"{out}.{name}.{setting}-s{s}-g{g}.jsonl"), args.seed)
                cells.append(fmt(*accuracy(rows)))
            lines.append(f"| {s} | {g if setting == 'lgap' else '–'} | {'generated' if setting == 'lgap' else 'empty'} | {cells[0]} | {cells[1]} |")
            out.write_text("\n".join(lines) + "\n")
            print(lines[-1], flush=True)


if __name__ == "__main__":
    main()

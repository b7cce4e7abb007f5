#!/usr/bin/env python3
"""Paired comparison of caption guidance against the empty caption on the same images: from an
evaluate.py report's raw JSON lines (<report>.<set>.empty.jsonl and <report>.<set>.lgap.jsonl), counts
the images the generated caption turns right (fixes) and wrong (breaks) and gives the exact two-sided
McNemar p-value (binomial test on the discordant pairs) and the 95% interval of the paired accuracy
difference.

Run: tools/eval/mcnemar.py $LGAP_EVAL/s12/pgd-1000.md [--sets clean,pgd]
     [--lgap-report $LGAP_EVAL/s13/pgd-1000-g3.md]  (the lgap side from another report, e.g. one run with
     `--extra "--guidance 3"`; the empty side stays the first report's)
     tools/eval/mcnemar.py --compare A.md:lgap B.md:lgap [--sets clean,pgd]  (any two settings of any two
     reports, e.g. two packs on the same source images: images are paired by class folder and file name,
     so two attacked sets made from the same test-dev images pair up)
"""
import argparse
import json
import math
from pathlib import Path


def correct_by_file(path, by_name=False):
    rows = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            if r.get("status") == "done":
                f = Path(r["file"])
                rows[f"{f.parent.name}/{f.name}" if by_name else r["file"]] = r.get("label") == f.parent.name
    return rows


def exact_mcnemar(b, c):
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report", nargs="?")
    p.add_argument("--sets", default="clean,pgd")
    p.add_argument("--lgap-report", default=None, help="report whose lgap rows to compare (default: the same)")
    p.add_argument("--compare", nargs=2, metavar="REPORT:SETTING", help="compare the second against the first")
    args = p.parse_args()
    if not args.report and not args.compare:
        p.error("a report or --compare A:SETTING B:SETTING")
    for name in args.sets.split(","):
        if args.compare:
            (ra, sa), (rb, sb) = (c.rsplit(":", 1) for c in args.compare)
            empty = correct_by_file(f"{ra}.{name}.{sa}.jsonl", by_name=True)
            lgap = correct_by_file(f"{rb}.{name}.{sb}.jsonl", by_name=True)
        else:
            empty = correct_by_file(f"{args.report}.{name}.empty.jsonl")
            lgap = correct_by_file(f"{args.lgap_report or args.report}.{name}.lgap.jsonl")
        both = [f for f in empty if f in lgap]
        fixes = sum(1 for f in both if lgap[f] and not empty[f])
        breaks = sum(1 for f in both if empty[f] and not lgap[f])
        n = len(both)
        diff = (fixes - breaks) / n
        # Wald interval of a paired difference of proportions: var = (b + c - (b - c)^2 / n) / n^2.
        half = 1.96 * math.sqrt(max(0.0, fixes + breaks - (fixes - breaks) ** 2 / n)) / n
        what = "second fixes" if args.compare else "caption fixes"
        print(f"{name}: {n} paired images, {what} {fixes}, breaks {breaks}, "
              f"exact McNemar p = {exact_mcnemar(fixes, breaks):.3g}; accuracy difference "
              f"{100 * diff:+.1f} points, 95% CI [{100 * (diff - half):+.1f}, {100 * (diff + half):+.1f}]")


if __name__ == "__main__":
    main()

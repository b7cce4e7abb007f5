#!/usr/bin/env python3
"""Robustness evaluation through the real pipeline (`lgapctl purify`), written as one table.

For each image set (clean and adversarial PNGs in <dir>/<class>/*.png, as tools/attack/*.py write
them) it runs lgapctl over the whole set in these settings:
  none      --no-purify                 the undefended classifier (captions still generated)
  empty     --empty-caption             purification guided by the empty caption (no language)
  lgap      (defaults)                  LGAP: purification guided by the generated caption
  lgap-k5   --ensemble 5                LGAP with 5 purifications per image, probabilities averaged
and reports accuracy with 95% Wilson intervals, caption-consistency rejection (accuracy on accepted
inputs and rejection rates; an input is rejected when its caption names a class other than the
prediction), and how often captions name the true class. Seeds are fixed per image (--seed) so the
settings are paired.

Run: tools/eval/evaluate.py --set clean=$LGAP_EVAL/pgd-1000/clean --set pgd=$LGAP_EVAL/pgd-1000/adv \\
        --out $LGAP_EVAL/report-pgd.md [--settings none,empty,lgap,lgap-k5] [--lgapctl .build/release/lgapctl]
Writes the markdown table to --out and the raw JSON lines beside it (<out>.<set>.<setting>.jsonl).
"""
import argparse
from pathlib import Path

from lgaptools import locations  # noqa: E402

ROOT = locations.repo()
from lgaptools.lgapctl_runs import SETTINGS, fmt, run, wilson  # noqa: E402, F401


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", action="append", required=True, help="NAME=DIR")
    p.add_argument("--settings", default="none,empty,lgap,lgap-k5")
    p.add_argument("--lgapctl", default=str(ROOT / ".build" / "release" / "lgapctl"))
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--extra", default="", help="extra lgapctl purify arguments, e.g. '--strength 0.3'")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from lgaptools import captions, cifar
    rows = []
    caption_rows = []
    for spec in args.set:
        name, folder = spec.split("=", 1)
        for setting in args.settings.split(","):
            res = run(args.lgapctl, folder, setting, args.extra.split(), Path(f"{out}.{name}.{setting}.jsonl"), args.seed)
            n = correct = accepted = accepted_correct = named_true = 0
            for r in res:
                truth = Path(r["file"]).parent.name
                if r.get("status") != "done":
                    continue
                n += 1
                ok = r.get("label") == truth
                correct += ok
                cap = r.get("caption", "")
                mentioned = captions.mentioned_classes(cap)
                named_true += cifar.CLASSES.index(truth) in mentioned
                # Consistency rejection: refuse when the caption names classes but not the prediction.
                reject = r.get("consistency") == "inconsistent"
                if not reject:
                    accepted += 1
                    accepted_correct += ok
            rows.append((name, setting, correct, n, accepted_correct, accepted))
            if setting == "none":
                caption_rows.append((name, named_true, n))
    lines = ["| set | setting | accuracy | accuracy on accepted (consistency rejection) | rejected |", "|---|---|---|---|---|"]
    for name, setting, c, n, ac, a in rows:
        lines.append(f"| {name} | {setting} | {fmt(c, n)} | {fmt(ac, a)} | {100 * (n - a) / max(n, 1):.1f}% |")
    lines += ["", "| set | caption names the true class |", "|---|---|"]
    for name, k, n in caption_rows:
        lines.append(f"| {name} | {fmt(k, n)} |")
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

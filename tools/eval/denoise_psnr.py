#!/usr/bin/env python3
"""Denoising PSNR at a pack's default parameters, measured through lgap (`lgapctl purify
--save-purified`): PSNR(purified clean, clean) — what purification costs a clean image — and, for an
adversarial set with the same file names, PSNR(adversarial, clean) before and PSNR(purified adversarial,
clean) after — how far purification moves an attacked image back toward its clean original.

Run: tools/eval/denoise_psnr.py --clean $LGAP_EVAL/tune-200/clean --adv $LGAP_EVAL/tune-200/adv [--seed 1234]
"""
import argparse
import math
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from lgaptools import locations  # noqa: E402

ROOT = locations.repo()


def load(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255


def psnr(a, b):
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def purify_all(lgapctl, folder, out, seed, extra):
    """Purified PNGs under out/<class>/<name>.purified.png (one lgapctl run per class folder: names repeat).
    One purification per image (--ensemble 1): lgapctl saves the first of an ensemble's K, which is this
    same image, so a larger default ensemble would only multiply the time."""
    for cls in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        (out / cls.name).mkdir(parents=True, exist_ok=True)
        subprocess.run([lgapctl, "purify", "--json", "--seed", str(seed), "--batch", "32", "--ensemble", "1",
                        "--save-purified", str(out / cls.name)] + extra + [str(cls)], stdout=subprocess.DEVNULL, check=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clean", required=True)
    p.add_argument("--adv")
    p.add_argument("--lgapctl", default=str(ROOT / ".build" / "release" / "lgapctl"))
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--extra", default="", help="extra lgapctl purify arguments, e.g. '--strength 0.2'")
    args = p.parse_args()
    extra = args.extra.split()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        purify_all(args.lgapctl, args.clean, tmp / "clean", args.seed, extra)
        clean_files = sorted(Path(args.clean).glob("*/*.png"))
        rows = {"purified clean vs clean": [psnr(load(tmp / "clean" / f.parent.name / f"{f.stem}.purified.png"), load(f))
                                            for f in clean_files]}
        if args.adv:
            purify_all(args.lgapctl, args.adv, tmp / "adv", args.seed, extra)
            rows["adversarial vs clean"] = [psnr(load(Path(args.adv) / f.parent.name / f.name), load(f)) for f in clean_files]
            rows["purified adversarial vs clean"] = [psnr(load(tmp / "adv" / f.parent.name / f"{f.stem}.purified.png"), load(f))
                                                     for f in clean_files]
    print("| comparison | mean PSNR (dB) | images |\n|---|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {np.mean(values):.2f} | {len(values)} |")


if __name__ == "__main__":
    main()

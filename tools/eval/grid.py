#!/usr/bin/env python3
"""A PNG grid for a visual check of purification: one row per class, columns original (clean) /
adversarial / adversarial noised to the start step (decoded by the VAE for latent packs) / purified with
the generated caption / purified with the empty caption. The purification runs through
tools/lgaptools/defence_ref (diffusers components; pixel or latent packs), which lgap matches to > 140 dB
PSNR on cifar10-mini (PackParityTests), with the pack's defaults (first copy of an ensemble), seed 1000 + row.

Run: tools/eval/grid.py --clean $LGAP_EVAL/pgd-1000/clean --adv $LGAP_EVAL/pgd-1000/adv --out docs/images/purify-grid.png
"""
import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from lgaptools import locations  # noqa: E402

ROOT = locations.repo()
from lgaptools import defence_ref  # noqa: E402


def to_image(x):
    return Image.fromarray((x.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clean", required=True)
    p.add_argument("--adv", required=True)
    p.add_argument("--pack", default=str(ROOT / "models" / "cifar10-mini"))
    p.add_argument("--scale", type=int, default=3)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    defence = defence_ref.ReferenceDefence(args.pack)
    manifest, ref = defence.manifest, defence.purifier
    d = defence.settings()
    columns = ["clean", "PGD", "noised", "LGAP", "no caption"]
    size = 32 * args.scale
    header = 14
    grid = Image.new("RGB", (len(columns) * (size + 4) + 480, len(manifest["classes"]) * (size + 4) + header), "white")
    draw = ImageDraw.Draw(grid)
    for c, name in enumerate(columns):
        draw.text((c * (size + 4) + 2, 1), name, fill="black")
    for row, cls in enumerate(manifest["classes"]):
        name = sorted((Path(args.adv) / cls).glob("*.png"))[0].name
        clean = Image.open(Path(args.clean) / cls / name).convert("RGB")
        adv = Image.open(Path(args.adv) / cls / name).convert("RGB")
        x = defence.prepare(torch.from_numpy(np.array(adv)).permute(2, 0, 1).float().unsqueeze(0) / 255)
        text = defence.captions(x)[0]
        seed = 1000 + row
        out, trace = ref.purify(x, text, d["strength"], d["steps"], d["guidance"], seed, return_trace=True)
        empty = ref.purify(x, "", d["strength"], d["steps"], d["guidance"], seed)
        noised = ref.image(trace[0][:1])  # the start, decoded for latent packs
        tiles = [clean, adv, to_image(noised), to_image(out[:1]), to_image(empty[:1])]
        y = header + row * (size + 4)
        for c, tile in enumerate(tiles):
            grid.paste(tile.resize((size, size), Image.NEAREST), (c * (size + 4), y))
        label = f"{cls}: \"{text}\"".encode("latin-1", "replace").decode("latin-1")  # PIL's default font is latin-1
        draw.text((len(columns) * (size + 4) + 4, y + size // 2 - 6), label, fill="black")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

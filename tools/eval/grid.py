#!/usr/bin/env python3
"""A PNG grid for a visual check of purification: one row per class, columns original (clean) /
adversarial / adversarial noised to the start step / purified with the generated caption / purified with
the empty caption. The purification runs through tools/lgaptools/purify_ref (diffusers components),
which lgap matches to > 140 dB PSNR on this pack (PackParityTests), with the pack's defaults, seed 1000 + row.

Run: tools/eval/grid.py --clean $LGAP_EVAL/pgd-1000/clean --adv $LGAP_EVAL/pgd-1000/adv --out docs/images/purify-grid.png
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from lgaptools import locations  # noqa: E402

ROOT = locations.repo()
from lgaptools import purify_ref  # noqa: E402


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
    from transformers import BlipForConditionalGeneration, BlipProcessor
    pack = Path(args.pack)
    manifest = json.loads((pack / "pack.json").read_text())
    d, cap = manifest["purification"], manifest["captioning"]
    ref = purify_ref.PixelPurifier(pack, model_size=tuple(manifest["image_size"]), resize_mode=manifest.get("resize", "bicubic"))
    processor = BlipProcessor.from_pretrained(pack / "captioner")
    blip = BlipForConditionalGeneration.from_pretrained(pack / "captioner", torch_dtype=torch.float32).eval()
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
        with torch.no_grad():
            pixel = processor(images=[adv], return_tensors="pt").pixel_values
            ids = blip.generate(pixel_values=pixel, num_beams=cap["num_beams"], max_length=cap["max_length"],
                                min_length=cap["min_length"], synced_gpus=False)
        text = processor.decode(ids[0], skip_special_tokens=True)
        x = torch.from_numpy(np.array(adv)).permute(2, 0, 1).float().unsqueeze(0) / 255
        seed = 1000 + row
        out, trace = ref.purify(x, text, d["strength"], d["steps"], d["guidance"], seed, return_trace=True)
        empty = ref.purify(x, "", d["strength"], d["steps"], d["guidance"], seed)
        tiles = [clean, adv, to_image(trace[0] / 2 + 0.5), to_image(out), to_image(empty)]
        y = header + row * (size + 4)
        for c, tile in enumerate(tiles):
            grid.paste(tile.resize((size, size), Image.NEAREST), (c * (size + 4), y))
        draw.text((len(columns) * (size + 4) + 4, y + size // 2 - 6), f"{cls}: \"{text}\"", fill="black")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

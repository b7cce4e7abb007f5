#!/usr/bin/env python3
"""PyTorch side of `lgap-bench pipeline`: the whole LGAP pipeline with the reference libraries.

    torch_pipeline.py --pack DIR --list FILE --batch B --threads N --seed S

Per batch of B images (files listed one per line in FILE): PIL decode → BLIP caption
(transformers' BlipForConditionalGeneration.generate with the pack's beam settings) → purification
(tools/lgaptools/purify_ref: diffusers UNet/CLIP/DDIM, the pack's default parameters, the caption as
guide, seed S + index, the batch in one denoising loop like lgap) → 8-bit rounding (as lgap hands the
purified image on) → the torch classifier. Prints one JSON object: images, seconds per stage, labels and
captions (to check both pipelines agree), and FLOPs per image per stage counted on the first image
(convolutions, linear layers and the attention matmuls: 2 × multiply-adds).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lgaptools import locations  # noqa: E402

ROOT = locations.repo()
from lgaptools import classifiers, purify_ref  # noqa: E402


class FlopCounter:
    """Counts 2 × multiply-adds of Conv2d / Linear modules and of bmm / baddbmm / matmul calls while active."""

    def __init__(self, models):
        self.total = 0
        self.active = False
        for m in models:
            for mod in m.modules():
                if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                    mod.register_forward_hook(self.hook)
        self.patched = {}
        for name in ("bmm", "baddbmm", "matmul"):
            original = getattr(torch, name)
            self.patched[name] = original
            setattr(torch, name, self.wrap(original, name))

    def hook(self, mod, inputs, output):
        if not self.active:
            return
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            self.total += 2 * output.numel() * k
        else:
            self.total += 2 * output.numel() * mod.in_features

    def wrap(self, fn, name):
        def counted(*args, **kwargs):
            out = fn(*args, **kwargs)
            if self.active:
                a, b = (args[1], args[2]) if name == "baddbmm" else (args[0], args[1])
                self.total += 2 * out.numel() * a.shape[-1]
            return out
        return counted


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pack", required=True)
    p.add_argument("--list", required=True)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import BlipForConditionalGeneration, BlipProcessor
    pack = Path(args.pack)
    manifest = json.loads((pack / "pack.json").read_text())
    cap, d = manifest["captioning"], manifest["purification"]
    ensemble = d.get("ensemble", 1)
    processor = BlipProcessor.from_pretrained(pack / "captioner")
    blip = BlipForConditionalGeneration.from_pretrained(pack / "captioner", torch_dtype=torch.float32).eval()
    purifier = purify_ref.PixelPurifier(pack, model_size=tuple(manifest["image_size"]), resize_mode=manifest.get("resize", "bicubic"))
    classifier, config = classifiers.load_frozen(pack / "classifier")
    files = [l for l in Path(args.list).read_text().splitlines() if l.strip()]

    def caption(images):
        pixel = processor(images=images, return_tensors="pt").pixel_values
        ids = blip.generate(pixel_values=pixel, num_beams=cap["num_beams"], max_length=cap["max_length"],
                            min_length=cap["min_length"], synced_gpus=False)
        return [processor.decode(i, skip_special_tokens=True) for i in ids]

    def purify(images, texts, first):
        xs = [torch.from_numpy(np.array(im)).permute(2, 0, 1).float().unsqueeze(0) / 255 for im in images]
        outs = purifier.purify_batch(xs, texts, d["strength"], d["steps"], d["guidance"],
                                     [args.seed + first + i for i in range(len(xs))], eta=d.get("eta", 0.0),
                                     ensemble=ensemble)
        return torch.cat([(o * 255).round() / 255 for o in outs])

    def classify(x):
        # An ensemble's K purifications of one image vote with their averaged probabilities, as lgap's do.
        probs = classifier(x).softmax(1)
        return probs.view(-1, ensemble, probs.shape[1]).mean(1).argmax(1).tolist()

    # FLOPs per image per stage, on the first image (one batch of one).
    counter = FlopCounter([blip, purifier.text_encoder, purifier.unet, classifier])
    flops = {}
    with torch.no_grad():
        first = [Image.open(files[0]).convert("RGB")]
        for name, fn in (("caption", lambda: caption(first)),):
            counter.active, counter.total = True, 0
            texts = fn()
            flops[name] = counter.total
        counter.active, counter.total = True, 0
        x = purify(first, texts, 0)
        flops["purify"] = counter.total
        counter.active, counter.total = True, 0
        classify(x)
        flops["classify"] = counter.total
        counter.active = False
        # Warm-up batch (not timed), like the Swift side.
        warm = [Image.open(f).convert("RGB") for f in files[:args.batch]]
        classify(purify(warm, caption(warm), 0))

    seconds = {"decode": 0.0, "caption": 0.0, "purify": 0.0, "classify": 0.0}
    labels, captions = [], []
    t_all = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(files), args.batch):
            group = files[start:start + args.batch]
            t = time.perf_counter()
            images = [Image.open(f).convert("RGB") for f in group]
            seconds["decode"] += time.perf_counter() - t
            t = time.perf_counter()
            texts = caption(images)
            seconds["caption"] += time.perf_counter() - t
            t = time.perf_counter()
            x = purify(images, texts, start)
            seconds["purify"] += time.perf_counter() - t
            t = time.perf_counter()
            labels += classify(x)
            seconds["classify"] += time.perf_counter() - t
            captions += texts
    total = time.perf_counter() - t_all
    print(json.dumps({"images": len(files), "seconds": total, "stages": seconds, "flops": flops,
                      "labels": [config["class_names"][i] if "class_names" in config else i for i in labels],
                      "captions": captions, "threads": args.threads}))


if __name__ == "__main__":
    main()

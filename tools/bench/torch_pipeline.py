#!/usr/bin/env python3
"""PyTorch side of `lgap-bench pipeline`: the whole LGAP pipeline with the reference libraries.

    torch_pipeline.py --pack DIR --list FILE --batch B --threads N --seed S

Per batch of B images (files listed one per line in FILE), through tools/lgaptools/defence_ref (pixel
or latent packs): PIL decode (and, with classifier_resize before_purification, the classifier's resize)
→ BLIP caption (transformers' BlipForConditionalGeneration.generate with the pack's captioning
settings) → purification (tools/lgaptools/purify_ref: diffusers CLIP/UNet/DDIM and VAE, the pack's
default parameters, the caption as guide, seed S + index, each image size of the batch in one
denoising loop like lgap) → 8-bit rounding (as lgap hands the purified image on) → the classifier's
preprocessing → the torch classifier, K copies voting. Prints one JSON object: images, seconds per stage, labels and
captions (to check both pipelines agree), and FLOPs per image per stage counted on the first image
(convolutions, linear layers and the attention matmuls: 2 × multiply-adds).
"""
import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lgaptools import locations  # noqa: E402

ROOT = locations.repo()
from lgaptools import defence_ref  # noqa: E402


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


def to_tensor(image):
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float().unsqueeze(0) / 255


def by_size(xs):
    """Indices of same-size images, in order of first appearance (lgap purifies each size in its own loop)."""
    groups = {}
    for i, x in enumerate(xs):
        groups.setdefault(tuple(x.shape[2:]), []).append(i)
    return list(groups.values())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pack", required=True)
    p.add_argument("--list", required=True)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    defence = defence_ref.ReferenceDefence(args.pack)
    ensemble = defence.settings()["ensemble"]
    config = defence.classifier_config
    files = [l for l in Path(args.list).read_text().splitlines() if l.strip()]

    def decode(group):
        """PIL decode, then (classifier_resize before_purification) the classifier's input."""
        return [defence.prepare(to_tensor(Image.open(f).convert("RGB"))) for f in group]

    def caption(xs):
        texts = [""] * len(xs)
        for idx in by_size(xs):
            for i, t in zip(idx, defence.captions(torch.cat([xs[i] for i in idx]))):
                texts[i] = t
        return texts

    def purify(xs, texts, first):
        outs = [None] * len(xs)
        for idx in by_size(xs):
            out = defence.purify(torch.cat([xs[i] for i in idx]), [texts[i] for i in idx], [args.seed + first + i for i in idx])
            for j, i in enumerate(idx):
                outs[i] = out[j * ensemble:(j + 1) * ensemble]
        return outs

    def classify(outs):
        # An ensemble's K purifications of one image vote with their averaged probabilities, as lgap's do.
        return [int(defence.probabilities(o, ensemble).argmax(1)) for o in outs]

    # FLOPs per image per stage, on the first image (one batch of one).
    purifier = defence.purifier
    models = [purifier.text_encoder, purifier.unet, defence.net] + [m for m in (getattr(purifier, "vae", None),) if m is not None]
    counter = FlopCounter(models + ([defence.captioner.model] if defence.captioner else []))
    flops = {}
    with torch.no_grad():
        first = decode(files[:1])
        counter.active, counter.total = True, 0
        texts = caption(first)
        flops["caption"] = counter.total
        counter.active, counter.total = True, 0
        outs = purify(first, texts, 0)
        flops["purify"] = counter.total
        counter.active, counter.total = True, 0
        classify(outs)
        flops["classify"] = counter.total
        counter.active = False
        # Warm-up batch (not timed), like the Swift side.
        warm = decode(files[:args.batch])
        classify(purify(warm, caption(warm), 0))

    seconds = {"decode": 0.0, "caption": 0.0, "purify": 0.0, "classify": 0.0}
    labels, captions = [], []
    t_all = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(files), args.batch):
            group = files[start:start + args.batch]
            t = time.perf_counter()
            xs = decode(group)
            seconds["decode"] += time.perf_counter() - t
            t = time.perf_counter()
            texts = caption(xs)
            seconds["caption"] += time.perf_counter() - t
            t = time.perf_counter()
            outs = purify(xs, texts, start)
            seconds["purify"] += time.perf_counter() - t
            t = time.perf_counter()
            labels += classify(outs)
            seconds["classify"] += time.perf_counter() - t
            captions += texts
    total = time.perf_counter() - t_all
    print(json.dumps({"images": len(files), "seconds": total, "stages": seconds, "flops": flops,
                      "labels": [config["class_names"][i] if "class_names" in config else i for i in labels],
                      "captions": captions, "threads": args.threads,
                      "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


if __name__ == "__main__":
    main()

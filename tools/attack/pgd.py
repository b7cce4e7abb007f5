#!/usr/bin/env python3
"""Preprocessor-blind PGD L∞ attack on the pack's classifier (it sees the classifier only).

Loads the pack's classifier (--pack, pixel or latent; default models/cifar10-mini, the converted
ResNet-56 lgap runs), takes test-dev images (PIL-decoded, as lgap decodes them), runs PGD with a random
start (ε = 8/255, step 2/255, --steps ≥ 40) through the classifier's resize (Pillow's as a linear map;
none at its input size), quantises the adversarial images to 8 bits, saves them losslessly as PNG under
OUT/<class>/<name>.png, and reports the undefended accuracy on exactly what it saved (re-read from the
PNGs, resized as lgap resizes them). A deterministic subset: --n images spread evenly over the 9,000
(every 9000/n-th by index).

Run: tools/train/run.sh tools/attack/pgd.py --n 1000 --out $LGAP_EVAL/pgd-1000
Writes OUT/<class>/*.png, OUT/clean/<class>/*.png (the same images unattacked, for paired evaluation)
and OUT/attack.json (parameters, accuracies).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lgaptools import locations  # noqa: E402

ROOT = locations.repo()
from lgaptools import cifar, classifiers  # noqa: E402


def pgd(model, x, y, eps, step, steps, gen):
    delta = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(x + delta), y)
        grad, = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + step * grad.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--eps", type=float, default=8 / 255)
    p.add_argument("--step", type=float, default=2 / 255)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--offset", type=int, default=0,
                   help="shift the evenly spaced test-dev indices (e.g. 4 gives a tuning set disjoint from the default)")
    p.add_argument("--pack", default=str(ROOT / "models" / "cifar10-mini"))
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(int(__import__("os").environ.get("LGAP_TORCH_THREADS", "2")))
    frozen, config = classifiers.load_frozen(Path(args.pack) / "classifier")
    net = lambda z: frozen(classifiers.resize_input_differentiable(z, config))  # its resize (none at its input size)
    images, labels, names = cifar.load("test")
    idx = (np.linspace(0, len(images) - 1, args.n).round().astype(int) + args.offset) % len(images)
    out = Path(args.out)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    clean_correct = adv_correct = 0
    for s in range(0, len(idx), args.batch):
        b = idx[s:s + args.batch]
        x = torch.from_numpy(images[b]).permute(0, 3, 1, 2).float() / 255
        y = torch.from_numpy(labels[b])
        adv = pgd(net, x, y, args.eps, args.step, args.steps, gen)
        q = (adv * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for i, k in enumerate(b):
            cls = cifar.CLASSES[labels[k]]
            stem = Path(names[k]).stem
            for sub, arr in (("adv", q[i]), ("clean", images[k])):
                d = out / sub / cls
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(d / f"{stem}.png")
        # Accuracy on what was saved (8-bit), re-read from disk.
        xs = torch.stack([torch.from_numpy(np.asarray(Image.open(out / "adv" / cifar.CLASSES[labels[k]] / f"{Path(names[k]).stem}.png")))
                          for k in b]).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            adv_correct += int((frozen(classifiers.resize_input(xs, config)).argmax(1) == y).sum())
            clean_correct += int((frozen(classifiers.resize_input(x, config)).argmax(1) == y).sum())
        done = s + len(b)
        print(f"{done}/{len(idx)} clean acc {clean_correct / done:.4f} adv acc {adv_correct / done:.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    report = dict(attack="PGD-Linf", eps=args.eps, step=args.step, steps=args.steps, random_start=True, n=len(idx),
                  seed=args.seed, clean_accuracy=clean_correct / len(idx), undefended_adv_accuracy=adv_correct / len(idx),
                  classifier=str(Path(args.pack) / "classifier"), seconds=time.time() - t0)
    (out / "attack.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()

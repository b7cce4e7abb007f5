#!/usr/bin/env python3
"""Fine-tunes a pack's classifier on purified CIFAR-10 training images: the classifier that sees the
purified distribution at run time learns it (the LGAP reference trains its WRN on diffusion images).

Data: the folders tools/train/purify_dataset.py writes (<data>/purified/<class>/*.purified.png, several
--data folders may be given, e.g. purifications at two strengths), optionally mixed with the clean
training JPEGs (<data>/src/<class>/*.jpg) at --clean-fraction. Standard CIFAR augmentation (4-px
reflect-padded random crop, horizontal flip). The last --holdout images of every class (by file name)
are held out and evaluated after each epoch, purified and clean.

Optimisation: SGD (momentum 0.9, Nesterov), cosine learning rate from --lr to 0, weight decay 5e-4,
an EMA of the weights (exported). Resumable: OUT/checkpoint.pt every few minutes, refused if the
configuration changed. --export writes a classifier folder (config.json of the base + model.safetensors)
and checks it loads and reproduces the EMA model's logits.

Run:  tools/train/run.sh tools/train/finetune_classifier.py --data $LGAP_EVAL/purified-train \\
          --base models/cifar10-mini/classifier --epochs 10 --out $LGAP_EVAL/finetune-r56
      tools/train/run.sh tools/train/finetune_classifier.py ... --out $LGAP_EVAL/finetune-r56 --export DIR
"""
import argparse
import json
import shutil
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from lgaptools import cifar, classifiers, locations, trainloop


def load_images(folders, pattern, holdout, clean_fraction):
    """(train x uint8 [N,32,32,3], train y, held-out purified x, y, held-out clean x, y)."""
    xs, ys, hx, hy, cx, cy = [], [], [], [], [], []
    for data in folders:
        for label, cls in enumerate(cifar.CLASSES):
            files = sorted((Path(data) / "purified" / cls).glob(pattern))
            for i, f in enumerate(files):
                img = np.asarray(Image.open(f).convert("RGB"))
                (hx if i >= len(files) - holdout else xs).append(img)
                (hy if i >= len(files) - holdout else ys).append(label)
            src = sorted((Path(data) / "src" / cls).glob("*.jpg"))
            for i, f in enumerate(src):
                held = i >= len(src) - holdout
                if held and data == folders[0]:
                    cx.append(np.asarray(Image.open(f).convert("RGB")))
                    cy.append(label)
                elif not held and clean_fraction > 0 and (zlib.crc32(f.name.encode()) % 1000) < clean_fraction * 1000 and data == folders[0]:
                    xs.append(np.asarray(Image.open(f).convert("RGB")))
                    ys.append(label)
    as_arrays = lambda a, b: (np.stack(a), np.array(b, dtype=np.int64))
    return (*as_arrays(xs, ys), *as_arrays(hx, hy), *as_arrays(cx, cy))


def augment(batch, rng):
    """Random 4-px reflect-padded crop and horizontal flip; uint8 [B,32,32,3] → float [B,3,32,32] in [0,1]."""
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255
    x = F.pad(x, (4, 4, 4, 4), mode="reflect")
    out = torch.empty(len(batch), 3, 32, 32)
    for i in range(len(batch)):
        dx, dy = rng.integers(0, 9, 2)
        crop = x[i, :, dy:dy + 32, dx:dx + 32]
        out[i] = crop.flip(2) if rng.random() < 0.5 else crop
    return out


@torch.no_grad()
def accuracy(net, x, y, batch=500):
    correct = 0
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(x[i:i + batch]).permute(0, 3, 1, 2).float() / 255
        correct += (net(xb).argmax(1) == torch.from_numpy(y[i:i + batch])).sum().item()
    return correct / max(len(x), 1)


def export(out, base, ema_state, net_for_check):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(base) / "config.json", out / "config.json")
    for extra in ("LICENSE", "README.md"):
        if (Path(base) / extra).exists():
            shutil.copy(Path(base) / extra, out / extra)
    save_file({k: v.contiguous() for k, v in ema_state.items() if v.is_floating_point()}, str(out / "model.safetensors"))
    model, _ = classifiers.load_folder(out)
    x = torch.rand(8, 3, 32, 32)
    ref = net_for_check(x)
    got = classifiers.Normalized(model, *[json.loads((out / "config.json").read_text())[k] for k in ("mean", "std")])(x)
    err = (ref - got).abs().max().item()
    if err > 1e-4:
        raise SystemExit(f"exported classifier differs from the trained one by {err}")
    print(f"wrote {out} (max |Δlogit| {err:.2e} against the trained EMA model)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", required=True, help="folder written by purify_dataset.py (repeatable)")
    p.add_argument("--base", default=str(locations.default_pack() / "classifier"))
    p.add_argument("--pattern", default="*.purified.png")
    p.add_argument("--clean-fraction", type=float, default=0.0, help="share of clean training JPEGs mixed in")
    p.add_argument("--holdout", type=int, default=100, help="held-out images per class")
    p.add_argument("--epochs", type=float, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--export", default=None, metavar="DIR", help="write the EMA weights as a classifier folder and exit")
    args = p.parse_args()
    trainloop.setup_threads()
    trainloop.seed_everything(args.seed)

    config = {k: v for k, v in vars(args).items() if k not in ("out", "export")}
    config["data"] = [trainloop.repo_relative(d) for d in args.data]
    config["base"] = trainloop.repo_relative(args.base)
    ckpt = trainloop.Checkpointer(args.out, config)
    state = ckpt.load()

    model, base_config = classifiers.load_folder(args.base)
    net = classifiers.Normalized(model, base_config["mean"], base_config["std"])
    if args.export:
        if not state:
            raise SystemExit(f"no checkpoint in {args.out}")
        net.model.load_state_dict(state["ema"])
        export(args.export, args.base, state["ema"], net.eval())
        return

    x, y, hx, hy, cx, cy = load_images(args.data, args.pattern, args.holdout, args.clean_fraction)
    print(f"train {len(x)} images, held out {len(hx)} purified + {len(cx)} clean", flush=True)
    steps_per_epoch = len(x) // args.batch
    total = int(args.epochs * steps_per_epoch)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.wd)
    ema = trainloop.EMA(net.model, args.ema)
    step = 0
    if state:
        net.model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        ema.shadow = state["ema"]
        step = state["step"]
    else:
        net.eval()
        print(f"before: held-out purified {accuracy(net, hx, hy):.4f}, clean {accuracy(net, cx, cy):.4f}", flush=True)
    rng = np.random.default_rng(args.seed + step)
    progress = trainloop.Progress(total, args.batch, step, log_path=Path(args.out) / "log.jsonl")
    order = rng.permutation(len(x))
    while step < total:
        net.train()
        pos = (step % steps_per_epoch) * args.batch
        if pos == 0:
            order = np.random.default_rng(args.seed * 1000 + step // steps_per_epoch).permutation(len(x))
        idx = order[pos:pos + args.batch]
        xb, yb = augment(x[idx], rng), torch.from_numpy(y[idx])
        for g in opt.param_groups:
            g["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * step / total))
        loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(net.model)
        step += 1
        if step % 50 == 0:
            progress.report(step, loss=loss.item(), lr=opt.param_groups[0]["lr"])
        if step % steps_per_epoch == 0 or step == total:
            trained = net.model.state_dict()
            net.model.load_state_dict(ema.shadow)
            net.eval()
            print(f"epoch {step / steps_per_epoch:.2f}: EMA held-out purified {accuracy(net, hx, hy):.4f}, "
                  f"clean {accuracy(net, cx, cy):.4f}", flush=True)
            net.model.load_state_dict(trained)
        if ckpt.due() or step == total:
            ckpt.save(model=net.model.state_dict(), opt=opt.state_dict(), ema=ema.shadow, step=step)
    print(f"done in {time.time() - progress.t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()

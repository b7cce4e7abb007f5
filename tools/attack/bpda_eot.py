#!/usr/bin/env python3
"""Adaptive attack on the whole LGAP defence: PGD L∞ with BPDA (the purifier's gradient taken as the
identity) and EOT (the gradient averaged over --eot independent purifications per step), using a
PyTorch run of the same pack (tools/lgaptools/defence_ref: purify_ref's PixelPurifier or LatentPurifier
with the pack's defaults and the caption the pack's captioner gives the current adversarial image).

Each step: caption the current image (transformers BLIP, beam settings of pack.json), purify it --eot
times with fresh seeds, classify the purified images, and step along the sign of the summed
classifier-input gradients (BPDA: d purify(x)/dx ≈ I). Adversarial images are quantised to 8 bits and
saved as PNG with their labels; the attack reports the undefended accuracy on what it saved and the
defended accuracy it saw at the last step (one EOT sample set, PyTorch reference).

--defence lgap runs the defence as deployed instead: each EOT sample is one `lgapctl purify` call over
the current (8-bit) adversarial images with its own seed, which captions, purifies and classifies them
and saves the purified PNGs the gradient is taken at. lgap matches the PyTorch reference to > 145 dB and
is ~20x faster per image here, which is what makes 200 images x 10 steps x 10 samples affordable on CPU.

Run: tools/train/run.sh tools/attack/bpda_eot.py --n 200 --steps 10 --eot 10 --out $LGAP_EVAL/bpda-200
     (add --defence lgap --batch 200 to attack through lgapctl)
Writes OUT/adv/<class>/*.png, OUT/clean/<class>/*.png and OUT/attack.json; resumable per batch (and per
step: OUT/state.pt).
"""
import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lgaptools import locations  # noqa: E402

ROOT = locations.repo()
from lgaptools import cifar, classifiers, defence_ref  # noqa: E402


class Defence(defence_ref.ReferenceDefence):
    """The PyTorch reference run of the pack (lgaptools/defence_ref: BLIP captions, purify_ref purification)."""

    def purify_samples(self, x, seeds):
        """One purified batch per seed (image i purified with seed + i, ensemble 1), all guided by the
        captions of x (the defence's input, 8-bit)."""
        x = defence_ref.quantise(x)
        caps = self.captions(x)
        return [self.purify(x, caps, [seed + i for i in range(len(x))], ensemble=1) for seed in seeds]


class LgapDefence:
    """The deployed defence: `lgapctl purify` with the pack's defaults (its own captions) per EOT sample,
    each sample one purification (--ensemble 1): EOT already averages over samples, and lgapctl saves one
    purified image per input whatever the pack's ensemble, so K > 1 would cost K times for the same image."""

    def __init__(self, pack, lgapctl):
        self.pack = str(pack)
        self.lgapctl = lgapctl
        self.manifest = json.loads((Path(pack) / "pack.json").read_text())
        if self.manifest.get("classifier_resize", "after_purification") != "after_purification":
            raise SystemExit("--defence lgap supports classifier_resize after_purification only: with before_purification "
                             "lgapctl crops the input before purifying, so its purified images are not at the attacked "
                             "image's size (attack with the reference defence, which follows the crop)")
        self.net, self.classifier_config = classifiers.load_frozen(Path(pack) / "classifier")
        self._work = tempfile.TemporaryDirectory(prefix="lgap-bpda-")
        self.work = Path(self._work.name)

    def prepare_differentiable(self, x):
        return x

    def logits(self, purified):
        """Differentiable logits of the purified images (the classifier's resize as a linear map)."""
        return self.net(classifiers.resize_input_differentiable(purified, self.classifier_config))

    def purify_samples(self, x, seeds):
        """One purified batch per seed (each a [N, 3, H, W] tensor in [0, 1]), through lgapctl."""
        inp = self.work / "in"
        shutil.rmtree(inp, ignore_errors=True)
        inp.mkdir(parents=True)
        q = (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for i in range(len(q)):
            Image.fromarray(q[i]).save(inp / f"{i:05d}.png")
        out = []
        for seed in seeds:
            pur = self.work / "purified"
            shutil.rmtree(pur, ignore_errors=True)
            subprocess.run([self.lgapctl, "purify", str(inp), "--pack", self.pack, "--seed", str(seed), "--batch", "32",
                            "--ensemble", "1", "--save-purified", str(pur), "--json"], check=True, stdout=subprocess.DEVNULL)
            arr = np.stack([np.asarray(Image.open(pur / f"{i:05d}.purified.png").convert("RGB")) for i in range(len(q))])
            out.append(torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255)
        return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--eps", type=float, default=8 / 255)
    p.add_argument("--step", type=float, default=2 / 255)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--eot", type=int, default=10)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pack", default=str(ROOT / "models" / "cifar10-mini"))
    p.add_argument("--out", required=True)
    p.add_argument("--defence", choices=["reference", "lgap"], default="reference",
                   help="purify with the PyTorch reference (default) or through lgapctl")
    p.add_argument("--lgapctl", default=str(ROOT / ".build" / "release" / "lgapctl"))
    args = p.parse_args()
    torch.set_num_threads(int(__import__("os").environ.get("LGAP_TORCH_THREADS", "2")))
    defence = LgapDefence(args.pack, args.lgapctl) if args.defence == "lgap" else Defence(args.pack)
    images, labels, names = cifar.load("test")
    idx = np.linspace(0, len(images) - 1, args.n).round().astype(int)
    out = Path(args.out)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    done_path = out / "progress.json"
    progress = json.loads(done_path.read_text()) if done_path.exists() else {"batches": [], "defended_correct": 0, "seen": 0}
    for bstart in range(0, len(idx), args.batch):
        if bstart in progress["batches"]:
            continue
        b = idx[bstart:bstart + args.batch]
        x = torch.from_numpy(images[b]).permute(0, 3, 1, 2).float() / 255
        y = torch.from_numpy(labels[b])
        adv = (x + (torch.rand(x.shape, generator=gen) * 2 - 1) * args.eps).clamp(0, 1)
        first = 0
        state_path = out / "state.pt"
        if state_path.exists():
            state = torch.load(state_path)
            if state["bstart"] == bstart:
                adv, first = state["adv"], state["step"]
                gen.set_state(state["gen"])
        for step in range(first, args.steps):
            seeds = [int(torch.randint(0, 2**31 - 1, (1,), generator=gen)) for _ in range(args.eot)]
            a = adv.clone().requires_grad_(True)
            xin = defence.prepare_differentiable(a)  # the classifier's resize when it comes first, else a itself
            grad_in = torch.zeros_like(xin)
            correct = 0
            for purified in defence.purify_samples(xin.detach(), seeds):
                purified.requires_grad_(True)
                logits = defence.logits(purified)
                loss = F.cross_entropy(logits, y)
                g, = torch.autograd.grad(loss, purified)
                grad_in += g  # BPDA: the purifier's Jacobian taken as the identity
                correct += int((logits.argmax(1) == y).sum())
            grad, = torch.autograd.grad(xin, a, grad_in)
            adv = (adv + args.step * grad.sign()).clamp(x - args.eps, x + args.eps).clamp(0, 1).detach()
            out.mkdir(parents=True, exist_ok=True)
            torch.save({"bstart": bstart, "step": step + 1, "adv": adv, "gen": gen.get_state()}, state_path)
            print(f"batch {bstart // args.batch} step {step + 1}/{args.steps}: defended acc over EOT "
                  f"{correct / (args.eot * len(b)):.3f} ({time.time() - t0:.0f} s)", flush=True)
        q = (adv * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for i, k in enumerate(b):
            cls = cifar.CLASSES[labels[k]]
            for sub, arr in (("adv", q[i]), ("clean", images[k])):
                d = out / sub / cls
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(d / f"{Path(names[k]).stem}.png")
        progress["batches"].append(bstart)
        progress["defended_correct"] += correct
        progress["seen"] += args.eot * len(b)
        done_path.write_text(json.dumps(progress))
    # Undefended accuracy on the saved 8-bit images.
    xs, ys = [], []
    for k in idx:
        cls = cifar.CLASSES[labels[k]]
        xs.append(np.asarray(Image.open(out / "adv" / cls / f"{Path(names[k]).stem}.png")))
        ys.append(labels[k])
    with torch.no_grad():
        q = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255
        pred = defence.net(classifiers.resize_input(q, defence.classifier_config)).argmax(1)
    report = dict(attack="BPDA+EOT PGD-Linf", eps=args.eps, step=args.step, steps=args.steps, eot=args.eot, n=len(idx),
                  undefended_adv_accuracy=float((pred == torch.tensor(ys)).float().mean()),
                  defended_accuracy_last_step_eot=progress["defended_correct"] / max(progress["seen"], 1),
                  purification=dict(defence.manifest["purification"], ensemble=1), defence=args.defence, seconds=time.time() - t0)
    (out / "attack.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()

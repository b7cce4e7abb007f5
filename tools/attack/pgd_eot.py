#!/usr/bin/env python3
"""Full-gradient PGD-EOT on the whole LGAP defence (no BPDA): L∞ PGD whose gradient flows through the
purification exactly as deployed, in PyTorch (tools/lgaptools/diffpurify.py, verified against
purify_ref's PixelPurifier or LatentPurifier by --check-grad). Pixel-space and latent (vae/) packs alike.

Modes
  full (default)  each PGD step: caption the current adversarial image (8-bit, the pack's BLIP, beam
                  settings of pack.json; the caption is discrete, so it is held fixed within the step and
                  its CLIP text states are constants for the gradient), then --eot samples, each one whole
                  purification as deployed with fresh noise (pack defaults: strength, DDIM steps, guidance,
                  ensemble K, eta; overridable) differentiated through the resize (if any), the VAE
                  encoder and posterior sample (latent packs), add_noise at the start timestep (the noise
                  a constant), every UNet call of the DDIM loop with both classifier-free-guidance
                  branches, the DDIM update, the VAE decoder, the final clamp, the classifier's resize
                  (Pillow's as a linear map; none at its input size), the classifier and the ensemble
                  soft vote (mean of the K softmax probabilities, as lgap's EnsembleVote).
                  Loss: cross-entropy of log(mean probabilities) against the true label, maximised; the
                  step follows the sign of the gradient summed over the EOT samples. Random start in the
                  ε-ball; projection onto the ε-ball and [0, 1] after every step.
  deterministic   the white-box diagnostic: the same, with each image's noise drawn once and reused at
                  every step (EOT 1), so the defence is a fixed differentiable function.
  caption         a caption-targeted attack: PGD (minimising) on the captioner's teacher-forced
                  cross-entropy of a target caption naming a wrong class, --target-template with {name}
                  the target's canonical noun (pack.json synonyms, first entry), target class
                  (label + 1) % 10 or --target-class. Only the caption's words are scored (not [SEP]), so
                  the captioner is pushed to begin its caption that way.

After the attack the images are quantised to 8 bits (rounded) and saved losslessly, and the SAVED images
are evaluated in PyTorch: the undefended classifier, and the defence with --eval-samples fresh
purifications per image (each an ensemble of K, captions of the saved image), reported as the mean
accuracy and its spread over samples; captions of the saved images are checked for the true (and, in
caption mode, the target) class with ConsistencyCheck's whole-word rule. pack.json "classifier_resize":
"before_purification" brings the image to the classifier's input first (captioned and purified there,
classified without a further resize); "after_purification" (default) resizes the purified image.

--check-grad runs the checks only and prints them: DiffPurifier vs purify_ref's purify_batch for the
same seeds (eta 0 and eta 0.5, two images batched), and the attack loss's gradient against central
finite differences (--check-h, default 1e-6) in float64 on single pixels and along a random direction
(a pixel whose one-sided differences disagree has a kink within h and passes as KINK when autograd lies
between them; at least half the pixels must match outright), plus float32's gradient against
float64's; also the captioner's differentiable preprocessing against the processor (within Pillow's
8-bit rounding when it resizes) and the caption loss's directional derivative.

Run: tools/train/run.sh tools/attack/pgd_eot.py --n 200 --steps 100 --eot 10 --out $LGAP_EVAL/pgd-eot-200
     tools/attack/pgd_eot.py --check-grad
     tools/attack/pgd_eot.py --mode caption --n 200 --steps 100
Writes OUT/adv/<class>/*.png, OUT/clean/<class>/*.png, OUT/attack.json (config, per-image losses and
captions, accuracies, timings), OUT/progress.json (per-batch records) and OUT/state.pt (the batch in
progress); resumable per batch (a batch whose PNGs exist is not attacked again) and per PGD step.
"""
import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lgaptools import captioner_ref, cifar, classifiers, diffpurify, locations, trainloop
from lgaptools.diffpurify import ensemble_log_probs, ensemble_loss

RESUME_IGNORES = {"out", "device", "no_checkpoint", "check_grad", "check_h"}


# Models ---------------------------------------------------------------------------------------------
class Threat:
    """Everything the attack differentiates through: purifier, classifier, captioner, settings."""

    def __init__(self, args):
        self.pack = Path(args.pack)
        self.manifest = diffpurify.load_manifest(self.pack)
        self.settings = diffpurify.Settings.from_manifest(self.manifest, strength=args.strength, steps=args.steps_ddim,
                                                          guidance=args.guidance, ensemble=args.ensemble)
        self.device = torch.device(args.device)
        self.purifier = diffpurify.DiffPurifier(self.pack, self.manifest, checkpointing=not args.no_checkpoint,
                                                device=self.device)
        self.classifier_path = Path(args.classifier) if args.classifier else self.pack / "classifier"
        self.net, self.classifier_config = classifiers.load_frozen(self.classifier_path)
        self.net.to(self.device)
        self.captioner = captioner_ref.BlipCaptioner(self.pack, self.manifest, device=self.device)
        self.classes = self.manifest.get("classes", cifar.CLASSES)
        self.synonyms = self.manifest.get("synonyms", {})
        self.uncond = self.purifier.encode([""])
        self.resize_before = self.manifest.get("classifier_resize", "after_purification") == "before_purification"

    def noise(self, seeds, x):
        return self.purifier.draw_noise(seeds, self.settings, self.purifier.noise_shape(x.shape[2:]))

    def defence_input(self, x):
        """What the defence captions and purifies: x itself, or with classifier_resize before_purification
        the classifier's input (Pillow's resize as a linear map; the identity at the classifier's size)."""
        return classifiers.resize_input_differentiable(x, self.classifier_config) if self.resize_before else x

    def classify(self, images):
        """Classifier logits; after purification (the default) the classifier's resize comes first."""
        return self.net(images if self.resize_before else classifiers.resize_input_differentiable(images, self.classifier_config))

    def loss(self, x, y, cond, seeds):
        """Per-image attack loss and log mean probabilities for one purification sample (differentiable in x)."""
        x = self.defence_input(x)
        purified = self.purifier.purify(x, cond, self.noise(seeds, x), self.settings, self.uncond)
        log_probs = ensemble_log_probs(self.classify, purified, self.settings.ensemble)
        return ensemble_loss(log_probs, y), log_probs

    def caption_states(self, x):
        """Captions of the defence's 8-bit input and their CLIP states."""
        caps = self.captioner.captions(classifiers.resize_input(x, self.classifier_config) if self.resize_before else x)
        return caps, self.purifier.encode(caps)

    def names(self, caption):
        return diffpurify.mentioned(caption, self.classes, self.synonyms)


def batch_seed(seed, tag, bstart):
    """A generator seed per (run seed, purpose, batch), so resuming a batch repeats its randomness."""
    return int(np.random.SeedSequence([seed, tag, bstart]).generate_state(1)[0])


def draw_seeds(gen, n):
    return [int(s) for s in torch.randint(0, 2**31 - 1, (n,), generator=gen)]


def project(adv, x, eps):
    return torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1).detach()


# Attacks --------------------------------------------------------------------------------------------
def defence_gradient(th, adv, y, seed_sets):
    """Gradient of the summed per-image losses over the EOT samples, the mean loss and the fraction of
    samples classified correctly, per image. Each sample is backpropagated alone (memory: one sample)."""
    grad = torch.zeros_like(adv)
    loss_sum = torch.zeros(len(adv), device=adv.device)
    correct = torch.zeros(len(adv), device=adv.device)
    _, cond = th.caption_states(adv)
    for seeds in seed_sets:
        a = adv.clone().requires_grad_(True)
        loss, log_probs = th.loss(a, y, cond, seeds)
        g, = torch.autograd.grad(loss.sum(), a)
        grad += g
        loss_sum += loss.detach()
        correct += (log_probs.argmax(1) == y).float()
    return grad, loss_sum / len(seed_sets), correct / len(seed_sets)


def caption_gradient(th, adv, target):
    """Gradient of the summed teacher-forced target-caption losses and the per-image loss."""
    a = adv.clone().requires_grad_(True)
    loss = th.captioner.teacher_forced_loss(th.defence_input(a), *target)
    g, = torch.autograd.grad(loss.sum(), a)
    return g, loss.detach(), None


def run_pgd(th, args, x, y, gen, state, save_state, target=None, fixed=None):
    """PGD from state (adv, step, history); one gradient evaluation per step for the mode; returns the
    final state. Full: fresh seeds from gen per EOT sample per step; deterministic: the seeds `fixed`."""
    sign = -1.0 if args.mode == "caption" else 1.0  # the caption loss is minimised, the class loss maximised
    adv, hist = state["adv"], state["history"]
    for step in range(state["step"], args.steps):
        t0 = time.time()
        if args.mode == "caption":
            grad, loss, acc = caption_gradient(th, adv, target)
        else:
            seed_sets = [fixed] if fixed else [draw_seeds(gen, len(x)) for _ in range(args.eot)]
            grad, loss, acc = defence_gradient(th, adv, y, seed_sets)
        adv = project(adv + sign * args.step_size / 255 * grad.sign(), x, args.eps / 255)
        hist.append({"loss": loss.tolist(), "acc": None if acc is None else acc.tolist(), "seconds": time.time() - t0})
        save_state(adv, step + 1, hist, gen)
        msg = f"  step {step + 1}/{args.steps}: loss {loss.mean():.4f}"
        msg += "" if acc is None else f", defended acc over EOT {acc.mean():.3f}"
        print(msg + f" ({hist[-1]['seconds']:.1f} s)", flush=True)
    return adv, hist


def caption_targets(th, y, args):
    """Per image: the target class and the token ids / masks of its target caption."""
    tc = [(args.target_class if args.target_class is not None else (int(l) + 1) % len(th.classes)) for l in y]
    tc = [t if t != int(l) else (int(l) + 1) % len(th.classes) for t, l in zip(tc, y)]
    nouns = [th.synonyms.get(th.classes[t], [th.classes[t]])[0] for t in tc]
    texts = [args.target_template.format(name=n) for n in nouns]
    return tc, texts, th.captioner.target_ids(texts)


# Evaluation on the saved 8-bit images ---------------------------------------------------------------
@torch.no_grad()
def evaluate(th, q, y, args, gen):
    """Undefended prediction and --eval-samples defended predictions (fresh noise each) per image."""
    caps, cond = th.caption_states(q)
    undefended = th.net(classifiers.resize_input(q, th.classifier_config)).argmax(1)
    preds, losses = [], []
    for _ in range(args.eval_samples):
        loss, log_probs = th.loss(q, y, cond, draw_seeds(gen, len(q)))
        preds.append(log_probs.argmax(1))
        losses.append(loss)
    preds, losses = torch.stack(preds, 1), torch.stack(losses, 1)
    return caps, undefended, preds, losses


def image_records(th, idx, names, y, caps, undefended, preds, losses, clean_pred, hist, targets=None):
    recs = []
    for i, k in enumerate(idx):
        named = th.names(caps[i])
        r = dict(index=int(k), name=names[k], label=int(y[i]), final_loss=hist[-1]["loss"][i] if hist else None,
                 loss_history=[h["loss"][i] for h in hist], clean_undefended_correct=bool(clean_pred[i] == y[i]),
                 adv_undefended_correct=bool(undefended[i] == y[i]), defended_preds=preds[i].tolist(),
                 defended_correct=(preds[i] == y[i]).tolist(), eval_loss_mean=float(losses[i].mean()),
                 caption=caps[i], caption_names=named, caption_names_true=int(y[i]) in named)
        if targets is not None:
            r.update(target_class=targets[0][i], target_caption=targets[1][i], caption_names_target=targets[0][i] in named)
        recs.append(r)
    return recs


# Files ----------------------------------------------------------------------------------------------
def png_path(out, sub, label, name):
    return out / sub / cifar.CLASSES[label] / f"{Path(name).stem}.png"


def save_pngs(out, q, idx, images, labels, names):
    arr = (q * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    for i, k in enumerate(idx):
        for sub, a in (("adv", arr[i]), ("clean", images[k])):
            p = png_path(out, sub, labels[k], names[k])
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(p)


def load_pngs(out, idx, labels, names):
    arr = np.stack([np.asarray(Image.open(png_path(out, "adv", labels[k], names[k])).convert("RGB")) for k in idx])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255


def to_tensor(images):
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def open_progress(out, config):
    path = out / "progress.json"
    if path.exists():
        progress = json.loads(path.read_text())
        old = {k: v for k, v in progress["config"].items() if k not in RESUME_IGNORES}
        new = {k: v for k, v in config.items() if k not in RESUME_IGNORES}
        if old != new:
            raise SystemExit(f"{path} was written with another configuration:\n  {old}\nvs\n  {new}\nuse another --out")
        return progress
    return {"config": config, "batches": {}}


def write_json(path, obj):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


# One batch ------------------------------------------------------------------------------------------
def attack_batch(th, args, out, bstart, x, y, targets):
    """Runs (or resumes) PGD on one batch; returns the adversarial images and the step history."""
    gen = torch.Generator().manual_seed(batch_seed(args.seed, 0, bstart))
    state_path = out / "state.pt"
    adv = (x + (torch.rand(x.shape, generator=gen).to(x.device) * 2 - 1) * args.eps / 255).clamp(0, 1)
    state = {"adv": adv, "step": 0, "history": []}
    if state_path.exists():
        saved = torch.load(state_path)
        if saved["bstart"] == bstart:
            state = {"adv": saved["adv"].to(x.device), "step": saved["step"], "history": saved["history"]}
            gen.set_state(saved["gen"])
            print(f"  resuming at step {state['step']}", flush=True)

    def save_state(a, step, hist, g):
        torch.save({"bstart": bstart, "adv": a.cpu(), "step": step, "history": hist, "gen": g.get_state()}, state_path)

    fixed = None
    if args.mode == "deterministic":  # one seed per image for the whole attack, the same after a resume
        fixed = draw_seeds(torch.Generator().manual_seed(batch_seed(args.seed, 2, bstart)), len(x))
    return run_pgd(th, args, x, y, gen, state, save_state, target=targets and targets[2], fixed=fixed)


def process_batch(th, args, out, progress, bstart, b, data):
    images, labels, names = data
    x, y = to_tensor(images[b]).to(th.device), torch.from_numpy(labels[b]).to(th.device)
    targets = caption_targets(th, y, args) if args.mode == "caption" else None
    t0 = time.time()
    hist = []
    if not all(png_path(out, "adv", labels[k], names[k]).exists() for k in b):
        adv, hist = attack_batch(th, args, out, bstart, x, y, targets)
        save_pngs(out, adv, b, images, labels, names)
    elif (out / "state.pt").exists() and torch.load(out / "state.pt")["bstart"] == bstart:
        hist = torch.load(out / "state.pt")["history"]
    t_attack = sum(h["seconds"] for h in hist) if hist else time.time() - t0  # PGD steps only, across resumes
    t1 = time.time()
    q = load_pngs(out, b, labels, names).to(th.device)  # the saved 8-bit images, re-read
    egen = torch.Generator().manual_seed(batch_seed(args.seed, 1, bstart))
    caps, undefended, preds, losses = evaluate(th, q, y, args, egen)
    with torch.no_grad():
        clean_pred = th.net(classifiers.resize_input(x, th.classifier_config)).argmax(1)
    recs = image_records(th, b, names, y, caps, undefended, preds, losses, clean_pred, hist, targets)
    t_eval = time.time() - t1
    progress["batches"][str(bstart)] = dict(images=recs, attack_seconds=t_attack, eval_seconds=t_eval,
                                            attack_steps_run=len(hist))
    write_json(out / "progress.json", progress)
    acc = float((preds == y[:, None]).float().mean())
    print(f"batch {bstart}: saved; defended acc on saved images {acc:.3f} over {args.eval_samples} samples, "
          f"undefended {float((undefended == y).float().mean()):.3f} (attack {t_attack:.0f} s, eval {t_eval:.0f} s)", flush=True)


# Report ---------------------------------------------------------------------------------------------
def summarise(progress, args, settings):
    batches = progress["batches"].values()
    recs = [r for b in batches for r in b["images"]]
    n = len(recs)
    correct = np.array([r["defended_correct"] for r in recs], dtype=float)  # [n, eval_samples]
    per_sample = correct.mean(0)
    attack_s = sum(b["attack_seconds"] for b in batches)
    evals = max(args.eot if args.mode == "full" else 1, 1)
    report = dict(
        attack=f"PGD-EOT L-inf ({args.mode})", config=progress["config"], purification=settings.as_dict(), n=n,
        clean_undefended_accuracy=float(np.mean([r["clean_undefended_correct"] for r in recs])),
        adv_undefended_accuracy=float(np.mean([r["adv_undefended_correct"] for r in recs])),
        defended_accuracy_mean=float(correct.mean()), defended_accuracy_per_sample=per_sample.tolist(),
        defended_accuracy_sample_std=float(per_sample.std(ddof=1)) if len(per_sample) > 1 else 0.0,
        defended_accuracy_sample_range=[float(per_sample.min()), float(per_sample.max())],
        defended_accuracy_majority=float((correct.mean(1) > 0.5).mean()),
        caption_names_true_rate=float(np.mean([r["caption_names_true"] for r in recs])),
        final_loss_mean=float(np.mean([r["final_loss"] for r in recs if r["final_loss"] is not None] or [np.nan])),
        seconds_attack=attack_s, seconds_eval=sum(b["eval_seconds"] for b in batches),
        seconds_per_image=attack_s / max(n, 1),
        seconds_per_image_step_sample=attack_s / max(n * args.steps * evals, 1),
        images=recs)
    if args.mode == "caption":
        report["caption_names_target_rate"] = float(np.mean([r["caption_names_target"] for r in recs]))
    return report


# Checks ---------------------------------------------------------------------------------------------
def check_reference(th, x, seeds):
    """Max |DiffPurifier − purify_ref's purify_batch| (the pack's PixelPurifier or LatentPurifier) for the same
    seeds and the same batch (batch composition changes float rounding, which a small random model can
    amplify far beyond it), at eta 0 and 0.5; and the grad-enabled (checkpointed) run against the no-grad one."""
    caps, cond = th.caption_states(x)
    results = {}
    for eta in (th.settings.eta, 0.5):
        s = copy.copy(th.settings)
        s.eta = eta
        with torch.no_grad():
            mine = th.purifier.purify(x, cond, th.purifier.draw_noise(seeds, s, th.purifier.noise_shape(x.shape[2:])), s)
        ref = torch.cat(th.purifier.ref.purify_batch([xi.unsqueeze(0).cpu() for xi in x], caps, s.strength, s.steps, s.guidance,
                                                      seeds, ensemble=s.ensemble, eta=s.eta))
        results[f"eta={eta}"] = float((mine.cpu() - ref).abs().max())
    xg = x.clone().requires_grad_(True)
    with_grad = th.purifier.purify(xg, cond, th.noise(seeds, x), th.settings, th.uncond)
    with torch.no_grad():
        plain = th.purifier.purify(x, cond, th.noise(seeds, x), th.settings, th.uncond)
    results["grad-enabled vs no-grad"] = float((with_grad.detach() - plain).abs().max())
    return caps, results


def finite_difference(f, x, direction, h):
    with torch.no_grad():
        return float((f(x + h * direction) - f(x - h * direction)) / (2 * h))


def differences(f, x, direction, h, f0):
    """(central, forward, backward) differences of f at x along direction; f0 = f(x)."""
    with torch.no_grad():
        fp, fm = float(f(x + h * direction)), float(f(x - h * direction))
    return (fp - fm) / (2 * h), (fp - f0) / h, (f0 - fm) / h


def rel_err(a, b, floor):
    return abs(a - b) / max(abs(a), abs(b), floor)


def pixel_verdict(ad, central, fwd, bwd, floor, tol=0.05):
    """PASS when autograd matches the central difference; else, when the one-sided differences disagree
    (a kink within h: a ReLU of the classifier or a clamp switching, which the amplification of a small
    random model brings within 1e-6 of a pixel), "KINK" when autograd lies between them (it is one of the
    one-sided derivatives there); FAIL otherwise."""
    if rel_err(ad, central, floor) < tol:
        return "PASS"
    lo, hi = min(fwd, bwd), max(fwd, bwd)
    slack = tol * max(abs(lo), abs(hi), floor)
    return "KINK" if rel_err(fwd, bwd, floor) > tol and lo - slack <= ad <= hi + slack else "FAIL"


def check_gradient(th, x, y, seed, h, n_top=3, n_random=3):
    """Autograd vs central differences of the attack loss for one image in float64 (fixed noise, caption)."""
    _, cond32 = th.caption_states(x)
    g32 = loss_grad(th, x, y, cond32, seed)
    th.purifier.to_dtype(torch.float64)
    th.net.double()
    x64, cond = x.double(), cond32.double()
    uncond32, th.uncond = th.uncond, th.uncond.double()
    f = lambda z: th.loss(z, y, cond, [seed])[0].sum()
    g = loss_grad(th, x64, y, cond, seed)
    flat = g.abs().flatten()
    gen = torch.Generator().manual_seed(seed)
    picks = flat.topk(n_top).indices.tolist() + torch.randint(0, flat.numel(), (n_random,), generator=gen).tolist()
    floor = 1e-3 * float(flat.max())
    with torch.no_grad():
        f0 = float(f(x64))
    rows = []
    for p in picks:
        e = torch.zeros_like(x64).flatten()
        e[p] = 1
        fd, fwd, bwd = differences(f, x64, e.view_as(x64), h, f0)
        ad = float(g.flatten()[p])
        rows.append(dict(pixel=p, autograd=ad, finite_diff=fd, forward=fwd, backward=bwd, rel_err=rel_err(ad, fd, floor),
                         verdict=pixel_verdict(ad, fd, fwd, bwd, floor)))
    d = (torch.rand(x64.shape, generator=gen, dtype=torch.float64) * 2 - 1).to(x64.device)
    fd = finite_difference(f, x64, d, h)
    ad = float((g * d).sum())
    directional = dict(autograd=ad, finite_diff=fd, rel_err=rel_err(ad, fd, 0.0))
    g32d = g32.double()
    agree = dict(cosine=float((g32d * g).sum() / (g32d.norm() * g.norm())),
                 sign_agreement=float((g32d.sign() == g.sign()).double().mean()),
                 max_rel_err=float((g32d - g).abs().max() / g.abs().max()))
    th.purifier.to_dtype(torch.float32)
    th.net.float()
    th.uncond = uncond32
    return rows, directional, agree


def loss_grad(th, x, y, cond, seed):
    xg = x.clone().requires_grad_(True)
    g, = torch.autograd.grad(th.loss(xg, y, cond, [seed])[0].sum(), xg)
    return g


def check_caption(th, x, y, args, h):
    """Processor vs differentiable preprocessing, and the caption loss's directional derivative (float32)."""
    ip = th.captioner.processor_pixel_values(x)
    q = (x * 255).round() / 255
    pre = float((th.captioner.pixel_values(q) - ip).abs().max())
    target = caption_targets(th, y, args)[2]
    f = lambda z: th.captioner.teacher_forced_loss(th.defence_input(z), *target).sum()
    g, _, _ = caption_gradient(th, x, target)
    d = (torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(x.device)
    fd, ad = finite_difference(f, x, d, h), float((g * d).sum())
    return pre, dict(autograd=ad, finite_diff=fd, rel_err=rel_err(ad, fd, 0.0))


def run_checks(th, args, data):
    images, labels, _ = data
    idx = cifar.even_indices(args.n, len(images), args.offset)[:2]
    x, y = to_tensor(images[idx]).to(th.device), torch.from_numpy(labels[idx]).to(th.device)
    ok = True
    caps, ref = check_reference(th, x, [args.seed, args.seed + 1])
    print(f"captions: {caps}")
    for k, v in ref.items():
        good = v < 1e-5
        ok &= good
        print(f"reference equality ({k}): max |diff| = {v:.3e} {'PASS' if good else 'FAIL'} (tolerance 1e-5)")
    rows, directional, agree = check_gradient(th, x[:1], y[:1], args.seed, args.check_h)
    print(f"gradient of the attack loss, float64, central differences h = {args.check_h:g} (3 largest |grad| pixels, 3 random):")
    for r in rows:
        ok &= r["verdict"] != "FAIL"
        kink = f" (one-sided {r['backward']:+.6e} / {r['forward']:+.6e})" if r["verdict"] != "PASS" else ""
        print(f"  pixel {r['pixel']:5d}: autograd {r['autograd']:+.6e} finite diff {r['finite_diff']:+.6e} "
              f"rel err {r['rel_err']:.2e} {r['verdict']}{kink}")
    ok &= sum(r["verdict"] == "PASS" for r in rows) >= len(rows) // 2  # kinks may excuse a few pixels, not most
    good = directional["rel_err"] < 0.05
    ok &= good
    print(f"  random direction: autograd {directional['autograd']:+.6e} finite diff {directional['finite_diff']:+.6e} "
          f"rel err {directional['rel_err']:.2e} {'PASS' if good else 'FAIL'}")
    print(f"float32 vs float64 gradient: cosine {agree['cosine']:.6f}, sign agreement {agree['sign_agreement']:.4f}, "
          f"max |diff| / max |grad| {agree['max_rel_err']:.2e}")
    pre, cap = check_caption(th, x, y, args, 1e-3)
    bound = th.captioner.pixel_values_bound(x.shape[2:]) + 1e-5  # Pillow's 8-bit rounding, when it resizes
    good = pre < bound and cap["rel_err"] < 0.05
    ok &= good
    print(f"caption: preprocessing max |diff| {pre:.2e} (bound {bound:.2e}); teacher-forced loss directional derivative autograd "
          f"{cap['autograd']:+.6e} finite diff {cap['finite_diff']:+.6e} rel err {cap['rel_err']:.2e} {'PASS' if good else 'FAIL'}")
    print("ALL CHECKS PASS" if ok else "SOME CHECKS FAILED")
    return ok


# Main -----------------------------------------------------------------------------------------------
def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["full", "deterministic", "caption"], default="full")
    p.add_argument("--n", type=int, default=200, help="images, evenly spaced over test-dev (classes balanced)")
    p.add_argument("--offset", type=int, default=0, help="shift of the evenly spaced indices")
    p.add_argument("--eps", type=float, default=8.0, help="L-inf radius in /255 units")
    p.add_argument("--steps", type=int, default=100, help="PGD steps")
    p.add_argument("--step-size", type=float, default=1.0, help="PGD step in /255 units")
    p.add_argument("--eot", type=int, default=10, help="purification samples per step (full mode)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--eval-samples", type=int, default=10, help="fresh purifications per saved image for the defended accuracy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pack", default=str(locations.default_pack()))
    p.add_argument("--classifier", help="classifier folder to attack and evaluate instead of the pack's")
    p.add_argument("--strength", type=float, help="override pack.json purification strength")
    p.add_argument("--guidance", type=float, help="override pack.json guidance")
    p.add_argument("--ensemble", type=int, help="override pack.json ensemble K")
    p.add_argument("--steps-ddim", type=int, help="override pack.json DDIM steps")
    p.add_argument("--target-class", type=int, help="caption mode: the class to name (default (label + 1) %% 10)")
    p.add_argument("--target-template", default="a photo of a {name}", help="caption mode: the target caption")
    p.add_argument("--out", help="output folder (default <eval dir>/pgd-eot-<mode>-<n>)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-checkpoint", action="store_true", help="keep every UNet call's activations (more memory, faster)")
    p.add_argument("--check-grad", action="store_true", help="run the gradient and reference checks only")
    p.add_argument("--check-h", type=float, default=1e-6,
                   help="--check-grad's float64 finite-difference step (small: a small random model is far from "
                        "linear at 1e-3)")
    args = p.parse_args()
    if args.mode == "deterministic":
        args.eot = 1
    return args


def main():
    args = parse_args()
    trainloop.setup_threads()
    th = Threat(args)
    data = cifar.load("test")
    if args.check_grad:
        raise SystemExit(0 if run_checks(th, args, data) else 1)
    images, labels, names = data
    out = Path(args.out) if args.out else locations.eval_dir() / f"pgd-eot-{args.mode}-{args.n}"
    out.mkdir(parents=True, exist_ok=True)
    config = dict(vars(args), pack=str(args.pack), classifier=str(th.classifier_path), purification=th.settings.as_dict())
    progress = open_progress(out, config)
    write_json(out / "progress.json", progress)  # records the configuration before any state.pt exists
    idx = cifar.even_indices(args.n, len(images), args.offset)
    print(f"{args.mode} PGD-EOT on {len(idx)} images, purification {th.settings.as_dict()}, writing {out}", flush=True)
    for bstart in range(0, len(idx), args.batch):
        if str(bstart) in progress["batches"]:
            continue
        print(f"batch {bstart}–{min(bstart + args.batch, len(idx)) - 1}", flush=True)
        process_batch(th, args, out, progress, bstart, idx[bstart:bstart + args.batch], data)
    report = summarise(progress, args, th.settings)
    write_json(out / "attack.json", report)
    print(json.dumps({k: v for k, v in report.items() if k not in ("images", "config")}, indent=1))


if __name__ == "__main__":
    main()

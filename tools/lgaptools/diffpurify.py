"""Differentiable LGAP purification and captioning for white-box attacks (tools/attack/pgd_eot.py).

`DiffPurifier` repeats purify_ref.PixelPurifier's computation with gradients kept: optional resize,
2x − 1, add_noise at the first timestep of img2img's schedule (the noise a constant drawn from a
per-image torch.Generator in the reference's order), every UNet call of the DDIM loop with both
classifier-free-guidance branches, the DDIM update written out here (no scheduler.step, whose output is
the same but which is not meant to be differentiated), (x/2 + 0.5).clamp(0, 1) and the resize back.
With the same seed it equals PixelPurifier.purify to float rounding (pgd_eot.py --check-grad measures
it). Each UNet call can be checkpointed (recomputed in the backward pass) so memory stays at about one
UNet call's activations whatever the number of DDIM steps.

`BlipCaptioner` is the pack's captioner as the defence runs it (8-bit image → BlipProcessor → generate
with pack.json's captioning settings) plus a differentiable teacher-forced loss for caption attacks.
`mentioned` is JobProcessing's ConsistencyCheck.mentioned (whole-word class names and synonyms).
"""
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.checkpoint import checkpoint

from . import purify_ref


@dataclass
class Settings:
    """One purification setting: pack.json "purification" with optional overrides."""
    strength: float
    steps: int
    guidance: float
    ensemble: int
    eta: float = 0.0

    @classmethod
    def from_manifest(cls, manifest, **overrides):
        d = manifest["purification"]
        s = cls(strength=float(d["strength"]), steps=int(d["steps"]), guidance=float(d["guidance"]),
                ensemble=int(d.get("ensemble", 1)), eta=float(d.get("eta", 0.0)))
        for k, v in overrides.items():
            if v is not None:
                setattr(s, k, type(getattr(s, k))(v))
        return s

    def as_dict(self):
        return asdict(self)


class DiffPurifier:
    """PixelPurifier with gradients: purify(x, states, noise) for a batch of images, K copies each."""

    def __init__(self, pack, manifest, checkpointing=True, device="cpu"):
        self.ref = purify_ref.PixelPurifier(pack, model_size=tuple(manifest["image_size"]),
                                            resize_mode=manifest.get("resize", "bicubic"))
        cfg = self.ref.scheduler.config
        if cfg.prediction_type != "epsilon" or cfg.thresholding:
            raise SystemExit(f"DiffPurifier supports epsilon prediction without thresholding, not {cfg.prediction_type}")
        self.device = torch.device(device)
        self.ref.unet.to(self.device)
        for q in self.ref.unet.parameters():
            q.requires_grad_(False)
        self.unet = self.ref.unet
        self.checkpointing = checkpointing
        self.dtype = torch.float32

    def to_dtype(self, dtype):
        """Runs the UNet (and the schedule) in `dtype`; float64 is for finite-difference checks."""
        self.unet.to(dtype)
        self.dtype = dtype
        return self

    # Schedule -------------------------------------------------------------------------------------
    def schedule(self, s):
        """[(t, ᾱ_t, ᾱ_prev, σ_t)] of the img2img DDIM loop: the timesteps diffusers runs for strength s."""
        sched = self.ref.scheduler
        sched.set_timesteps(s.steps)
        t_start = max(s.steps - min(int(s.steps * s.strength), s.steps), 0)
        ac = sched.alphas_cumprod.to(self.dtype)
        final = torch.as_tensor(sched.final_alpha_cumprod).to(self.dtype)
        stride = sched.config.num_train_timesteps // sched.num_inference_steps
        plan = []
        for t in sched.timesteps[t_start:]:
            prev = int(t) - stride
            a_t = ac[t]
            a_prev = ac[prev] if prev >= 0 else final
            variance = ((1 - a_prev) / (1 - a_t)) * (1 - a_t / a_prev)  # DDIMScheduler._get_variance
            plan.append((t, a_t, a_prev, s.eta * variance ** 0.5))
        return plan

    # Randomness -----------------------------------------------------------------------------------
    def draw_noise(self, seeds, s, shape):
        """Per image, the reference's draws from torch.Generator().manual_seed(seed): the start noise
        [K, *shape] then, only when eta > 0, one [K, *shape] per DDIM step. Returns (start [B·K, ...],
        per-step list or None), image-major like the reference's batches."""
        n_steps = len(self.schedule(s))
        starts, steps = [], []
        for seed in seeds:
            g = torch.Generator().manual_seed(int(seed))
            starts.append(torch.randn((s.ensemble,) + tuple(shape), generator=g))
            if s.eta > 0:
                steps.append([torch.randn((s.ensemble,) + tuple(shape), generator=g) for _ in range(n_steps)])
        start = torch.cat(starts).to(self.device, self.dtype)
        if s.eta <= 0:
            return start, None
        per_step = [torch.cat([st[i] for st in steps]).to(self.device, self.dtype) for i in range(n_steps)]
        return start, per_step

    def noise_shape(self, image_hw):
        return (3,) + tuple(self.ref.model_size or image_hw)

    # Text -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, captions):
        """CLIP text states [B, 77, D] (constants for the gradient); "" gives the unconditional states."""
        return self.ref.encode(list(captions)).to(self.device, self.dtype)

    # The purification -----------------------------------------------------------------------------
    def _resize(self, x, size):
        if tuple(x.shape[2:]) == tuple(size):
            return x
        return F.interpolate(x, size=tuple(size), mode=self.ref.resize_mode, align_corners=False)

    def _guided_eps(self, latents, t, context, guidance):
        """One UNet call (both CFG branches in one batch, unconditional first) → guided ε."""
        cfg = guidance > 1
        inp = torch.cat([latents] * 2) if cfg else latents
        eps = self.unet(inp, t, encoder_hidden_states=context).sample
        if not cfg:
            return eps
        u, c = eps.chunk(2)
        return u + guidance * (c - u)

    @staticmethod
    def ddim_step(eps, latents, a_t, a_prev, sigma, clip_range=None, noise=None):
        """DDIMScheduler.step for ε-prediction, written out so autograd sees it:
        x0 = (x − √(1−ᾱ_t)·ε)/√ᾱ_t; x_prev = √ᾱ_prev·x0 + √(1−ᾱ_prev−σ²)·ε (+ σ·z when eta > 0)."""
        x0 = (latents - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
        if clip_range is not None:
            x0 = x0.clamp(-clip_range, clip_range)
        prev = a_prev ** 0.5 * x0 + (1 - a_prev - sigma ** 2) ** 0.5 * eps
        return prev + sigma * noise if noise is not None else prev

    def purify(self, x, cond, noise, s, uncond=None):
        """x: [B, 3, H, W] in [0, 1] (may require grad); cond: [B, 77, D] caption states; noise: draw_noise's
        pair. Returns [B·K, 3, H, W] in [0, 1], K = s.ensemble consecutive copies per image."""
        start_noise, step_noise = noise
        k = s.ensemble
        h, w = x.shape[2:]
        plan = self.schedule(s)
        z = 2.0 * self._resize(x, self.ref.model_size or (h, w)) - 1.0
        z = z.repeat_interleave(k, dim=0)
        _, a0, _, _ = plan[0]
        latents = a0 ** 0.5 * z + (1 - a0) ** 0.5 * start_noise  # scheduler.add_noise at the first timestep
        cond = cond.repeat_interleave(k, dim=0)
        if s.guidance > 1:
            uncond = self.encode([""]) if uncond is None else uncond
            context = torch.cat([uncond.expand(len(cond), -1, -1), cond])
        else:
            context = cond
        cfg = self.ref.scheduler.config
        clip = cfg.clip_sample_range if cfg.clip_sample else None
        for i, (t, a_t, a_prev, sigma) in enumerate(plan):
            if self.checkpointing and latents.requires_grad:
                eps = checkpoint(self._guided_eps, latents, t, context, s.guidance, use_reentrant=False)
            else:
                eps = self._guided_eps(latents, t, context, s.guidance)
            latents = self.ddim_step(eps, latents, a_t, a_prev, sigma, clip, None if step_noise is None else step_noise[i])
        out = (latents / 2 + 0.5).clamp(0, 1)
        if tuple(out.shape[2:]) != (h, w):
            out = self._resize(out, (h, w)).clamp(0, 1)
        return out


def ensemble_log_probs(net, purified, k):
    """EnsembleVote in log space: log of the mean of the classifier's softmax probabilities over each
    image's K copies → [B, C], as logsumexp_k log_softmax − log K. exp() of it is EnsembleVote's mean;
    computing log(mean(softmax)) directly would round p_y to exactly 1 for confident images in float32
    and lose the gradient (it would be exactly 0), which this form keeps."""
    logp = F.log_softmax(net(purified), dim=1)
    return torch.logsumexp(logp.view(-1, k, logp.shape[1]), dim=1) - math.log(k)


def ensemble_loss(mean_log_probs, y):
    """Per-image cross-entropy of log(mean probabilities) against the true label → [B]."""
    return F.nll_loss(mean_log_probs, y, reduction="none")


def mentioned(caption, classes, synonyms):
    """Indices of the classes a caption names: JobProcessing's ConsistencyCheck.mentioned (lowercase, split
    on anything but letters, digits and apostrophes, whole-word match of the class name or a synonym)."""
    words = [w for w in re.split(r"[^\w']|_", caption.lower()) if w]
    text = " " + " ".join(words) + " "
    return [i for i, c in enumerate(classes)
            if any(f" {name.lower()} " in text for name in list(synonyms.get(c, [])) + [c])]


class BlipCaptioner:
    """The pack's BLIP captioner: captions as the defence makes them, and a teacher-forced loss."""

    def __init__(self, pack, manifest, device="cpu"):
        from transformers import BlipForConditionalGeneration, BlipProcessor
        pack = Path(pack)
        self.settings = manifest["captioning"]
        self.device = torch.device(device)
        self.processor = BlipProcessor.from_pretrained(pack / "captioner")
        self.model = BlipForConditionalGeneration.from_pretrained(pack / "captioner", torch_dtype=torch.float32)
        self.model.eval().to(self.device)
        for q in self.model.parameters():
            q.requires_grad_(False)
        ip = self.processor.image_processor
        self.size = (ip.size["height"], ip.size["width"])
        self.mean = torch.tensor(ip.image_mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(ip.image_std, device=self.device).view(1, 3, 1, 1)

    @staticmethod
    def to_pil(x):
        """[B, 3, H, W] in [0, 1] → 8-bit PIL images (what the defence receives)."""
        q = (x.detach().cpu() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return [Image.fromarray(np.ascontiguousarray(a)) for a in q]

    @torch.no_grad()
    def captions(self, x):
        """Captions of the 8-bit quantised images, beam settings of pack.json (as bpda_eot's Defence)."""
        c = self.settings
        px = self.processor(images=self.to_pil(x), return_tensors="pt").pixel_values.to(self.device)
        out = self.model.generate(pixel_values=px, num_beams=c["num_beams"], min_length=c["min_length"],
                                  max_length=c["max_length"], synced_gpus=False)  # False: skips torch.distributed, which
        # Debian's torch 1.13 cannot import under Python 3.11
        return [self.processor.decode(o, skip_special_tokens=True) for o in out]

    def pixel_values(self, x):
        """Differentiable BlipImageProcessor: resize (bicubic; PIL's when sizes match is the identity),
        normalise. x in [0, 1] stands for the rescaled 8-bit image."""
        if tuple(x.shape[2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bicubic", align_corners=False)
        return (x - self.mean) / self.std

    def target_ids(self, texts, with_eos=False):
        """Token ids as the captioner was trained on them ([DEC] first) and the 0/1 mask of the positions
        the loss scores (the words, plus [SEP] when with_eos)."""
        tok = self.processor.tokenizer
        enc = tok(list(texts), padding=True, return_tensors="pt")
        ids = enc.input_ids.clone()
        ids[:, 0] = self.model.config.text_config.bos_token_id
        scored = enc.attention_mask.clone()
        scored[:, 0] = 0
        if not with_eos:
            scored[ids == tok.sep_token_id] = 0
        return ids.to(self.device), enc.attention_mask.to(self.device), scored.to(self.device)

    def teacher_forced_loss(self, x, ids, mask, scored):
        """Per-image mean cross-entropy (no label smoothing) of the target tokens given the image → [B]."""
        logits = self.model(pixel_values=self.pixel_values(x), input_ids=ids, attention_mask=mask).logits
        ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
        w = scored[:, 1:].to(ce.dtype)
        return (ce * w).sum(1) / w.sum(1).clamp_min(1)


def load_manifest(pack):
    return json.loads((Path(pack) / "pack.json").read_text())

"""Differentiable LGAP purification for white-box attacks (tools/attack/pgd_eot.py).

`DiffPurifier` repeats purify_ref's computation (PixelPurifier or LatentPurifier, whichever the pack
needs) with gradients kept: optional resize, 2x − 1, for latent packs the VAE encoder and the posterior
sample mean + std·z (z a constant), × scaling_factor, add_noise at the start timestep of img2img's
schedule (pack.json noise_schedule "diffusers" or "compvis"), every UNet call of the DDIM loop with both
classifier-free-guidance branches, the DDIM update written out here (no scheduler.step, whose output is
the same but which is not meant to be differentiated), for latent packs the VAE decoder, (x/2 + 0.5)
.clamp(0, 1) and the resize back. The random draws are constants drawn from a per-image torch.Generator
in the reference's order (posterior sample, start noise, then per-step variance noise when eta > 0), so
with the same seed it equals purify_ref's purify to float rounding (pgd_eot.py --check-grad and
tools/tests/test_latent_tools.py measure it). Each UNet call can be checkpointed (recomputed in the
backward pass) so memory stays at about one UNet call's activations whatever the number of DDIM steps.

The captioner the attacks use is lgaptools/captioner_ref.BlipCaptioner. `mentioned` is
JobProcessing's ConsistencyCheck.mentioned (whole-word class names and synonyms).
"""
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
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


class Noise(NamedTuple):
    """One purification's random draws for a batch, image-major: posterior [B, C, h, w] (latent packs;
    None for pixel packs), start [B·K, C, h, w], per-step list of [B·K, C, h, w] (None when eta = 0)."""
    start: torch.Tensor
    steps: Optional[list]
    posterior: Optional[torch.Tensor] = None


class DiffPurifier:
    """purify_ref's purifier with gradients: purify(x, states, noise) for a batch of images, K copies each."""

    def __init__(self, pack, manifest, checkpointing=True, device="cpu"):
        self.ref = purify_ref.load_purifier(pack, manifest)
        cfg = self.ref.scheduler.config
        if cfg.prediction_type != "epsilon" or cfg.thresholding:
            raise SystemExit(f"DiffPurifier supports epsilon prediction without thresholding, not {cfg.prediction_type}")
        self.device = torch.device(device)
        self.vae = getattr(self.ref, "vae", None)
        for m in (self.ref.unet, self.vae):
            if m is not None:
                m.to(self.device)
                for q in m.parameters():
                    q.requires_grad_(False)
        self.unet = self.ref.unet
        self.checkpointing = checkpointing
        self.dtype = torch.float32

    def to_dtype(self, dtype):
        """Runs the UNet, the VAE and the schedule in `dtype`; float64 is for finite-difference checks."""
        self.unet.to(dtype)
        if self.vae is not None:
            self.vae.to(dtype)
        self.dtype = dtype
        return self

    # Schedule -------------------------------------------------------------------------------------
    def schedule(self, s):
        """(ᾱ at the start-noise timestep, [(t, ᾱ_t, ᾱ_prev, σ_t)] of the img2img DDIM loop for strength s)."""
        sched = self.ref.scheduler
        timesteps, start = purify_ref.img2img_timesteps(sched, s.steps, s.strength, self.ref.noise_schedule)
        ac = sched.alphas_cumprod.to(self.dtype)
        final = torch.as_tensor(sched.final_alpha_cumprod).to(self.dtype)
        stride = sched.config.num_train_timesteps // sched.num_inference_steps
        plan = []
        for t in timesteps:
            prev = int(t) - stride
            a_t = ac[t]
            a_prev = ac[prev] if prev >= 0 else final
            variance = ((1 - a_prev) / (1 - a_t)) * (1 - a_t / a_prev)  # DDIMScheduler._get_variance
            plan.append((t, a_t, a_prev, s.eta * variance ** 0.5))
        return ac[int(start)], plan

    # Randomness -----------------------------------------------------------------------------------
    def draw_noise(self, seeds, s, shape):
        """Per image, the reference's draws from torch.Generator().manual_seed(seed): for latent packs the
        posterior sample [1, *shape], then the start noise [K, *shape], then, only when eta > 0, one
        [K, *shape] per DDIM step. Returns a Noise, image-major like the reference's batches."""
        n_steps = len(self.schedule(s)[1])
        posts, starts, steps = [], [], []
        for seed in seeds:
            g = torch.Generator().manual_seed(int(seed))
            if self.vae is not None:
                posts.append(torch.randn((1,) + tuple(shape), generator=g))
            starts.append(torch.randn((s.ensemble,) + tuple(shape), generator=g))
            if s.eta > 0:
                steps.append([torch.randn((s.ensemble,) + tuple(shape), generator=g) for _ in range(n_steps)])
        move = lambda t: t.to(self.device, self.dtype)
        per_step = [move(torch.cat([st[i] for st in steps])) for i in range(n_steps)] if s.eta > 0 else None
        return Noise(move(torch.cat(starts)), per_step, move(torch.cat(posts)) if posts else None)

    def noise_shape(self, image_hw):
        """[C, h, w] of the diffusion space for images of size image_hw."""
        return self.ref.latent_shape(image_hw)

    # Text -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, captions):
        """CLIP text states [B, 77, D] (constants for the gradient); "" gives the unconditional states.
        One caption at a time, as the reference and lgap encode them (the same float rounding)."""
        return torch.cat([self.ref.encode([c]) for c in captions]).to(self.device, self.dtype)

    # The purification -----------------------------------------------------------------------------
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

    def initial(self, z, posterior_noise):
        """[B, 3, mh, mw] in [−1, 1] → the clean start: z itself, or the VAE posterior sample × scaling."""
        if self.vae is None:
            return z
        out = []
        for i in range(len(z)):  # one image at a time, as the reference encodes them (same float rounding)
            post = self.vae.encode(z[i:i + 1]).latent_dist
            out.append(self.ref.scaling_factor * (post.mean + post.std * posterior_noise[i:i + 1]))
        return torch.cat(out)

    def decode(self, latents):
        return latents if self.vae is None else self.vae.decode(latents / self.ref.scaling_factor).sample

    def purify(self, x, cond, noise, s, uncond=None):
        """x: [B, 3, H, W] in [0, 1] (may require grad); cond: [B, 77, D] caption states; noise: draw_noise's
        Noise. Returns [B·K, 3, H, W] in [0, 1], K = s.ensemble consecutive copies per image."""
        k = s.ensemble
        h, w = x.shape[2:]
        a_start, plan = self.schedule(s)
        z = self.initial(2.0 * self.ref.resize(x.contiguous(), self.ref.working_size((h, w))) - 1.0, noise.posterior)
        z = z.repeat_interleave(k, dim=0)
        latents = a_start ** 0.5 * z + (1 - a_start) ** 0.5 * noise.start  # scheduler.add_noise
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
            latents = self.ddim_step(eps, latents, a_t, a_prev, sigma, clip, None if noise.steps is None else noise.steps[i])
        out = (self.decode(latents) / 2 + 0.5).clamp(0, 1)
        if tuple(out.shape[2:]) != (h, w):
            out = self.ref.resize(out, (h, w)).clamp(0, 1)
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


def load_manifest(pack):
    return json.loads((Path(pack) / "pack.json").read_text())

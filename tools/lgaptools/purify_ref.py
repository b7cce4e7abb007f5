"""Reference LGAP purification in PyTorch with diffusers components: what the Swift purifier
(Sources/Models/Diffusion/DiffusionPurifier.swift) must match.

Both kinds of pack run diffusers' StableDiffusionImg2ImgPipeline's steps, written out here so several
images can share one denoising loop (as lgap batches them) and pixel-space packs (no VAE, e.g.
cifar10-mini), which have no diffusers pipeline, run the same code:

  image [0, 1] → F.interpolate to pack.json "image_size" with its "resize" mode (align_corners=False)
  → 2x − 1 → (`LatentPurifier`: VAE encode, ONE posterior sample mean + std·randn from the image's
  generator, × the VAE's scaling_factor) → repeated K times (the ensemble) → start noise randn([K, ...])
  from the same generator → scheduler.add_noise at the start timestep → the DDIM loop over
  img2img's timesteps (init_timestep = min(int(steps·strength), steps)) with classifier-free guidance
  against the empty caption (unconditional first; guidance ≤ 1: the caption alone); eta > 0 draws
  each step's variance noise [K, ...] from the image's generator → (VAE decode of latents / scaling)
  → (x/2 + 0.5).clamp(0, 1) → back to the input size with the same mode, clamp(0, 1).

Each image has its own torch.Generator().manual_seed(seed), so an image's result does not depend on its
batch, and for one image it equals StableDiffusionImg2ImgPipeline(image, prompt=caption,
num_images_per_prompt=K, generator=torch.Generator().manual_seed(seed)) (diffusers draws the posterior
sample, then the noise; tools/tests/test_latent_tools.py checks it).

pack.json "noise_schedule": "diffusers" (default, as above) or "compvis": CompVis' DDIMSampler.
stochastic_encode(t_enc) noises to the DDIM timestep one stride above the first one decode runs, so the
start noise is added at t_first + num_train_timesteps // steps (refused when that is ≥
num_train_timesteps); the loop is unchanged.

`load_purifier(pack)` picks `LatentPurifier` when the pack has vae/config.json, else `PixelPurifier`,
with the pack's image_size, resize and noise_schedule.
"""
import json
from pathlib import Path

import torch
import torch.nn.functional as F

NOISE_SCHEDULES = ("diffusers", "compvis")
RESIZE_MODES = ("bicubic", "bilinear")
DEFAULT_SCALING_FACTOR = 0.18215  # diffusers' AutoencoderKL default (SD 1.x)


def img2img_timesteps(scheduler, steps, strength, noise_schedule="diffusers"):
    """(the timesteps the DDIM loop runs, the timestep [1] the start noise is added at), after
    scheduler.set_timesteps(steps). diffusers' get_timesteps: the last min(int(steps·strength), steps)."""
    if noise_schedule not in NOISE_SCHEDULES:
        raise ValueError(f"noise_schedule must be one of {NOISE_SCHEDULES}, got {noise_schedule!r}")
    scheduler.set_timesteps(steps)
    init_timestep = min(int(steps * strength), steps)
    if init_timestep < 1:
        raise ValueError(f"strength {strength} × steps {steps} runs no denoising step")
    timesteps = scheduler.timesteps[max(steps - init_timestep, 0) * scheduler.order:]
    start = timesteps[:1]
    if noise_schedule == "compvis":
        train = scheduler.config.num_train_timesteps
        start = start + train // steps
        if int(start) >= train:
            raise ValueError(f"compvis noise schedule: start timestep {int(start)} (first {int(timesteps[0])} + stride "
                             f"{train // steps}) is not below num_train_timesteps {train}; lower strength")
    return timesteps, start


class Img2ImgPurifier:
    """The shared loop; subclasses say what the diffusion space is (`initial`, `decode`)."""

    def __init__(self, pack, model_size=None, resize_mode="bicubic", noise_schedule="diffusers"):
        from diffusers import DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize_mode!r}")
        if noise_schedule not in NOISE_SCHEDULES:
            raise ValueError(f"noise_schedule must be one of {NOISE_SCHEDULES}, got {noise_schedule!r}")
        pack = Path(pack)
        self.tokenizer = CLIPTokenizer.from_pretrained(pack / "tokenizer")
        self.text_encoder = CLIPTextModel.from_pretrained(pack / "text_encoder", torch_dtype=torch.float32).eval()
        self.unet = UNet2DConditionModel.from_pretrained(pack / "unet", torch_dtype=torch.float32).eval()
        self.scheduler = DDIMScheduler.from_pretrained(pack / "scheduler")
        self.model_size = tuple(model_size) if model_size else None
        self.resize_mode = resize_mode
        self.noise_schedule = noise_schedule

    # The diffusion space (subclasses) ------------------------------------------------------------
    def initial(self, x, generator):
        """x: [1, 3, mh, mw] in [−1, 1] → the clean start [1, C, h, w] (drawing from `generator` if needed)."""
        raise NotImplementedError

    def decode(self, latents):
        """[N, C, h, w] → images [N, 3, mh, mw] in about [−1, 1]."""
        raise NotImplementedError

    def working_size(self, hw):
        return self.model_size or tuple(hw)

    # Helpers -------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, captions):
        ids = self.tokenizer(captions, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        return self.text_encoder(ids)[0]

    def resize(self, x, size):
        """F.interpolate to `size` with the pack's mode (no clamp); the identity when the size matches."""
        if tuple(x.shape[2:]) == tuple(size):
            return x
        return F.interpolate(x, size=tuple(size), mode=self.resize_mode, align_corners=False)

    @torch.no_grad()
    def image(self, latents):
        """Latents → images in [0, 1] at the working size (e.g. to look at the noised start)."""
        return (self.decode(latents) / 2 + 0.5).clamp(0, 1)

    # Purification --------------------------------------------------------------------------------
    @torch.no_grad()
    def purify(self, image, caption, strength, steps, guidance, seed, ensemble=1, eta=0.0, return_trace=False):
        """image: [1, 3, H, W] in [0, 1] → [K, 3, H, W] in [0, 1] (and the latents before and after
        every step with return_trace)."""
        out = self.purify_batch([image], [caption], strength, steps, guidance, [seed], ensemble, eta, return_trace)
        return (out[0][0], out[1]) if return_trace else out[0]

    @torch.no_grad()
    def purify_batch(self, images, captions, strength, steps, guidance, seeds, ensemble=1, eta=0.0, return_trace=False):
        """Several images in one denoising loop, as lgap's batched purifier runs them: each image has
        its own generator (its seed) drawn in the single-image order, so each result equals
        purify(image, caption, ..., seed) alone. images: list of [1, 3, H, W] of one size → list of
        [K, 3, H, W] (with the trace of latents [B·K, ...] when return_trace)."""
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        h, w = images[0].shape[2:]
        size = self.working_size((h, w))
        timesteps, start_t = img2img_timesteps(self.scheduler, steps, strength, self.noise_schedule)
        starts = []
        for x, g in zip(images, gens):
            # contiguous: a channels-last input (a permuted HWC array) would pick other convolution kernels,
            # whose float rounding a small model can amplify to ~1e-4
            z = self.initial(2.0 * self.resize(x.contiguous(), size) - 1.0, g)
            z = torch.cat([z] * ensemble, dim=0)
            noise = torch.randn(z.shape, generator=g)
            starts.append(self.scheduler.add_noise(z, noise, start_t.repeat(ensemble)))
        latents = torch.cat(starts)
        n = latents.shape[0]
        cfg = guidance > 1
        cond = torch.cat([self.encode([c]).repeat(ensemble, 1, 1) for c in captions])
        context = torch.cat([self.encode([""]).repeat(n, 1, 1), cond]) if cfg else cond
        trace = [latents.clone()]
        for t in timesteps:
            inp = torch.cat([latents] * 2) if cfg else latents
            eps = self.unet(inp, t, encoder_hidden_states=context).sample
            if cfg:
                u, c = eps.chunk(2)
                eps = u + guidance * (c - u)
            variance = None
            if eta > 0:
                variance = torch.cat([torch.randn((ensemble,) + tuple(latents.shape[1:]), generator=g) for g in gens])
            latents = self.scheduler.step(eps, t, latents, eta=eta, variance_noise=variance).prev_sample
            if return_trace:
                trace.append(latents.clone())
        out = (self.decode(latents) / 2 + 0.5).clamp(0, 1)
        if tuple(out.shape[2:]) != (h, w):
            out = self.resize(out, (h, w)).clamp(0, 1)
        outs = list(out.split(ensemble))
        return (outs, trace) if return_trace else outs


class PixelPurifier(Img2ImgPurifier):
    """A pixel-space pack: the image in [−1, 1] is the "latent"."""

    def initial(self, x, generator):
        return x

    def decode(self, latents):
        return latents

    def latent_shape(self, hw):
        """[C, h, w] of the diffusion space for an input of size hw."""
        return (3,) + tuple(self.working_size(hw))


class LatentPurifier(Img2ImgPurifier):
    """A latent (Stable-Diffusion-style) pack: VAE encode / decode around the loop."""

    def __init__(self, pack, model_size=None, resize_mode="bicubic", noise_schedule="diffusers"):
        from diffusers import AutoencoderKL
        super().__init__(pack, model_size, resize_mode, noise_schedule)
        self.vae = AutoencoderKL.from_pretrained(Path(pack) / "vae", torch_dtype=torch.float32).eval()
        self.scaling_factor = float(getattr(self.vae.config, "scaling_factor", None) or DEFAULT_SCALING_FACTOR)
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)

    def working_size(self, hw):
        size = super().working_size(hw)
        if size[0] % self.vae_scale or size[1] % self.vae_scale:
            raise ValueError(f"working size {size[0]}×{size[1]} must be a multiple of the VAE's {self.vae_scale}")
        return size

    def latent_shape(self, hw):
        mh, mw = self.working_size(hw)
        return (self.vae.config.latent_channels, mh // self.vae_scale, mw // self.vae_scale)

    def initial(self, x, generator):
        posterior = self.vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        return self.scaling_factor * z

    def decode(self, latents):
        return self.vae.decode(latents / self.scaling_factor).sample


def load_manifest(pack):
    return json.loads((Path(pack) / "pack.json").read_text())


def is_latent(pack):
    return (Path(pack) / "vae" / "config.json").is_file()


def load_purifier(pack, manifest=None):
    """The pack's purifier: LatentPurifier when it has vae/config.json, else PixelPurifier, with
    pack.json's image_size, resize [bicubic] and noise_schedule [diffusers]."""
    manifest = load_manifest(pack) if manifest is None else manifest
    size = manifest.get("image_size")
    cls = LatentPurifier if is_latent(pack) else PixelPurifier
    return cls(pack, model_size=tuple(size) if size else None, resize_mode=manifest.get("resize", "bicubic"),
               noise_schedule=manifest.get("noise_schedule", "diffusers"))

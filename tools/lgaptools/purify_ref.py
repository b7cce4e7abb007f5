"""Reference LGAP purification in PyTorch with diffusers components.

Latent packs (with vae/) run diffusers' own StableDiffusionImg2ImgPipeline. Pixel-space packs (no
VAE, e.g. cifar10-mini) have no diffusers pipeline, so `purify_pixel` repeats the img2img pipeline's
steps with the image itself as the "latent": get_timesteps(strength), randn noise from the same
generator, scheduler.add_noise, the DDIM loop with classifier-free guidance against the empty
caption (guidance ≤ 1 skips it), (x/2 + 0.5).clamp(0, 1). An ensemble of K is one batch of K with
one generator, as num_images_per_prompt=K. The Swift purifier must match both.
"""
from pathlib import Path

import torch
import torch.nn.functional as F


class PixelPurifier:
    def __init__(self, pack, model_size=None, resize_mode="bicubic"):
        from diffusers import DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer
        pack = Path(pack)
        self.tokenizer = CLIPTokenizer.from_pretrained(pack / "tokenizer")
        self.text_encoder = CLIPTextModel.from_pretrained(pack / "text_encoder", torch_dtype=torch.float32).eval()
        self.unet = UNet2DConditionModel.from_pretrained(pack / "unet", torch_dtype=torch.float32).eval()
        self.scheduler = DDIMScheduler.from_pretrained(pack / "scheduler")
        self.model_size = model_size
        self.resize_mode = resize_mode

    @torch.no_grad()
    def encode(self, captions):
        ids = self.tokenizer(captions, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        return self.text_encoder(ids)[0]

    @torch.no_grad()
    def purify(self, image, caption, strength, steps, guidance, seed, ensemble=1, eta=0.0, return_trace=False):
        """image: [1, 3, H, W] in [0, 1] → [K, 3, H, W] in [0, 1]."""
        generator = torch.Generator().manual_seed(seed)
        h, w = image.shape[2:]
        x = image
        if self.model_size and tuple(self.model_size) != (h, w):
            x = F.interpolate(x, size=tuple(self.model_size), mode=self.resize_mode, align_corners=False)
        x = 2.0 * x - 1.0
        init = torch.cat([x] * ensemble, dim=0)
        self.scheduler.set_timesteps(steps)
        init_timestep = min(int(steps * strength), steps)
        t_start = max(steps - init_timestep, 0)
        timesteps = self.scheduler.timesteps[t_start:]
        noise = torch.randn(init.shape, generator=generator)
        latents = self.scheduler.add_noise(init, noise, timesteps[:1].repeat(ensemble))
        cfg = guidance > 1
        cond = self.encode([caption]).repeat(ensemble, 1, 1)
        context = torch.cat([self.encode([""]).repeat(ensemble, 1, 1), cond]) if cfg else cond
        trace = [latents.clone()]
        for t in timesteps:
            inp = torch.cat([latents] * 2) if cfg else latents
            eps = self.unet(inp, t, encoder_hidden_states=context).sample
            if cfg:
                u, c = eps.chunk(2)
                eps = u + guidance * (c - u)
            latents = self.scheduler.step(eps, t, latents, eta=eta, generator=generator).prev_sample
            trace.append(latents.clone())
        out = (latents / 2 + 0.5).clamp(0, 1)
        if self.model_size and tuple(self.model_size) != (h, w):
            out = F.interpolate(out, size=(h, w), mode=self.resize_mode, align_corners=False).clamp(0, 1)
        return (out, trace) if return_trace else out

    @torch.no_grad()
    def purify_batch(self, images, captions, strength, steps, guidance, seeds, ensemble=1, eta=0.0):
        """Several images in one denoising loop, as lgap's batched purifier runs them: each image has
        its own generator (its seed) drawn in the single-image order, so each result equals
        purify(image, caption, ..., seed) alone. images: list of [1, 3, H, W] of one size → list of
        [K, 3, H, W]."""
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        h, w = images[0].shape[2:]
        self.scheduler.set_timesteps(steps)
        init_timestep = min(int(steps * strength), steps)
        timesteps = self.scheduler.timesteps[max(steps - init_timestep, 0):]
        starts = []
        for x, g in zip(images, gens):
            if self.model_size and tuple(self.model_size) != (h, w):
                x = F.interpolate(x, size=tuple(self.model_size), mode=self.resize_mode, align_corners=False)
            init = torch.cat([2.0 * x - 1.0] * ensemble, dim=0)
            noise = torch.randn(init.shape, generator=g)
            starts.append(self.scheduler.add_noise(init, noise, timesteps[:1].repeat(ensemble)))
        latents = torch.cat(starts)
        n = latents.shape[0]
        cfg = guidance > 1
        cond = torch.cat([self.encode([c]).repeat(ensemble, 1, 1) for c in captions])
        context = torch.cat([self.encode([""]).repeat(n, 1, 1), cond]) if cfg else cond
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
        out = (latents / 2 + 0.5).clamp(0, 1)
        if self.model_size and tuple(self.model_size) != (h, w):
            out = F.interpolate(out, size=(h, w), mode=self.resize_mode, align_corners=False).clamp(0, 1)
        return list(out.split(ensemble))

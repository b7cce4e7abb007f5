#!/usr/bin/env python3
"""Goldens for the LGAP reference code's semantics that the sd15-blip template selects
(docs/packs/sd15-blip/README.md), on the existing tiny fixtures:

- Tests/Fixtures/diffusion/sd15-tiny/reference-semantics.safetensors: img2img purifications of the tiny
  SD 1.5 pipeline (sd15-tiny) under both noise schedules, the input resized to the model size and back
  with torch bilinear interpolation (align_corners False, no antialias: torchvision's Resize on tensors,
  which the reference applies 32 → 384 → 32).
  * "diffusers" cases come from diffusers' StableDiffusionImg2ImgPipeline itself.
  * "compvis" cases are written out here from CompVis' ldm DDIMSampler as the reference code runs it:
    a uniform DDIM table ddim_t = range(0, T, T // steps) + 1, stochastic_encode(z, t_enc) noising to
    ᾱ[ddim_t[t_enc]] with t_enc = int(strength · steps), then decode(t_start = t_enc) running indices
    t_enc − 1 … 0 with ᾱ_prev[0] = ᾱ[0] (p_sample_ddim at eta 0, classifier-free guidance against "").
    The random draws are lgap's (one torch.Generator(seed): the VAE posterior sample, then the start
    noise), since the reference's global CUDA generator cannot be reproduced anyway.
- Tests/Fixtures/blip/reference-semantics.json: captions of the tiny BLIP (Tests/Fixtures/blip/model)
  with the reference's prompt "a picture of " (4 tokens inside max_length 20, stripped afterwards) for
  the 16 fixture images, with the processor's own PIL resize and with the reference's float bilinear
  resize + CLIP normalisation; transformers' generate() with num_beams 3, min_length 5.

Run: OPENBLAS_NUM_THREADS=1 $LGAP_PYTHON tools/goldens/make_reference_semantics_goldens.py
"""
import json

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from lgaptools import locations  # noqa: E402

ROOT = locations.repo()
from diffusers import StableDiffusionImg2ImgPipeline  # noqa: E402
from transformers import BlipForConditionalGeneration, BlipProcessor  # noqa: E402

SD = ROOT / "Tests" / "Fixtures" / "diffusion" / "sd15-tiny"
BLIP = ROOT / "Tests" / "Fixtures" / "blip"
PROMPT = "a picture of "
torch.manual_seed(11)


def resize(x, size):
    return x if tuple(x.shape[2:]) == tuple(size) else F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


@torch.no_grad()
def compvis_img2img(pipe, image, caption, strength, steps, guidance, seed, k, size):
    """CompVis img2img (see the module docstring): image [1, 3, H, W] in [0, 1] → [K, 3, H, W]."""
    h, w = image.shape[2:]
    ac = pipe.scheduler.alphas_cumprod
    n_train = pipe.scheduler.config.num_train_timesteps
    ddim_t = np.arange(0, n_train, n_train // steps) + 1
    ddim_alphas = ac[ddim_t]
    ddim_alphas_prev = torch.cat([ac[:1], ac[ddim_t[:-1]]])
    t_enc = int(strength * steps)
    g = torch.Generator().manual_seed(seed)
    post = pipe.vae.encode(2 * resize(image, size) - 1).latent_dist
    z = (post.mean + post.std * torch.randn(post.mean.shape, generator=g)) * pipe.vae.config.scaling_factor
    z = z.repeat(k, 1, 1, 1)
    noise = torch.randn(z.shape, generator=g)
    x = ddim_alphas[t_enc].sqrt() * z + (1 - ddim_alphas[t_enc]).sqrt() * noise
    ids = pipe.tokenizer([caption, ""], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    cond, uncond = pipe.text_encoder(ids)[0].split(1)
    ctx = torch.cat([uncond.repeat(k, 1, 1), cond.repeat(k, 1, 1)])
    for index in reversed(range(t_enc)):
        e_u, e_c = pipe.unet(torch.cat([x, x]), int(ddim_t[index]), encoder_hidden_states=ctx).sample.chunk(2)
        e = e_u + guidance * (e_c - e_u)
        a_t, a_prev = ddim_alphas[index], ddim_alphas_prev[index]
        x0 = (x - (1 - a_t).sqrt() * e) / a_t.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * e
    out = (pipe.vae.decode(x / pipe.vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
    return resize(out, (h, w)).clamp(0, 1)


@torch.no_grad()
def diffusers_img2img(pipe, image, caption, strength, steps, guidance, seed, k, size):
    h, w = image.shape[2:]
    out = pipe(prompt=caption, image=resize(image, size), strength=strength, num_inference_steps=steps,
               guidance_scale=guidance, generator=torch.Generator().manual_seed(seed), num_images_per_prompt=k,
               output_type="pt").images
    return resize(out, (h, w)).clamp(0, 1)


def purification_goldens():
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(SD, torch_dtype=torch.float32, safety_checker=None,
                                                          feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    gold = {"image32": torch.rand(1, 3, 32, 32), "image64": torch.rand(1, 3, 64, 64)}
    cases = {
        # The paper's CIFAR setting, scaled: 32 px in, bilinear up to the model size, strength 0.5, guidance 5.
        "cifar": dict(image="image32", caption="a picture of a brown horse", strength=0.5, steps=10, guidance=5.0, seed=42, ensemble=1),
        # ImageNet's strength 0.1 over 50 steps: noised to t = 101, denoised from 81.
        "imagenet": dict(image="image64", caption="a red car on a road", strength=0.1, steps=50, guidance=5.0, seed=3, ensemble=2),
    }
    for name, c in cases.items():
        args = (gold[c["image"]], c["caption"], c["strength"], c["steps"], c["guidance"], c["seed"], c["ensemble"], (64, 64))
        gold[f"{name}.compvis"] = compvis_img2img(pipe, *args)
        gold[f"{name}.diffusers"] = diffusers_img2img(pipe, *args)
        d = (gold[f"{name}.compvis"] - gold[f"{name}.diffusers"]).abs().max().item()
        print(f"{name}: max |compvis − diffusers| = {d:.4f}")
    save_file({k: v.contiguous() for k, v in gold.items()}, str(SD / "reference-semantics.safetensors"),
              metadata={"cases": json.dumps(cases), "model_size": json.dumps([64, 64]), "resize": "bilinear"})


def strip_prompt(text):
    """The caption without the decoded prompt and the spaces after it (lgap's Caption.text; the reference
    slices len(prompt) characters off, the same whenever the first word does not continue "of")."""
    head = PROMPT.strip()
    return text[len(head):].lstrip(" ") if text.startswith(head) else text


@torch.no_grad()
def caption_goldens():
    processor = BlipProcessor.from_pretrained(BLIP / "model")
    model = BlipForConditionalGeneration.from_pretrained(BLIP / "model", torch_dtype=torch.float32).eval()
    ip = processor.image_processor
    size = (ip.size["height"], ip.size["width"])
    mean = torch.tensor(ip.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(ip.image_std).view(1, 3, 1, 1)
    files = sorted((BLIP / "images").glob("*.png"))
    images = [Image.open(f).convert("RGB") for f in files]
    prompt = processor(text=[PROMPT] * len(images), return_tensors="pt")
    pixel = {
        "processor": processor(images=images, return_tensors="pt").pixel_values,
        "bilinear": torch.cat([(resize(torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)[None], size) - mean) / std
                               for im in images]),
    }
    out = {"prompt": PROMPT, "num_beams": 3, "min_length": 5, "max_length": 20, "images": [f.name for f in files]}
    for mode, pv in pixel.items():
        seqs = model.generate(pixel_values=pv, input_ids=prompt.input_ids, attention_mask=prompt.attention_mask,
                              num_beams=3, min_length=5, max_length=20, synced_gpus=False)
        texts = [processor.decode(s, skip_special_tokens=True) for s in seqs]
        pad = model.config.text_config.pad_token_id
        out[mode] = [{"ids": [int(t) for t in s if t != pad], "caption": strip_prompt(t)}
                     for s, t in zip(seqs.tolist(), texts)]
        print(mode, [r["caption"] for r in out[mode][:3]])
    differ = sum(a["ids"] != b["ids"] for a, b in zip(out["processor"], out["bilinear"]))
    print(f"captions that differ between the two resizes: {differ} of {len(files)}")
    (BLIP / "reference-semantics.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    purification_goldens()
    caption_goldens()

#!/usr/bin/env python3
"""Writes the purifier's parity fixtures under Tests/Fixtures/diffusion/.

- clip-tokenizer.json: ids from transformers' CLIPTokenizer (built from ../shared's gzipped CLIP BPE
  merges; the same files are sd15-tiny/tokenizer) for 300+ strings: captions, punctuation, digits,
  unicode, empty, over-long.
- randn.safetensors: torch.randn draws from torch.Generator().manual_seed(s) for several sizes and
  consecutive draws from one generator.
- sd15-tiny/: a tiny randomly initialised StableDiffusionImg2ImgPipeline saved with save_pretrained
  (fp16 weights to stay small) with exactly SD 1.5's folder layout, key names and config fields; and
  golden.safetensors with its text embeddings, a UNet call, VAE encode/decode, DDIM timesteps and
  steps, and whole img2img purifications (diffusers' own pipeline, K = 2, two strengths, with and
  without guidance, eta 0 and 0.5).
- pixel-tiny/: a tiny pixel-space pack (3-channel UNet, no VAE — the cifar10-mini layout; text
  encoder and tokenizer are symlinks to sd15-tiny's) with purifications from
  tools/lgaptools/purify_ref.py.

Run: $LGAP_PYTHON tools/goldens/make_diffusion_goldens.py
"""
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from lgaptools import locations  # noqa: E402

ROOT = locations.repo()
from lgaptools import cliptok, purify_ref  # noqa: E402

OUT = ROOT / "Tests" / "Fixtures" / "diffusion"
OUT.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)

# --- CLIP tokenizer
tok_dir = OUT / "sd15-tiny-tokenizer.tmp"
tok = cliptok.write_tokenizer_folder(tok_dir)
rng = np.random.default_rng(5)
words = ["a", "photo", "of", "the", "small", "red", "car", "on", "grey", "road", "horse", "grass", "airplane", "sky",
         "ship", "water", "dog's", "cat", "isn't", "we're", "they've", "I'm", "you'll", "he'd", "3", "42", "2023",
         "hello", "world", "Stable", "Diffusion", "LGAP", "über", "café", "naïve", "東京", "日本語", "😀", "🐶", "—", "...",
         "!!!", "?!", "(parenthesis)", "[bracket]", "a,b", "x-ray", "e-mail", "100%", "$5", "#tag", "@user", "C++",
         "don't", "can't", "ÉCOLE", "Straße", "ﬁne", "Ω", "μ", "x²", "½", "\t", "  ", "\n", "<|endoftext|>", "<|startoftext|>"]
strings = ["", " ", "a", "a photo of a small red car on a grey road", "a brown horse on green grass",
           "A WHITE AIRPLANE in a Blue Sky!", "there is a dog's bone", "it's 12:30, isn't it?",
           "caption with    many   spaces", "tabs\tand\nnewlines", "ünïcödé ãccents", "mixed 東京 text",
           "emoji 😀🐶 test", "x" * 300, " ".join(["word"] * 100), "a " * 80, "don't stop", "HELLO hello HeLLo",
           "1234567890", "3.14159", "snake_case_words", "CamelCaseWords", "email@example.com", "http://example.com/a?b=c",
           "<|endoftext|> inside text", "!<|endoftext|>", "'s 't 're", "''''", "a'b'c"]
while len(strings) < 320:
    n = int(rng.integers(1, 12))
    strings.append(" ".join(rng.choice(words, n)))
tokenizer_cases = [{"text": s, "ids": tok(s, padding="max_length", max_length=77, truncation=True).input_ids,
                    "unpadded": tok(s).input_ids} for s in strings]
(OUT / "clip-tokenizer.json").write_text(json.dumps(tokenizer_cases, ensure_ascii=False))

# --- torch.randn
draws = {}
for seed, shape in [(0, [1]), (1, [5]), (2, [15]), (3, [16]), (4, [17]), (5, [33]), (6, [3, 32, 32]), (7, [2, 4, 8, 8]),
                    (2**32 + 9, [20]), (123456789, [40])]:
    draws[f"seed{seed}"] = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
g = torch.Generator().manual_seed(42)
draws["seq.0"] = torch.randn([1, 4, 8, 8], generator=g)
draws["seq.1"] = torch.randn([2, 4, 8, 8], generator=g)
draws["seq.2"] = torch.randn([3], generator=g)
draws["seq.3"] = torch.randn([3, 7], generator=g)
save_file({k: v.contiguous() for k, v in draws.items()}, str(OUT / "randn.safetensors"))


def randomize(module, std=0.05):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(std * torch.randn_like(p))


def roundtrip_half(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())


# --- tiny SD 1.5
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionImg2ImgPipeline, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402

sd_dir = OUT / "sd15-tiny"
if sd_dir.exists():
    shutil.rmtree(sd_dir)
unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
                            block_out_channels=(32, 32, 64, 64),
                            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                            cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32).eval()
vae = AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(32, 32, 64, 64),
                    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                    latent_channels=4, layers_per_block=2, norm_num_groups=32, sample_size=64).eval()
text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                    num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                                    projection_dim=32)).eval()
for m in (unet, vae, text):
    randomize(m, 0.08 if m is not text else 0.3)
    roundtrip_half(m)
scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1, num_train_timesteps=1000)
pipe = StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=text, tokenizer=CLIPTokenizer.from_pretrained(tok_dir),
                                      unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                      requires_safety_checker=False)
pipe.to(torch.float16).save_pretrained(sd_dir, safe_serialization=True)
shutil.rmtree(tok_dir)
pipe = StableDiffusionImg2ImgPipeline.from_pretrained(sd_dir, torch_dtype=torch.float32, safety_checker=None,
                                                      feature_extractor=None, requires_safety_checker=False)
pipe.set_progress_bar_config(disable=True)
gold = {}
captions = ["a brown horse on green grass", "", "a photo of a small red car on a grey road"]
with torch.no_grad():
    ids = pipe.tokenizer(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    gold["text.ids"] = ids.to(torch.int64)
    gold["text.out"] = pipe.text_encoder(ids)[0]
    sample = torch.randn(2, 4, 8, 8)
    ctx = gold["text.out"][:2].clone()
    gold["unet.sample"] = sample
    gold["unet.context"] = ctx
    gold["unet.t981"] = pipe.unet(sample, 981, encoder_hidden_states=ctx).sample
    gold["unet.t10"] = pipe.unet(sample, 10, encoder_hidden_states=ctx).sample
    img = torch.rand(1, 3, 64, 64)
    gold["vae.image"] = img
    post = pipe.vae.encode(2 * img - 1).latent_dist
    gold["vae.mean"], gold["vae.std"] = post.mean, post.std
    z = torch.randn(1, 4, 8, 8)
    gold["vae.z"] = z
    gold["vae.decoded"] = pipe.vae.decode(z).sample
meta = {}
sched_cases = {}
for spacing in ("leading", "trailing", "linspace"):
    for steps in (50, 20, 7, 1):
        s = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing=spacing)
        s.set_timesteps(steps)
        sched_cases[f"{spacing}.{steps}"] = s.timesteps.tolist()
for steps, strength in [(50, 0.5), (50, 0.3), (50, 0.1), (10, 0.7), (100, 0.29), (20, 0.35), (50, 1.0), (7, 0.15)]:
    pipe.scheduler.set_timesteps(steps)
    tss, _ = pipe.get_timesteps(steps, strength, "cpu")
    sched_cases[f"img2img.{steps}.{strength}"] = tss.tolist()
gold["sched.alphas_cumprod"] = pipe.scheduler.alphas_cumprod.clone()
lin = DDIMScheduler(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
gold["sched.linear.alphas_cumprod"] = lin.alphas_cumprod.clone()
cos_s = DDIMScheduler(beta_schedule="squaredcos_cap_v2")
gold["sched.cos.alphas_cumprod"] = cos_s.alphas_cumprod.clone()
# DDIM steps: eta 0 and eta 0.7 with fixed variance noise, epsilon and v_prediction
x, e, vn = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
gold["step.x"], gold["step.e"], gold["step.noise"] = x, e, vn
for name, pred, eta in [("eps0", "epsilon", 0.0), ("eps07", "epsilon", 0.7), ("v0", "v_prediction", 0.0)]:
    s = DDIMScheduler.from_config(pipe.scheduler.config, prediction_type=pred)
    s.set_timesteps(50)
    gold[f"step.{name}"] = s.step(e, 481, x, eta=eta, variance_noise=vn).prev_sample
image = torch.rand(1, 3, 64, 64)
gold["purify.image"] = image
purify_cases = {}
for name, (caption, strength, steps, guidance, seed, eta) in {
        "cfg": ("a brown horse on green grass", 0.5, 10, 5.0, 7, 0.0),
        "nocfg": ("a small red car", 0.3, 20, 1.0, 8, 0.0),
        "eta": ("a ship on blue water", 0.4, 10, 3.0, 9, 0.5)}.items():
    with torch.no_grad():
        out = pipe(prompt=caption, image=image, strength=strength, num_inference_steps=steps, guidance_scale=guidance,
                   generator=torch.Generator().manual_seed(seed), num_images_per_prompt=2, eta=eta, output_type="pt").images
    gold[f"purify.{name}"] = out
    purify_cases[name] = dict(caption=caption, strength=strength, steps=steps, guidance=guidance, seed=seed, eta=eta, ensemble=2)
for k, v in gold.items():
    assert not (v.is_floating_point() and torch.isnan(v).any()), f"golden {k} has NaN"
meta["scheduler"] = json.dumps(sched_cases)
meta["purify"] = json.dumps(purify_cases)
meta["captions"] = json.dumps(captions)
save_file({k: v.contiguous().clone() for k, v in gold.items()}, str(sd_dir / "golden.safetensors"), metadata=meta)

# --- tiny pixel-space pack (the cifar10-mini layout)
px_dir = OUT / "pixel-tiny"
if px_dir.exists():
    shutil.rmtree(px_dir)
punet = UNet2DConditionModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(32, 64),
                             down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                             up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                             attention_head_dim=4, norm_num_groups=32, flip_sin_to_cos=True, freq_shift=0).eval()
randomize(punet, 0.08)
roundtrip_half(punet)
punet.to(torch.float16).save_pretrained(px_dir / "unet", safe_serialization=True)
# The text encoder and tokenizer are SD-tiny's, linked rather than copied to keep the fixtures small.
for part in ("text_encoder", "tokenizer"):
    (px_dir / part).symlink_to(Path("..") / "sd15-tiny" / part, target_is_directory=True)
DDIMScheduler(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, clip_sample=False, set_alpha_to_one=False,
              steps_offset=1).save_pretrained(px_dir / "scheduler")
ref = purify_ref.PixelPurifier(px_dir, model_size=(16, 16), resize_mode="bicubic")
pgold, pcases = {}, {}
img = torch.rand(1, 3, 20, 24)
pgold["image"] = img
for name, (caption, strength, steps, guidance, seed, k, eta) in {
        "cfg": ("a brown horse on green grass", 0.2, 50, 3.0, 11, 3, 0.0),
        "nocfg": ("a white airplane", 0.5, 10, 0.0, 12, 1, 0.0),
        "eta": ("a red car", 0.3, 20, 2.0, 13, 2, 1.0)}.items():
    out, trace = ref.purify(img, caption, strength, steps, guidance, seed, ensemble=k, eta=eta, return_trace=True)
    pgold[name] = out
    pgold[f"{name}.trace0"] = trace[0]
    pgold[f"{name}.trace1"] = trace[1]
    pcases[name] = dict(caption=caption, strength=strength, steps=steps, guidance=guidance, seed=seed, ensemble=k, eta=eta)
save_file({k: v.contiguous() for k, v in pgold.items()}, str(px_dir / "golden.safetensors"),
          metadata={"purify": json.dumps(pcases), "model_size": json.dumps([16, 16])})
print("wrote", OUT)

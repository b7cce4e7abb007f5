#!/usr/bin/env python3
"""PyTorch side of `lgap-bench models`: random-weight model folders and reference timings.

    torch_models.py prepare --cache DIR            writes every benchmark model folder once (random
                                                   weights at the real configs, saved with the reference
                                                   libraries' save_pretrained / our classifier converter)
    torch_models.py time --cache DIR --case NAME --threads N --repeat R
                                                   prints {"seconds": median, "peak_rss_kb": …} for one case

Cases: resnet56-b1, resnet56-b64, wrn28-10-b1, wrn28-10-b16, resnet50-b1, resnet50-b16 (classifiers on
preprocessed tensors); unet-sd15-b2 (SD 1.5 UNet config, 4×48×48 latent, 77×768 context, batch 2 for
CFG), unet-pack-b2 (the cifar10-mini UNet config, 3×32×32, batch 2), vae-decode-384 (SD VAE, 4×48×48 →
3×384×384); blip-base-beam3 (BLIP-base, 384 px, 3 beams, exactly 20 tokens), blip-pack-beam3 (the
pack's captioner config, 32 px, 3 beams, 20 tokens). Inputs are random with fixed seeds; both sides use
the same folders and shapes. Threads: torch.set_num_threads(N); OPENBLAS_* as the caller set them.
"""
import argparse
import json
import resource
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from lgaptools import locations  # noqa: E402

ROOT = locations.repo()

CLASSIFIERS = {
    "resnet56": None,  # the pack's real weights
    "wrn28-10": dict(architecture="wide_resnet", depth=28, widen_factor=10, num_classes=10, input_size=[32, 32]),
    "resnet50": dict(architecture="torchvision_resnet", depth=50, num_classes=1000, input_size=[224, 224]),
}


def prepare(cache):
    from safetensors.torch import save_file

    from lgaptools import classifiers
    cache.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for name, cfg in CLASSIFIERS.items():
        d = cache / name
        if cfg is None or (d / "model.safetensors").exists():
            continue
        d.mkdir(parents=True, exist_ok=True)
        model = classifiers.build(cfg).eval()
        full = dict(cfg, class_names=[f"c{i}" for i in range(cfg["num_classes"])], resize={"policy": "resize", "filter": "bilinear"},
                    mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "model.safetensors"))
        (d / "config.json").write_text(json.dumps(full))
        print("wrote", d, flush=True)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    if not (cache / "unet-sd15" / "config.json").exists():
        UNet2DConditionModel(sample_size=64, cross_attention_dim=768).save_pretrained(cache / "unet-sd15")  # SD 1.5's config
        print("wrote unet-sd15", flush=True)
    if not (cache / "vae-sd15" / "config.json").exists():
        AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                      up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2,
                      sample_size=512).save_pretrained(cache / "vae-sd15")
        print("wrote vae-sd15", flush=True)
    from transformers import BlipConfig, BlipForConditionalGeneration
    if not (cache / "blip-base" / "vocab.txt").exists():
        from transformers import BertTokenizer, BlipImageProcessor

        from lgaptools.cifar import SHARED
        BlipForConditionalGeneration(BlipConfig()).save_pretrained(cache / "blip-base")
        tok = BertTokenizer(str(SHARED / "data" / "tokenizers" / "bert-base-uncased" / "vocab.txt"))
        tok.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
        tok.save_pretrained(cache / "blip-base")
        BlipImageProcessor(size={"height": 384, "width": 384}).save_pretrained(cache / "blip-base")
        print("wrote blip-base", flush=True)


def pack_dir():
    return ROOT / "models" / "cifar10-mini"


def make_case(cache, case, given=None):
    """Returns a zero-argument callable that runs the case once. `given`: input tensors by name (x,
    context) to use instead of random ones (lgap-bench's --check file)."""
    g = torch.Generator().manual_seed(1)
    given = given or {}
    if case.split("-b")[0] in CLASSIFIERS:
        from lgaptools import classifiers
        name, batch = case.rsplit("-b", 1)
        folder = pack_dir() / "classifier" if name == "resnet56" else cache / name
        model, cfg = classifiers.load_folder(folder)
        x = given.get("x", torch.rand(int(batch), 3, *cfg["input_size"], generator=g))
        return lambda: model(x)
    if case.startswith("unet"):
        from diffusers import UNet2DConditionModel
        folder = cache / "unet-sd15" if case == "unet-sd15-b2" else pack_dir() / "unet"
        unet = UNet2DConditionModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
        c = unet.config
        size = 48 if case == "unet-sd15-b2" else c.sample_size
        x = given.get("x", torch.randn(2, c.in_channels, size, size, generator=g))
        ctx = given.get("context", torch.randn(2, 77, c.cross_attention_dim, generator=g))
        return lambda: unet(x, 500, encoder_hidden_states=ctx).sample
    if case == "vae-decode-384":
        from diffusers import AutoencoderKL
        vae = AutoencoderKL.from_pretrained(cache / "vae-sd15", torch_dtype=torch.float32).eval()
        z = given.get("x", torch.randn(1, 4, 48, 48, generator=g))
        return lambda: vae.decode(z).sample
    if case.startswith("blip"):
        from transformers import BlipForConditionalGeneration
        folder = cache / "blip-base" if case == "blip-base-beam3" else pack_dir() / "captioner"
        model = BlipForConditionalGeneration.from_pretrained(folder, torch_dtype=torch.float32).eval()
        size = model.config.vision_config.image_size
        x = torch.randn(1, 3, size, size, generator=g)
        return lambda: model.generate(pixel_values=x, num_beams=3, min_length=20, max_length=20, synced_gpus=False)
    raise SystemExit(f"unknown case {case}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["prepare", "time"])
    p.add_argument("--cache", required=True)
    p.add_argument("--case")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--check", help="safetensors with lgap's inputs and output: run those inputs, report the difference")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    if args.command == "prepare":
        prepare(cache)
        return
    result = {}
    with torch.no_grad():
        given = load_file(args.check) if args.check else {}
        run = make_case(cache, args.case, given)
        out = run()
        if "output" in given:
            diff = (out.float() - given["output"]).abs().max().item()
            result = {"max_abs_diff": diff, "max_rel_diff": diff / max(out.abs().max().item(), 1e-30)}
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
    times.sort()
    result.update(seconds=times[len(times) // 2], peak_rss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

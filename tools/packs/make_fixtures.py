#!/usr/bin/env python3
"""Writes tiny random checkpoints, from fixed seeds, in the file layouts a user downloads for the
paper's pack (docs/packs/sd15-blip/README.md), so tools/packs/build_pack.py and lgap's loaders can be
tried on the real formats in seconds:

    DIR/sd15/        a diffusers Stable Diffusion 1.5 snapshot: model_index.json, text_encoder/
                     (CLIPTextModel), tokenizer/ (CLIP BPE, copied from Tests/Fixtures/diffusion/
                     sd15-tiny/tokenizer), unet/ (UNet2DConditionModel with SD 1.5's block types, 32/64
                     wide), vae/ (AutoencoderKL, 4 blocks: latent 8 → 64 px, 4 latent channels; its
                     mid-block attention under the deprecated names query/key/value/proj_attn, as SD
                     1.5's VAE ships them), scheduler/ (SD 1.5's PNDMScheduler config, clip_sample
                     false), feature_extractor/ (CLIPImageProcessor). No safety_checker/ folder.
    DIR/blip/        a BlipForConditionalGeneration folder as Salesforce/blip-image-captioning-base has
                     it: config.json, model.safetensors, preprocessor_config.json (384×384, resample 3
                     bicubic, CLIP mean/std), vocab.txt + tokenizer.json + tokenizer_config.json +
                     special_tokens_map.json (BERT WordPiece: the 5,000-line vocab of Tests/Fixtures/blip/
                     model with BLIP's [DEC] bos and [ENC]). The vision model takes 384 px in 64 px patches
                     (6×6 patches), 32 wide; the text decoder is 32 wide.
    DIR/Standard.pt  a RobustBench CIFAR-10 WideResNet state_dict (depth 10, widen 1), keys prefixed
                     "module." as a DataParallel save has them.
    DIR/resnet50.pth a torchvision ResNet state_dict: Bottleneck blocks, one per stage, width_per_group 8,
                     1000 classes (the stem and expansion are torchvision's, so fc alone is 2048×1000:
                     about 20 MB in float32).
    DIR/imagenet_classes.txt  1000 class names, one a line (placeholders, with ImageNet's two repeated
                     names, "crane" and "maillot", where ImageNet has them).

SD weights are float16 safetensors (what the fp16 revision of the snapshot holds under the same
names); BLIP and the classifiers are float32. With --legacy the folders look like older snapshots:
weights as pytorch_model.bin / diffusion_pytorch_model.bin in float32, the CLIP text encoder's and
BLIP's text decoder's position_ids buffers saved with the weights, configs with only the keys
diffusers 0.6 / transformers 4.22 wrote (vae/config.json without scaling_factor, text_encoder with
bos/eos 0/2), model_index.json naming the safety checker and CLIPFeatureExtractor (the folder itself
absent, as `huggingface-cli download --include` leaves it), no generation_config.json for BLIP,
Standard.pt nested under "state_dict" and resnet50.pth without num_batches_tracked.

Every folder is then loaded back with the reference libraries (StableDiffusionImg2ImgPipeline and
BlipForConditionalGeneration.from_pretrained with one short run each; lgaptools' WideResNet and, when
installed, torchvision's resnet with strict key checks), so the fixtures are what those libraries read.

With --full-size the same layouts hold the real models' shapes with their libraries' own random
initialisation (for measuring cost, tools/bench/paper_cost.sh): SD 1.5's UNet (320–1280 wide, 860 M
parameters), VAE and CLIP ViT-L/14 text encoder; BLIP-base (ViT-B/16 at 384 px, BERT-base decoder with
the full bert-base-uncased vocabulary from ../shared); a WideResNet-28-10 and a ResNet-50. About 2.5 GB.

Run: cd tools && $LGAP_PYTHON -m packs.make_fixtures --out /tmp/lgap-fixtures [--seed 0] [--legacy] [--full-size]
"""
import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lgaptools import cifar, classifiers, locations

ROOT = locations.repo()
SD_TOKENIZER = ROOT / "Tests" / "Fixtures" / "diffusion" / "sd15-tiny" / "tokenizer"
BLIP_VOCAB = ROOT / "Tests" / "Fixtures" / "blip" / "model" / "vocab.txt"
FULL_BERT_VOCAB = cifar.SHARED / "data" / "tokenizers" / "bert-base-uncased" / "vocab.txt"
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# SD 1.5's scheduler/scheduler_config.json values (PNDMScheduler class, DDIM-compatible settings).
SD15_SCHEDULER = {"beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
                  "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
                  "clip_sample": False}
# The config keys diffusers 0.6 and transformers 4.22 wrote (what the oldest SD 1.5 snapshots hold).
LEGACY_UNET_KEYS = ["act_fn", "attention_head_dim", "block_out_channels", "center_input_sample", "cross_attention_dim",
                    "down_block_types", "downsample_padding", "flip_sin_to_cos", "freq_shift", "in_channels",
                    "layers_per_block", "mid_block_scale_factor", "norm_eps", "norm_num_groups", "out_channels",
                    "sample_size", "up_block_types"]
LEGACY_VAE_KEYS = ["act_fn", "block_out_channels", "down_block_types", "in_channels", "latent_channels", "layers_per_block",
                   "norm_num_groups", "out_channels", "sample_size", "up_block_types"]
LEGACY_CLIP_KEYS = ["architectures", "attention_dropout", "bos_token_id", "dropout", "eos_token_id", "hidden_act",
                    "hidden_size", "initializer_factor", "initializer_range", "intermediate_size", "layer_norm_eps",
                    "max_position_embeddings", "model_type", "num_attention_heads", "num_hidden_layers", "pad_token_id",
                    "projection_dim", "torch_dtype", "vocab_size"]
VAE_DEPRECATED = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}

# Model shapes: the tiny fixtures, and the real models' (--full-size).
SHAPES = {
    "tiny": dict(
        unet=dict(sample_size=8, block_out_channels=(32, 32, 64, 64), cross_attention_dim=32, attention_head_dim=8),
        vae=dict(block_out_channels=(32, 32, 64, 64), sample_size=64),
        text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32),
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=64),
        decoder=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
        wrn=dict(depth=10, widen_factor=1), resnet=dict(layers=(1, 1, 1, 1), width_per_group=8), randomize=True),
    "full": dict(
        unet=dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8),
        vae=dict(block_out_channels=(128, 256, 512, 512), sample_size=512),
        text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, projection_dim=768),
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, patch_size=16),
        decoder=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
        wrn=dict(depth=28, widen_factor=10), resnet=dict(layers=(3, 4, 6, 3), width_per_group=64), randomize=False),
}


def randomize(module, std, gen):
    """Weights drawn N(0, std²) (norm scales 1 + N(0, 0.1²)) so every layer moves the output."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if ("norm" in name.lower()) and name.endswith("weight"):
                p.copy_(1 + 0.1 * noise)
            else:
                p.copy_(std * noise)


def write_json(path, obj):
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def trim_config(path, keys, **extra):
    """Keeps only `keys` (plus the class and version markers) of a config.json, then sets `extra`."""
    config = json.loads(Path(path).read_text())
    trimmed = {k: v for k, v in config.items() if k in keys or k == "_class_name"}
    trimmed.update(extra)
    write_json(path, trimmed)


def weights_file(folder):
    for name in ["model.safetensors", "diffusion_pytorch_model.safetensors", "pytorch_model.bin", "diffusion_pytorch_model.bin"]:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"no weights in {folder}")


def rewrite_weights(folder, change):
    """Loads the folder's weights, applies change(state) → state, and writes them back in place."""
    path = weights_file(folder)
    if path.suffix == ".safetensors":
        save_file(change(load_file(str(path))), str(path), metadata={"format": "pt"})
    else:
        torch.save(change(torch.load(path, map_location="cpu")), path)


def deprecated_vae_attention(state):
    """diffusers' current mid-block attention names → the ones SD 1.5's VAE checkpoint has."""
    out = {}
    for key, value in state.items():
        for new, old in VAE_DEPRECATED.items():
            marker = f".mid_block.attentions.0.{new}."
            if marker in key:
                key = key.replace(marker, f".mid_block.attentions.0.{old}.")
        out[key] = value
    return out


def make_sd(out, gen, legacy, shapes=SHAPES["tiny"]):
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    unet = UNet2DConditionModel(in_channels=4, out_channels=4, layers_per_block=2,
                                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                                norm_num_groups=32, **shapes["unet"]).eval()
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2, norm_num_groups=32,
                        **shapes["vae"]).eval()
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu",
                                        **shapes["text"])).eval()
    if shapes["randomize"]:
        randomize(unet, 0.08, gen)
        randomize(vae, 0.08, gen)
        randomize(text, 0.3, gen)
    scheduler = PNDMScheduler(**{k: v for k, v in SD15_SCHEDULER.items() if k != "clip_sample"})
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=CLIPTokenizer.from_pretrained(SD_TOKENIZER),
                                   unet=unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=CLIPImageProcessor(crop_size=224, size={"shortest_edge": 224}),
                                   requires_safety_checker=False)
    if legacy:
        pipe.save_pretrained(out, safe_serialization=False)
    else:
        pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)

    # The tokenizer files exactly as SD's snapshot (and the committed fixture) has them.
    shutil.rmtree(out / "tokenizer")
    shutil.copytree(SD_TOKENIZER, out / "tokenizer")
    rewrite_weights(out / "vae", deprecated_vae_attention)
    scheduler_config = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    scheduler_config["clip_sample"] = False
    if legacy:
        scheduler_config = dict(SD15_SCHEDULER, _class_name="PNDMScheduler", _diffusers_version="0.6.0")
    write_json(out / "scheduler" / "scheduler_config.json", scheduler_config)
    if not legacy:
        return
    positions = torch.arange(77, dtype=torch.int64)[None]
    rewrite_weights(out / "text_encoder", lambda s: {**s, "text_model.embeddings.position_ids": positions})
    trim_config(out / "unet" / "config.json", LEGACY_UNET_KEYS, _diffusers_version="0.6.0")
    trim_config(out / "vae" / "config.json", LEGACY_VAE_KEYS, _diffusers_version="0.6.0")
    trim_config(out / "text_encoder" / "config.json", LEGACY_CLIP_KEYS, bos_token_id=0, eos_token_id=2,
                _name_or_path="openai/clip-vit-large-patch14", transformers_version="4.22.0.dev0")
    write_json(out / "feature_extractor" / "preprocessor_config.json", {
        "crop_size": 224, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True, "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "resample": 3,
        "size": 224})
    write_json(out / "model_index.json", {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.6.0",
        "feature_extractor": ["transformers", "CLIPFeatureExtractor"],
        "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
        "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]})


def make_blip(out, gen, legacy, shapes=SHAPES["tiny"]):
    from transformers import (
        BertTokenizer,
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    with tempfile.TemporaryDirectory() as tmp:
        slow = BertTokenizer(str(BLIP_VOCAB if shapes["randomize"] else FULL_BERT_VOCAB), do_lower_case=True)
        slow.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
        slow.save_pretrained(tmp)
        tok = BertTokenizerFast.from_pretrained(tmp)
    vision = dict(image_size=384, hidden_act="gelu", layer_norm_eps=1e-5, **shapes["vision"])
    text = dict(vocab_size=len(tok), max_position_embeddings=512, hidden_act="gelu", bos_token_id=tok.convert_tokens_to_ids("[DEC]"),
                pad_token_id=tok.pad_token_id, sep_token_id=tok.sep_token_id, **shapes["decoder"])
    model = BlipForConditionalGeneration(BlipConfig(vision_config=vision, text_config=text)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters() if shapes["randomize"] else []:
            noise = torch.randn(p.shape, generator=gen)
            if "layernorm" in name.lower() or "layer_norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * noise)
            else:
                p.copy_((0.1 if name.endswith("bias") else 0.2) * noise)
        # [SEP] likely enough that captions end before max_length (full size: left to chance, so captions
        # tend to run to max_length, the costliest case).
        if shapes["randomize"]:
            model.text_decoder.cls.predictions.bias[tok.sep_token_id] += 3.5
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 384, "width": 384}, resample=3,
                                                                 image_mean=CLIP_MEAN, image_std=CLIP_STD,
                                                                 do_convert_rgb=True), tokenizer=tok)
    model.save_pretrained(out, safe_serialization=not legacy)
    processor.save_pretrained(out)
    if legacy:
        (out / "generation_config.json").unlink(missing_ok=True)
        positions = torch.arange(512, dtype=torch.int64)[None]
        rewrite_weights(out, lambda s: {**s, "text_decoder.bert.embeddings.position_ids": positions})


def make_wide_resnet(path, gen, legacy, shapes=SHAPES["tiny"]):
    model = classifiers.WideResNet(num_classes=10, **shapes["wrn"])
    randomize(model, 0.1, gen)
    state = model.state_dict()
    for key in state:
        if key.endswith("running_mean"):
            state[key].copy_(0.1 * torch.randn(state[key].shape, generator=gen))
        elif key.endswith("running_var"):
            state[key].copy_(1 + 0.5 * torch.rand(state[key].shape, generator=gen))
    state = {f"module.{k}": v for k, v in state.items()}
    torch.save({"state_dict": state} if legacy else state, path)


def torchvision_resnet_state(gen, layers=(1, 1, 1, 1), width_per_group=8, num_classes=1000):
    """A torchvision ResNet (Bottleneck, v1.5) state_dict by key name: conv1/bn1 stem, layerS.I blocks
    of conv1..3/bn1..3 with downsample.0/.1 on each stage's first block, fc."""
    state = {}

    def conv(key, cout, cin, k):
        state[key] = torch.randn(cout, cin, k, k, generator=gen) * (2.0 / (cin * k * k)) ** 0.5

    def bn(key, c):
        state[f"{key}.weight"] = 1 + 0.1 * torch.randn(c, generator=gen)
        state[f"{key}.bias"] = 0.1 * torch.randn(c, generator=gen)
        state[f"{key}.running_mean"] = 0.1 * torch.randn(c, generator=gen)
        state[f"{key}.running_var"] = 1 + 0.5 * torch.rand(c, generator=gen)
        state[f"{key}.num_batches_tracked"] = torch.tensor(0)

    conv("conv1.weight", 64, 3, 7)
    bn("bn1", 64)
    in_planes = 64
    for s, count in enumerate(layers):
        planes = 64 << s
        width = planes * width_per_group // 64
        for i in range(count):
            p = f"layer{s + 1}.{i}"
            conv(f"{p}.conv1.weight", width, in_planes, 1)
            bn(f"{p}.bn1", width)
            conv(f"{p}.conv2.weight", width, width, 3)
            bn(f"{p}.bn2", width)
            conv(f"{p}.conv3.weight", planes * 4, width, 1)
            bn(f"{p}.bn3", planes * 4)
            if i == 0:
                conv(f"{p}.downsample.0.weight", planes * 4, in_planes, 1)
                bn(f"{p}.downsample.1", planes * 4)
            in_planes = planes * 4
    state["fc.weight"] = 0.05 * torch.randn(num_classes, in_planes, generator=gen)
    state["fc.bias"] = 0.05 * torch.randn(num_classes, generator=gen)
    return state


def imagenet_class_names():
    names = [f"imagenet class {i}" for i in range(1000)]
    for i in (134, 517):
        names[i] = "crane"
    for i in (638, 639):
        names[i] = "maillot"
    return names


def check(out, shapes=SHAPES["tiny"]):
    """Loads every fixture with the reference library it is for; raises on any failure."""
    import numpy as np
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline
    from PIL import Image
    from transformers import BlipForConditionalGeneration, BlipProcessor

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(out / "sd15", safety_checker=None, requires_safety_checker=False)
    stored = weights_file(out / "sd15" / "vae")
    stored = load_file(str(stored)) if stored.suffix == ".safetensors" else torch.load(stored, map_location="cpu")
    loaded = pipe.vae.encoder.mid_block.attentions[0].to_q.weight
    assert torch.equal(loaded, stored["encoder.mid_block.attentions.0.query.weight"].to(loaded.dtype)), \
        "diffusers did not read the VAE's deprecated attention names"
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    assert pipe.scheduler.config.clip_sample is False, "DDIM lost clip_sample false from the PNDM config"
    pipe.set_progress_bar_config(disable=True)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    with torch.no_grad():
        result = pipe(prompt="a photo of a cat", image=image, strength=0.5, num_inference_steps=4, guidance_scale=5.0,
                      generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert torch.isfinite(result).all(), "SD img2img gave non-finite pixels"
    print(f"  diffusers: StableDiffusionImg2ImgPipeline loads sd15/ ({type(pipe.scheduler).__name__} from its config), "
          f"img2img {tuple(result.shape)}")

    model = BlipForConditionalGeneration.from_pretrained(out / "blip").eval()
    processor = BlipProcessor.from_pretrained(out / "blip")
    inputs = processor(images=image, text="a picture of", return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**inputs, synced_gpus=False, num_beams=3, min_length=5, max_length=20)
    print(f"  transformers: BlipForConditionalGeneration loads blip/, caption {processor.decode(ids[0], skip_special_tokens=True)!r}")

    raw = torch.load(out / "Standard.pt", map_location="cpu")
    raw = raw["state_dict"] if "state_dict" in raw else raw
    wrn = classifiers.WideResNet(num_classes=10, **shapes["wrn"])
    wrn.load_state_dict({k.replace("module.", ""): v for k, v in raw.items()}, strict=True)
    print(f"  RobustBench layout: WideResNet({shapes['wrn']}) loads Standard.pt (strict)")
    try:
        from torchvision.models.resnet import Bottleneck, ResNet
    except ImportError:
        print("  torchvision not installed: resnet50.pth not checked against it")
        return
    resnet = ResNet(Bottleneck, list(shapes["resnet"]["layers"]), width_per_group=shapes["resnet"]["width_per_group"])
    resnet.load_state_dict(torch.load(out / "resnet50.pth", map_location="cpu"), strict=True)
    print(f"  torchvision: ResNet(Bottleneck, {shapes['resnet']}) loads resnet50.pth (strict)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder to write (its sd15/ and blip/ are replaced)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--legacy", action="store_true", help="the layouts of older snapshots (see above)")
    p.add_argument("--full-size", action="store_true", help="the real models' shapes (see above)")
    args = p.parse_args()
    shapes = SHAPES["full" if args.full_size else "tiny"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("sd15", "blip"):
        shutil.rmtree(out / sub, ignore_errors=True)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    make_sd(out / "sd15", gen, args.legacy, shapes)
    make_blip(out / "blip", gen, args.legacy, shapes)
    make_wide_resnet(out / "Standard.pt", gen, args.legacy, shapes)
    state = torchvision_resnet_state(gen, **shapes["resnet"])
    if args.legacy:
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, out / "resnet50.pth")
    (out / "imagenet_classes.txt").write_text("\n".join(imagenet_class_names()) + "\n")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({'legacy' if args.legacy else 'current'} layouts, {total / 1e6:.1f} MB); loading back:")
    check(out, shapes)

if __name__ == "__main__":
    main()

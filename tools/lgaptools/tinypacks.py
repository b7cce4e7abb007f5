"""Tiny packs assembled from the committed test fixtures, for tests and quick runs of the tools.

`assemble_tiny_sd_pack(folder, **overrides)` lays out the paper's latent (Stable-Diffusion-style) pack
the way Tests/ModelsTests/SDPackLayoutTests.swift does: symlinks to Tests/Fixtures/diffusion/sd15-tiny's
diffusers folders (text_encoder, tokenizer, unet, vae, scheduler, model_index.json), captioner →
Tests/Fixtures/blip/model, classifier → Tests/Fixtures/classifiers/tiny-cifar-resnet, and pack.json
from the template docs/packs/sd15-blip/pack.json with the tiny model's working size (its VAE has four
blocks: latent 8 → 64 px) and 10 DDIM steps.

Run (a pack to try the tools on): PYTHONPATH=tools python -m lgaptools.tinypacks /tmp/sd-tiny
"""
import json
import sys
from pathlib import Path

from . import locations

SD_PARTS = ["text_encoder", "tokenizer", "unet", "vae", "scheduler", "model_index.json"]


def _merge(manifest, overrides):
    """Top-level keys replaced by `overrides`; a dict merged into the dict it replaces (so
    purification={"guidance": 1.0} changes only the guidance); None removes a key (also inside a dict)."""
    out = dict(manifest)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            merged = dict(out[key])
            for k, v in value.items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            out[key] = merged
        else:
            out[key] = value
    return out


def assemble_tiny_sd_pack(folder, **overrides):
    """Creates the tiny latent pack in `folder` (made if missing; must not already hold a pack) and
    returns its path. overrides: pack.json keys, merged as `_merge` says."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fixtures = locations.repo() / "Tests" / "Fixtures"
    sd = fixtures / "diffusion" / "sd15-tiny"
    for part in SD_PARTS:
        (folder / part).symlink_to((sd / part).resolve())
    (folder / "captioner").symlink_to((fixtures / "blip" / "model").resolve())
    (folder / "classifier").symlink_to((fixtures / "classifiers" / "tiny-cifar-resnet").resolve())
    manifest = json.loads((locations.repo() / "docs" / "packs" / "sd15-blip" / "pack.json").read_text())
    manifest["image_size"] = [64, 64]
    manifest["purification"] = dict(manifest["purification"], steps=10)
    manifest = _merge(manifest, overrides)
    (folder / "pack.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


if __name__ == "__main__":
    print(assemble_tiny_sd_pack(sys.argv[1] if len(sys.argv) > 1 else "sd-tiny"))

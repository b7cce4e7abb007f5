#!/usr/bin/env python3
"""Writes Tests/Fixtures/pack/golden.safetensors: the default pack (models/cifar10-mini) run by the
reference libraries on 16 ../shared test-dev images, for the Swift end-to-end parity test.

- Captions: transformers' BlipForConditionalGeneration.generate on BlipProcessor's pixel_values, greedy
  and with the pack's beam settings (3 beams, min_length 5, max_length 20), as token ids.
- Purification: tools/lgaptools/purify_ref.PixelPurifier (diffusers UNet/CLIP/DDIM) with the pack's
  default strength/steps/guidance, the beam caption, and seed 1000 + i — float outputs in [0, 1].
- The images are the PIL-decoded pixels (Swift decodes the same JPEGs identically).

Run after the pack is assembled: $LGAP_PYTHON tools/goldens/make_pack_goldens.py
"""
import io
import json
import tarfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from lgaptools import locations  # noqa: E402

ROOT = locations.repo()
from lgaptools import cifar, purify_ref  # noqa: E402

PACK = ROOT / "models" / "cifar10-mini"
OUT = ROOT / "Tests" / "Fixtures" / "pack"


def main():
    from transformers import BlipForConditionalGeneration, BlipProcessor
    torch.set_num_threads(2)
    manifest = json.loads((PACK / "pack.json").read_text())
    names, images = [], []
    with tarfile.open(cifar.archive_path("test"), "r:gz") as tar:
        members = sorted((m for m in tar if m.isfile() and m.name.endswith(".jpg")), key=lambda m: m.name)
        for m in members[::563][:16]:
            names.append(m.name)
            images.append(Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB"))
    processor = BlipProcessor.from_pretrained(PACK / "captioner")
    model = BlipForConditionalGeneration.from_pretrained(PACK / "captioner", torch_dtype=torch.float32).eval()
    cap = manifest["captioning"]
    pixel = processor(images=images, return_tensors="pt").pixel_values
    gold = {}
    with torch.no_grad():
        greedy = model.generate(pixel_values=pixel, max_length=cap["max_length"], min_length=cap["min_length"], synced_gpus=False)
        beam = model.generate(pixel_values=pixel, num_beams=cap["num_beams"], max_length=cap["max_length"],
                              min_length=cap["min_length"], synced_gpus=False)
    gold["captions.greedy"] = greedy.to(torch.int64)
    gold["captions.beam"] = beam.to(torch.int64)
    texts = [processor.decode(b, skip_special_tokens=True) for b in beam]
    ref = purify_ref.PixelPurifier(PACK, model_size=tuple(manifest["image_size"]), resize_mode=manifest.get("resize", "bicubic"))
    d = manifest["purification"]
    outs = []
    for i, (img, text) in enumerate(zip(images, texts)):
        x = torch.from_numpy(np.asarray(img)).permute(2, 0, 1).float().unsqueeze(0) / 255
        outs.append(ref.purify(x, text, d["strength"], d["steps"], d["guidance"], 1000 + i, ensemble=1, eta=d.get("eta", 0.0)))
    gold["purified"] = torch.cat(outs).contiguous()
    OUT.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in gold.items()}, str(OUT / "golden.safetensors"),
              metadata={"names": json.dumps(names), "captions": json.dumps(texts)})
    print("captions:", texts)


if __name__ == "__main__":
    main()

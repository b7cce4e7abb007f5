#!/usr/bin/env python3
"""Writes classifier parity fixtures under Tests/Fixtures/classifiers/.

- Tiny randomly initialised instances of the three architectures (random batch-norm statistics so
  folding is exercised), saved as classifier folders, each with inputs and PyTorch logits in
  golden.safetensors:  tiny-cifar-resnet (depth 8, widths 4/8/16), tiny-wide-resnet (depth 10,
  widen 1), tiny-torchvision-resnet (Bottleneck, layers [1,1,1,1], width_per_group 8, F16 weights
  to keep the fixture small; the golden is computed from the same F16-rounded weights).
- resnet56-cifar64.safetensors: logits of the committed models/cifar10-mini/classifier on the first
  64 ../shared test-dev images (sorted by path), decoded with PIL.

Run: $LGAP_PYTHON tools/goldens/make_classifier_goldens.py
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
from lgaptools import cifar, classifiers  # noqa: E402

OUT = ROOT / "Tests" / "Fixtures" / "classifiers"
torch.manual_seed(3)


def randomise_bn(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)


def tiny(name, config, half=False, size=(32, 32), batch=3):
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    model = classifiers.build(config).eval()
    randomise_bn(model)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if half:
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
        model.load_state_dict({k: v.float() for k, v in state.items()})
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    x = torch.rand(batch, 3, *size)
    mean = torch.tensor(config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model((x - mean) / std)
    save_file({"x": x.contiguous(), "logits": logits.contiguous()}, str(folder / "golden.safetensors"))
    print(f"{name}: {sum(v.numel() for v in state.values())} values")


base = dict(num_classes=10, class_names=cifar.CLASSES, input_size=[32, 32], resize={"policy": "resize", "filter": "bicubic"},
            mean=classifiers.CIFAR_MEAN, std=classifiers.CIFAR_STD)
tiny("tiny-cifar-resnet", dict(base, architecture="cifar_resnet", depth=8, widths=[4, 8, 16]))
tiny("tiny-wide-resnet", dict(base, architecture="wide_resnet", depth=10, widen_factor=1, mean=[0, 0, 0], std=[1, 1, 1]))
tiny("tiny-torchvision-resnet", dict(base, architecture="torchvision_resnet", depth=50, layers=[1, 1, 1, 1],
                                     width_per_group=8, input_size=[64, 64],
                                     resize={"policy": "resize_center_crop", "resize_to": 72, "filter": "bilinear"},
                                     mean=classifiers.IMAGENET_MEAN, std=classifiers.IMAGENET_STD),
     half=True, size=(64, 64), batch=2)

# The real ResNet-56 on 64 real images.
model, config = classifiers.load_folder(ROOT / "models" / "cifar10-mini" / "classifier")
names, images = [], []
with tarfile.open(cifar.archive_path("test"), "r:gz") as tar:
    members = sorted((m for m in tar if m.isfile() and m.name.endswith(".jpg")), key=lambda m: m.name)
    for m in members[::140][:64]:
        names.append(m.name)
        images.append(np.asarray(Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")))
x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
norm = classifiers.Normalized(model, config["mean"], config["std"])
with torch.no_grad():
    logits = norm(x)
save_file({"logits": logits.contiguous()}, str(OUT / "resnet56-cifar64.safetensors"),
          metadata={"names": json.dumps(names)})
print(f"resnet56 on {len(names)} images: top-1 {logits.argmax(1)[:8].tolist()}")

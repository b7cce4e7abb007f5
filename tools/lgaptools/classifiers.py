"""PyTorch definitions of the classifiers lgap runs, used as the reference for conversion, goldens,
attacks and reference pipelines.

- `CifarResNet`: the CIFAR ResNet of akamaster/pytorch_resnet_cifar10 (option-A shortcuts), with the
  same module names, so its checkpoints load unchanged (after stripping DataParallel's "module.").
- `WideResNet`: RobustBench's model_zoo/architectures/wide_resnet.py (pre-activation blocks,
  convShortcut, block1..3.layer.N, bn1, fc), so RobustBench state_dicts load unchanged.
- torchvision's resnet50 comes from torchvision itself (Debian's python3-torchvision).
`load_folder(path)` builds the right one from a classifier folder (config.json + model.safetensors).

`resize_input(x, config)` is the classifier's input as lgap makes it (Sources/Models/Classifier/
ImageClassifier.swift `resized`): the 8-bit image, Pillow-resized to config "input_size" with config
"resize" ("resize": straight to input_size when the size differs; "resize_center_crop": the shorter side
to resize_to, then the centre crop). `resize_input_differentiable` is the same with Pillow's resampling
as a linear map (lgaptools/resample.py) for attacks: exact when the size already matches.
"""
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from . import resample

CIFAR_MEAN = [0.485, 0.456, 0.406]
CIFAR_STD = [0.229, 0.224, 0.225]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            pad = planes // 4  # option A: subsample and zero-pad channels, no weights
            self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth=56, num_classes=10, widths=(16, 32, 64)):
        super().__init__()
        assert (depth - 2) % 6 == 0, "depth must be 6n+2"
        n = (depth - 2) // 6
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._make_layer(widths[0], n, 1)
        self.layer2 = self._make_layer(widths[1], n, 2)
        self.layer3 = self._make_layer(widths[2], n, 2)
        self.linear = nn.Linear(widths[2], num_classes)

    def _make_layer(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3]).view(out.size(0), -1)
        return self.linear(out)


class WRNBlock(nn.Module):
    def __init__(self, in_planes, out_planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.equalInOut = in_planes == out_planes
        self.convShortcut = None if self.equalInOut else nn.Conv2d(in_planes, out_planes, 1, stride, 0, bias=False)

    def forward(self, x):
        if not self.equalInOut:
            x = self.relu1(self.bn1(x))
            out = x
        else:
            out = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(out)))
        out = self.conv2(out)
        return (x if self.equalInOut else self.convShortcut(x)) + out


class NetworkBlock(nn.Module):
    def __init__(self, n, in_planes, out_planes, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WRNBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1)
                                     for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth=28, widen_factor=10, num_classes=10):
        super().__init__()
        ch = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        assert (depth - 4) % 6 == 0
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(3, ch[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(n, ch[0], ch[1], 1)
        self.block2 = NetworkBlock(n, ch[1], ch[2], 2)
        self.block3 = NetworkBlock(n, ch[2], ch[3], 2)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(ch[3], num_classes)
        self.nChannels = ch[3]

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        out = F.avg_pool2d(out, 8).view(-1, self.nChannels)
        return self.fc(out)


def build(config):
    arch = config["architecture"]
    if arch == "cifar_resnet":
        return CifarResNet(config["depth"], config["num_classes"], tuple(config.get("widths", (16, 32, 64))))
    if arch == "wide_resnet":
        return WideResNet(config["depth"], config["widen_factor"], config["num_classes"])
    if arch == "torchvision_resnet":
        from torchvision.models.resnet import BasicBlock as TVBasic
        from torchvision.models.resnet import Bottleneck, ResNet
        standard = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}
        depth = config["depth"]
        block = TVBasic if depth < 50 else Bottleneck
        return ResNet(block, config.get("layers", standard[depth]), num_classes=config["num_classes"],
                      width_per_group=config.get("width_per_group", 64))
    raise ValueError(f"unknown architecture {arch}")


def load_folder(path):
    """(model in eval mode, config dict) from a classifier folder."""
    from safetensors.torch import load_file
    path = Path(path)
    config = json.loads((path / "config.json").read_text())
    model = build(config)
    state = {k: v.float() for k, v in load_file(str(path / "model.safetensors")).items()}
    model.load_state_dict(state, strict=True)
    return model.eval(), config


def load_frozen(folder):
    """(model, config) like load_folder, the model wrapped to take [0,1] images (its normalisation
    included) and its parameters frozen: what attacks differentiate through and training tools distil from."""
    model, config = load_folder(folder)
    net = Normalized(model, config["mean"], config["std"]).eval()
    for q in net.parameters():
        q.requires_grad_(False)
    return net, config


def _resize_plan(hw, config):
    """(size to resize to or None, crop size or None) for an image of size hw, as ImageClassifier.resized."""
    h, w = config["input_size"]
    r = config.get("resize", {"policy": "resize"})
    if r.get("policy", "resize") == "resize_center_crop":
        size = r.get("resize_to") or max(h, w)
        ih, iw = hw
        rw, rh = (size, int(size * ih / iw)) if iw <= ih else (int(size * iw / ih), size)
        return (None if (rh, rw) == (ih, iw) else (rh, rw)), (h, w)
    return (None if tuple(hw) == (h, w) else (h, w)), None


def center_crop(x, h, w):
    """x: [N, C, H, W] → the centre h × w (offsets rounded half to even, as torchvision's CenterCrop and
    ImageClassifier.swift's centerCrop; zeros where the crop leaves the image)."""
    top, left = round((x.shape[2] - h) / 2), round((x.shape[3] - w) / 2)
    pad = (max(-left, 0), max(left + w - x.shape[3], 0), max(-top, 0), max(top + h - x.shape[2], 0))
    if any(pad):
        x = F.pad(x, pad)
        top, left = top + pad[2], left + pad[0]
    return x[:, :, top:top + h, left:left + w]


def pil_filter(config):
    return config.get("resize", {}).get("filter") or "bilinear"


def resize_input(x, config):
    """[N, 3, H, W] in [0, 1] → the classifier's 8-bit input [N, 3, h, w] / 255, made with Pillow."""
    size, crop = _resize_plan(x.shape[2:], config)
    q = (x.detach().cpu() * 255).round().clamp(0, 255).to(torch.uint8)
    if size is not None:
        filt = getattr(Image, pil_filter(config).upper())
        arrs = [np.asarray(Image.fromarray(a.permute(1, 2, 0).numpy()).resize((size[1], size[0]), filt)) for a in q]
        q = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2)
    out = q.float() / 255
    return (center_crop(out, *crop) if crop else out).to(x.device)


def resize_input_differentiable(x, config):
    """resize_input without the 8-bit rounding, differentiable (the identity when the size matches)."""
    size, crop = _resize_plan(x.shape[2:], config)
    if size is not None:
        x = resample.pil_resize(x, size, pil_filter(config))
    return center_crop(x, *crop) if crop else x


class Normalized(nn.Module):
    """Wraps a classifier so it takes images in [0,1] (what attacks perturb)."""

    def __init__(self, model, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x):
        return self.model((x - self.mean) / self.std)

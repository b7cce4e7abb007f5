#!/usr/bin/env python3
"""Converts classifier checkpoints into lgap classifier folders (config.json + model.safetensors).

    classifier.py resnet-cifar CHECKPOINT.th --depth 56 --out DIR [--license FILE]
        akamaster/pytorch_resnet_cifar10 checkpoint (dict with state_dict, keys prefixed "module.").
    classifier.py wide-resnet STATE_DICT.pt --depth 28 --widen 10 --out DIR [--mean M M M --std S S S]
        RobustBench WideResNet state_dict (optionally nested under "state_dict"/"model", keys optionally
        prefixed "module."); depth and widen default to what the checkpoint's shapes say.
    classifier.py torchvision-resnet STATE_DICT.pth --depth 50 --classes-file F --out DIR
        torchvision resnet state_dict (ImageNet preprocessing: PIL bilinear resize 256, center crop 224).
        Depth, blocks per stage and width_per_group default to what the checkpoint's shapes say; config
        records layers / width_per_group only where they differ from torchvision's resnetN. The classes
        file needs one name per class (blank lines at its end are ignored).

The folder keeps the source key names and float32 weights; batch norm stays as stored (the Swift
loader folds it into the convolutions). config.json records architecture, classes, input size, resize
policy and normalisation. The written folder is loaded back with tools/lgaptools/classifiers.py and
checked to reproduce the source model's logits on random inputs before the script exits.
tools/packs/build_pack.py converts through load_checkpoint, detect, make_config and write.
"""
import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from lgaptools import cifar, classifiers  # noqa: E402


def unwrap(obj):
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def load_checkpoint(path):
    """The state_dict in a checkpoint file, unwrapped (see unwrap); SystemExit when it is not one."""
    try:
        raw = torch.load(path, map_location="cpu")
    except Exception as e:
        raise SystemExit(f"cannot read {path}: {e}")
    if not isinstance(raw, dict):
        raise SystemExit(f"{path}: not a state_dict (found a {type(raw).__name__})")
    state = unwrap(raw)
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SystemExit(f"{path}: not a state_dict of tensors")
    return state


TORCHVISION_LAYERS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


def _count(state, prefix):
    """How many consecutive modules prefix0., prefix1., ... the state_dict holds."""
    n = 0
    while any(k.startswith(f"{prefix}{n}.") for k in state):
        n += 1
    return n


def detect(state):
    """The converter kind the key names say: "wide-resnet" (RobustBench: block1.layer.N, fc),
    "torchvision-resnet" (layer1.0.conv1, fc), "resnet-cifar" (layer1.0.conv1, linear), else None."""
    if "block1.layer.0.conv1.weight" in state and "fc.weight" in state:
        return "wide-resnet"
    if "layer1.0.conv1.weight" in state and "fc.weight" in state and "layer4.0.conv1.weight" in state:
        return "torchvision-resnet"
    if "layer1.0.conv1.weight" in state and "linear.weight" in state:
        return "resnet-cifar"
    return None


def torchvision_shape(state):
    """(depth, layers, width_per_group) of a torchvision ResNet state_dict: Bottleneck when blocks have
    conv3; width_per_group from layer1's first convolution (width = 64 · width_per_group / 64)."""
    layers = [_count(state, f"layer{s}.") for s in range(1, 5)]
    bottleneck = "layer1.0.conv3.weight" in state
    width = state["layer1.0.conv1.weight"].shape[0] if bottleneck else 64
    standard = [d for d, ls in TORCHVISION_LAYERS.items() if ls == layers and (d >= 50) == bottleneck]
    return (standard[0] if standard else (50 if bottleneck else 18)), layers, width


def make_config(kind, state, source, depth=None, widen=None, mean=None, std=None, class_names=None):
    """config.json for a state_dict of `kind` (depth and widen from the shapes when not given)."""
    if kind == "resnet-cifar":
        return dict(architecture="cifar_resnet", depth=depth or 6 * _count(state, "layer1.") + 2, num_classes=10,
                    class_names=cifar.CLASSES, input_size=[32, 32], resize={"policy": "resize", "filter": "bicubic"},
                    mean=classifiers.CIFAR_MEAN, std=classifiers.CIFAR_STD, source=source)
    if kind == "wide-resnet":
        depth = depth or 6 * _count(state, "block1.layer.") + 4
        widen = widen or state["block1.layer.0.conv1.weight"].shape[0] // 16
        return dict(architecture="wide_resnet", depth=depth, widen_factor=widen, num_classes=10,
                    class_names=cifar.CLASSES, input_size=[32, 32], resize={"policy": "resize", "filter": "bicubic"},
                    mean=mean or [0.0, 0.0, 0.0], std=std or [1.0, 1.0, 1.0], source=source)
    if kind != "torchvision-resnet":
        raise ValueError(f"unknown kind {kind}")
    n = state["fc.weight"].shape[0]
    names = class_names or [f"class_{i}" for i in range(n)]
    if len(names) != n:
        raise SystemExit(f"{len(names)} class names for a checkpoint with {n} classes")
    found, layers, width = torchvision_shape(state)
    depth = depth or found
    config = dict(architecture="torchvision_resnet", depth=depth, num_classes=n, class_names=names,
                  input_size=[224, 224], resize={"policy": "resize_center_crop", "resize_to": 256, "filter": "bilinear"},
                  mean=classifiers.IMAGENET_MEAN, std=classifiers.IMAGENET_STD, source=source)
    if layers != TORCHVISION_LAYERS.get(depth):
        config["layers"] = layers
    if width != 64:
        config["width_per_group"] = width
    return config


def read_classes(path):
    """Class names, one a line; trailing blank lines dropped."""
    names = Path(path).read_text(encoding="utf-8").split("\n")
    while names and not names[-1].strip():
        names.pop()
    return [n.rstrip("\r") for n in names]


def write(out, config, state, license_file=None):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = classifiers.build(config)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shapes that differ from the config's architecture
        detail = [line.strip() for line in str(e).splitlines() if "size mismatch" in line]
        raise SystemExit(f"checkpoint does not match {config['architecture']} depth {config['depth']}: "
                         f"{detail[0] if detail else e} ({len(detail)} tensors differ)")
    if missing or unexpected:
        raise SystemExit(f"checkpoint does not match {config['architecture']}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    state = {k: v.detach().float().contiguous().clone() for k, v in state.items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if license_file:
        shutil.copy(license_file, out / "LICENSE")
    # Round trip: the folder must give the same logits as the source model.
    model.eval()
    again, _ = classifiers.load_folder(out)
    x = torch.randn(2, 3, *config["input_size"])
    with torch.no_grad():
        err = (model(x) - again(x)).abs().max().item()
    if err != 0:
        raise SystemExit(f"round trip changed the logits (max error {err})")
    print(f"wrote {out} ({sum(v.numel() for v in state.values())} parameters)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="kind", required=True)
    a = sub.add_parser("resnet-cifar")
    a.add_argument("checkpoint")
    a.add_argument("--depth", type=int, required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--license")
    w = sub.add_parser("wide-resnet")
    w.add_argument("checkpoint")
    w.add_argument("--depth", type=int, help="default: from the checkpoint (28 for RobustBench's Standard)")
    w.add_argument("--widen", type=int, help="default: from the checkpoint (10 for RobustBench's Standard)")
    w.add_argument("--mean", type=float, nargs=3, default=[0.0, 0.0, 0.0])
    w.add_argument("--std", type=float, nargs=3, default=[1.0, 1.0, 1.0])
    w.add_argument("--out", required=True)
    w.add_argument("--license")
    t = sub.add_parser("torchvision-resnet")
    t.add_argument("checkpoint")
    t.add_argument("--depth", type=int, help="default: from the checkpoint's blocks")
    t.add_argument("--classes-file", help="one class name per line (default: class_0 ... class_999)")
    t.add_argument("--out", required=True)
    t.add_argument("--license")
    args = p.parse_args()

    state = load_checkpoint(args.checkpoint)
    source = Path(args.checkpoint).name
    if args.kind == "wide-resnet":
        config = make_config(args.kind, state, source, depth=args.depth, widen=args.widen, mean=args.mean, std=args.std)
    elif args.kind == "torchvision-resnet":
        names = read_classes(args.classes_file) if args.classes_file else None
        config = make_config(args.kind, state, source, depth=args.depth, class_names=names)
    else:
        config = make_config(args.kind, state, source, depth=args.depth)
    write(args.out, config, state, args.license)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Converts classifier checkpoints into lgap classifier folders (config.json + model.safetensors).

    classifier.py resnet-cifar CHECKPOINT.th --depth 56 --out DIR [--license FILE]
        akamaster/pytorch_resnet_cifar10 checkpoint (dict with state_dict, keys prefixed "module.").
    classifier.py wide-resnet STATE_DICT.pt --depth 28 --widen 10 --out DIR [--mean M M M --std S S S]
        RobustBench WideResNet state_dict (optionally nested under "state_dict"/"model").
    classifier.py torchvision-resnet STATE_DICT.pth --depth 50 --classes-file F --out DIR
        torchvision resnet state_dict (ImageNet preprocessing: PIL bilinear resize 256, center crop 224).

The folder keeps the source key names and float32 weights; batch norm stays as stored (the Swift
loader folds it into the convolutions). config.json records architecture, classes, input size, resize
policy and normalisation. The written folder is loaded back with tools/lgaptools/classifiers.py and
checked to reproduce the source model's logits on random inputs before the script exits.
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


def write(out, config, state, license_file=None):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = classifiers.build(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
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
    w.add_argument("--depth", type=int, default=28)
    w.add_argument("--widen", type=int, default=10)
    w.add_argument("--mean", type=float, nargs=3, default=[0.0, 0.0, 0.0])
    w.add_argument("--std", type=float, nargs=3, default=[1.0, 1.0, 1.0])
    w.add_argument("--out", required=True)
    w.add_argument("--license")
    t = sub.add_parser("torchvision-resnet")
    t.add_argument("checkpoint")
    t.add_argument("--depth", type=int, default=50)
    t.add_argument("--classes-file", help="one class name per line (default: class_0 ... class_999)")
    t.add_argument("--out", required=True)
    t.add_argument("--license")
    args = p.parse_args()

    try:
        raw = torch.load(args.checkpoint, map_location="cpu")
    except Exception as e:
        raise SystemExit(f"cannot read {args.checkpoint}: {e}")
    state = unwrap(raw)
    if args.kind == "resnet-cifar":
        config = dict(architecture="cifar_resnet", depth=args.depth, num_classes=10, class_names=cifar.CLASSES,
                      input_size=[32, 32], resize={"policy": "resize", "filter": "bicubic"}, mean=classifiers.CIFAR_MEAN,
                      std=classifiers.CIFAR_STD, source=Path(args.checkpoint).name)
    elif args.kind == "wide-resnet":
        config = dict(architecture="wide_resnet", depth=args.depth, widen_factor=args.widen, num_classes=10,
                      class_names=cifar.CLASSES, input_size=[32, 32], resize={"policy": "resize", "filter": "bicubic"},
                      mean=args.mean, std=args.std, source=Path(args.checkpoint).name)
    else:
        n = state["fc.weight"].shape[0]
        names = Path(args.classes_file).read_text().split("\n")[:n] if args.classes_file else [f"class_{i}" for i in range(n)]
        config = dict(architecture="torchvision_resnet", depth=args.depth, num_classes=n, class_names=names,
                      input_size=[224, 224], resize={"policy": "resize_center_crop", "resize_to": 256, "filter": "bilinear"},
                      mean=classifiers.IMAGENET_MEAN, std=classifiers.IMAGENET_STD, source=Path(args.checkpoint).name)
    write(args.out, config, state, args.license)


if __name__ == "__main__":
    main()

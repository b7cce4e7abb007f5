#!/usr/bin/env python3
"""Purify a CIFAR-10 split through the real pipeline, resumably: the training data for a classifier
that learns the purified distribution (the LGAP reference trains its WRN on diffusion images).

The archive's JPEG files are fed to `lgapctl purify` unchanged (the JPEG domain the service sees),
in chunks, with `--save-purified`; each chunk appends its JSON lines (caption, seed, label) to
<out>/manifest/<class>.jsonl. Files whose purified PNG exists are skipped, so a killed run resumes
where it stopped. <out>/config.json records the lgapctl arguments and the pack's file hashes; a
resume with other settings is refused.

Run:  tools/train/run.sh tools/train/purify_dataset.py --split train --out $LGAP_EVAL/purified-train
      [--extra "--ensemble 1 --strength 0.1"] [--chunk 400] [--lgapctl .build/release/lgapctl]
Writes <out>/src/<class>/*.jpg (the extracted archive), <out>/purified/<class>/*.purified.png,
<out>/manifest/<class>.jsonl and <out>/config.json.
"""
import argparse
import hashlib
import json
import subprocess
import tarfile
import time
from pathlib import Path

from lgaptools import cifar, locations


def pack_hashes(pack):
    out = {}
    for f in sorted(Path(pack).rglob("*.safetensors")):
        out[str(f.relative_to(pack))] = hashlib.sha256(f.read_bytes()).hexdigest()
    out["pack.json"] = hashlib.sha256((Path(pack) / "pack.json").read_bytes()).hexdigest()
    return out


def extract(split, src):
    marker = src / ".complete"
    if marker.exists():
        return
    with tarfile.open(cifar.archive_path(split)) as tar:
        for m in tar.getmembers():
            parts = Path(m.name).parts
            if not m.isfile() or len(parts) < 2 or parts[-2] not in cifar.CLASSES:
                continue
            dest = src / parts[-2] / parts[-1]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(tar.extractfile(m).read())
    marker.write_text("ok\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--out", type=Path, default=locations.eval_dir() / "purified-train")
    p.add_argument("--lgapctl", default=str(locations.repo() / ".build" / "release" / "lgapctl"))
    p.add_argument("--pack", default=str(locations.default_pack()))
    p.add_argument("--extra", default="--ensemble 1", help="extra lgapctl purify arguments")
    p.add_argument("--chunk", type=int, default=400)
    p.add_argument("--limit", type=int, default=0, help="per class, 0 = all (for a quick trial)")
    args = p.parse_args()

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    config = {"split": args.split, "extra": args.extra.split(), "pack": pack_hashes(args.pack), "limit": args.limit}
    cfg_path = out / "config.json"
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old != config:
            raise SystemExit(f"{cfg_path} records other settings; use another --out or delete it:\n{old}\nvs\n{config}")
    else:
        cfg_path.write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")

    src = out / "src"
    extract(args.split, src)
    (out / "manifest").mkdir(exist_ok=True)
    t0, done = time.time(), 0
    for cls in cifar.CLASSES:
        files = sorted((src / cls).glob("*.jpg"))
        if args.limit:
            files = files[: args.limit]
        dest = out / "purified" / cls
        dest.mkdir(parents=True, exist_ok=True)
        todo = [f for f in files if not (dest / (f.stem + ".purified.png")).exists()]
        for i in range(0, len(todo), args.chunk):
            chunk = todo[i : i + args.chunk]
            cmd = [args.lgapctl, "purify", "--json", "--batch", "32", "--pack", args.pack, "--save-purified", str(dest)]
            cmd += args.extra.split() + [str(f) for f in chunk]
            res = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
            with open(out / "manifest" / f"{cls}.jsonl", "a") as m:
                m.write(res.stdout)
            done += len(chunk)
            rate = done / (time.time() - t0)
            print(f"{cls}: {len(files) - len(todo) + i + len(chunk)}/{len(files)}  ({rate:.2f} img/s this run)", flush=True)


if __name__ == "__main__":
    main()

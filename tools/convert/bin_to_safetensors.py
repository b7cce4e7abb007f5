#!/usr/bin/env python3
"""Converts PyTorch .bin weights in a Hugging Face model folder to safetensors (lgap reads safetensors only).

    bin_to_safetensors.py FOLDER      pytorch_model.bin → model.safetensors,
                                      diffusion_pytorch_model.bin → diffusion_pytorch_model.safetensors
Tied tensors are cloned (safetensors refuses shared storage); the originals are left in place.
"""
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    folder = Path(sys.argv[1])
    done = 0
    for src, dst in (("pytorch_model.bin", "model.safetensors"), ("diffusion_pytorch_model.bin", "diffusion_pytorch_model.safetensors")):
        if (folder / src).is_file():
            state = torch.load(folder / src, map_location="cpu")
            state = {k: v.contiguous().clone() for k, v in state.items() if isinstance(v, torch.Tensor)}
            save_file(state, str(folder / dst), metadata={"format": "pt"})
            print(f"wrote {folder / dst} ({len(state)} tensors)")
            done += 1
    if not done:
        raise SystemExit(f"no pytorch_model.bin or diffusion_pytorch_model.bin in {folder}")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# An experiment, not the shipped denoiser (MODEL_CARD.md, "Tried and not shipped"): a second stage on this
# CPU from the GPU run's EMA weights (on_gpu.sh train) with the classifier-consistency loss of
# train_diffusion.py (--cls-weight), the timesteps narrowed to the purification range, and one caption in
# ten swapped for another image's. It raised accuracy with the caption but lowered it with the empty
# caption and taught the denoiser to draw the captioned class; it was stopped at step ≈ 430.
# Resumable: rerun to continue.
#   tools/train/finetune_cls.sh train          (≈ 50 min here, niced; checkpoints every 5 min)
#   tools/train/finetune_cls.sh export [PACK]  (unet + text encoder + tokenizer into PACK)
set -euo pipefail
mode=${1:?train or export}
home=${LGAP_CACHE:-$HOME/.cache/lgap}/train
FLAGS=(--arch medium-lowattn --init-from "$home/diffusion-gpu/checkpoint.pt"
       --classifier models/cifar10-mini/classifier --cls-weight 0.3 --cls-max-t 150 --wrong-caption 0.1
       --batch 64 --lr 1e-4 --lr-final 1e-5 --warmup 50 --steps 1000 --low-max 150 --low-frac 0.9
       --ema 0.995 --seed 2 --out "$home/diffusion-cls")
if [ "$mode" = export ]; then
  exec tools/train/run.sh tools/train/train_diffusion.py "${FLAGS[@]}" --export "${2:-models/cifar10-mini}"
fi
exec tools/train/run.sh tools/train/train_diffusion.py "${FLAGS[@]}" --val-every 200

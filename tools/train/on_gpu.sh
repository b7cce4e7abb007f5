#!/usr/bin/env bash
# Trains the pack's captioner and denoiser side by side on a lent GPU machine (the `device` tool's `run`),
# each on a wall-clock learning-rate schedule of MINUTES, and leaves their EMA weights in $OUT as "slim"
# checkpoints (fp16, the denoiser's split in 15 MB parts: files come back at most 16 MiB each). The
# machine reaches nothing: the pinned Python packages travel as wheels in .whl/ and the CIFAR-10 training
# archive + CLIP merges in .gpu/shared/ (both git-ignored, named in the call's carry; `prepare` fills
# them). The working tree travels too and must stay under 64 MiB with them: leave the test fixtures and
# the pack's unet/ out of git's index for the call (`git rm -r --cached`, then `git reset`).
#
#   here, once:          tools/train/on_gpu.sh prepare
#   on the GPU machine:  tools/train/on_gpu.sh train MINUTES             (captioner + denoiser)
#                        tools/train/on_gpu.sh train-captioner2 MINUTES  (a second captioner stage from
#                          the pack's captioner, with the teacher also distilled at the class noun)
#   back here:           tools/train/on_gpu.sh export[-captioner2] MINUTES RESULTS_DIR [PACK]
#     (files_at of the call; writes the captioner, unet, text_encoder and tokenizer of PACK, default
#     models/cifar10-mini, through the tools' own --export, which checks the runs' configuration hashes)
#   dry run on this CPU: LGAP_DEVICE=cpu LGAP_PYTHON=VENV/bin/python OUT=/tmp/o tools/train/on_gpu.sh train 0.3
set -uo pipefail
mode=${1:?train or export}
minutes=${2:?minutes}
py=${LGAP_PYTHON:-python3}
dev=${LGAP_DEVICE:-cuda}
work=${LGAP_GPU_WORK:-/tmp/lgap-gpu}
# The runs' flags, in one place: an export must repeat them exactly (they are hashed into the checkpoints).
CAPTIONER=(--schedule-minutes "$minutes" --init-from models/cifar10-mini/captioner
           --teacher models/cifar10-mini/classifier --noun-weight 3 --aux 1.0 --batch 256 --lr 5e-4 --warmup 300)
CAPTIONER2=(--schedule-minutes "$minutes" --init-from models/cifar10-mini/captioner
            --teacher models/cifar10-mini/classifier --noun-weight 3 --noun-kd 0.5 --aux 1.0 --batch 256 --lr 2e-4
            --warmup 100 --seed 1)
DIFFUSION=(--schedule-minutes "$minutes" --arch medium-lowattn --batch 256 --lr 4e-4 --lr-final 2e-5 --warmup 500
           --low-max 300 --low-frac 0.9)

if [ "$mode" = prepare ]; then
  # The versions this project's tools are pinned to (see tools/setup-venv.sh), for the GPU machine's Python 3.12.
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    transformers==4.49.0 tokenizers==0.21.4 huggingface_hub==0.36.2 diffusers==0.31.0 importlib_metadata==8.5.0 || exit 1
  shared=${LGAP_SHARED:-$PWD/../shared}
  mkdir -p .gpu/shared/data/cifar10 .gpu/shared/data/tokenizers/clip
  cp "$shared/data/cifar10/train.tar.gz" .gpu/shared/data/cifar10/ || exit 1
  cp "$shared/data/tokenizers/clip/bpe_simple_vocab_16e6.txt.gz" .gpu/shared/data/tokenizers/clip/ || exit 1
  du -sh .whl .gpu
  exit 0
fi
if [ "$mode" = export-captioner2 ]; then
  results=${3:?results folder}
  home=${LGAP_CACHE:-$HOME/.cache/lgap}/train
  mkdir -p "$home/captioner2-gpu"
  cp "$results/captioner-slim.pt" "$home/captioner2-gpu/checkpoint.pt"
  exec ${LGAP_PYTHON:-python3} tools/train/train_captioner.py "${CAPTIONER2[@]}" \
    --out "$home/captioner2-gpu" --export "${4:-models/cifar10-mini}"
fi
if [ "$mode" = export ]; then
  results=${3:?results folder}
  pack=${4:-models/cifar10-mini}
  home=${LGAP_CACHE:-$HOME/.cache/lgap}/train
  mkdir -p "$home/captioner-gpu" "$home/diffusion-gpu"
  cp "$results/captioner-slim.pt" "$home/captioner-gpu/checkpoint.pt"
  cat "$results"/diffusion-slim.pt.part* > "$home/diffusion-gpu/checkpoint.pt"
  py=${LGAP_PYTHON:-python3}
  "$py" tools/train/train_captioner.py "${CAPTIONER[@]}" --out "$home/captioner-gpu" --export "$pack" || exit 1
  "$py" tools/train/train_diffusion.py "${DIFFUSION[@]}" --out "$home/diffusion-gpu" --export "$pack" || exit 1
  exit 0
fi

out=${OUT:?OUT must name the folder that comes back}
if [ -d .whl ] && [ "$dev" = cuda ]; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site
  check="from transformers import BlipForConditionalGeneration, CLIPTextModel; from diffusers import UNet2DConditionModel"
  if ! "$py" -c "$check"; then
    # The pins fail beside the machine's torch: fall back to its own transformers, with diffusers alone carried.
    echo "pinned packages do not import; trying the machine's transformers"
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site2 .whl/diffusers-*.whl \
      .whl/importlib_metadata-*.whl || exit 1
    export PYTHONPATH=/tmp/site2
    "$py" -c "$check" || exit 1
  fi
fi
export LGAP_SHARED=${LGAP_SHARED:-$PWD/.gpu/shared} LGAP_CACHE=$work/cache PYTHONUNBUFFERED=1
export LGAP_TORCH_THREADS=${LGAP_TORCH_THREADS:-4}
mkdir -p "$work/cache" "$out"
[ "$dev" = cuda ] && nvidia-smi -L
"$py" -c "from lgaptools import cifar; print(len(cifar.load('train')[0]), 'training images')" || exit 1
if [ "$mode" = train-captioner2 ]; then
  "$py" tools/train/train_captioner.py "${CAPTIONER2[@]}" --device "$dev" --out "$work/captioner2" --val-every 1000 \
    --slim "$out/captioner-slim.pt" 2>&1 | tee "$out/captioner.log" | grep -v Warn
  exit "${PIPESTATUS[0]}"
fi
"$py" tools/train/train_captioner.py "${CAPTIONER[@]}" --device "$dev" --out "$work/captioner" --val-every 2000 \
  --slim "$out/captioner-slim.pt" >"$out/captioner.log" 2>&1 &
cap=$!
"$py" tools/train/train_diffusion.py "${DIFFUSION[@]}" --device "$dev" --out "$work/diffusion" --val-every 3000 \
  --slim "$work/diffusion-slim.pt" >"$out/diffusion.log" 2>&1 &
dif=$!
wait $cap; rc_cap=$?
wait $dif; rc_dif=$?
[ -f "$work/diffusion-slim.pt" ] && split -b 15m -d "$work/diffusion-slim.pt" "$out/diffusion-slim.pt.part"
ls -la "$out"
echo "captioner rc $rc_cap, diffusion rc $rc_dif"
exit $(( rc_cap || rc_dif ))

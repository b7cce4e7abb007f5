#!/usr/bin/env bash
# Runs a training tool with PyTorch at its best on this CPU (see ../shared/MACHINE-NOTES.md):
# tcmalloc preloaded, OpenBLAS single-threaded beside torch's 2 OpenMP threads, niced so interactive
# work keeps priority. OpenBLAS 0.3.21 does not recognise this CPU: with OPENBLAS_CORETYPE unset it
# falls back to the generic Prescott kernel (≈ 30 GFLOP/s), so training names its AVX-512 kernel
# (SkylakeX, ≈ 2x the environment's Haswell preset; override with LGAP_TRAIN_CORETYPE).
# Usage: tools/train/run.sh SCRIPT.py [ARGS...]   (python: $LGAP_PYTHON, default python3 on PATH)
set -euo pipefail
py=${LGAP_PYTHON:-python3}
tc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
[ -f "$tc" ] && export LD_PRELOAD="$tc${LD_PRELOAD:+:$LD_PRELOAD}"
export OPENBLAS_CORETYPE=${LGAP_TRAIN_CORETYPE:-SkylakeX}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=${LGAP_TORCH_THREADS:-2} PYTHONUNBUFFERED=1
exec nice -n ${LGAP_NICE:-10} "$py" "$@"

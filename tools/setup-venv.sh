#!/usr/bin/env bash
# Creates the Python environment for tools/ (goldens, training, conversion, attacks, reference runs):
# Debian's python3-torch 1.13 (CPU) plus the PyPI pins known to work with it. The daemon and the
# Swift tests never need Python.
# Usage: tools/setup-venv.sh [VENV_DIR]   (default: $LGAP_VENV or /work/venv)
set -euo pipefail
venv=${1:-${LGAP_VENV:-/work/venv}}
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch python3-venv python3-pil python3-numpy libtcmalloc-minimal4
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install -q diffusers==0.31.0 transformers==4.49.0 huggingface_hub==0.36.2 tokenizers==0.21.4 safetensors==0.8.0
"$venv/bin/python" -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)"

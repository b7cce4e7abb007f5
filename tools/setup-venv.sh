#!/usr/bin/env bash
# Creates the Python environment for tools/ (goldens, training, conversion, attacks, reference runs):
# Debian's python3-torch 1.13 (CPU) plus the PyPI pins of tools/pyproject.toml (known to work with
# it), with tools/ installed editable as the `lgaptools` package. The daemon and the Swift tests never
# need Python.
# Usage: tools/setup-venv.sh [VENV_DIR]   (default: $LGAP_VENV, else ${XDG_DATA_HOME:-~/.local/share}/lgap/venv)
# Then: export LGAP_PYTHON=VENV_DIR/bin/python (the tools and lgap-bench use it).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-${LGAP_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/lgap/venv}}
scripts/setup-debian.sh python3-torch python3-torchvision python3-venv python3-pil python3-numpy libtcmalloc-minimal4
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install -q -e "tools[dev]"
"$venv/bin/python" -c "import torch, diffusers, transformers, lgaptools; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)"
echo "export LGAP_PYTHON=$venv/bin/python"

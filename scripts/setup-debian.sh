#!/usr/bin/env bash
# Installs the Debian packages lgap builds and runs against (skips what is already there), or the
# packages named as arguments.
# Needs root or sudo. Swift itself (6.1 or later) must already be on PATH.
set -euo pipefail
packages=(libopenblas-dev libzmq3-dev libsqlite3-dev libpng-dev libjpeg62-turbo-dev libssl-dev libpq-dev libseccomp-dev pkg-config dpkg-dev
          postgresql postgresql-client python3-venv python3-zmq)
# With arguments: those packages instead (tools/setup-venv.sh installs PyTorch's this way).
[ $# -gt 0 ] && packages=("$@")
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing: ${missing[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
[ $# -gt 0 ] || command -v swift >/dev/null || { echo "swift not found on PATH (Swift 6.1+ is required)" >&2; exit 1; }

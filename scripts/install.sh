#!/usr/bin/env bash
# Installs lgap from source: the static binaries, man pages, completions, the default pack, docs
# (under PREFIX), the sample configuration (/etc/lgapd/lgapd.toml, never overwritten) and the systemd
# units (/etc/systemd/system). What it installed is listed in PREFIX/share/lgap/installed-files, which
# scripts/uninstall.sh reads.
#   scripts/install.sh [PREFIX]        (default PREFIX=/usr/local; needs root for /etc and systemd)
# Then: systemctl daemon-reload && systemctl enable --now lgapd
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
scripts/dist.sh "$prefix" "$stage"
manifest="$prefix/share/lgap/installed-files"
install -d "$prefix/share/lgap"
: > "$stage/installed-files"
(cd "$stage$prefix" && find . -type f -o -type l) | sed "s|^\.|$prefix|" >> "$stage/installed-files"
cp -a "$stage$prefix/." "$prefix/"
install -d /etc/lgapd
if [ ! -f /etc/lgapd/lgapd.toml ]; then
    install -m 0644 "$stage/etc/lgapd/lgapd.toml" /etc/lgapd/lgapd.toml
fi
if [ -d /etc/systemd/system ]; then
    for unit in lgapd.service lgapd@.service; do
        install -m 0644 "$stage/lib/systemd/system/$unit" "/etc/systemd/system/$unit"
        echo "/etc/systemd/system/$unit" >> "$stage/installed-files"
    done
    echo "installed; start with: systemctl daemon-reload && systemctl enable --now lgapd"
    echo "(a fleet node: /etc/lgapd/NAME.toml from Config/fleet/node.toml, then systemctl enable --now lgapd@NAME)"
else
    echo "installed to $prefix (no /etc/systemd/system: run $prefix/bin/lgapd --config /etc/lgapd/lgapd.toml yourself)"
fi
echo "$manifest" >> "$stage/installed-files"
install -m 0644 "$stage/installed-files" "$manifest"

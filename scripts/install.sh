#!/usr/bin/env bash
# Installs lgap: binaries, the default pack, the sample configuration and the systemd unit.
#   scripts/install.sh [PREFIX]        (default PREFIX=/usr/local; needs root for /etc and systemd)
# Builds in release first. Does not overwrite an existing /etc/lgapd/lgapd.toml.
# Then: systemctl daemon-reload && systemctl enable --now lgapd
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
swift build -c release --product lgapd
swift build -c release --product lgapctl
install -d "$prefix/bin" "$prefix/share/lgap/packs" "$prefix/share/doc/lgap"
install -m 0755 .build/release/lgapd .build/release/lgapctl "$prefix/bin/"
rm -rf "$prefix/share/lgap/packs/cifar10-mini"
cp -r models/cifar10-mini "$prefix/share/lgap/packs/cifar10-mini"
chmod -R a+rX "$prefix/share/lgap/packs/cifar10-mini"
install -m 0644 README.md "$prefix/share/doc/lgap/README.md"
install -d /etc/lgapd
if [ ! -f /etc/lgapd/lgapd.toml ]; then
    sed -e "s|^# pack = .*|pack = \"$prefix/share/lgap/packs/cifar10-mini\"|" Config/lgapd.toml > /etc/lgapd/lgapd.toml
    chmod 0644 /etc/lgapd/lgapd.toml
fi
if [ -d /etc/systemd/system ]; then
    for unit in lgapd.service lgapd@.service; do
        sed -e "s|/usr/local/|$prefix/|g" "systemd/$unit" > "/etc/systemd/system/$unit"
        chmod 0644 "/etc/systemd/system/$unit"
    done
    echo "installed; start with: systemctl daemon-reload && systemctl enable --now lgapd"
    echo "(a fleet node: /etc/lgapd/NAME.toml from Config/fleet/node.toml, then systemctl enable --now lgapd@NAME)"
else
    echo "installed to $prefix (no /etc/systemd/system: run $prefix/bin/lgapd --config /etc/lgapd/lgapd.toml yourself)"
fi

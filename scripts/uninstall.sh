#!/usr/bin/env bash
# Removes what scripts/install.sh installed (the list in PREFIX/share/lgap/installed-files). Keeps the
# configuration (/etc/lgapd) and the data (/var/lib/lgapd, or /var/lib/private/lgapd under the unit's
# DynamicUser): remove those yourself once the provenance is no longer needed.
#   scripts/uninstall.sh [PREFIX]      (default PREFIX=/usr/local)
set -euo pipefail
prefix=${1:-/usr/local}
manifest="$prefix/share/lgap/installed-files"
[ -f "$manifest" ] || { echo "no $manifest: nothing installed by scripts/install.sh under $prefix" >&2; exit 1; }
if [ -d /run/systemd/system ] && grep -q '^/etc/systemd/system/lgapd' "$manifest"; then
    systemctl disable --now lgapd.service 2>/dev/null || true
fi
while IFS= read -r f; do
    case "$f" in "$prefix"/* | /etc/systemd/system/lgapd*) rm -f -- "$f" ;; esac
done < "$manifest"
rm -f -- "$manifest"
# Folders of ours left empty (never the shared ones above them).
for d in "$prefix/share/lgap/packs/cifar10-mini" "$prefix/share/lgap/packs" "$prefix/share/lgap" "$prefix/share/doc/lgap"; do
    [ -d "$d" ] && find "$d" -depth -type d -empty -delete
done
[ -d /run/systemd/system ] && systemctl daemon-reload 2>/dev/null || true
echo "removed lgap from $prefix (kept /etc/lgapd and the database)"

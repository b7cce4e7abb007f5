#!/usr/bin/env bash
# Builds the Debian package: .build/dist/lgap_VERSION_ARCH.deb with the static binaries, the default
# pack, the configuration (a conffile), the systemd units, man pages and completions (scripts/dist.sh,
# PREFIX /usr). Depends are what dpkg-shlibdeps finds the binaries need (no Swift toolchain).
#   scripts/package-deb.sh             (needs dpkg-dev; prints the package's path last)
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(realpath -m "${LGAP_DIST_BUILD:-.build/dist}")
stage="$scratch/deb-root"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN"
LGAP_DIST_BUILD=$scratch scripts/dist.sh /usr "$stage"

version=$("$stage/usr/bin/lgapd" --version | head -1 | awk '{print $2}')
commit=$(git describe --tags --always --dirty 2>/dev/null || true)
arch=$(dpkg --print-architecture)
# dpkg-shlibdeps wants a debian/control beside it.
shlibs=$(mktemp -d)
trap 'rm -rf "$shlibs"' EXIT
mkdir -p "$shlibs/debian"
printf 'Source: lgap\n\nPackage: lgap\nArchitecture: any\n' > "$shlibs/debian/control"
depends=$(cd "$shlibs" && dpkg-shlibdeps -O -e"$stage/usr/bin/lgapd" -e"$stage/usr/bin/lgapctl" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "dpkg-shlibdeps found no dependencies" >&2; exit 1; }

cat > "$stage/DEBIAN/control" <<CONTROL
Package: lgap
Version: $version
Architecture: $arch
Maintainer: lgap maintainers <lgap@localhost>
Section: net
Priority: optional
Installed-Size: $(du -ks "$stage/usr" | cut -f1)
Depends: $depends
Recommends: systemd
Description: Language-Guided Adversarial Purification in front of image classifiers
 lgapd takes images over ZeroMQ, captions each, uses the caption to guide a
 diffusion model that washes out adversarial perturbations, classifies the
 purified image, publishes the result and records full provenance in SQLite
 or PostgreSQL; lgapctl queries the history and runs the models offline.
 Built from ${commit:-an unknown commit}; ships the default model pack cifar10-mini.
CONTROL
echo /etc/lgapd/lgapd.toml > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    echo "lgap installed; start with: systemctl enable --now lgapd"
fi
SCRIPT
cat > "$stage/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop lgapd.service || true
fi
SCRIPT
cat > "$stage/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
# The provenance database (/var/lib/private/lgapd) is kept, even on purge: remove it yourself.
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
SCRIPT
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"
deb="$scratch/lgap_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"

#!/usr/bin/env bash
# The Debian package as an operator gets it: builds it (scripts/package-deb.sh), unpacks it into a
# temporary root and checks that its dependencies are installed here, that the binaries load no
# library outside Debian's (no Swift toolchain), that man pages and completions are there and well
# formed, that `lgapd --check-config` accepts the packaged configuration with the packaged pack, and
# that one job goes through the packaged lgapd (router mode, lgapctl submit --wait) into its history.
# CI runs it after `make test` (`make test-deb`).
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(scripts/package-deb.sh | tail -1)
work=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "test-deb: $*" >&2; exit 1; }
root="$work/root"
dpkg-deb -x "$deb" "$root"
echo "package: $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version), $(du -h "$deb" | cut -f1)"

# Every dependency (or one of its alternatives) is installed on this machine.
IFS=',' read -ra deps <<< "$(dpkg-deb -f "$deb" Depends)"
for dep in "${deps[@]}"; do
    ok=""
    IFS='|' read -ra alternatives <<< "$dep"
    for alt in "${alternatives[@]}"; do
        name=$(echo "$alt" | awk '{print $1}')
        dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" && ok=1
    done
    [ -n "$ok" ] || fail "dependency not installed: $dep"
done
echo "depends (${#deps[@]}): all installed"

for tool in lgapd lgapctl; do
    libs=$(env -u LD_LIBRARY_PATH ldd "$root/usr/bin/$tool")
    echo "$libs" | grep -q "not found" && fail "$tool: a library is missing: $(echo "$libs" | grep "not found")"
    outside=$(echo "$libs" | awk '$3 ~ /^\// {print $3}' | grep -Ev '^/(usr/)?lib(64)?/' || true)
    [ -z "$outside" ] || fail "$tool loads libraries from outside Debian's folders: $outside"
    gzip -t "$root/usr/share/man/man1/$tool.1.gz" || fail "$tool.1.gz"
    zcat "$root/usr/share/man/man1/$tool.1.gz" | grep -q '^\.Dt' || fail "$tool.1 is not a man page (mdoc)"
    bash -n "$root/usr/share/bash-completion/completions/$tool" || fail "bash completion for $tool"
    grep -q "_$tool" "$root/usr/share/zsh/vendor-completions/_$tool" || fail "zsh completion for $tool"
    grep -Eq "^complete -c '?$tool'?" "$root/usr/share/fish/vendor_completions.d/$tool.fish" || fail "fish completion for $tool"
    "$root/usr/bin/$tool" --version | head -1
done
echo "man pages: $(ls "$root/usr/share/man/man1" | wc -l) ($(ls "$root/usr/share/man/man1" | tr '\n' ' '))"

# The packaged configuration, its pack path moved into the temporary root.
config="$work/lgapd.toml"
sed -e "s|^pack = \"/usr/|pack = \"$root/usr/|" "$root/etc/lgapd/lgapd.toml" > "$config"
grep -q "^pack = \"$root/usr/share/lgap/packs/cifar10-mini\"" "$config" || fail "the packaged configuration names no pack"
"$root/usr/bin/lgapd" --check-config --config "$config"

# One job through the packaged daemon.
port=$((20000 + RANDOM % 20000))
"$root/usr/bin/lgapd" --config "$config" --db "$work/lgapd.sqlite" --ingest-mode router \
    --ingest "tcp://127.0.0.1:$port" --results "tcp://127.0.0.1:$((port + 1))" 2> "$work/lgapd.log" &
pid=$!
sample=$(find "$root/usr/share/lgap/packs/cifar10-mini/samples" -name '*.jpg' | sort | head -1)
"$root/usr/bin/lgapctl" submit --mode router --endpoint "tcp://127.0.0.1:$port" --results "tcp://127.0.0.1:$((port + 1))" \
    --wait --timeout 300 "$sample" || { cat "$work/lgapd.log" >&2; fail "the job did not complete"; }
stem=$(basename "$sample" .jpg)  # the job id is the file's stem and a hash of its bytes
"$root/usr/bin/lgapctl" history --db "$work/lgapd.sqlite" --status done | grep -q " $stem-" \
    || { "$root/usr/bin/lgapctl" history --db "$work/lgapd.sqlite" >&2; fail "the job is not done in the history"; }
kill -TERM "$pid"
wait "$pid" || fail "lgapd exited $? after SIGTERM"
pid=""
echo "test-deb passed: $deb"

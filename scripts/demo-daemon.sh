#!/usr/bin/env bash
# The service round trip on the default pack: start lgapd (temporary database, loopback ports),
# submit the sample images in router mode and wait for their results, show history and stats,
# stop lgapd with SIGTERM. Usage: scripts/demo-daemon.sh [IMAGES...] (default: the pack's samples)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release
[ -x $bin/lgapd ] && [ -x $bin/lgapctl ] || swift build -c release
dir=$(mktemp -d)
ingest=tcp://127.0.0.1:${LGAP_DEMO_PORT:-5755} results=tcp://127.0.0.1:$(( ${LGAP_DEMO_PORT:-5755} + 1 ))
$bin/lgapd --db "$dir/lgapd.sqlite" --ingest $ingest --results $results --ingest-mode router 2> "$dir/lgapd.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q " ready" "$dir/lgapd.log" 2>/dev/null && break; sleep 0.1; done
$bin/lgapctl submit --mode router --endpoint $ingest --results $results --label-from-name --wait "${@:-models/cifar10-mini/samples}"
echo; $bin/lgapctl history --db "$dir/lgapd.sqlite" --limit 5
echo; $bin/lgapctl stats --db "$dir/lgapd.sqlite"
kill -TERM $pid; wait $pid; trap - EXIT
echo; echo "lgapd exited $?; its log and database are in $dir"

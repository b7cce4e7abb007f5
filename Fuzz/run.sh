#!/usr/bin/env bash
# Builds and runs one libFuzzer target for a time budget.
#   Fuzz/run.sh FuzzJobHeader|FuzzPNG|FuzzJPEG|FuzzPPM [SECONDS=600]
# Seeds: Fuzz/Corpus/<target> (committed). New interesting inputs go to Fuzz/.work/<target> (not
# committed); crashes to Fuzz/Crashes/<target>/crash-* — after fixing one, copy it into
# Tests/Fixtures/fuzz/<target>/, where FuzzRegressionTests replays it in every test run.
set -euo pipefail
cd "$(dirname "$0")"
target=$1
seconds=${2:-600}
swift build -c debug --product "$target" --scratch-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xcc -fsanitize=fuzzer-no-link,address \
    -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld
mkdir -p ".work/$target" "Crashes/$target"
exec .build-fuzz/debug/"$target" ".work/$target" "Corpus/$target" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
    -artifact_prefix="Crashes/$target/" -print_final_stats=1

#!/usr/bin/env bash
# Builds and runs one libFuzzer target for a time budget.
#   Fuzz/run.sh FuzzJobHeader|FuzzPNG|FuzzJPEG|FuzzPPM [SECONDS=600]
# Corpus: Fuzz/Corpus/<target> (seeds committed; new interesting inputs are added there during the
# run); crashes: Fuzz/Crashes/<target>/crash-* — copy each into Tests/Fixtures/fuzz/<target>/ after
# fixing it, where FuzzRegressionTests replays them.
set -euo pipefail
cd "$(dirname "$0")"
target=$1
seconds=${2:-600}
swift build -c debug --product "$target" --scratch-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xcc -fsanitize=fuzzer-no-link,address
mkdir -p "Corpus/$target" "Crashes/$target"
exec .build-fuzz/debug/"$target" "Corpus/$target" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
    -artifact_prefix="Crashes/$target/" -print_final_stats=1

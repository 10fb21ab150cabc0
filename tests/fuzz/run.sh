#!/usr/bin/env bash
# Runs a libFuzzer target for a bounded time from a fresh seed corpus and
# prints how many executions it made. Usage: run.sh FUZZER SECONDS
set -euo pipefail
fuzzer=$1
seconds=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/seeds"
PTRACK_FUZZ_SEEDS="$work/seeds" "$fuzzer" -runs=0 "$work/seeds" \
	>"$work/seed.log" 2>&1
# -jobs=1 keeps one process; the log's last stats line has the counts.
"$fuzzer" -max_total_time="$seconds" -max_len=70000 -timeout=10 \
	-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/" \
	"$work/corpus" "$work/seeds" >"$work/fuzz.log" 2>&1 || {
	tail -n 60 "$work/fuzz.log"
	mkdir -p build/fuzz-crashes
	cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* build/fuzz-crashes/ \
		2>/dev/null || true
	echo "fuzz: $(basename "$fuzzer") FAILED; inputs in build/fuzz-crashes/"
	exit 1
}
runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/fuzz.log" |
	grep -o '[0-9]*$')
cov=$(grep -o 'cov: [0-9]*' "$work/fuzz.log" | tail -n 1)
echo "fuzz: $(basename "$fuzzer"): $runs executions in ${seconds} s, $cov, no crash"

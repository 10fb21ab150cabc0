#!/bin/bash
# Benchmark: write-protect dirty logging against the FEAT_HAFDBS page
# tracking device, same guest workload, inside the emulated arm64 host.
#
# usage: bench/kernel/run.sh [vhe|nvhe]...   (default: vhe nvhe)
#
# Prints dirty_log_perf_test-style lines for each mode and a summary. QEMU
# TCG timings are NOT hardware timings: only the fault counts and their
# ratios carry over to hardware. PTRACK_SKIP_BUILD=1 reuses the built Image.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tb=$here/../../tests/arm64
# shellcheck source=../../driver/kernel/env.sh
source "$here/../../driver/kernel/env.sh"

modes=("$@")
((${#modes[@]})) || modes=(vhe nvhe)

if [[ ${PTRACK_SKIP_BUILD:-0} != 1 ]]; then
	"$here/../../driver/kernel/build.sh" image
fi
# The runner reads #cmdline from tests/arm64/scenarios/NAME, so install the
# scenario there under a name of its own for the duration of the run.
cp "$here/scenario" "$tb/scenarios/zz-bench"
trap 'rm -f "$tb/scenarios/zz-bench"' EXIT
"$tb/mkimage.sh"

out=$PTRACK_KWORK/bench
mkdir -p "$out"
rc=0
for m in "${modes[@]}"; do
	log=$out/bench-$m.log
	if ! "$tb/run-scenario.sh" -m "$m" -s zz-bench -t 1800 -L "$log"; then
		rc=1
		continue
	fi
	echo "=== $m: write-protect (cap off) vs FEAT_HAFDBS tracker (cap on)"
	echo "=== QEMU TCG emulation: times are not hardware times; compare fault counts"
	tr -d '\r' <"$log" | grep -E '^(mode:|Iteration|Get dirty|Clear dirty|Dirty memory|First-touch|PASS|FAIL)'
done
exit $rc

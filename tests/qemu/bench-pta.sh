#!/usr/bin/env bash
# Benchmark: write-protect dirty logging, the FEAT_HAFDBS reference tracker
# and the PTA driver, same guest workload (tests/arm64/ptrack_kvm_test
# --bench: 2 vCPUs write all 16384 pages of a slot per round, GET + CLEAR),
# all under our QEMU, in the kernel benchmark's (dirty_log_perf_test) line
# format, then a summary of ratios against write-protect.
#
#   tests/qemu/bench-pta.sh [vhe|nvhe]...     (default: vhe nvhe)
#
# QEMU TCG timings are NOT hardware timings: only the fault counts and
# their ratios carry over to hardware.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../driver/kernel/env.sh
. "$here/../../driver/kernel/env.sh"
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(vhe nvhe)
OUT=$PTRACK_KWORK/pta
rc=0
for m in "${modes[@]}"; do
	"$here/run-pta.sh" -s pta-bench-ref -s pta-bench "$m" >/dev/null || rc=1
	ref=$OUT/pta-bench-ref-$m.log
	pta=$OUT/pta-bench-$m.log
	echo "=== $m: QEMU TCG emulation: times are not hardware times; compare fault counts"
	for f in "$ref" "$pta"; do
		tr -d '\r' <"$f" | grep -E '^(mode:|Iteration|Get dirty|Clear dirty|Dirty memory|First-touch|PASS|FAIL)' || true
	done
	# Summary over the re-dirty rounds (2 and later; round 1 faults every
	# page in under any mode): time per round, GET + CLEAR time per round,
	# write faults per re-dirtied page, and ratios against write-protect.
	{
		tr -d '\r' <"$ref" | awk '/^mode:/ {n++} {print (n == 1 ? "wp" : "hafdbs"), $0}'
		tr -d '\r' <"$pta" | awk '{print "pta", $0}'
	} | awk -v mode="$m" '
	$2 == "Iteration" && $3 >= 2 && $5 == "memory" { t[$1] += $7; n[$1]++ }
	$2 == "Iteration" && $3 >= 2 && $4 == "get" { h[$1] += $8 }
	$2 == "Iteration" && $3 >= 2 && $4 == "clear" { h[$1] += $8 }
	$2 == "First-touch" { f[$1] = $(NF - 1) }
	END {
		printf "=== %s summary, rounds 2+ (ratios: to write-protect)\n", mode
		printf "%-7s %11s %7s %13s %7s %12s\n", "config", "s/round",
		       "ratio", "harvest s", "ratio", "faults/page"
		split("wp hafdbs pta", ks, " ")
		for (i = 1; i <= 3; i++) {
			k = ks[i]
			if (!n[k])
				continue
			r = t[k] / n[k]; g = h[k] / n[k]
			rw = t["wp"] / n["wp"]; gw = h["wp"] / n["wp"]
			printf "%-7s %11.6f %7.4f %13.6f %7.2f %12s\n", k, r,
			       r / rw, g, g / gw, f[k]
		}
	}'
done
exit $rc

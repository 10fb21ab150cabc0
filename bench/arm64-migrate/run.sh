#!/bin/bash
# The headline benchmark: the same arm64 guest and workload (ptrack-vmm,
# 32 MiB, 2 vCPUs, random pages at up to 300 pages/s: the user-net link carries about 3 MB/s under TCG) migrated by
# ptrackd from the emulated arm64 host to a peer on this machine, tracked
# by write-protect, by the FEAT_HAFDBS reference tracker and by the PTA
# (bitmaps, and rings), in one run. Memory is checked byte for byte as in
# tests/arm64/run-migrate.sh, which runs the migrations.
#
# usage: bench/arm64-migrate/run.sh [vhe|nvhe]   (default vhe)
#
# QEMU TCG FIGURES: the emulated host runs under TCG, so times are not
# hardware times. The fault counts, rounds and the ratios between trackers
# are what carries over. Prints one table with ratios against write-protect.
# Columns: total and downtime as ptrackd source reports them; the guest's
# store rate in the warm-up before the migration and from registration to
# the switchover's pause (slowdown = 1 - during/before); kexits/page: the
# exits KVM handled itself during that time (stage-2 permission faults,
# plus timer and IRQ exits, which this low-rate guest does not dwarf) per
# page the migration harvested.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tb=$here/../../tests/arm64
# shellcheck source=../../driver/kernel/env.sh
source "$here/../../driver/kernel/env.sh"
mode=${1:-vhe}
combos=(bench-wp bench-hafdbs)
# The PTA runs need our QEMU built with user networking and the module.
qemu=${PTRACK_QEMU_WORK:-/var/tmp/ptrack-qemu}/build/qemu-system-aarch64
ko=${PTRACK_PTA_KO:-${PTRACK_PTA_BUILD:-/var/tmp/ptrack-pta-build}/src/ptrack-pta.ko}
if [[ -x $qemu && -f $ko ]] && "$qemu" -M virt -netdev help 2>/dev/null | grep -qx user; then
	combos+=(bench-pta-bitmap bench-pta-ring)
else
	echo "bench: no PTA runs (needs driver/qemu/build.sh with slirp and driver/pta/build.sh)"
fi
t0=$(date +%s)
"$tb/run-migrate.sh" -m "$mode" "${combos[@]}" || true

w=$PTRACK_KWORK/migrate
printf '\n== arm64 migration by ptrackd, %s, QEMU TCG (not hardware times)\n' "$mode"
printf '%-17s %6s %9s %9s %7s %9s %9s %10s %11s %s\n' tracker ok total_ms \
	downtime rounds before/s during/s slowdown kexits/page memory
declare -A base=()
for c in "${combos[@]}"; do
	d=$w/$c-$mode
	log=$d/serial.log
	line="" stats=""
	if [[ -f $log ]]; then
		line=$(tr -d '\r' <"$log" | grep -a 'migration complete:' | tail -1 || true)
		stats=$(tr -d '\r' <"$log" | grep -a 'ptrack-vmm: stats' | tail -1 | sed 's/.*stats //' || true)
	fi
	if [[ -z $line || -z $stats ]]; then
		printf '%-17s %6s\n' "${c#bench-}" FAILED
		continue
	fi
	rounds=$(sed -n 's/.*complete: \([0-9]*\) rounds.*/\1/p' <<<"$line")
	total=$(sed -n 's/.*total \([0-9]*\) ms.*/\1/p' <<<"$line")
	down=$(sed -n 's/.*downtime \([0-9]*\) ms.*/\1/p' <<<"$line")
	read -r before during exits pages < <(python3 -c '
import json, sys
s = json.loads(sys.argv[1])
print(s["store_rate_before"], s["store_rate_during"], s["kernel_exits"], s["harvested_pages"])' "$stats")
	same=no
	cmp -s "$d/source.mem" "$d/dest.mem" && same=identical
	slow=$(python3 -c "print(f'{1 - $during / $before:.3f}' if $before else 'n/a')")
	epp=$(python3 -c "print(f'{$exits / $pages:.3f}' if $pages else 'n/a')")
	printf '%-17s %6s %9s %9s %7s %9.0f %9.0f %10s %11s %s\n' "${c#bench-}" ok \
		"$total" "$down" "$rounds" "$before" "$during" "$slow" "$epp" "$same"
	base[$c]="$total $down $rounds $slow $epp"
done
if [[ -n ${base[bench-wp]:-} ]]; then
	read -r bt bd _ _ be <<<"${base[bench-wp]}"
	printf '\nratios against write-protect (total, downtime, exits per dirtied page):\n'
	for c in "${combos[@]}"; do
		[[ -n ${base[$c]:-} ]] || continue
		read -r t d _ _ e <<<"${base[$c]}"
		python3 -c "
t, d, e, bt, bd, be = $t, $d, $e, $bt, $bd, $be
r = lambda a, b: f'{a / b:.2f}' if b else 'n/a'
print(f'  {\"${c#bench-}\":15s} total x{r(t, bt)}  downtime x{r(d, bd)}  exits/page x{r(e, be)}')"
	done
fi
echo "bench arm64-migrate: $(($(date +%s) - t0)) s"

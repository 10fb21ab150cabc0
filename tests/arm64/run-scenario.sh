#!/bin/bash
# Boot the emulated arm64 host once and run one scenario in it.
#
# usage: run-scenario.sh -m vhe|nvhe -s SCENARIO [-k Image] [-i initramfs]
#                        [-t timeout_s] [-x "extra cmdline"] [-d dtb]
#                        [-q "extra qemu args"] [-L logfile]
#
# Passes (exit 0) only if init reports the scenario done with at least one
# step and no failed step, and the serial log shows no panic, oops, BUG or
# WARNING. Anything else fails loudly with the end of the log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../driver/kernel/env.sh
source "$here/../../driver/kernel/env.sh"

mode=vhe scenario=default kernel=$PTRACK_KIMAGE
PTRACK_QEMU_CPU=${PTRACK_QEMU_CPU:-max}
initrd=$PTRACK_KWORK/initramfs.cpio timeout=600 extra="" dtb="" qextra=""
log=""
while getopts "m:s:k:i:t:x:d:q:L:" opt; do
	case $opt in
	m) mode=$OPTARG ;;
	s) scenario=$OPTARG ;;
	k) kernel=$OPTARG ;;
	i) initrd=$OPTARG ;;
	t) timeout=$OPTARG ;;
	x) extra=$OPTARG ;;
	d) dtb=$OPTARG ;;
	q) qextra=$OPTARG ;;
	L) log=$OPTARG ;;
	*) ptrack_die "bad usage" ;;
	esac
done
# Linux 6.12 knows kvm-arm.mode=nvhe but not "vhe": VHE is what a VHE-capable
# CPU gets by default, so VHE passes no mode (a bogus value only earns a
# "Malformed early option" warning). The log is checked for the mode that
# actually came up.
case $mode in
vhe) modearg="" modeline="VHE mode initialized successfully" ;;
nvhe) modearg="kvm-arm.mode=nvhe" modeline="Hyp nVHE mode initialized successfully" ;;
*) ptrack_die "mode must be vhe or nvhe" ;;
esac
[[ -f $kernel ]] || ptrack_die "no kernel $kernel"
[[ -f $initrd ]] || ptrack_die "no initramfs $initrd"
# A scenario can ask for kernel parameters with a "#cmdline: ..." line.
sfile=$here/scenarios/$scenario
if [[ -f $sfile ]]; then
	scmd=$(sed -n 's/^#cmdline: *//p' "$sfile" | tr '\n' ' ')
	extra="$scmd $extra"
fi
mkdir -p "$PTRACK_KWORK/logs"
log=${log:-$PTRACK_KWORK/logs/$scenario-$mode.log}

qemu=(qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu "$PTRACK_QEMU_CPU"
      -smp 2 -m 1G -nographic -no-reboot -nic none -kernel "$kernel"
      -initrd "$initrd"
      -append "console=ttyAMA0 panic=-1 $modearg ptrack.scenario=$scenario $extra")
[[ -z $dtb ]] || qemu+=(-dtb "$dtb")
# shellcheck disable=SC2206
[[ -z $qextra ]] || qemu+=($qextra)

ptrack_log "boot $scenario ($mode), log $log"
start=$(date +%s)
set +e
timeout --foreground -k 5 "$timeout" "${qemu[@]}" </dev/null >"$log" 2>&1
qrc=$?
set -e
secs=$(($(date +%s) - start))

fail() {
	echo "---- last 40 lines of $log ----" >&2
	tail -n 40 "$log" >&2
	echo "-------------------------------" >&2
	echo "SCENARIO FAIL: $scenario ($mode): $*" >&2
	exit 1
}
((qrc != 124 && qrc != 137)) || fail "timeout after ${timeout}s"
# "WARNING: CPU:" is the kernel's WARN() (programs may print "WARNING:").
bad=$(grep -E -m1 'Kernel panic|Oops|BUG:|WARNING: CPU:|cut here|Unable to handle|Internal error|Call trace:|kernel BUG' "$log" || true)
[[ -z $bad ]] || fail "kernel problem: $bad"
grep -q "$modeline" "$log" || fail "KVM did not come up in $mode mode"
done_line=$(grep -a 'PTRACK-SCENARIO-DONE' "$log" | tail -1 | tr -d '\r' || true)
[[ -n $done_line ]] || fail "init never finished (qemu rc=$qrc)"
pass=$(sed -n 's/.*pass=\([0-9]*\).*/\1/p' <<<"$done_line")
nfail=$(sed -n 's/.*fail=\([0-9]*\).*/\1/p' <<<"$done_line")
grep -a 'PTRACK-STEP [0-9]* \(PASS\|FAIL\)' "$log" | tr -d '\r' | sed 's/^/  /' >&2 || true
((nfail == 0 && pass > 0)) || fail "$done_line"
echo "SCENARIO PASS: $scenario ($mode) steps=$pass in ${secs}s"

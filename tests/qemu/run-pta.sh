#!/usr/bin/env bash
# Boots the patched kernel under our QEMU (driver/qemu/build.sh) with the
# Page Tracking Agent enabled (-machine pta=on), loads the PTA driver and
# runs scenarios from tests/qemu/scenarios/, in VHE and nVHE mode.
#
#   tests/qemu/run-pta.sh [-s SCENARIO]... [vhe|nvhe]...
#
# Default scenarios: pta (driver, netlink, rmmod/insmod), and pta-kvm (KVM
# dirty logging through the PTA with tests/arm64/ptrack_kvm_test, forced
# overflow) and pta-hotplug (CPU hotplug, per-CPU netlink reads) when
# tests/arm64/ptrack_kvm_test.c exists. Default modes: both.
# Needs: driver/kernel/build.sh (kernel Image, gen_init_cpio),
# driver/qemu/build.sh (qemu-system-aarch64), driver/pta/build.sh (module).
# The boot and the log checks are tests/arm64/run-scenario.sh's.
# PTRACK_PTA_KIMAGE and PTRACK_PTA_KO override the kernel and the module.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../driver/kernel/env.sh
. "$here/../../driver/kernel/env.sh"
QWORK=${PTRACK_QEMU_WORK:-/var/tmp/ptrack-qemu}
QEMU_DIR=$QWORK/build
KO=${PTRACK_PTA_KO:-${PTRACK_PTA_BUILD:-/var/tmp/ptrack-pta-build}/src/ptrack-pta.ko}
KIMAGE=${PTRACK_PTA_KIMAGE:-$PTRACK_KIMAGE}
OUT=$PTRACK_KWORK/pta
KVMTEST=$here/../arm64/ptrack_kvm_test.c
scenarios=()
while getopts "s:" opt; do
	case $opt in
	s) scenarios+=("$OPTARG") ;;
	*) ptrack_die "usage: $0 [-s SCENARIO]... [vhe|nvhe]..." ;;
	esac
done
shift $((OPTIND - 1))
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(vhe nvhe)
if [ ${#scenarios[@]} -eq 0 ]; then
	scenarios=(pta)
	[ -f "$KVMTEST" ] && scenarios+=(pta-kvm pta-hotplug)
fi

[ -x "$QEMU_DIR/qemu-system-aarch64" ] || ptrack_die "run driver/qemu/build.sh"
[ -f "$KO" ] || ptrack_die "run driver/pta/build.sh"
gen=$PTRACK_KBUILD/usr/gen_init_cpio
[ -x "$gen" ] || ptrack_die "run driver/kernel/build.sh"

mkdir -p "$OUT"
CC=${PTRACK_CROSS}gcc
"$CC" -static -O2 -Wall -Wextra -Werror -Wno-unused-parameter \
	-o "$OUT/init" "$here/../arm64/init.c"
"$CC" -static -O2 -Wall -Wextra -Werror -o "$OUT/pta_check" \
	"$here/pta_check.c"
"$CC" -static -O2 -Wall -Wextra -Werror -o "$OUT/pta_hotplug" \
	"$here/pta_hotplug.c"
# The netlink client, static for arm64 against Debian's arm64 libnl.
if ! dpkg -s libnl-genl-3-dev:arm64 >/dev/null 2>&1; then
	ptrack_log "installing libnl-genl-3-dev:arm64"
	dpkg --add-architecture arm64
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends libnl-genl-3-dev:arm64 >/dev/null
fi
nlpc=(env PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig pkg-config)
extra="file /bin/pta_hotplug $OUT/pta_hotplug 0755 0 0"
for prog in pta_nl_e2e pta_nl_cpu_e2e; do
	# shellcheck disable=SC2046 # word splitting of pkg-config output is wanted
	"$CC" -static -O2 -Wall -Wextra -Werror -D_GNU_SOURCE \
		-I"$here/../../include" -I"$here/../../daemon" \
		$("${nlpc[@]}" --cflags libnl-genl-3.0) -o "$OUT/$prog" \
		"$here/$prog.c" "$here/../../daemon/ptnl/ptnl.c" \
		$("${nlpc[@]}" --static --libs libnl-genl-3.0) -lpthread \
		2>"$OUT/cc.log" ||
		{ cat "$OUT/cc.log" >&2; ptrack_die "$prog build failed"; }
	extra+=$'\n'"file /bin/$prog $OUT/$prog 0755 0 0"
done
if [ -f "$KVMTEST" ]; then
	"$CC" -static -O2 -Wall -Wextra -Werror -Wno-unused-parameter \
		-o "$OUT/ptrack_kvm_test" "$KVMTEST" -lpthread
	extra+=$'\n'"file /bin/ptrack_kvm_test $OUT/ptrack_kvm_test 0755 0 0"
fi
# The series' KVM selftest, when built (driver/kernel/build.sh image), for
# scenarios that want it (none yet: not run with the PTA so far).
SELFTEST=$PTRACK_KWORK/selftests/aarch64/page_tracking_test
if [ -x "$SELFTEST" ]; then
	extra+=$'\n'"file /bin/page_tracking_test $SELFTEST 0755 0 0"
fi
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
$extra
LIST
for s in "$here"/scenarios/*; do
	echo "file /etc/scenarios/$(basename "$s") $s 0644 0 0"
done >>"$OUT/initramfs.list"
"$gen" "$OUT/initramfs.list" >"$OUT/initramfs.cpio"

rc=0
for sc in "${scenarios[@]}"; do
	for m in "${modes[@]}"; do
		# A first line "#cmdline: ..." adds to the kernel command line.
		cmdline=$(sed -n '1s/^#cmdline: *//p' "$here/scenarios/$sc")
		PATH=$QEMU_DIR:$PATH "$here/../arm64/run-scenario.sh" -m "$m" \
			-s "$sc" -k "$KIMAGE" -i "$OUT/initramfs.cpio" -t 1800 \
			-x "$cmdline" -q "-machine pta=on" -L "$OUT/$sc-$m.log" ||
			rc=1
	done
done
exit $rc

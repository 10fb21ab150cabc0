#!/bin/bash
# ptrack end to end on arm64: inside the emulated arm64 host, `ptrackd
# source` migrates ptrack-vmm's AArch64 guest to a `ptrackd peer` on this
# machine; the memory the peer received must equal, byte for byte, the
# paused guest's memory that the source dumped (sent back afterwards).
#
# usage: tests/arm64/run-migrate.sh [-m vhe|nvhe] [COMBO...]
#   COMBO: wp          write-protect (dirty bitmaps; the scenario also
#                      checks rings in ptrack-vmm's ground-truth mode)
#          hafdbs      the FEAT_HAFDBS reference tracker (bitmaps)
#          pta-bitmap  the PTA (our QEMU, -machine pta=on, its driver),
#                      dirty bitmaps
#          pta-ring    the PTA, dirty rings (per-CPU attribution)
#          bench-*     the same with bench/arm64-migrate's larger guest
# Each combo boots tests/arm64/scenarios/migrate-COMBO once (default: wp
# hafdbs pta-bitmap pta-ring). Needs driver/kernel/build.sh (Image,
# gen_init_cpio), `make ARCH=arm64` and `make` (the programs), and for the
# PTA driver/qemu/build.sh and driver/pta/build.sh.
#
# The link is TLS 1.3 with a pre-shared key made here (psktool), which the
# image carries as /etc/ptrack/psk.txt.
#
# Network: QEMU user networking with restrict=on; the emulated host reaches
# only two guestfwd ports. QEMU runs a command for each connection to them:
# guestfwd-relay.py joins it to the peer on 127.0.0.1, and cat stores the
# dump. The 10.0.2.x addresses exist only inside QEMU's slirp.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../driver/kernel/env.sh
source "$here/../../driver/kernel/env.sh"
repo=$PTRACK_REPO
mode=vhe
while getopts "m:" opt; do
	case $opt in
	m) mode=$OPTARG ;;
	*) ptrack_die "usage: $0 [-m vhe|nvhe] [COMBO...]" ;;
	esac
done
shift $((OPTIND - 1))
combos=("$@")
((${#combos[@]})) || combos=(wp hafdbs pta-bitmap pta-ring)
QEMU_DIR=${PTRACK_QEMU_WORK:-/var/tmp/ptrack-qemu}/build
KO=${PTRACK_PTA_KO:-${PTRACK_PTA_BUILD:-/var/tmp/ptrack-pta-build}/src/ptrack-pta.ko}
need_pta=0
for c in "${combos[@]}"; do
	[[ $c != *pta* ]] || need_pta=1
done
if ((need_pta)); then
	[[ -x $QEMU_DIR/qemu-system-aarch64 ]] || ptrack_die "run driver/qemu/build.sh"
	[[ -f $KO ]] || ptrack_die "run driver/pta/build.sh"
fi

bin=$repo/build/arm64/bin
for p in ptrackd ptrack-vmm; do
	[[ -x $bin/$p ]] || ptrack_die "no $bin/$p: run make ARCH=arm64"
done
host_bin=$repo/build/normal/bin
[[ -x $host_bin/ptrackd ]] || ptrack_die "no $host_bin/ptrackd: run make"

work=$PTRACK_KWORK/migrate
mkdir -p "$work"
"${PTRACK_CROSS}gcc" -static -O2 -Wall -Wextra -Werror \
	-o "$work/ptrack_migrate" "$here/ptrack_migrate.c"
command -v psktool >/dev/null || ptrack_die "psktool missing (gnutls-bin)"
rm -f "$work/psk.txt"
psktool -u ptrack-a64 -p "$work/psk.txt" >/dev/null
list=$work/extra.list
{
	echo "file /bin/ptrack_migrate $work/ptrack_migrate 0755 0 0"
	echo "dir /etc/ptrack 0755 0 0"
	echo "file /etc/ptrack/psk.txt $work/psk.txt 0600 0 0"
	for p in ptrackd ptrackctl ptrack-vmm; do
		echo "file /bin/$p $bin/$p 0755 0 0"
	done
	"$here/libs.sh" "$repo/build/arm64-sysroot" "$bin"/*
	((need_pta == 0)) || echo "file /lib/ptrack-pta.ko $KO 0644 0 0"
} >"$list"
"$here/mkimage.sh" -o "$work/initramfs.cpio" -l "$list"

pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pass=0 fail=0 failed=()
for combo in "${combos[@]}"; do
	[[ -f $here/scenarios/migrate-$combo ]] || ptrack_die "unknown combo $combo"
	qemu_path=$PATH pta=""
	if [[ $combo == *pta* ]]; then
		qemu_path=$QEMU_DIR:$PATH
		pta="-machine pta=on "
	fi
	d=$work/$combo-$mode
	rm -rf "$d" && mkdir -p "$d"
	p1=$(free_port)
	ptrack_log "migrate $combo ($mode): peer 127.0.0.1:$p1"
	timeout 900 "$host_bin/ptrackd" peer --listen "127.0.0.1:$p1" \
		--mem-file "$d/dest.mem" --state-dir "$d" --idle-ms 600000 --tls-psk-file "$work/psk.txt" \
		>"$d/peer.log" 2>&1 &
	peer=$!
	pids+=("$peer")
	# slirp splits a guestfwd command into words itself, and QEMU's
	# option parser takes no blanks here: one script per command.
	printf '#!/bin/sh\nexec python3 %s 127.0.0.1 %s\n' \
		"$here/guestfwd-relay.py" "$p1" >"$d/fwd-peer"
	printf '#!/bin/sh\nexec cat >%s\n' "$d/source.mem" >"$d/fwd-dump"
	chmod +x "$d/fwd-peer" "$d/fwd-dump"
	net="$pta-netdev user,id=n0,restrict=on"
	net+=",guestfwd=tcp:10.0.2.100:7000-cmd:$d/fwd-peer"
	net+=",guestfwd=tcp:10.0.2.101:7001-cmd:$d/fwd-dump"
	net+=" -device virtio-net-device,netdev=n0"
	ok=1
	PATH=$qemu_path "$here/run-scenario.sh" -m "$mode" -s "migrate-$combo" \
		-i "$work/initramfs.cpio" -t 900 -q "$net" \
		-L "$d/serial.log" || ok=0
	# A failed run may never have reached the peer: do not wait for its
	# idle timeout.
	((ok)) || kill "$peer" 2>/dev/null || true
	wait "$peer" || { ok=0; ptrack_log "peer failed: $(tail -3 "$d/peer.log")"; }
	if ((ok)) && cmp "$d/source.mem" "$d/dest.mem"; then
		ptrack_log "$combo ($mode): memory identical ($(stat -c %s "$d/dest.mem") bytes)"
		grep -a 'PTRACK-MIGRATE\|migrat.*complete\|rounds' "$d/serial.log" | tr -d '\r' | tail -5 >&2 || true
		pass=$((pass + 1))
	else
		ptrack_log "$combo ($mode): FAILED (logs in $d)"
		tail -5 "$d/peer.log" >&2 || true
		fail=$((fail + 1))
		failed+=("$combo")
	fi
done
((fail == 0)) || echo "arm64 migrate: FAILED: ${failed[*]}"
echo "arm64 migrate: $pass passed, $fail failed"
((fail == 0))

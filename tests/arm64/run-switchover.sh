#!/bin/bash
# A live migration between two emulated arm64 hosts: the AArch64 guest of
# ptrack-vmm leaves host A and resumes on host B, where it runs on. Both
# hosts run `ptrackd serve`; ptrackctl drives them (`peer listen` on B,
# `migrate` on A). The link is TLS 1.3 with a pre-shared key made here.
# Passes when B's incoming VMM reports memory identical (the hash the
# source VMM took at the pause) and no page back in time, and both sides
# report success: the source guest was stopped only after it resumed.
# The guest-visible downtime that line gives compares two emulated hosts'
# CLOCK_REALTIME, which no RTC or NTP aligns here (each starts near the
# epoch at its boot): it is printed, not checked; ptrackd's own downtime
# is measured on the source alone.
#
# usage: tests/arm64/run-switchover.sh [-m vhe|nvhe]
#
# Network: QEMU user networking with restrict=on on both hosts. B's
# hostfwd takes 127.0.0.1:PORT on this machine to its 10.0.2.15:7000; A's
# guestfwd 10.0.2.100:7000 runs guestfwd-relay.py to 127.0.0.1:PORT.
# Nothing leaves this machine. Needs what run-migrate.sh needs (the
# Image, `make ARCH=arm64`), not the PTA.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../driver/kernel/env.sh
source "$here/../../driver/kernel/env.sh"
repo=$PTRACK_REPO
mode=vhe
while getopts "m:" opt; do
	case $opt in
	m) mode=$OPTARG ;;
	*) ptrack_die "usage: $0 [-m vhe|nvhe]" ;;
	esac
done

bin=$repo/build/arm64/bin
for p in ptrackd ptrackctl ptrack-vmm; do
	[[ -x $bin/$p ]] || ptrack_die "no $bin/$p: run make ARCH=arm64"
done
command -v psktool >/dev/null || ptrack_die "psktool missing (gnutls-bin)"

work=$PTRACK_KWORK/switchover-$mode
rm -rf "$work" && mkdir -p "$work"
"${PTRACK_CROSS}gcc" -static -O2 -Wall -Wextra -Werror \
	-o "$work/ptrack_switchover" "$here/ptrack_switchover.c"
psktool -u ptrack-a64 -p "$work/psk.txt" >/dev/null
list=$work/extra.list
{
	echo "file /bin/ptrack_switchover $work/ptrack_switchover 0755 0 0"
	for p in ptrackd ptrackctl ptrack-vmm; do
		echo "file /bin/$p $bin/$p 0755 0 0"
	done
	"$here/libs.sh" "$repo/build/arm64-sysroot" "$bin"/*
	echo "dir /etc/ptrack 0755 0 0"
	echo "file /etc/ptrack/psk.txt $work/psk.txt 0600 0 0"
} >"$list"
"$here/mkimage.sh" -o "$work/initramfs.cpio" -l "$list"

pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf '#!/bin/sh\nexec python3 %s 127.0.0.1 %s\n' \
	"$here/guestfwd-relay.py" "$port" >"$work/fwd-dest"
chmod +x "$work/fwd-dest"

ptrack_log "switchover ($mode): host B listens on 127.0.0.1:$port"
"$here/run-scenario.sh" -m "$mode" -s switchover-dest -i "$work/initramfs.cpio" \
	-t 600 -L "$work/dest.log" \
	-q "-netdev user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$port-10.0.2.15:7000 -device virtio-net-device,netdev=n0" \
	>"$work/dest.out" 2>&1 &
dest=$!
pids+=("$dest")
for _ in $(seq 600); do
	grep -aq PTRACK-LISTENING "$work/dest.log" 2>/dev/null && break
	kill -0 "$dest" 2>/dev/null || break
	sleep 0.5
done
grep -aq PTRACK-LISTENING "$work/dest.log" ||
	{ cat "$work/dest.out" >&2; ptrack_die "host B never listened (log $work/dest.log)"; }

ptrack_log "switchover ($mode): host A migrates its guest to host B"
src_ok=1 dest_ok=1
"$here/run-scenario.sh" -m "$mode" -s switchover-source -i "$work/initramfs.cpio" \
	-t 600 -L "$work/source.log" \
	-q "-netdev user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:7000-cmd:$work/fwd-dest -device virtio-net-device,netdev=n0" \
	>"$work/source.out" 2>&1 || src_ok=0
wait "$dest" || dest_ok=0
pids=()
cat "$work/source.out" "$work/dest.out" >&2
line=$(grep -ao 'guest resumed on the destination: .*' "$work/dest.log" | tr -d '\r' || true)
grep -a 'migrat.*\(completed\|switched\)' "$work/source.log" | tr -d '\r' | tail -2 >&2 || true
case $line in
*"memory identical"*" 0 pages back in time"*) ;;
*) dest_ok=0 ;;
esac
if ((src_ok && dest_ok)); then
	echo "arm64 switchover ($mode): $line"
	exit 0
fi
echo "arm64 switchover ($mode): FAILED (logs in $work): ${line:-no resume line}" >&2
exit 1

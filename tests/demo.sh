#!/usr/bin/env bash
# The demo (`make demo`): build, then live-migrate the built-in KVM guest
# (ptrack-vmm, 2 vCPUs writing random pages throughout) between two
# `ptrackd serve` instances on this host, over loopback, with
# `ptrackctl migrate`. The destination runs an incoming VMM
# (`ptrack-vmm --incoming`) that ptrackd fills; the guest resumes there and
# runs on. Ends with the line "guest resumed on the destination: ...":
# memory identical (the destination VMM checks a hash the source VMM took
# at the pause, beside ptrackd's CRC32C of every region), the guest-visible
# downtime, and the stores the guest made after it moved. Exit status 0
# only when all of that holds and the source guest was stopped.
#
# The peer link runs TLS 1.3 with throwaway certificates (certtool, in the
# libvirt layout: tests/lib/make-certs.sh); both sides verify the other.
#
# Environment: DEMO_MEM (256M), DEMO_VCPUS (2), DEMO_DIRTY (bitmap|ring),
# DEMO_RATE (guest pages/s, default 50000; 0 = as fast as the guest runs),
# DEMO_RUN_MS (how long the guest runs on the destination, default 2000).
set -uo pipefail
cd "$(dirname "$0")/.."

mem=${DEMO_MEM:-256M}
vcpus=${DEMO_VCPUS:-2}
dirty=${DEMO_DIRTY:-bitmap}
rate=${DEMO_RATE:-50000}
run_ms=${DEMO_RUN_MS:-2000}
bin=build/normal/bin

die() {
	echo "demo: FAILED: $*" >&2
	exit 1
}

echo "== building"
make -s -j"$(nproc)" $bin/ptrackd $bin/ptrackctl $bin/ptrack-vmm ||
	die "build failed"
[ -c /dev/kvm ] || die "/dev/kvm is missing: the demo guest needs KVM"

work=$(mktemp -d /tmp/ptrack-demo-XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# One ptrackd per "host", each with its own sockets and state directory.
serve() {
	local host=$1
	mkdir -p "$work/$host"
	timeout 300 $bin/ptrackd serve --config /dev/null \
		--control-socket "$work/$host/ctl.sock" \
		--vmm-socket "$work/$host/vmm.sock" --no-libvirt \
		--log-target stderr --log-level info \
		--set "daemon.state_dir=$work/$host" --set "tls.dir=$work/pki" \
		> >(sed -u "s/^/[$host ptrackd] /") 2>&1 &
	pids+=($!)
}
ctl() {
	local host=$1
	shift
	$bin/ptrackctl --socket "$work/$host/ctl.sock" "$@"
}
wait_sock() {
	for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done
	die "$1 never appeared"
}

port=$((20000 + RANDOM % 20000))
to=127.0.0.1:$port
guest=(--name demo --mem "$mem" --vcpus "$vcpus" --dirty "$dirty" --verify-memory)

bash tests/lib/make-certs.sh "$work/pki" >/dev/null ||
	die "cannot make TLS certificates (certtool: gnutls-bin)"
echo "== TLS: CA, server and client certificates in $work/pki"

echo "== two ptrackd serve: source and destination ($work)"
serve source
serve dest
wait_sock "$work/source/ctl.sock"
wait_sock "$work/dest/ctl.sock"

echo "== destination: incoming VMM, then ptrackctl peer listen $to"
timeout 300 $bin/ptrack-vmm "${guest[@]}" --incoming \
	--ptrackd "$work/dest/vmm.sock" --run-ms "$run_ms" \
	> >(tee "$work/dest.log" | sed -u 's/^/[dest VMM] /') 2>&1 &
pids+=($!)
dest=$!
for _ in $(seq 100); do ctl dest vms | grep -q incoming && break; sleep 0.05; done
ctl dest peer listen "$to" > >(sed -u 's/^/[peer listen] /') 2>&1 &
pids+=($!)
listen=$!

echo "== source: guest ($mem, $vcpus vCPUs, random writes, $dirty dirty log)"
timeout 300 $bin/ptrack-vmm "${guest[@]}" --pattern random --rate "$rate" \
	--ptrackd "$work/source/vmm.sock" \
	> >(sed -u 's/^/[src VMM]  /') 2>&1 &
pids+=($!)
guest_pid=$!
for _ in $(seq 100); do ctl source vms | grep -q demo && break; sleep 0.05; done
sleep 0.5 # let the guest dirty its memory for a moment

echo "== ptrackctl migrate demo --to $to"
ctl source migrate demo --to "$to" | tee "$work/migrate.out" |
	sed -u 's/^/[migrate] /'
mig_rc=${PIPESTATUS[0]}
wait "$listen"
listen_rc=$?
wait "$guest_pid"
guest_rc=$?
wait "$dest"
dest_rc=$?
sleep 0.1
[ "$mig_rc" -eq 0 ] || die "ptrackctl migrate failed (exit $mig_rc)"
[ $listen_rc -eq 0 ] || die "the peer session failed (exit $listen_rc)"
[ $guest_rc -eq 0 ] || die "the source guest did not stop cleanly (exit $guest_rc)"
line=$(grep -o 'guest resumed on the destination: .*' "$work/dest.log")
[ $dest_rc -eq 0 ] && [ -n "$line" ] ||
	die "the guest did not run correctly on the destination (exit $dest_rc)"
case $line in
*"memory identical"*" 0 pages back in time"*) ;;
*) die "destination check: $line" ;;
esac
ptd=$(sed -n 's/.*completed: .*downtime \([0-9]*\) ms.*/\1/p' "$work/migrate.out")
# The daemons' goodbyes first: the result is the last line.
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
wait 2>/dev/null
sleep 0.2
pids=()
echo "$line; ptrackd downtime ${ptd:-?} ms"

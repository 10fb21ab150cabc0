#!/usr/bin/env bash
# The demo (`make demo`): build, start a peer and a source, run the built-in
# KVM guest (ptrack-vmm, 2 vCPUs writing random pages throughout), migrate
# it over loopback and prove the destination memory identical, byte for
# byte, to the paused source. Exit status 0 only when it is.
#
# Environment: DEMO_MEM (256M), DEMO_VCPUS (2), DEMO_DIRTY (bitmap|ring),
# DEMO_RATE (guest pages/s, default 50000; 0 = as fast as the guest runs).
set -uo pipefail
cd "$(dirname "$0")/.."

mem=${DEMO_MEM:-256M}
vcpus=${DEMO_VCPUS:-2}
dirty=${DEMO_DIRTY:-bitmap}
rate=${DEMO_RATE:-50000}
bin=build/normal/bin

die() {
	echo "demo: FAILED: $*" >&2
	exit 1
}

echo "== building"
make -s -j"$(nproc)" $bin/ptrackd $bin/ptrack-vmm || die "build failed"
[ -c /dev/kvm ] || die "/dev/kvm is missing: the demo guest needs KVM"

work=$(mktemp -d /tmp/ptrack-demo-XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

port=$((20000 + RANDOM % 20000))
sock=$work/vmm.sock
echo "== peer: listening on 127.0.0.1:$port, destination $work/dest.mem"
timeout 300 $bin/ptrackd peer --listen "127.0.0.1:$port" \
	--mem-file "$work/dest.mem" --state-dir "$work" --idle-ms 30000 \
	> >(sed -u 's/^/[peer]   /') 2>&1 &
peer=$!
pids+=("$peer")

echo "== source: waiting for the guest on $sock"
timeout 300 $bin/ptrackd source --vmm-socket "$sock" \
	--to "127.0.0.1:$port" --dump-memory "$work/source.mem" \
	> >(sed -u 's/^/[source] /') 2>&1 &
source=$!
pids+=("$source")

for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || die "the source never opened $sock"

echo "== guest: $mem, $vcpus vCPUs, random writes, $dirty dirty log"
timeout 300 $bin/ptrack-vmm --mem "$mem" --vcpus "$vcpus" \
	--pattern random --rate "$rate" --dirty "$dirty" --ptrackd "$sock" \
	> >(sed -u 's/^/[guest]  /') 2>&1 &
guest=$!
pids+=("$guest")

wait "$source"
src_rc=$?
wait "$peer"
peer_rc=$?
wait "$guest"
sleep 0.1
[ $src_rc -eq 0 ] || die "the source reported failure (exit $src_rc)"
[ $peer_rc -eq 0 ] || die "the peer reported failure (exit $peer_rc)"

echo "== comparing destination memory with the paused source"
if cmp "$work/source.mem" "$work/dest.mem"; then
	echo "memory identical"
	exit 0
fi
die "destination memory differs from the source"

#!/usr/bin/env bash
# The demo (`make demo`): build, then live-migrate the built-in KVM guest
# (ptrack-vmm, 2 vCPUs writing random pages throughout) over loopback from
# a source VMM to an incoming VMM on the "destination", where it resumes and
# runs on. Ends with the line "guest resumed on the destination: ...":
# memory identical (checked by the destination VMM against a hash the
# source VMM took at the pause, beside ptrackd's CRC32C of every region),
# the guest-visible downtime and the stores the guest made after it moved.
# Exit status 0 only when all of that holds and the source guest stopped.
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

guest=(--mem "$mem" --vcpus "$vcpus" --dirty "$dirty" --verify-memory)

pki=$work/pki
bash tests/lib/make-certs.sh "$pki" || die "cannot make TLS certificates (certtool: gnutls-bin)"
echo "== TLS: CA, server and client certificates in $pki"

port=$((20000 + RANDOM % 20000))
dsock=$work/dest-vmm.sock
ssock=$work/vmm.sock
echo "== destination: ptrackd peer on 127.0.0.1:$port, incoming VMM on $dsock"
timeout 300 $bin/ptrackd peer --listen "127.0.0.1:$port" \
	--vmm-socket "$dsock" --state-dir "$work" --idle-ms 30000 \
	--tls-dir "$pki" --tls-allowed 'CN=ptrack-source,*' \
	> >(sed -u 's/^/[peer]   /') 2>&1 &
pids+=($!)
peer=$!
for _ in $(seq 100); do [ -S "$dsock" ] && break; sleep 0.05; done
[ -S "$dsock" ] || die "the peer never opened $dsock"
timeout 300 $bin/ptrack-vmm "${guest[@]}" --incoming --ptrackd "$dsock" \
	--run-ms "$run_ms" > >(tee "$work/dest.log" | sed -u 's/^/[dest]   /') 2>&1 &
pids+=($!)
dest=$!

echo "== source: waiting for the guest on $ssock"
timeout 300 $bin/ptrackd source --vmm-socket "$ssock" \
	--to "127.0.0.1:$port" --tls-dir "$pki" \
	> >(tee "$work/source.log" | sed -u 's/^/[source] /') 2>&1 &
pids+=($!)
source=$!
for _ in $(seq 100); do [ -S "$ssock" ] && break; sleep 0.05; done
[ -S "$ssock" ] || die "the source never opened $ssock"

echo "== guest: $mem, $vcpus vCPUs, random writes, $dirty dirty log"
timeout 300 $bin/ptrack-vmm "${guest[@]}" --pattern random --rate "$rate" \
	--ptrackd "$ssock" > >(sed -u 's/^/[guest]  /') 2>&1 &
pids+=($!)
guest_pid=$!

wait "$source"
src_rc=$?
wait "$peer"
peer_rc=$?
wait "$guest_pid"
guest_rc=$?
wait "$dest"
dest_rc=$?
sleep 0.1
[ $src_rc -eq 0 ] || die "the source reported failure (exit $src_rc)"
[ $peer_rc -eq 0 ] || die "the peer reported failure (exit $peer_rc)"
[ $guest_rc -eq 0 ] || die "the source guest did not stop cleanly (exit $guest_rc)"
grep -q "^switchover: the guest runs on" "$work/source.log" ||
	die "the source did not hand the guest over"
line=$(grep -o 'guest resumed on the destination: .*' "$work/dest.log")
[ $dest_rc -eq 0 ] && [ -n "$line" ] ||
	die "the guest did not run correctly on the destination (exit $dest_rc)"
case $line in
*"memory identical"*"0 pages back in time"*) ;;
*) die "destination check: $line" ;;
esac
ptd=$(sed -n 's/.*downtime \([0-9]*\) ms, .*on the wire.*/\1/p' "$work/source.log")
echo "$line; ptrackd downtime ${ptd:-?} ms"

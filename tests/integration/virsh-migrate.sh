#!/usr/bin/env bash
# Two "hosts" on one machine: each a network + mount + UTS namespace with
# its own libvirtd (qemu:///system, own /etc/libvirt, /run, /var/lib,
# host_uuid, TCP listener without auth) joined by a veth pair. A tiny
# -bios KVM guest is started on host A and `virsh migrate --live` moves it
# to host B, with a ptrackd on each host following libvirt. Checks: the
# guest runs on B under a new QEMU, A's ptrackd saw the job (iterations,
# completion with libvirt's figures) and the guest leave and forgot it,
# B's ptrackd saw it arrive with B's QEMU PID and the same UUID. libvirt
# refuses a migration between hosts with the same host UUID: each
# libvirtd.conf sets its own.
#
# Usage: tests/integration/virsh-migrate.sh [BUILD_BIN_DIR]   (as root)
# Exit 0 on success; 77 when a prerequisite is missing (skip).
set -euo pipefail

BIN=${1:-build/normal/bin}
BIN=$(cd "$BIN" && pwd)
QEMU=/usr/bin/qemu-system-x86_64
CAPS=${PTRACK_LIBVIRT_CACHE:-/var/cache/ptrack/libvirt-qemu}
for x in /usr/sbin/libvirtd /usr/bin/virsh "$QEMU" /dev/kvm; do
	[ -e "$x" ] || { echo "virsh-migrate: skipped: no $x"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "virsh-migrate: skipped: not root"; exit 77; }

T=$(mktemp -d /tmp/ptrack-vmig-XXXXXX)
NAME=ptrack-mig
UUID=$(cat /proc/sys/kernel/random/uuid)
declare -A HOLD LVD PTD IP HUUID
IP[a]=10.77.0.1
IP[b]=10.77.0.2
HUUID[a]=$(cat /proc/sys/kernel/random/uuid)
HUUID[b]=$(cat /proc/sys/kernel/random/uuid)
t0=$(date +%s%N)

cleanup() {
	set +e
	for h in a b; do
		[ -n "${PTD[$h]:-}" ] && kill "${PTD[$h]}" 2>/dev/null
	done
	for h in a b; do
		[ -n "${HOLD[$h]:-}" ] &&
			in_ns "$h" virsh -q -c qemu:///system destroy "$NAME" \
				>/dev/null 2>&1
		[ -n "${LVD[$h]:-}" ] && kill "${LVD[$h]}" 2>/dev/null
	done
	for h in a b; do
		[ -n "${LVD[$h]:-}" ] && wait "${LVD[$h]}" 2>/dev/null
		[ -n "${HOLD[$h]:-}" ] && kill "${HOLD[$h]}" 2>/dev/null
	done
	wait 2>/dev/null
	if [ "${KEEP:-0}" = 1 ]; then
		echo "virsh-migrate: kept $T"
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT

fail() {
	echo "virsh-migrate: FAILED: $*" >&2
	for h in a b; do
		for f in "$T/$h/libvirtd.log" "$T/$h/ptrackd.log" \
			"$T/$h"/log/qemu/*.log; do
			[ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }
		done
	done >&2
	exit 1
}

in_ns() {
	local h=$1
	shift
	nsenter -t "${HOLD[$h]}" -m -n -u -- "$@"
}

wait_for() { # SECONDS COMMAND...
	local n=$(($1 * 10))
	shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ $n -gt 0 ] || return 1
		sleep 0.1
	done
}

# The guest: at F000:0000 a real-mode loop incrementing one byte in each
# 4 KiB page from 64 KiB to 640 KiB; the reset vector jumps there.
python3 - "$T/bios.bin" <<'EOF'
import sys
code = bytes.fromhex('fabb00108ec331ff26fe0581c700' '1075f781c3001081fb00a072e9ebe3')
img = bytearray(b'\xf4' * 65536)
img[0:len(code)] = code
img[0xfff0:0xfff5] = bytes.fromhex('ea000000f0')
open(sys.argv[1], 'wb').write(img)
EOF

for h in a b; do
	d=$T/$h
	mkdir -p "$d/etc/qemu" "$d/run" "$d/lib" "$d/cache" "$d/log"
	cat >"$d/etc/libvirtd.conf" <<EOF
listen_tls = 0
listen_tcp = 1
listen_addr = "${IP[$h]}"
auth_tcp = "none"
auth_unix_rw = "none"
auth_unix_ro = "none"
host_uuid = "${HUUID[$h]}"
log_outputs = "3:file:$d/libvirtd.log"
EOF
	cat >"$d/etc/qemu.conf" <<EOF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
stdio_handler = "file"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
migration_address = "${IP[$h]}"
migration_host = "${IP[$h]}"
EOF
	unshare -m -n -u --propagation private sleep infinity &
	HOLD[$h]=$!
done
sleep 0.2
ip link add pt-vmig-a type veth peer name pt-vmig-b
for h in a b; do
	ip link set "pt-vmig-$h" netns "${HOLD[$h]}"
	in_ns "$h" sh -c "hostname host-$h &&
		ip link set lo up &&
		ip addr add ${IP[$h]}/24 dev pt-vmig-$h &&
		ip link set pt-vmig-$h up"
	d=$T/$h
	# libvirt's system paths, private to this host.
	in_ns "$h" sh -c "mount --bind $d/etc /etc/libvirt &&
		mount -t tmpfs tmpfs /run && mkdir -p /run/libvirt &&
		mount --bind $d/lib /var/lib/libvirt &&
		mount --bind $d/cache /var/cache/libvirt &&
		mkdir -p /var/log/libvirt && mount --bind $d/log /var/log/libvirt"
	# QEMU's capabilities, probed once per machine (libvirt re-probes
	# what is stale: its checks cover the binaries' and its own ctime).
	[ -d "$CAPS" ] && cp -a "$CAPS" "$d/cache/qemu"
	# nsenter execs (no -p): $! is the daemon's PID.
	nsenter -t "${HOLD[$h]}" -m -n -u -- /usr/sbin/libvirtd --listen \
		>"$d/libvirtd.out" 2>&1 &
	LVD[$h]=$!
done
for h in a b; do
	wait_for 60 in_ns "$h" virsh -c "qemu+tcp://${IP[$h]}/system" version ||
		fail "libvirtd on host $h did not come up"
done
mkdir -p "$(dirname "$CAPS")" && rm -rf "$CAPS.new" &&
	cp -a "$T/a/cache/qemu" "$CAPS.new" && rm -rf "$CAPS" &&
	mv "$CAPS.new" "$CAPS"
in_ns a virsh -c "qemu+tcp://${IP[b]}/system" version >/dev/null ||
	fail "host a cannot reach host b's libvirtd"

for h in a b; do
	d=$T/$h
	nsenter -t "${HOLD[$h]}" -m -n -u -- "$BIN/ptrackd" serve \
		--config /dev/null \
		--control-socket "$d/ctl.sock" --vmm-socket "$d/vmm.sock" \
		--libvirt-uri qemu:///system --log-target stderr \
		--log-level debug >"$d/ptrackd.log" 2>&1 &
	PTD[$h]=$!
done
for h in a b; do
	wait_for 10 grep -q "connected to libvirt" "$T/$h/ptrackd.log" ||
		fail "ptrackd on host $h did not connect to libvirt"
done

cat >"$T/dom.xml" <<EOF
<domain type='kvm'>
  <name>$NAME</name>
  <uuid>$UUID</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>
    <loader type='rom'>$T/bios.bin</loader></os>
  <devices><emulator>$QEMU</emulator></devices>
</domain>
EOF
in_ns a virsh -q -c qemu:///system create "$T/dom.xml" >/dev/null ||
	fail "cannot start the guest on host a"
pid_a=$(in_ns a cat "/run/libvirt/qemu/$NAME.pid")
metric() { # HOST
	"$BIN/ptrackctl" --socket "$T/$1/ctl.sock" metrics |
		grep "^ptrack_libvirt_domain_info{domain=\"$NAME\"" || true
}
want_a="ptrack_libvirt_domain_info{domain=\"$NAME\",uuid=\"$UUID\",pid=\"$pid_a\",vm=\"\"} 1"
wait_for 10 sh -c "[ \"\$('$BIN/ptrackctl' --socket '$T/a/ctl.sock' metrics | grep '^ptrack_libvirt_domain_info{domain=\"$NAME\"')\" = '$want_a' ]" ||
	fail "host a's ptrackd does not show the guest: $(metric a)"

echo "virsh-migrate: guest on host a (QEMU pid $pid_a); migrating"
m0=$(date +%s%N)
in_ns a virsh -c qemu:///system migrate --live --verbose "$NAME" \
	"qemu+tcp://${IP[b]}/system" >"$T/migrate.out" 2>&1 ||
	fail "virsh migrate: $(cat "$T/migrate.out")"
m1=$(date +%s%N)

state_b=$(in_ns b virsh -q -c qemu:///system domstate "$NAME")
[ "$state_b" = running ] || fail "guest on host b is '$state_b'"
pid_b=$(in_ns b cat "/run/libvirt/qemu/$NAME.pid")
[ "$pid_b" != "$pid_a" ] || fail "same QEMU pid on both hosts"
kill -0 "$pid_a" 2>/dev/null && fail "host a's QEMU $pid_a still runs"
want_b="ptrack_libvirt_domain_info{domain=\"$NAME\",uuid=\"$UUID\",pid=\"$pid_b\",vm=\"\"} 1"
wait_for 10 sh -c "[ \"\$('$BIN/ptrackctl' --socket '$T/b/ctl.sock' metrics | grep '^ptrack_libvirt_domain_info{domain=\"$NAME\"')\" = '$want_b' ]" ||
	fail "host b's ptrackd does not show the guest: $(metric b)"
wait_for 10 sh -c "! '$BIN/ptrackctl' --socket '$T/a/ctl.sock' metrics | grep -q '^ptrack_libvirt_domain_info{domain=\"$NAME\"'" ||
	fail "host a's ptrackd still has the guest"
# libvirt's events as each side saw them: A suspended (3/1) and stopped
# (5/3) for migration, B started (2/1) and resumed (4/1) for migration.
grep -q "domain event 5/3 VM=$NAME" "$T/a/ptrackd.log" ||
	fail "host a's ptrackd did not see STOPPED/MIGRATED"
grep -q "libvirt domain stopped (reason 3): forgotten VM=$NAME" \
	"$T/a/ptrackd.log" || fail "host a's ptrackd did not forget the guest"
grep -q "libvirt migration iteration 1 VM=$NAME" "$T/a/ptrackd.log" ||
	fail "host a's ptrackd did not see the migration's iterations"
grep -q "libvirt job completed: outgoing migration, [0-9]* ms, downtime [0-9]* ms, [1-9][0-9]* bytes VM=$NAME" \
	"$T/a/ptrackd.log" || fail "host a's ptrackd did not see the job end"
grep -q "domain event 2/1 VM=$NAME" "$T/b/ptrackd.log" ||
	fail "host b's ptrackd did not see STARTED/MIGRATED"
grep -q "libvirt domain running: uuid $UUID, QEMU pid $pid_b VM=$NAME" \
	"$T/b/ptrackd.log" || fail "host b's ptrackd did not map the guest"
grep -h "libvirt job completed" "$T/a/ptrackd.log" | sed 's/^/virsh-migrate: host a: /'

# libvirt's job statistics as ptrack's migration metrics (engine="libvirt"),
# for a guest not registered through libptrack, on both sides.
for h in a b; do
	"$BIN/ptrackctl" --socket "$T/$h/ctl.sock" metrics >"$T/$h/metrics.txt"
	promtool check metrics <"$T/$h/metrics.txt" ||
		fail "promtool check metrics on host $h's metrics"
	{ grep 'engine="libvirt"' "$T/$h/metrics.txt" | grep -v ' 0$' || true; } |
		sed "s/^/virsh-migrate: host $h: /"
done
jl="vm=\"$NAME\",uuid=\"$UUID\",domain=\"$NAME\",engine=\"libvirt\""
grep -q '^ptrack_migrations_total{engine="libvirt",direction="outgoing",result="completed"} 1$' \
	"$T/a/metrics.txt" || fail "host a does not count the libvirt migration"
grep -q "^ptrack_migration_data_processed_bytes{$jl,direction=\"outgoing\"} [1-9]" \
	"$T/a/metrics.txt" || fail "host a has no processed bytes for the job"
grep -q "^ptrack_migration_data_total_bytes{$jl,direction=\"outgoing\"} [1-9]" \
	"$T/a/metrics.txt" || fail "host a has no total bytes for the job"
grep -q "^ptrack_migration_downtime_seconds{$jl,direction=\"outgoing\"} " \
	"$T/a/metrics.txt" || fail "host a has no downtime for the job"
grep -q "^ptrack_migration_end_timestamp_seconds{$jl,direction=\"outgoing\"} [1-9]" \
	"$T/a/metrics.txt" || fail "host a has no end time for the job"
grep -q "^ptrack_migration_state{$jl,direction=\"outgoing\",state=\"completed\"} 1" \
	"$T/a/metrics.txt" || fail "host a does not show the job completed"
grep -q '^ptrack_migrations_total{engine="libvirt",direction="outgoing",result="failed"} 0$' \
	"$T/a/metrics.txt" || fail "host a counts the libvirt migration as failed"
grep -q '^ptrack_migrations_total{engine="libvirt",direction="incoming",result="completed"} 1$' \
	"$T/b/metrics.txt" || fail "host b does not count the incoming libvirt migration"
t1=$(date +%s%N)
echo "virsh-migrate: ok: $NAME moved from host a (pid $pid_a) to host b (pid $pid_b)" \
	"in $(((m1 - m0) / 1000000)) ms; whole test $(((t1 - t0) / 1000000)) ms"

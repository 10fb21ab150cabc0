#!/usr/bin/env bash
# Builds the Debian packages (dpkg-buildpackage -us -uc -b) from a copy of
# the tree, unpacks them with dpkg into a scratch root, and checks what got
# installed: the files each package must ship, the units with
# systemd-analyze verify (ExecStart resolved inside the root), sysusers and
# tmpfiles applied to the root, the installed ptrackd reading the installed
# configuration, and a program built against libptrack-dev through
# pkg-config that runs on libptrack.so.0.
#
# Cost: one compile of the shipped programs with Debian's flags (no tests,
# no benchmarks): about 15 s of CPU, 40-60 s on a loaded 2-core machine.
# Nothing is installed on this machine; everything lives in $PTRACK_DEB_WORK.
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${PTRACK_DEB_WORK:-$(mktemp -d /var/tmp/ptrack-deb.XXXXXX)}
trap '[ -n "${PTRACK_DEB_KEEP:-}" ] || rm -rf "$W"' EXIT
fail() { echo "debs: FAIL: $*" >&2; exit 1; }

# dpkg-buildpackage writes to the parent directory: build in a copy (the
# tracked and new files, as they are in the work tree) so that nothing
# lands next to the checkout.
rm -rf "$W/src" "$W/root"
mkdir -p "$W/src"
git ls-files -z -co --exclude-standard | rsync -a --from0 --files-from=- ./ "$W/src/"
echo "debs: dpkg-buildpackage -us -uc -b in $W/src"
(cd "$W/src" && nice -n 10 dpkg-buildpackage -us -uc -b -j2) >"$W/build.log" 2>&1 ||
	{ tail -40 "$W/build.log"; fail "dpkg-buildpackage failed ($W/build.log)"; }

pkgs=(ptrackd ptrack-tools libptrack0 libptrack-dev ptrack-pta-dkms)
debs=()
for p in "${pkgs[@]}"; do
	d=$(ls "$W/${p}"_*.deb 2>/dev/null | head -1)
	[ -n "$d" ] || fail "no $p package built"
	debs+=("$d")
done

# A scratch root with an empty dpkg database: --unpack runs no maintainer
# script (the packages have no preinst), so nothing touches this machine.
R=$W/root
mkdir -p "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/info"
: >"$R/var/lib/dpkg/status"
dpkg --root="$R" --log=/dev/null --unpack "${debs[@]}" >"$W/unpack.log" 2>&1 ||
	{ cat "$W/unpack.log"; fail "dpkg --unpack into the scratch root failed"; }

# What dpkg --configure would do first: conffiles take their place.
while read -r f; do
	[ -e "$R$f.dpkg-new" ] && mv "$R$f.dpkg-new" "$R$f"
done < <(cat "$R"/var/lib/dpkg/info/*.conffiles 2>/dev/null)

ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
expect() { # package path...
	local p=$1 f
	shift
	for f in "$@"; do
		dpkg --root="$R" -L "$p" | grep -qx "$f" || fail "$p does not ship $f"
		[ -e "$R$f" ] || fail "$f missing in the root"
	done
}
expect ptrackd /usr/sbin/ptrackd /usr/sbin/ptrackctl \
	/lib/systemd/system/ptrackd.service /lib/systemd/system/ptrackd.socket \
	/usr/lib/sysusers.d/ptrack.conf /usr/lib/tmpfiles.d/ptrack.conf \
	/etc/ptrack/ptrackd.conf /usr/share/man/man8/ptrackd.8.gz \
	/usr/share/man/man8/ptrackctl.8.gz /usr/share/man/man5/ptrackd.conf.5.gz \
	/usr/share/bash-completion/completions/ptrackctl \
	/usr/lib/systemd/catalog/ptrackd.catalog \
	/usr/share/doc/ptrackd/examples/ptrack-alerts.yml \
	/usr/share/doc/ptrackd/examples/ptrack-dashboard.json
expect ptrack-tools /usr/bin/ptrack-vmm /usr/share/man/man1/ptrack-vmm.1.gz
expect libptrack0 "/usr/lib/$ma/libptrack.so.0"
expect libptrack-dev /usr/include/ptrack/libptrack.h \
	"/usr/lib/$ma/libptrack.so" "/usr/lib/$ma/libptrack.a" \
	"/usr/lib/$ma/pkgconfig/libptrack.pc"
expect ptrack-pta-dkms /usr/src/ptrack-pta-1.0/dkms.conf \
	/usr/src/ptrack-pta-1.0/Kbuild /usr/src/ptrack-pta-1.0/pta_main.c \
	/usr/src/ptrack-pta-1.0/include/uapi/linux/ptrack.h
grep -q '^/etc/ptrack/ptrackd.conf$' "$R/var/lib/dpkg/info/ptrackd.conffiles" ||
	fail "ptrackd.conf is not a conffile"
[ "$(readelf -d "$R/usr/lib/$ma/libptrack.so.0" |
	sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')" = libptrack.so.0 ] ||
	fail "libptrack.so.0 has the wrong SONAME"
for s in postinst prerm postrm; do
	grep -q 'ptrackd.socket' "$R/var/lib/dpkg/info/ptrackd.$s" ||
		fail "ptrackd.$s does not handle the units"
done
grep -q 'dkms' "$R/var/lib/dpkg/info/ptrack-pta-dkms.postinst" ||
	fail "ptrack-pta-dkms.postinst does not add the module to dkms"

# The units as installed. systemd-analyze --root resolves ExecStart= and
# the targets in the root, so the root gets the host's own units too
# (never overwriting the packaged ones).
grep -q '^ExecStart=/usr/sbin/ptrackd serve$' "$R/lib/systemd/system/ptrackd.service" ||
	fail "ExecStart= does not name the installed ptrackd"
cp -an /lib/systemd/system/. "$R/lib/systemd/system/"
# ExecReload= runs /bin/kill, from procps (a dependency of ptrackd).
dpkg-deb -f "$W"/ptrackd_*.deb Depends | grep -q procps ||
	fail "ptrackd does not depend on procps (/bin/kill for ExecReload=)"
mkdir -p "$R/bin" && cp -n /bin/kill "$R/bin/kill"
systemd-analyze --root="$R" verify --man=no ptrackd.service ptrackd.socket ||
	fail "systemd-analyze verify of the installed units"

# What the postinst does, done to the root.
systemd-sysusers --root="$R" >/dev/null 2>&1
grep -q '^ptrack:' "$R/etc/group" || fail "sysusers did not create the ptrack group"
systemd-tmpfiles --root="$R" --create ptrack.conf 2>/dev/null ||
	systemd-tmpfiles --root="$R" --create "$R/usr/lib/tmpfiles.d/ptrack.conf"
[ -d "$R/var/lib/ptrack" ] || fail "tmpfiles did not create /var/lib/ptrack"

# The journal catalog: every MESSAGE_ID ptrackd logs is explained, and
# journalctl compiles the installed file.
for id in $(sed -n 's/^#define PT_MSGID_[A-Z_]* "\([0-9a-f]*\)".*/\1/p' \
	daemon/service/log.h); do
	grep -q "^-- $id\$" "$R/usr/lib/systemd/catalog/ptrackd.catalog" ||
		fail "MESSAGE_ID $id is not in ptrackd.catalog"
done
journalctl --root="$R" --update-catalog ||
	fail "journalctl --update-catalog rejects ptrackd.catalog"
journalctl --root="$R" --list-catalog 2>/dev/null | grep -q "ptrackd is ready" ||
	fail "the catalog's entries are not listed"

# The installed programs run and read the installed configuration.
"$R/usr/sbin/ptrackd" serve -c "$R/etc/ptrack/ptrackd.conf" --check-config \
	>/dev/null || fail "installed ptrackd rejects the installed configuration"
"$R/usr/bin/ptrack-vmm" --help >/dev/null || fail "ptrack-vmm --help"

# A VMM built against libptrack-dev, linked to the shared library.
cat >"$W/vmm.c" <<'C'
#include <errno.h>
#include <ptrack/libptrack.h>
#include <stdio.h>
int main(void)
{
	struct ptl_vm vm = { .name = "pkg", .vcpus = 1 };
	struct ptl_client *c;
	int r = ptl_connect("/nonexistent/vmm.sock", &vm, NULL, NULL, &c);
	printf("ptl_connect: %d\n", r);
	return r < 0 ? 0 : 1;
}
C
export PKG_CONFIG_SYSROOT_DIR=$R PKG_CONFIG_LIBDIR=$R/usr/lib/$ma/pkgconfig:/usr/lib/$ma/pkgconfig:/usr/share/pkgconfig
# shellcheck disable=SC2046
gcc -Wall -Werror -o "$W/vmm" "$W/vmm.c" $(pkg-config --cflags --libs libptrack) ||
	fail "cannot build against libptrack-dev"
readelf -d "$W/vmm" | grep -q 'NEEDED.*\[libptrack.so.0\]' ||
	fail "the program does not link libptrack.so.0"
LD_LIBRARY_PATH=$R/usr/lib/$ma "$W/vmm" || fail "the program on libptrack.so.0"

echo "debs: PASS: ${pkgs[*]} built, unpacked, units verified"

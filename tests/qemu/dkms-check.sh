#!/usr/bin/env bash
# Checks driver/pta/dkms.conf: `make dkms-src` lays out the DKMS source
# tree, and `dkms add` + `dkms build` build ptrack-pta.ko against the
# patched arm64 kernel build tree (driver/kernel/build.sh), cross-compiled.
# Everything goes to private trees under $PTRACK_DKMS_WORK (--sourcetree,
# --dkmstree): nothing is installed into the system's /usr/src,
# /var/lib/dkms or /lib/modules. Installs the dkms package if missing.
#
#   flock /var/tmp/ptrack-kernel.lock tests/qemu/dkms-check.sh
#
# Prints "DKMS PASS: ..." and exits 0 when the .ko appears and is an arm64
# module for the tree's kernel release.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../driver/kernel/env.sh
. "$here/../../driver/kernel/env.sh"
WORK=${PTRACK_DKMS_WORK:-/var/tmp/ptrack-dkms}
NAME=ptrack-pta
VER=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$here/../../driver/pta/dkms.conf")

[ -f "$PTRACK_KBUILD/Module.symvers" ] ||
	ptrack_die "no built kernel in $PTRACK_KBUILD (run driver/kernel/build.sh)"
if ! command -v dkms >/dev/null; then
	ptrack_log "installing dkms"
	# A fresh machine may have no package lists yet.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends dkms >/dev/null 2>&1 || {
		apt-get update -q >/dev/null &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
				--no-install-recommends dkms >/dev/null
	} || ptrack_die "cannot install dkms"
fi
kver=$(make -s -C "$PTRACK_KBUILD" ARCH=arm64 \
	CROSS_COMPILE="$PTRACK_CROSS" kernelrelease 2>/dev/null | tail -1)
[ -n "$kver" ] || ptrack_die "cannot read the kernel release of $PTRACK_KBUILD"

rm -rf "$WORK"
mkdir -p "$WORK/src" "$WORK/dkms"
# The source tree as the Makefile's dkms-src target makes it.
make -s -C "$here/../../driver/pta" dkms-src DKMS_DIR="$WORK/src/$NAME-$VER"

dk=(dkms --sourcetree "$WORK/src" --dkmstree "$WORK/dkms")
export ARCH=arm64 CROSS_COMPILE=$PTRACK_CROSS
ptrack_log "dkms: add $NAME/$VER"
"${dk[@]}" add -m "$NAME" -v "$VER" >"$WORK/add.log" 2>&1 ||
	{ cat "$WORK/add.log" >&2; ptrack_die "dkms add failed"; }
ptrack_log "dkms: build for $kver (aarch64) against $PTRACK_KBUILD"
start=$(date +%s)
if ! "${dk[@]}" build -m "$NAME" -v "$VER" -k "$kver" -a aarch64 \
	--kernelsourcedir "$PTRACK_KBUILD" >"$WORK/build.log" 2>&1; then
	cat "$WORK/build.log" >&2
	find "$WORK/dkms" -name make.log -exec tail -40 {} + >&2 || true
	ptrack_die "dkms build failed"
fi
secs=$(($(date +%s) - start))
ko=$(find "$WORK/dkms/$NAME/$VER/$kver/aarch64" -name "$NAME.ko*" | head -1)
[ -n "$ko" ] || { cat "$WORK/build.log" >&2; ptrack_die "no $NAME.ko built"; }
file -L "$ko" | grep -q "ARM aarch64" || ptrack_die "$ko is not an arm64 object"
vermagic=$(modinfo -F vermagic "$ko" 2>/dev/null || true)
case $vermagic in
"$kver "*) ;;
*) ptrack_die "vermagic '$vermagic' does not match $kver" ;;
esac
"${dk[@]}" status -m "$NAME" -v "$VER" | sed 's/^/  /'
echo "DKMS PASS: $ko (vermagic $vermagic) built in ${secs}s"

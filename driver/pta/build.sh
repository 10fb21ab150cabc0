#!/usr/bin/env bash
# Builds the PTA module (ptrack-pta.ko) against the patched arm64 kernel
# tree that driver/kernel/build.sh builds, with W=1 and sparse (C=2), and
# runs checkpatch.pl --strict on the sources. The build happens in a copy
# outside the repo ($PTRACK_PTA_BUILD), so the working tree stays clean.
#
#   driver/pta/build.sh            build + W=1 + sparse + checkpatch
#   PTRACK_PTA_FAST=1 driver/pta/build.sh   build only
# Output: $PTRACK_PTA_BUILD/src/ptrack-pta.ko
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../kernel/env.sh
. "$here/../kernel/env.sh"
BUILD=${PTRACK_PTA_BUILD:-/var/tmp/ptrack-pta-build}
SRC=$BUILD/src

[ -f "$PTRACK_KBUILD/Module.symvers" ] ||
	ptrack_die "no built kernel in $PTRACK_KBUILD (run driver/kernel/build.sh)"

mkdir -p "$SRC/include/uapi/linux"
# Copy only what changed, so make sees unchanged files as unchanged.
for f in "$here"/Kbuild "$here"/*.c "$here"/*.h; do
	cmp -s "$f" "$SRC/$(basename "$f")" || cp "$f" "$SRC/"
done
cmp -s "$PTRACK_REPO/include/uapi/linux/ptrack.h" \
	"$SRC/include/uapi/linux/ptrack.h" ||
	cp "$PTRACK_REPO/include/uapi/linux/ptrack.h" "$SRC/include/uapi/linux/"

kmake() {
	make -C "$PTRACK_KBUILD" M="$SRC" ARCH=arm64 \
		CROSS_COMPILE="$PTRACK_CROSS" -j"$PTRACK_JOBS" "$@"
}

ptrack_log "pta: building ptrack-pta.ko (W=1)"
out=$(kmake W=1 modules 2>&1) || { echo "$out" >&2; ptrack_die "pta: build failed"; }
if grep -E 'warning:|error:' <<<"$out" >&2; then
	ptrack_die "pta: W=1 warnings"
fi
[ "${PTRACK_PTA_FAST:-0}" = 1 ] && exit 0

ptrack_log "pta: sparse (C=2)"
out=$(kmake C=2 modules 2>&1) || { echo "$out" >&2; ptrack_die "pta: sparse build failed"; }
if grep -E 'warning:|error:' <<<"$out" >&2; then
	ptrack_die "pta: sparse warnings"
fi

ptrack_log "pta: checkpatch --strict"
"$PTRACK_KSRC/scripts/checkpatch.pl" --strict --no-tree --quiet -f \
	"$here"/*.c "$here"/*.h "$here"/Kbuild ||
	ptrack_die "pta: checkpatch"
ptrack_log "pta: ok: $SRC/ptrack-pta.ko"

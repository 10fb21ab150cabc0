#!/usr/bin/env bash
# Builds Debian 12's QEMU 7.2 with the Page Tracking Agent device
# (driver/pta/SPEC.md) added to the virt machine, for the arm64 test bed.
#
#   driver/qemu/build.sh            fetch (once), patch, configure, build
#   driver/qemu/build.sh --fetch    only fetch and unpack the source
#
# The device is the patch series driver/qemu/[0-9]*.patch (git format-patch
# against Debian's QEMU source), applied in order.
#
# The source comes from Debian's archive with apt, through a private
# sources dir (no change to /etc/apt). Everything lives at fixed paths
# outside the repo so that ccache hits between runs:
#   $PTRACK_QEMU_WORK/src     unpacked, Debian-patched source + our series
#   $PTRACK_QEMU_WORK/build   build dir
#   $PTRACK_QEMU_BIN          the resulting qemu-system-aarch64
# The series is re-applied on a fresh copy of the pristine source whenever
# a patch of it changes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
WORK=${PTRACK_QEMU_WORK:-/var/tmp/ptrack-qemu}
PTRACK_QEMU_BIN=${PTRACK_QEMU_BIN:-$WORK/build/qemu-system-aarch64}
export CCACHE_DIR=${CCACHE_DIR:-/var/cache/ptrack/ccache}
PATCHES=("$here"/[0-9][0-9][0-9][0-9]-*.patch)
JOBS=${PTRACK_JOBS:-$(nproc)}

log() { printf '[%s] qemu: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_pkgs() {
	local missing=()
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" \
		>/dev/null
}

fetch() {
	[ -f "$WORK/pristine/.ok" ] && return 0
	need_pkgs dpkg-dev
	local apt=$WORK/apt
	mkdir -p "$apt/sources" "$apt/lists/partial" "$apt/archives/partial"
	cat >"$apt/sources/src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	local opts=(-o Dir::Etc::SourceList=/dev/null
		    -o "Dir::Etc::SourceParts=$apt/sources"
		    -o "Dir::State::Lists=$apt/lists"
		    -o "Dir::Cache::Archives=$apt/archives")
	log "apt-get update (deb-src, private lists)"
	apt-get "${opts[@]}" -q update >/dev/null
	# The source of the installed qemu-system-arm if known, else newest.
	local ver
	ver=$(dpkg-query -W -f='${source:Version}' qemu-system-arm 2>/dev/null \
		|| true)
	rm -rf "$WORK/dl" && mkdir -p "$WORK/dl"
	log "apt-get source qemu${ver:+=$ver}"
	(cd "$WORK/dl" && apt-get "${opts[@]}" -q source --download-only \
		"qemu${ver:+=$ver}" >/dev/null) ||
		(cd "$WORK/dl" && apt-get "${opts[@]}" -q source \
			--download-only qemu >/dev/null)
	rm -rf "$WORK/pristine"
	(cd "$WORK/dl" && dpkg-source -x ./*.dsc "$WORK/pristine" >/dev/null)
	touch "$WORK/pristine/.ok"
	log "source in $WORK/pristine ($(cat "$WORK/pristine/VERSION"))"
}

patch_src() {
	local sum
	sum=$(cat "${PATCHES[@]}" | sha256sum | cut -d' ' -f1)
	if [ -f "$WORK/src/.patch-sum" ] &&
		[ "$(cat "$WORK/src/.patch-sum")" = "$sum" ]; then
		return 0
	fi
	log "applying ${#PATCHES[@]} patches"
	# Keep the same path (ccache) but start from the pristine tree.
	# rsync rewrites (with a new mtime) only files whose content
	# differs, so make rebuilds exactly what the patch touched.
	need_pkgs rsync
	mkdir -p "$WORK/src"
	rsync -rlpc --delete --exclude .patch-sum "$WORK/pristine/" "$WORK/src/"
	local p
	for p in "${PATCHES[@]}"; do
		patch -d "$WORK/src" -p1 --no-backup-if-mismatch -s -F0 <"$p" ||
			die "$(basename "$p") does not apply"
	done
	echo "$sum" >"$WORK/src/.patch-sum"
}

build() {
	need_pkgs ccache meson ninja-build pkg-config python3 gcc \
		libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev libslirp-dev
	# Only the virt machine (configs/devices/aarch64-softmmu/ptrack.mak,
	# added by our patch), no optional features but slirp: the test
	# bed reaches its migration peer through -netdev user.
	local conf=(--target-list=aarch64-softmmu --without-default-features
		--without-default-devices --with-devices-aarch64=ptrack
		--disable-docs --disable-werror --enable-fdt=system
		--enable-slirp)
	# Reconfigure from scratch when the configure line changes.
	if [ ! -f "$WORK/build/build.ninja" ] ||
		[ "$(cat "$WORK/build/.conf" 2>/dev/null)" != "${conf[*]}" ]; then
		rm -rf "$WORK/build" && mkdir -p "$WORK/build"
		log "configure"
		(cd "$WORK/build" && CC='ccache gcc' "$WORK/src/configure" \
			"${conf[@]}" >configure.log 2>&1) ||
			die "configure failed: $WORK/build/configure.log"
		echo "${conf[*]}" >"$WORK/build/.conf"
	fi
	log "make -j$JOBS"
	make -C "$WORK/build" -j"$JOBS" qemu-system-aarch64 >"$WORK/build.log" \
		2>&1 || { tail -30 "$WORK/build.log" >&2; die "build failed"; }
	log "built $PTRACK_QEMU_BIN"
}

fetch
[ "${1:-}" = "--fetch" ] && exit 0
[ -f "${PATCHES[0]}" ] || die "no patches in $here"
patch_src
build

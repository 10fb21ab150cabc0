#!/usr/bin/env bash
# What `make ARCH=arm64` needs: the arm64 architecture in dpkg, the arm64
# -dev packages of mk/packages-arm64.txt, and libisal's arm64 packages
# unpacked into SYSROOT (they are not Multi-Arch: same, so installing them
# would remove the amd64 ones the normal build uses).
#
# usage: mk/deps-arm64.sh SYSROOT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sysroot=${1:?usage: $0 SYSROOT}

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	echo "deps-arm64: adding the arm64 architecture"
	dpkg --add-architecture arm64
	apt-get update -qq
fi
bash "$here/deps.sh" "$here/packages-arm64.txt"

lib=$sysroot/usr/lib/aarch64-linux-gnu/libisal.so
[ -f "$lib" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# apt's _apt user must be able to write the download directory.
chmod 0777 "$tmp"
(cd "$tmp" && apt-get download -q libisal2:arm64 libisal-dev:arm64) ||
	{ apt-get update -qq && (cd "$tmp" && apt-get download -q libisal2:arm64 libisal-dev:arm64); }
mkdir -p "$sysroot"
for d in "$tmp"/*.deb; do
	dpkg-deb -x "$d" "$sysroot"
done
[ -f "$lib" ] || { echo "deps-arm64: no $lib in Debian's libisal-dev:arm64" >&2; exit 1; }
echo "deps-arm64: libisal for arm64 in $sysroot"

#!/bin/bash
# Prints the usr/gen_init_cpio lines that carry the shared libraries of the
# given arm64 programs (their DT_NEEDED, recursively) and the dynamic
# loader into the emulated host's image, from Debian's arm64 multiarch
# packages and the private sysroot of mk/deps-arm64.sh.
#
# usage: libs.sh SYSROOT PROGRAM...
set -euo pipefail
sysroot=$1
shift
dirs=(/lib/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu
      "$sysroot/usr/lib/aarch64-linux-gnu")
declare -A seen=()
queue=("$@")
out=()
find_lib() {
	local d
	for d in "${dirs[@]}"; do
		[[ -e $d/$1 ]] && { readlink -f "$d/$1"; return 0; }
	done
	echo "libs.sh: $1 not found in ${dirs[*]}" >&2
	return 1
}
while ((${#queue[@]})); do
	f=${queue[0]}
	queue=("${queue[@]:1}")
	while read -r lib; do
		[[ -n ${seen[$lib]:-} ]] && continue
		seen[$lib]=1
		path=$(find_lib "$lib")
		out+=("file /lib/aarch64-linux-gnu/$lib $path 0755 0 0")
		queue+=("$path")
	done < <(aarch64-linux-gnu-readelf -d "$f" |
		sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
done
echo "dir /lib/aarch64-linux-gnu 0755 0 0"
echo "file /lib/ld-linux-aarch64.so.1 $(find_lib ld-linux-aarch64.so.1) 0755 0 0"
printf '%s\n' "${out[@]}"

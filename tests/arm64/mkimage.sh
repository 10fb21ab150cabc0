#!/bin/bash
# Build the initramfs for the emulated arm64 host.
#
# usage: mkimage.sh [-o OUT.cpio] [-a SRC:DST]... [-l EXTRA_CPIO_LIST]
#
# The image holds /init (tests/arm64/init.c), the KVM dirty-log test
# (/bin/ptrack_kvm_test), the series' KVM selftest (/bin/page_tracking_test,
# when built), and every scenario of tests/arm64/scenarios/ as
# /etc/scenarios/NAME. Later issues add files with -a (a module, ptrackd, a
# scenario) or with -l, a file of extra usr/gen_init_cpio lines.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../driver/kernel/env.sh
source "$here/../../driver/kernel/env.sh"

out=$PTRACK_KWORK/initramfs.cpio
adds=()
extra=""
while getopts "o:a:l:" opt; do
	case $opt in
	o) out=$OPTARG ;;
	a) adds+=("$OPTARG") ;;
	l) extra=$OPTARG ;;
	*) ptrack_die "usage: $0 [-o OUT] [-a SRC:DST]... [-l LIST]" ;;
	esac
done

gen=$PTRACK_KBUILD/usr/gen_init_cpio
[[ -x $gen ]] || ptrack_die "$gen missing: run driver/kernel/build.sh first"

bin=$PTRACK_KWORK/tb-bin
mkdir -p "$bin"
CC=${PTRACK_CROSS}gcc
CFLAGS=(-static -O2 -Wall -Wextra -Werror -Wno-unused-parameter)
build() {
	local src=$1 dst=$2
	if [[ ! -x $dst || $src -nt $dst || ${BASH_SOURCE[0]} -nt $dst ]]; then
		ptrack_log "cc $(basename "$src")"
		"$CC" "${CFLAGS[@]}" -o "$dst" "$src" -lpthread
	fi
}
build "$here/init.c" "$bin/init"
build "$here/ptrack_kvm_test.c" "$bin/ptrack_kvm_test"

list=$PTRACK_KWORK/initramfs.list
{
	echo "dir /dev 0755 0 0"
	echo "nod /dev/console 0600 0 0 c 5 1"
	echo "dir /proc 0755 0 0"
	echo "dir /sys 0755 0 0"
	echo "dir /tmp 1777 0 0"
	echo "dir /bin 0755 0 0"
	echo "dir /etc 0755 0 0"
	echo "dir /etc/scenarios 0755 0 0"
	echo "dir /lib 0755 0 0"
	echo "file /init $bin/init 0755 0 0"
	echo "file /bin/ptrack_kvm_test $bin/ptrack_kvm_test 0755 0 0"
	# The series' KVM selftest (driver/kernel/build.sh image builds it).
	st=$PTRACK_KWORK/selftests/aarch64/page_tracking_test
	[[ ! -x $st ]] || echo "file /bin/page_tracking_test $st 0755 0 0"
	for s in "$here"/scenarios/*; do
		echo "file /etc/scenarios/$(basename "$s") $s 0644 0 0"
	done
	for a in "${adds[@]}"; do
		src=${a%%:*}
		dst=${a#*:}
		[[ -e $src ]] || ptrack_die "missing $src"
		echo "file $dst $src 0755 0 0"
	done
	[[ -z $extra ]] || cat "$extra"
} >"$list"
"$gen" "$list" >"$out.tmp"
mv "$out.tmp" "$out"
ptrack_log "initramfs: $out ($(stat -c %s "$out") bytes)"

#!/bin/bash
# Build and check the ptrack KVM arm64 series (driver/patches/).
#
# usage: driver/kernel/build.sh [all|image|bisect|arches|check]...
#
#   image   unpack linux-source-6.12, apply the series, build the minimal
#           arm64 KVM Image (what tests/arm64/run.sh boots)
#   bisect  build every patch of the series in turn for arm64
#   arches  build the KVM directories of x86_64, s390, powerpc (book3s
#           ppc64le, and booke e500mc), riscv, mips
#   check   checkpatch.pl --strict on every patch; W=1 and sparse (C=2) on
#           the files the series touches, compared with the unpatched tree
#   all     all of the above (the default)
#   debug   (not in "all") the same kernel with lockdep and
#           DEBUG_ATOMIC_SLEEP in $PTRACK_KWORK/build-debug; boot it with
#           PTRACK_SKIP_BUILD=1 PTRACK_KIMAGE=<that Image> tests/arm64/run.sh
#
# Work dir: /var/tmp/ptrack-kernel (PTRACK_KWORK). ccache: CCACHE_DIR,
# default /var/cache/ptrack/ccache. Both paths must stay fixed for ccache
# to hit. Set PTRACK_BISECT_FULL=1 to link a full Image at every bisect
# step instead of building arch/arm64/kvm/ only.
# Exits non-zero on any build failure, bisect failure, checkpatch warning
# or error, and on any W=1/sparse warning that the unpatched tree lacks.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=env.sh
source "$here/env.sh"

PATCHES=$PTRACK_REPO/driver/patches
TARBALL=/usr/src/linux-source-6.12.tar.xz
BASE_TAG=ptrack-base
GITC=(git -c user.name="ptrack build" -c user.email=build@ptrack.invalid
      -c advice.detachedHead=false)
ARM64=(ARCH=arm64 CROSS_COMPILE=$PTRACK_CROSS "CC=ccache ${PTRACK_CROSS}gcc"
       O=$PTRACK_KBUILD)

t0=$(date +%s)
step_start=$t0
stamp() {
	local now
	now=$(date +%s)
	ptrack_log "$1 done in $((now - step_start))s (total $((now - t0))s)"
	step_start=$now
}

series() {
	find "$PATCHES" -maxdepth 1 -name '[0-9][0-9][0-9][0-9]-*.patch' \
		! -name '0000-*' | sort
}

unpack() {
	if [[ -d $PTRACK_KSRC/.git ]] && git -C "$PTRACK_KSRC" rev-parse -q \
		--verify "refs/tags/$BASE_TAG" >/dev/null; then
		return
	fi
	ptrack_log "unpacking $TARBALL into $PTRACK_KSRC"
	rm -rf "$PTRACK_KSRC" "$PTRACK_KWORK/linux-source-6.12"
	mkdir -p "$PTRACK_KWORK"
	tar -xf "$TARBALL" -C "$PTRACK_KWORK"
	mv "$PTRACK_KWORK/linux-source-6.12" "$PTRACK_KSRC"
	cd "$PTRACK_KSRC"
	# Debian's top-level .gitignore ignores everything: add with -f.
	"${GITC[@]}" init -q -b base .
	"${GITC[@]}" add -f .
	"${GITC[@]}" commit -q -m "linux-source-6.12 $(sed -n 's/^SUBLEVEL = //p' Makefile) (Debian)"
	"${GITC[@]}" tag "$BASE_TAG"
	stamp "unpack"
}

apply_series() {
	cd "$PTRACK_KSRC"
	local sum
	sum=$(series | xargs cat | sha256sum | cut -d' ' -f1)
	# Same series already applied: only make sure it is checked out, so
	# that file times (and so the incremental build) stay untouched.
	if [[ -f $PTRACK_KWORK/series.sha && $(cat "$PTRACK_KWORK/series.sha") == "$sum" ]] &&
		git rev-parse -q --verify refs/heads/series >/dev/null; then
		"${GITC[@]}" checkout -q -f series
		return
	fi
	rm -f "$PTRACK_KWORK/series.sha"
	"${GITC[@]}" am --abort >/dev/null 2>&1 || true
	"${GITC[@]}" checkout -q -f -B series "$BASE_TAG"
	"${GITC[@]}" clean -q -ffdx
	mapfile -t pl < <(series)
	((${#pl[@]})) || ptrack_die "no patches in $PATCHES"
	"${GITC[@]}" am -q --keep-cr "${pl[@]}" ||
		ptrack_die "series does not apply to linux-source-6.12"
	echo "$sum" >"$PTRACK_KWORK/series.sha"
	ptrack_log "applied ${#pl[@]} patches"
}

arm64_config() {
	KCONFIG_ALLCONFIG=$here/config.fragment \
		make -s -C "$PTRACK_KSRC" "${ARM64[@]}" allnoconfig
}

arm64_build() {
	make -s -C "$PTRACK_KSRC" -j"$PTRACK_JOBS" "${ARM64[@]}" "$@"
}

do_image() {
	unpack
	apply_series
	arm64_config
	local c
	for c in KVM KVM_ARM_PAGE_TRACKING KVM_ARM_HAFDBS_TRACKER ARM64_HW_AFDBM \
		INET VIRTIO_MMIO VIRTIO_NET IP_PNP; do
		grep -q "^CONFIG_$c=y" "$PTRACK_KBUILD/.config" ||
			ptrack_die "CONFIG_$c not set in the arm64 config"
	done
	arm64_build Image modules
	[[ -f $PTRACK_KIMAGE ]] || ptrack_die "no Image"
	stamp "arm64 Image ($(stat -c %s "$PTRACK_KIMAGE") bytes)"
	do_selftest
}

# The series' KVM selftest, built with the selftest library for arm64,
# static, for the initramfs (tests/arm64/mkimage.sh picks it up).
SELFTEST=aarch64/page_tracking_test
do_selftest() {
	local out=$PTRACK_KWORK/selftests
	[[ -f $PTRACK_KSRC/tools/testing/selftests/kvm/$SELFTEST.c ]] ||
		ptrack_die "the series has no $SELFTEST.c"
	arm64_build headers
	mkdir -p "$out"
	make -s -C "$PTRACK_KSRC/tools/testing/selftests/kvm" ARCH=arm64 \
		CROSS_COMPILE="$PTRACK_CROSS" OUTPUT="$out" EXTRA_CFLAGS=-static \
		KHDR_INCLUDES="-isystem $PTRACK_KBUILD/usr/include" \
		"$out/$SELFTEST" || ptrack_die "$SELFTEST does not build"
	stamp "selftest $SELFTEST"
}

do_bisect() {
	unpack
	apply_series
	cd "$PTRACK_KSRC"
	mapfile -t commits < <(git rev-list --reverse "$BASE_TAG..series")
	local i=0 c subj files
	for c in "${commits[@]}"; do
		i=$((i + 1))
		subj=$(git log -1 --format=%s "$c")
		"${GITC[@]}" checkout -q -f "$c"
		files=$(git diff --name-only "$c~1" "$c" | grep -E '\.(c|h|S)$|Kconfig|Makefile' || true)
		if [[ -z $files ]]; then
			ptrack_log "bisect $i/${#commits[@]}: no build input changed: $subj"
			continue
		fi
		arm64_config
		if [[ ${PTRACK_BISECT_FULL:-0} == 1 || $i == "${#commits[@]}" ]]; then
			arm64_build Image modules ||
				ptrack_die "bisect: patch $i does not build: $subj"
		else
			arm64_build arch/arm64/kvm/ ||
				ptrack_die "bisect: patch $i does not build: $subj"
		fi
		stamp "bisect $i/${#commits[@]} ($subj)"
	done
	"${GITC[@]}" checkout -q -f series
}

do_debug() {
	unpack
	apply_series
	local o=$PTRACK_KWORK/build-debug frag=$PTRACK_KWORK/debug.fragment
	cat "$here/config.fragment" "$here/debug.fragment" >"$frag"
	local mk=(make -s -C "$PTRACK_KSRC" ARCH=arm64 CROSS_COMPILE="$PTRACK_CROSS"
		  "CC=ccache ${PTRACK_CROSS}gcc" O="$o")
	KCONFIG_ALLCONFIG=$frag "${mk[@]}" allnoconfig
	grep -q '^CONFIG_PROVE_LOCKING=y' "$o/.config" || ptrack_die "no lockdep in debug config"
	"${mk[@]}" -j"$PTRACK_JOBS" Image
	stamp "arm64 debug Image: $o/arch/arm64/boot/Image"
}

# arch, make ARCH, cross prefix, defconfig target, config options to enable,
# objects that must have been built (the series changes their sources)
ARCHES=(
	"x86_64|x86||x86_64_defconfig|VIRTUALIZATION KVM KVM_INTEL KVM_AMD|arch/x86/kvm/x86.o"
	"s390|s390|s390x-linux-gnu-|defconfig|VIRTUALIZATION KVM|arch/s390/kvm/kvm-s390.o"
	"powerpc|powerpc|powerpc64le-linux-gnu-|ppc64le_defconfig|VIRTUALIZATION KVM_BOOK3S_64 KVM_BOOK3S_64_HV KVM_BOOK3S_64_PR|arch/powerpc/kvm/book3s.o"
	"powerpc-booke|powerpc|powerpc-linux-gnu-|corenet32_smp_defconfig|VIRTUALIZATION KVM_E500MC|arch/powerpc/kvm/booke.o"
	"riscv|riscv|riscv64-linux-gnu-|defconfig|VIRTUALIZATION KVM|arch/riscv/kvm/mmu.o"
	"mips|mips|mips64el-linux-gnuabi64-|loongson3_defconfig|VIRTUALIZATION KVM|arch/mips/kvm/mips.o"
)

do_arches() {
	unpack
	apply_series
	local spec name arch cross defc opts objs o dir obj
	for spec in "${ARCHES[@]}"; do
		IFS='|' read -r name arch cross defc opts objs <<<"$spec"
		# What the configuration depends on (not the objects checked).
		spec="$name|$arch|$cross|$defc|$opts"
		o=$PTRACK_KWORK/build-$name
		dir=arch/$arch/kvm/
		local mk=(make -s -C "$PTRACK_KSRC" ARCH="$arch" O="$o"
			  CROSS_COMPILE="$cross" "CC=ccache ${cross}gcc")
		# Configure once: re-running defconfig rewrites .config and
		# makes the next build redo "prepare".
		if [[ ! -f $o/.config || $(cat "$o/.ptrack-spec" 2>/dev/null) != "$spec" ]]; then
			"${mk[@]}" "$defc" >/dev/null
			local sc=()
			for c in $opts; do sc+=(--enable "$c"); done
			"$PTRACK_KSRC/scripts/config" --file "$o/.config" "${sc[@]}"
			"${mk[@]}" olddefconfig >/dev/null
			echo "$spec" >"$o/.ptrack-spec"
		fi
		grep -q '^CONFIG_KVM=[ym]' "$o/.config" ||
			grep -q '^CONFIG_KVM_BOOK3S_64=[ym]' "$o/.config" ||
			ptrack_die "$name: KVM not enabled"
		"${mk[@]}" -j"$PTRACK_JOBS" "$dir" ||
			ptrack_die "$name: $dir does not build"
		# A config that silently drops the file would prove nothing.
		for obj in $objs; do
			[[ -f $o/$obj ]] || ptrack_die "$name: $obj was not built"
		done
		stamp "KVM for $name ($dir)"
	done
	ptrack_log "loongarch: not built: Debian 12 has no loongarch64 cross GCC and its clang is 14, while 6.12 needs LLVM >= 18 for loongarch"
}

# Normalise compiler/sparse warnings so that line shifts do not matter.
norm_warnings() {
	grep -E '(warning|error):' | grep -v 'vdso' |
		sed -E "s#^$PTRACK_KSRC/##; s#:[0-9]+:[0-9]+:#:#; s#:[0-9]+:#:#" |
		sort -u
}

# W=1 + sparse over the touched C files at the current checkout.
touched_warnings() {
	local objs=() f
	for f in $TOUCHED; do
		[[ -f $PTRACK_KSRC/$f ]] && objs+=("${f%.c}.o")
	done
	((${#objs[@]})) || return 0
	arm64_build -k W=1 C=2 "${objs[@]}" 2>&1 | norm_warnings || true
}

do_check() {
	unpack
	apply_series
	cd "$PTRACK_KSRC"
	local p out bad=0
	for p in $(series); do
		out=$(scripts/checkpatch.pl --strict --no-tree -q "$p" 2>&1 || true)
		if [[ -n $out ]]; then
			echo "$out" >&2
			ptrack_log "checkpatch: $(basename "$p"): NOT CLEAN"
			bad=1
		else
			ptrack_log "checkpatch: $(basename "$p"): 0 errors, 0 warnings"
		fi
	done
	((bad == 0)) || ptrack_die "checkpatch --strict found problems"
	stamp "checkpatch"

	# Touched C files that arm64 compiles.
	TOUCHED=$(git diff --name-only "$BASE_TAG" series -- \
		'arch/arm64/*.c' 'virt/kvm/*.c' | grep -v '/nvhe/' || true)
	arm64_config
	arm64_build Image modules
	local basefile=$PTRACK_KWORK/warnings-base.txt headfile=$PTRACK_KWORK/warnings-series.txt
	if [[ ! -s $basefile.list || "$(cat "$basefile.list")" != "$TOUCHED" ]]; then
		"${GITC[@]}" checkout -q -f "$BASE_TAG"
		arm64_config
		touched_warnings >"$basefile"
		echo "$TOUCHED" >"$basefile.list"
		"${GITC[@]}" checkout -q -f series
		arm64_config
	fi
	touched_warnings >"$headfile"
	local new
	new=$(comm -13 "$basefile" "$headfile")
	ptrack_log "W=1 + sparse on: $(echo "$TOUCHED" | tr '\n' ' ')"
	ptrack_log "pre-existing warnings in those files: $(wc -l <"$basefile")"
	if [[ -n $new ]]; then
		echo "$new" >&2
		ptrack_die "W=1/sparse: new warnings in touched files"
	fi
	ptrack_log "W=1 + sparse: no new warnings"
	# Leave a fully built tree behind for the boot test.
	arm64_build Image modules
	stamp "W=1 + sparse"
}

"$here/deps.sh"
command -v ccache >/dev/null || ptrack_die "ccache missing"
mkdir -p "$CCACHE_DIR" "$PTRACK_KWORK"
ccache -M 5G >/dev/null

targets=("$@")
((${#targets[@]})) || targets=(all)
for t in "${targets[@]}"; do
	case $t in
	image) do_image ;;
	bisect) do_bisect ;;
	arches) do_arches ;;
	check) do_check ;;
	debug) do_debug ;;
	all)
		do_check
		do_bisect
		do_arches
		do_image
		;;
	*) ptrack_die "unknown target $t" ;;
	esac
done
ptrack_log "build.sh ${targets[*]}: OK in $(($(date +%s) - t0))s"

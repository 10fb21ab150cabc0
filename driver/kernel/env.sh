# shellcheck shell=bash
# Shared paths for the ptrack kernel build and the arm64 test bed.
# Sourced by driver/kernel/build.sh, tests/arm64/*.sh and bench/kernel/run.sh.
# The paths are fixed on purpose: ccache only hits when the source and build
# directories stay the same between runs.
PTRACK_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PTRACK_REPO
export PTRACK_KWORK=${PTRACK_KWORK:-/var/tmp/ptrack-kernel}
export PTRACK_KSRC=$PTRACK_KWORK/linux
export PTRACK_KBUILD=$PTRACK_KWORK/build-arm64
export PTRACK_KIMAGE=${PTRACK_KIMAGE:-$PTRACK_KBUILD/arch/arm64/boot/Image}
export CCACHE_DIR=${CCACHE_DIR:-/var/cache/ptrack/ccache}
export PTRACK_CROSS=aarch64-linux-gnu-
PTRACK_JOBS=${PTRACK_JOBS:-$(($(nproc) + 1))}
export PTRACK_JOBS

ptrack_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
ptrack_die() { printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

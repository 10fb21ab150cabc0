#!/bin/bash
# Install what the kernel build, the arm64 test bed and the benchmark need.
# Idempotent: does nothing when every package is already installed.
set -euo pipefail

PKGS=(linux-source-6.12 gcc-aarch64-linux-gnu libc6-dev-arm64-cross
      qemu-system-arm flex bison bc libssl-dev libelf-dev cpio ccache
      sparse make gcc git xz-utils perl python3 kmod
      gcc-s390x-linux-gnu gcc-powerpc64le-linux-gnu gcc-powerpc-linux-gnu
      gcc-riscv64-linux-gnu gcc-mips64el-linux-gnuabi64)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

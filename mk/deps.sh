#!/usr/bin/env bash
# Installs the Debian packages listed in the given files, only when some are
# missing, so repeated runs cost one dpkg-query and nothing else.
set -euo pipefail
pkgs=$(cat "$@" | sed 's/#.*//' | tr -s ' \n' '\n' | sed '/^$/d' | sort -u)
missing=()
for p in $pkgs; do
	# Multi-arch packages (an arm64 copy for cross builds) print one
	# status per architecture.
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
		grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all $(echo "$pkgs" | wc -l) packages present"
	exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

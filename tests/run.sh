#!/usr/bin/env bash
# The whole test run, called by `make check` (README's test command) and so
# by CI. Builds and runs everything twice, normally and under ASan+UBSan, and
# ends with CUnit's summary of the sanitizer run. Exit status: 0 only when
# every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc)
failed=()
steps=0

step() {
	local name=$1
	steps=$((steps + 1))
	shift
	echo
	echo "=== $name"
	local t0=$SECONDS
	if "$@"; then
		echo "=== $name: ok ($((SECONDS - t0)) s)"
	else
		echo "=== $name: FAILED ($((SECONDS - t0)) s)"
		failed+=("$name")
	fi
}

step "build" make -s -j"$jobs" all
step "tests" build/normal/bin/ptrack-tests
step "lint" make -s lint
step "fuzz (${PTRACK_FUZZ_SECONDS:-60} s)" \
	make -s fuzz FUZZ_SECONDS="${PTRACK_FUZZ_SECONDS:-60}"
step "build (ASan+UBSan)" make -s -j"$jobs" SAN=1 all
step "tests (ASan+UBSan)" env ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	build/san/bin/ptrack-tests

echo
[ ${#failed[@]} -eq 0 ] || echo "check: failed steps: ${failed[*]}"
echo "check: $((steps - ${#failed[@]})) passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]

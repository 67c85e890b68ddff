#!/usr/bin/env bash
# tools/bench/work.sh BUILD_DIR [ITERATIONS] [REPEATS]: ns per iteration of
# the work function against a bare OpenSSL SHA-256 of one 32-byte block, in
# the same run (tools/bench/bench_work.c). Builds bench_work if needed.
# Prints numbers; asserts nothing about speed. Use a build without
# sanitizers for numbers worth quoting.
set -euo pipefail
if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
	echo "usage: $0 BUILD_DIR [ITERATIONS (2000000)] [REPEATS (5)]" >&2
	exit 2
fi
build=$1
iterations=${2:-2000000}
repeats=${3:-5}
bin=$build/bench_work
cmake --build "$build" --target bench_work >/dev/null
if grep -q '^CONSUMA_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
	echo "work.sh: note: $build is a sanitizer build; the ratio still holds roughly, the ns do not" >&2
fi
echo "== work: ns per SHA-256 iteration ($(openssl version 2>/dev/null || echo openssl), $(nproc) cpus) =="
"$bin" "$iterations" "$repeats"

#!/usr/bin/env bash
# tools/bench.sh: the benchmark driver. Builds consuma without sanitizers
# (Release, in build-bench/ of the checkout, or CONSUMA_BENCH_BUILD_DIR) and
# runs every tools/bench/*.sh part with the build directory as $1; each part
# prints its own table. Numbers are for reading, never asserted.
#
#   tools/bench.sh            # every part
#   tools/bench.sh api work   # only tools/bench/api.sh and tools/bench/work.sh
#
# Each part is bounded by BENCH_PART_TIMEOUT seconds (default 300).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${CONSUMA_BENCH_BUILD_DIR:-$root/build-bench}
part_timeout=${BENCH_PART_TIMEOUT:-300}

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
	sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
fi

parts=()
if [ $# -gt 0 ]; then
	for p in "$@"; do
		[ -f "tools/bench/$p.sh" ] || { echo "bench.sh: no tools/bench/$p.sh" >&2; exit 2; }
		parts+=("tools/bench/$p.sh")
	done
else
	for p in tools/bench/*.sh; do parts+=("$p"); done
fi

echo "bench.sh: building $build (Release, no sanitizers)" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCONSUMA_SANITIZE=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null

echo "# consuma bench, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -srm), $(nproc) cpus, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
failed=0
summary=()
for p in "${parts[@]}"; do
	name=$(basename "$p" .sh)
	echo
	start=$(date +%s)
	rc=0
	timeout --kill-after=10 "$part_timeout" bash "$p" "$build" || rc=$?
	secs=$(($(date +%s) - start))
	case $rc in
	0) summary+=("$(printf '%-10s ok       %4ds' "$name" "$secs")") ;;
	124 | 137) summary+=("$(printf '%-10s TIMEOUT  %4ds' "$name" "$secs")"); failed=1 ;;
	*) summary+=("$(printf '%-10s FAILED   %4ds (exit %d)' "$name" "$secs" "$rc")"); failed=1 ;;
	esac
done
echo
echo "== parts =="
printf '%s\n' "${summary[@]}"
exit $failed

#!/usr/bin/env bash
# tools/bench/store.sh BUILD_DIR [JOBS]: instructions per job of the store's
# SQLite writes (tools/bench/bench_store.c), counted by callgrind, which do
# not drift with the machine's speed as times do: the intake (committer
# transactions of 16 jobs) and the deliverer's writes for a job (its claim,
# the flush that starts its attempt and the one that ends it), against a
# bare INSERT of the same row in the same run. Each figure is the
# difference of a run with 3xJOBS and one with JOBS (default 1008), so the
# open and the migrations drop out. Needs valgrind; prints numbers only.
set -euo pipefail
if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
	sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
build=$1
jobs=${2:-1008}
command -v valgrind >/dev/null || { echo "store.sh: valgrind is not installed; skipped" >&2; exit 0; }
cmake --build "$build" --target bench_store >/dev/null
D=$(mktemp -d "${TMPDIR:-/tmp}/consuma-bench-store.XXXXXX")
trap 'rm -rf "$D"' EXIT

# instr PHASE N: instructions of one run
instr() {
	valgrind --tool=callgrind --callgrind-out-file=/dev/null "$build/bench_store" "$D/s.db" "$1" "$2" \
		2>&1 >/dev/null | sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}
# per_job PHASE: instructions per job, the open and migrations left out
per_job() {
	local a b
	a=$(instr "$1" "$jobs")
	b=$(instr "$1" $((3 * jobs)))
	awk -v a="$a" -v b="$b" -v n="$jobs" 'BEGIN { printf "%.0f", (b - a) / (2 * n) }'
}
bare=$(per_job bare)
in=$(per_job intake)
all=$(per_job deliver)
out=$((all - in))
echo "== store: instructions per async job, SQLite (callgrind, $jobs and $((3 * jobs)) jobs) =="
printf '%-40s %12s %8s\n' phase instructions vs_bare
printf '%-40s %12s %8s\n' "bare INSERT, 16 per transaction" "$bare" 1.00
printf '%-40s %12s %8s\n' "intake (job_in_tx, 16 per transaction)" "$in" \
	"$(awk -v a="$in" -v b="$bare" 'BEGIN { printf "%.2f", a / b }')"
printf '%-40s %12s %8s\n' "deliverer (claim, attempt begin, end)" "$out" \
	"$(awk -v a="$out" -v b="$bare" 'BEGIN { printf "%.2f", a / b }')"

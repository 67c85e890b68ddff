#!/usr/bin/env bash
# tools/fuzz.sh: builds the libFuzzer harnesses of tests/fuzz (clang,
# ASan+UBSan, in a build directory of their own) and runs each one for a
# fixed time, starting from its checked-in seed corpus.
#
#   tools/fuzz.sh                 # every harness, 60 s each
#   tools/fuzz.sh -t 600 ssrf     # one harness (fuzz_ssrf), 10 minutes
#   tools/fuzz.sh -t 10           # what tools/test.sh runs
#
# The seeds in tests/fuzz/corpus/<name>/ are read, never written: what the
# fuzzer finds goes to $build/corpus/<name>/ (kept between runs). A crash or
# a failed invariant stops the run with exit 1 and leaves the input in
# $build/artifacts/; make it a file of tests/fuzz/corpus/<name>/ and a unit
# test of the module, then fix it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

secs=60
while getopts "t:h" o; do
	case $o in
	t) secs=$OPTARG ;;
	h) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
case $secs in '' | *[!0-9]*) echo "fuzz.sh: -t takes whole seconds" >&2; exit 2 ;; esac

build=${CONSUMA_FUZZ_BUILD_DIR:-$root/build-fuzz}
CC=${FUZZ_CC:-clang} cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DCONSUMA_FUZZ=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target fuzz >/dev/null

if [ $# -gt 0 ]; then
	names=("$@")
else
	names=()
	for f in "$root"/tests/fuzz/fuzz_*.c; do
		n=$(basename "$f" .c)
		names+=("${n#fuzz_}")
	done
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$build/artifacts"
failed=0
for n in "${names[@]}"; do
	bin=$build/fuzz_$n
	if [ ! -x "$bin" ]; then
		echo "fuzz.sh: no harness fuzz_$n (not built here?)" >&2
		failed=1
		continue
	fi
	work=$build/corpus/$n
	mkdir -p "$work"
	log=$build/fuzz_$n.log
	echo "fuzz.sh: fuzz_$n for ${secs}s" >&2
	if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$build/artifacts/${n}-" "$work" "$root/tests/fuzz/corpus/$n" \
		>"$log" 2>&1; then
		grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$log" |
			sed "s/^/fuzz.sh: fuzz_$n: /" >&2 || true
	else
		echo "fuzz.sh: fuzz_$n FAILED; last lines of $log:" >&2
		tail -n 30 "$log" >&2
		ls "$build/artifacts/${n}-"* 2>/dev/null | sed 's/^/fuzz.sh: input: /' >&2 || true
		failed=1
	fi
done
exit $failed

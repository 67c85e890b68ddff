#!/usr/bin/env bash
# tools/powerloss.sh: the long power-loss sweep. Builds test_powerloss
# without sanitizers (Release, in build-powerloss/ of the checkout, or
# CONSUMA_POWERLOSS_BUILD_DIR) and runs it over many seeds: each seed is one
# seeded schedule of intake, /sync records, deliveries, checkpoints and
# restarts, cut at every sync point and at random writes (odd seeds: the
# mixed scenario, even seeds: checkpoint-heavy). Prints the totals and
# exits 1 if any acknowledged job was lost or any check failed.
#
#   tools/powerloss.sh                 # seeds 1-200
#   tools/powerloss.sh 1-50 900-950    # seed ranges (or single seeds)
#   POWERLOSS_STEPS=400 tools/powerloss.sh 7
#   POWERLOSS_KEEP=/tmp/imgs tools/powerloss.sh 7   # keep a failing image
#
# Ranges run in parallel, one process per CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${CONSUMA_POWERLOSS_BUILD_DIR:-$root/build-powerloss}

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
fi

ranges=("$@")
[ ${#ranges[@]} -gt 0 ] || ranges=(1-200)
for r in "${ranges[@]}"; do
	[[ $r =~ ^[0-9]+(-[0-9]+)?$ ]] || { echo "powerloss.sh: bad seed range $r" >&2; exit 2; }
done

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target test_powerloss -j "$(nproc)" >/dev/null

# Splits every range into one piece per CPU, so the sweep uses them all.
jobs=$(nproc)
pieces=()
for r in "${ranges[@]}"; do
	from=${r%-*}
	to=${r#*-}
	n=$((to - from + 1))
	per=$(((n + jobs - 1) / jobs))
	for ((a = from; a <= to; a += per)); do
		b=$((a + per - 1))
		[ "$b" -le "$to" ] || b=$to
		pieces+=("$a-$b")
	done
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
args=()
[ -z "${POWERLOSS_STEPS:-}" ] || args+=(--steps "$POWERLOSS_STEPS")
[ -z "${POWERLOSS_KEEP:-}" ] || args+=(--keep "$POWERLOSS_KEEP")
start=$(date +%s)
pids=()
for i in "${!pieces[@]}"; do
	"$build/test_powerloss" --seeds "${pieces[$i]}" "${args[@]}" >"$out/$i.out" 2>"$out/$i.err" &
	pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || status=1
	if [ -s "$out/$i.err" ]; then
		grep -v '^level=' "$out/$i.err" >&2 || true
	fi
done
elapsed=$(($(date +%s) - start))

# Sums the per-piece figures ("powerloss[sweep]: ..." and the headline).
awk -v seeds="${ranges[*]}" -v secs="$elapsed" '
/^powerloss: [0-9]+ crash points/ { crashes += $2; acked += $5; lost += $8 }
/^powerloss\[sweep\]: .* jobs \(/ {
	for (i = 1; i <= NF; i++) {
		if ($(i + 1) == "checkpoints,") ckpt += $i
		if ($(i + 1) == "WAL" && $(i + 2) == "restarts,") restarts += $i
		if ($(i + 1) == "WAL" && $(i + 2) == "truncations,") truncs += $i
	}
}
/^powerloss\[sweep\]: .*202s whose wait spanned/ { spanned += $2; inside += $(NF - 8) }
/^powerloss\[sweep\]: crash points at write/ { racing += $(NF - 6) }
/^powerloss\[sweep\]: \/sync records lost/ { rec += $(NF - 8); if ($(NF - 3) > recmax) recmax = $(NF - 3) }
/^powerloss\[sweep\]: .*failures/ { fails += $NF }
END {
	printf "powerloss sweep (seeds %s, %d s): %d checkpoints, %d WAL restarts, %d WAL truncations; %d 202s whose wait spanned a WAL restart or truncation; %d images inside a multi-transaction step; %d crash points in a checkpoint racing intake\n", seeds, secs, ckpt, restarts, truncs, spanned, inside, racing
	printf "powerloss sweep: /sync records lost to a cut: %d, at most %d at one cut; failed checks: %d\n", rec, recmax, fails
	printf "powerloss: %d crash points, %d acknowledged jobs, %d lost\n", crashes, acked, lost
}' "$out"/*.out
exit $status

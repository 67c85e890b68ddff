#!/usr/bin/env bash
# tools/bench/limits.sh BUILD_DIR: what the rate limiter costs.
#
#  1. bench_ratelimit: ns per limiter check (admitted, refused, evicting,
#     with the clock), per client-address parse and per /sync listen-queue
#     check, single process.
#  2. POST /async through lighttpd with the limiter on vs off, in the same
#     run: two stacks loaded at the same time, so both see the same load
#     from the rest of the machine (measured one after the other, the
#     figures swing by 2x on a shared host), BENCH_ROUNDS times:
#       wrk -t1 -c16 -d$BENCH_DURATION each, X-Forwarded-For from 4096 clients
#       (CONSUMA_TRUSTED_PROXIES=127.0.0.1/32 in both runs, so both parse
#       it), limiter on = CONSUMA_RATE_LIMIT_REQUESTS=100 per 60 s, which
#       none of the clients reaches (any 429 shows up as non-2xx).
#     Target (issue 6): on >= 0.95x off.
#
# Prints numbers; asserts nothing. No deliverer runs (this measures intake).
# BENCH_DURATION (5s), BENCH_API_PROCS (4), BENCH_ROUNDS (3) tune it. CPU
# per request of each stack's API processes is printed next to 2xx/s. Use
# a build without sanitizers for numbers worth quoting.
set -euo pipefail
if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
	sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
stack=$root/tools/stack.sh
duration=${BENCH_DURATION:-5s}
api_procs=${BENCH_API_PROCS:-4}
rounds=${BENCH_ROUNDS:-3}

command -v wrk >/dev/null || { echo "limits.sh: wrk is not installed" >&2; exit 2; }
cmake --build "$build" --target consuma-fcgi bench_ratelimit >/dev/null
if grep -q '^CONSUMA_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
	echo "limits.sh: note: $build is a sanitizer build; numbers are not worth quoting" >&2
fi

D=$(mktemp -d "${TMPDIR:-/tmp}/consuma-bench-limits.XXXXXX")
cleanup() {
	local d
	for d in "$D"/s*; do
		[ -d "$d" ] && "$stack" down --dir "$d" >/dev/null 2>&1
	done
	rm -rf "$D"
}
trap cleanup EXIT

echo "== limiter: ns per operation, one process ($(nproc) cpus) =="
"$build/bench_ratelimit" 1000000 5

cat >"$D/xff.lua" <<'LUA'
-- POSTs $BENCH_BODY with an X-Forwarded-For from 4096 client addresses and
-- prints: BENCH requests=N rps=R non2xx=N errors=N p50_ms=X p99_ms=Y
-- (rps counts 2xx only).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
function request()
	local i = math.random(0, 4095)
	wrk.headers["X-Forwarded-For"] = string.format("198.51.%d.%d", math.floor(i / 256), i % 256)
	return wrk.format()
end
function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"BENCH requests=%d rps=%.1f non2xx=%d errors=%d p50_ms=%.2f p99_ms=%.2f\n",
		summary.requests, (summary.requests - e.status) / (summary.duration / 1e6), e.status,
		e.connect + e.read + e.write + e.timeout,
		latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA

. "$(dirname "$0")/common.bash"

export CONSUMA_BUILD_DIR=$build
export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true
export CONSUMA_MAX_QUEUE_SIZE=100000000
export CONSUMA_MAX_QUEUE_SHARE=1
export CONSUMA_MAX_PENDING_PER_HOST=0
export CONSUMA_TRUSTED_PROXIES=127.0.0.1/32
export CONSUMA_LOG_LEVEL=${CONSUMA_LOG_LEVEL:-info}
body='{"input_data":"hello","iterations":1,"callback_url":"http://127.0.0.1:9/callback"}'

# up_stack NAME REQUESTS_PER_WINDOW: starts a stack, prints its URL
up_stack() {
	env CONSUMA_RATE_LIMIT_REQUESTS="$2" CONSUMA_RATE_LIMIT_WINDOW=60 \
		"$stack" up --dir "$D/s$1" --port "$(free_port)" --sync-procs 1 \
		--api-procs "$api_procs" --no-deliverer 2>/dev/null | tail -n 1
}

# load NAME URL OUT: one wrk run against URL/async, then the stack's figures
# into OUT: "rps p50 p99 non2xx errors cpu_us_per_request" (CPU of its API
# processes per request)
load() {
	local dir=$D/s$1 cpu0 cpu1 line
	cpu0=$(api_cpu_ticks "$dir")
	line=$(BENCH_BODY=$body wrk -t1 -c16 -d"$duration" -s "$D/xff.lua" "$2/async" | grep '^BENCH ')
	cpu1=$(api_cpu_ticks "$dir")
	echo "$line" | sed -E 's/.*requests=([0-9]+) rps=([0-9.]+) non2xx=([0-9]+) errors=([0-9]+) p50_ms=([0-9.]+) p99_ms=([0-9.]+).*/\2 \5 \6 \3 \4 \1/' |
		awk -v t="$((cpu1 - cpu0))" -v hz="$(getconf CLK_TCK)" \
			'{ printf "%s %s %s %s %s %.1f\n", $1, $2, $3, $4, $5, ($6 > 0 ? t * 1e6 / hz / $6 : 0) }' >"$3"
}

# api_cpu_ticks DIR: user+system clock ticks of the stack's API processes so far
api_cpu_ticks() {
	local f pid sum=0 t
	for f in "$1"/fcgi-api-*.pid; do
		pid=$(head -n 1 "$f")
		t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
		sum=$((sum + t))
	done
	echo "$sum"
}

echo
echo "== POST /async through lighttpd, limiter off and on side by side (both under the same"
echo "   machine load), wrk -t1 -c16 -d$duration each, $api_procs api processes each, 4096 clients =="
printf '%-12s %10s %8s %8s %8s %7s %9s\n' run 2xx/s p50_ms p99_ms non-2xx errors cpu_us/req
off_sum=0 on_sum=0 off_cpu=0 on_cpu=0
for ((r = 1; r <= rounds; r++)); do
	off_url=$(up_stack "off$r" 0)
	on_url=$(up_stack "on$r" 100)
	load "off$r" "$off_url" "$D/off.txt" &
	p1=$!
	load "on$r" "$on_url" "$D/on.txt" &
	p2=$!
	wait "$p1" "$p2"
	"$stack" down --dir "$D/soff$r" >/dev/null 2>&1
	"$stack" down --dir "$D/son$r" >/dev/null 2>&1
	rm -rf "$D/soff$r" "$D/son$r"
	off=$(cat "$D/off.txt")
	on=$(cat "$D/on.txt")
	printf '%-12s %10s %8s %8s %8s %7s %9s\n' "off #$r" $off
	printf '%-12s %10s %8s %8s %8s %7s %9s\n' "on #$r" $on
	off_sum=$(awk -v a="$off_sum" -v b="${off%% *}" 'BEGIN { print a + b }')
	on_sum=$(awk -v a="$on_sum" -v b="${on%% *}" 'BEGIN { print a + b }')
	off_cpu=$(awk -v a="$off_cpu" -v b="${off##* }" 'BEGIN { print a + b }')
	on_cpu=$(awk -v a="$on_cpu" -v b="${on##* }" 'BEGIN { print a + b }')
done
awk -v on="$on_sum" -v off="$off_sum" -v n="$rounds" 'BEGIN {
	if (off > 0)
		printf "limiter on / off: %.0f / %.0f 2xx/s = %.3f (target >= 0.95)\n", on / n, off / n, on / off
}'
awk -v on="$on_cpu" -v off="$off_cpu" -v n="$rounds" 'BEGIN {
	if (off > 0)
		printf "API-process CPU per request, on / off: %.1f / %.1f us = %.3f" \
			" (less sensitive to a busy machine than 2xx/s)\n", on / n, off / n, on / off
}'

#!/usr/bin/env bash
# tools/bench/api.sh BUILD_DIR: HTTP throughput of consuma through lighttpd,
# as a fraction of a hello-world FastCGI responder (hello_fcgi.c) measured
# in the same run behind the same lighttpd config and the same pools.
#
#   wrk -t2 -c32 -d10s  POST /sync  {"input_data":"hello","iterations":1}
#   wrk -t2 -c32 -d10s  POST /async {... "callback_url": ...}
#
# Targets (issue 2): /sync iterations=1 >= 0.40x hello, /async >= 0.25x hello
# with every 202 durable (rows on disk >= 202s counted) and zero non-2xx.
# req/s counts 2xx answers only. Prints numbers; asserts nothing. No
# deliverer runs: this measures intake. BENCH_DURATION (10s),
# BENCH_SYNC_PROCS (8), BENCH_API_PROCS (4) tune it. At iterations=1 a
# /sync takes well under a millisecond, so 32 connections stay far below
# CONSUMA_SYNC_MAX_WAIT_MS and nothing is shed (fcgi-app/limits.c); 2 or 4
# sync processes measured the same within noise.
set -euo pipefail
if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
	sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
stack=$root/tools/stack.sh
duration=${BENCH_DURATION:-10s}
sync_procs=${BENCH_SYNC_PROCS:-8}
api_procs=${BENCH_API_PROCS:-4}

command -v wrk >/dev/null || { echo "api.sh: wrk is not installed" >&2; exit 2; }
cmake --build "$build" --target consuma-fcgi hello_fcgi >/dev/null
if grep -q '^CONSUMA_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
	echo "api.sh: note: $build is a sanitizer build; numbers are not worth quoting" >&2
fi

D=$(mktemp -d "${TMPDIR:-/tmp}/consuma-bench.XXXXXX")
cleanup() {
	"$stack" down --dir "$D/hello" >/dev/null 2>&1 || true
	"$stack" down --dir "$D/consuma" >/dev/null 2>&1 || true
	rm -rf "$D"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

export CONSUMA_BUILD_DIR=$build
export CONSUMA_RATE_LIMIT_REQUESTS=0
export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true
export CONSUMA_MAX_QUEUE_SIZE=100000000
export CONSUMA_MAX_QUEUE_SHARE=1
export CONSUMA_MAX_PENDING_PER_HOST=0
export CONSUMA_LOG_LEVEL=${CONSUMA_LOG_LEVEL:-info}

sync_body='{"input_data":"hello","iterations":1}'
async_body='{"input_data":"hello","iterations":1,"callback_url":"http://127.0.0.1:9/callback"}'

# run URL BODY: prints "rps p50 p99 non2xx errors requests"
run() {
	local line
	line=$(BENCH_BODY=$2 wrk -t2 -c32 -d"$duration" -s "$here/post.lua" "$1" | grep '^BENCH ')
	echo "$line" | sed -E 's/.*requests=([0-9]+) rps=([0-9.]+) non2xx=([0-9]+) errors=([0-9]+) p50_ms=([0-9.]+) p99_ms=([0-9.]+).*/\2 \5 \6 \3 \4 \1/'
}

up() { # DIR [env...]
	local dir=$1
	shift
	env "$@" "$stack" up --dir "$dir" --port "$(free_port)" --sync-procs "$sync_procs" \
		--api-procs "$api_procs" --no-deliverer 2>/dev/null | tail -n 1
}

hello=$(up "$D/hello" CONSUMA_STACK_FCGI_BIN="$build/hello_fcgi")
h_sync=$(run "$hello/sync" "$sync_body")
h_async=$(run "$hello/async" "$async_body")
"$stack" down --dir "$D/hello" >/dev/null 2>&1

consuma=$(up "$D/consuma")
c_sync=$(run "$consuma/sync" "$sync_body")
c_async=$(run "$consuma/async" "$async_body")
rows=$(sqlite3 "$D/consuma/consuma.db" "SELECT count(*) FROM requests WHERE mode='async';" 2>/dev/null || echo '?')
# WAL size right after the load (before down checkpoints it): checkpoints
# must keep up, or it grows without bound (wal_autocheckpoint, writelock.h).
wal_kb=$(( $(stat -c %s "$D/consuma/consuma.db-wal" 2>/dev/null || echo 0) / 1024 ))
"$stack" down --dir "$D/consuma" >/dev/null 2>&1

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
row() { # NAME "rps p50 p99 non2xx errors requests" RATIO TARGET
	read -r rps p50 p99 non2xx errs _ <<<"$2"
	printf '%-22s %10s %8s %8s %8s %7s %9s %s\n' "$1" "$rps" "$p50" "$p99" "$non2xx" "$errs" "$3" "$4"
}
echo "== api: wrk -t2 -c32 -d$duration through lighttpd, $sync_procs sync + $api_procs api processes, $(nproc) cpus =="
printf '%-22s %10s %8s %8s %8s %7s %9s %s\n' endpoint 2xx/s p50_ms p99_ms non-2xx errors vs_hello target
row "hello POST /sync" "$h_sync" 1.00 ""
row "consuma POST /sync" "$c_sync" "$(ratio "${c_sync%% *}" "${h_sync%% *}")" ">= 0.40"
row "hello POST /async" "$h_async" 1.00 ""
row "consuma POST /async" "$c_async" "$(ratio "${c_async%% *}" "${h_async%% *}")" ">= 0.25"
read -r _ _ _ a_non2xx _ a_reqs <<<"$c_async"
echo "async durability: $rows rows on disk for $a_reqs responses counted by wrk ($a_non2xx non-2xx)"
echo "WAL after both consuma runs: ${wal_kb} KiB"

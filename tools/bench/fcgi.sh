#!/usr/bin/env bash
# tools/bench/fcgi.sh BUILD_DIR [REQUESTS]: instructions per request of the
# FastCGI process itself, counted by callgrind (which does not drift with
# the machine's speed as req/s does): consuma-fcgi's POST /sync
# (iterations=1) and POST /async (the 202 with its share of the group
# commit; no deliverer), against hello_fcgi (tools/bench/hello_fcgi.c, the
# floor libfcgi sets) answering the same POST, all behind tools/stack.sh's
# lighttpd with one process per pool under valgrind. consuma-storm sends
# the requests, 16 at once. Each figure is the difference of a run with
# 3xREQUESTS and one with REQUESTS (default 1000), so start-up and the
# migrations drop out; the /async line also says how many jobs shared a
# commit (the committer's own cost per job depends on it). Needs valgrind;
# prints numbers only.
set -euo pipefail
if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
	sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
build=$(cd "$1" && pwd)
n=${2:-1000}
stack=$(cd "$(dirname "$0")/../.." && pwd)/tools/stack.sh
command -v valgrind >/dev/null || { echo "fcgi.sh: valgrind is not installed; skipped" >&2; exit 0; }
cmake --build "$build" --target consuma-fcgi consuma-storm hello_fcgi >/dev/null
D=$(mktemp -d "${TMPDIR:-/tmp}/consuma-bench-fcgi.XXXXXX")
cleanup() {
	for d in "$D"/stack-*; do [ -d "$d" ] && "$stack" down --dir "$d" >/dev/null 2>&1; done
	rm -rf "$D"
}
trap cleanup EXIT

export CONSUMA_BUILD_DIR=$build
export CONSUMA_RATE_LIMIT_REQUESTS=0
export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true
export CONSUMA_MAX_QUEUE_SIZE=100000000
export CONSUMA_MAX_QUEUE_SHARE=1
export CONSUMA_MAX_PENDING_PER_HOST=0
export CONSUMA_LOG_LEVEL=info

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The pools' processes run under callgrind: stack.sh execs this wrapper in
# place of the responder (spawn-fcgi's pid file then names valgrind, which
# writes its count to cg.PID when the process ends).
wrap() { # BIN: writes $D/wrap-NAME, prints its path
	local w=$D/wrap-$(basename "$1")
	printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/cg.%%p %s "$@"\n' \
		"$D" "$1" >"$w"
	chmod +x "$w"
	echo "$w"
}

# run BIN COUNT: a stack on BIN, COUNT posts to /sync then to /async; prints
# "sync_instructions async_instructions jobs_per_commit"
run() {
	local dir=$D/stack-$(basename "$1")-$2 url port pid_sync pid_api jpc
	port=$(free_port)
	url=$(CONSUMA_STACK_FCGI_BIN=$(wrap "$1") "$stack" up --dir "$dir" --port "$port" \
		--no-deliverer --sync-procs 1 --api-procs 1 2>/dev/null | tail -n 1)
	for mode in sync async; do
		"$build/consuma-storm" --server-url "$url" --mode "$mode" --num-requests "$2" \
			--concurrency 16 --iterations 1 --callback-port "$(free_port)" --callback-wait 0 \
			--interval 3600 \
			--no-progress >/dev/null 2>&1 || true
	done
	pid_sync=$(cat "$dir/fcgi-sync-1.pid")
	pid_api=$(cat "$dir/fcgi-api-1.pid")
	"$stack" down --dir "$dir" >/dev/null 2>&1
	jpc=$(awk '/event=store.committer/ {
		for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] += kv[2] }
	} END { if (v["transactions"] > 0) printf "%.1f", v["jobs"] / v["transactions"]; else print "-" }' \
		"$dir"/fcgi-api-*.log 2>/dev/null)
	echo "$(total "$pid_sync") $(total "$pid_api") ${jpc:--}"
}
total() { # PID: the instructions callgrind counted in that process
	local f=$D/cg.$1 i
	for i in $(seq 50); do [ -s "$f" ] && grep -q '^totals:' "$f" && break; sleep 0.2; done
	sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$f"
}
per() { awk -v a="$1" -v b="$2" -v n="$n" 'BEGIN { printf "%.0f", (b - a) / (2 * n) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

read -r h_sync1 h_async1 _ <<<"$(run "$build/hello_fcgi" "$n")"
read -r h_sync3 h_async3 _ <<<"$(run "$build/hello_fcgi" $((3 * n)))"
read -r c_sync1 c_async1 _ <<<"$(run "$build/consuma-fcgi" "$n")"
read -r c_sync3 c_async3 jpc <<<"$(run "$build/consuma-fcgi" $((3 * n)))"
hello=$(per "$h_async1" "$h_async3")
hello_sync=$(per "$h_sync1" "$h_sync3")
sync=$(per "$c_sync1" "$c_sync3")
async=$(per "$c_async1" "$c_async3")
echo "== fcgi: instructions per request in the FastCGI process (callgrind, $n and $((3 * n)) requests, 16 at once) =="
printf '%-44s %12s %9s\n' request instructions vs_hello
printf '%-44s %12s %9s\n' "hello_fcgi, the same POST (api pool)" "$hello" 1.00
printf '%-44s %12s %9s\n' "hello_fcgi, the same POST (sync pool)" "$hello_sync" "$(ratio "$hello_sync" "$hello")"
printf '%-44s %12s %9s\n' "POST /sync iterations=1" "$sync" "$(ratio "$sync" "$hello")"
printf '%-44s %12s %9s\n' "POST /async, 202 ($jpc jobs per commit)" "$async" "$(ratio "$async" "$hello")"

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
# migrations drop out. "workers" counts the threads that serve requests
# (within 0.5% run to run); "with_committer" adds the store's committer
# thread, whose share depends on how many jobs met in a commit and on
# where a WAL checkpoint fell, so it moves by a few % between runs of the
# same build (tools/bench.sh store counts the store's writes without that
# noise). Needs valgrind; prints numbers only.
set -euo pipefail
if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
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

. "$(dirname "$0")/common.bash"
bench_stack_env "$build"

# The pools' processes run under callgrind: stack.sh execs this wrapper in
# place of the responder (spawn-fcgi's pid file then names valgrind, which
# writes one count per thread, cg.PID-NN, when the process ends).
wrap() { # BIN: writes $D/wrap-NAME, prints its path
	local w=$D/wrap-$(basename "$1")
	printf '#!/bin/sh\nexec valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file=%s/cg.%%p %s "$@"\n' \
		"$D" "$1" >"$w"
	chmod +x "$w"
	echo "$w"
}

# run BIN COUNT: a stack on BIN, COUNT posts to /sync then to /async; prints
# "sync_workers sync_all async_workers async_all jobs_per_commit" (total's
# pairs for the sync and the api process)
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
# total PID: "workers with_committer", the instructions callgrind counted
# in that process's request threads (worker_main), and in them and the
# store's committer thread. The main thread is left out: whichever process
# opens the database first runs the migrations there. hello_fcgi has one
# thread, which is its worker.
total() {
	local i f n w=0 c=0 a=0
	for i in $(seq 50); do
		[ -s "$D/cg.$1-01" ] && grep -q '^totals:' "$D/cg.$1-01" && break
		sleep 0.2
	done
	for f in "$D/cg.$1"-*; do
		n=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$f")
		a=$((a + n))
		if grep -q ' worker_main$' "$f"; then
			w=$((w + n))
		elif grep -q ' committer_main$' "$f"; then
			c=$((c + n))
		fi
	done
	[ "$w" -gt 0 ] || w=$a
	echo "$w $((w + c))"
}
per() { awk -v a="$1" -v b="$2" -v n="$n" 'BEGIN { printf "%.0f", (b - a) / (2 * n) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

read -r hs1 _ ha1 _ _ <<<"$(run "$build/hello_fcgi" "$n")"
read -r hs3 _ ha3 _ _ <<<"$(run "$build/hello_fcgi" $((3 * n)))"
read -r cs1 csa1 ca1 caa1 _ <<<"$(run "$build/consuma-fcgi" "$n")"
read -r cs3 csa3 ca3 caa3 jpc <<<"$(run "$build/consuma-fcgi" $((3 * n)))"
hello=$(per "$ha1" "$ha3")
echo "== fcgi: instructions per request in the FastCGI process (callgrind, $n and $((3 * n)) requests, 16 at once) =="
row() { # NAME WORKERS [ALL]
	printf '%-44s %12s %9s %14s\n' "$1" "$2" "$(ratio "$2" "$hello")" "${3:--}"
}
printf '%-44s %12s %9s %14s\n' request workers vs_hello with_committer
row "hello_fcgi, the same POST (api pool)" "$hello"
row "hello_fcgi, the same POST (sync pool)" "$(per "$hs1" "$hs3")"
row "POST /sync iterations=1" "$(per "$cs1" "$cs3")" "$(per "$csa1" "$csa3")"
row "POST /async, 202 ($jpc jobs per commit)" "$(per "$ca1" "$ca3")" "$(per "$caa1" "$caa3")"

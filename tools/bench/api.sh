#!/usr/bin/env bash
# tools/bench/api.sh BUILD_DIR: HTTP throughput of consuma through lighttpd,
# as a fraction of a hello-world FastCGI responder (hello_fcgi.c) measured
# in the same run behind the same lighttpd config and the same pools.
#
#   wrk -t2 -c32 -d5s   POST /sync  {"input_data":"hello","iterations":1}
#   wrk -t2 -c32 -d5s   POST /async {... "callback_url": ...}, no deliverer
#     (and once more with -c128: more clients than the process has threads)
#   the same /async with the deliverer running and every callback failing
#     (the callback port is closed), so its retries and attempt writes
#     compete with intake
#   consuma-storm --mode async --num-requests BENCH_JOBS --concurrency 64
#     --iterations 1: the
#     whole async path, POST to checked callback, in jobs/s from the first
#     POST to the last callback (consuma-storm's callbacks.span_s; the
#     storm's wall time, its start-up and report included, beside it)
#
# Targets (issue 9): /sync >= 0.70x hello, /async intake >= 0.60x with
# every 202 durable (rows on disk >= 202s counted), /async while callbacks
# fail >= 0.50x, the whole async path >= 0.35x. Also prints what group
# commit did: jobs per fsync and write transactions per job, from the
# committers' store.committer log lines. req/s counts 2xx answers only.
# Then the intake and the whole path once more on PostgreSQL, against the
# SQLite figures (BENCH_POSTGRES=0 skips that).
# Prints numbers; asserts nothing. consuma's pools are tools/stack.sh's
# defaults (what a user gets) unless BENCH_SYNC_PROCS / BENCH_API_PROCS say
# otherwise; hello, one request at a time per process, runs 8 processes per
# pool (BENCH_HELLO_PROCS). Each ratio comes from runs side by side:
# BENCH_ROUNDS (3) rounds of a hello run and a consuma run (each first in
# turn), and the round of the median ratio is printed, every round's
# ratio below (the machine's speed drifts by a third within minutes: a
# hello measured once at the start made the ratios drift with it). The
# whole path runs once, against hello runs just before and after it.
# BENCH_DURATION (5s a run) and BENCH_JOBS (20000) tune it.
set -euo pipefail
if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
	sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
stack=$root/tools/stack.sh
duration=${BENCH_DURATION:-5s}
rounds=${BENCH_ROUNDS:-3}
[[ "$rounds" =~ ^[1-9]$ ]] || { echo "api.sh: BENCH_ROUNDS must be 1..9" >&2; exit 2; }
jobs=${BENCH_JOBS:-20000}
pool_args=()
[ -n "${BENCH_SYNC_PROCS:-}" ] && pool_args+=(--sync-procs "$BENCH_SYNC_PROCS")
[ -n "${BENCH_API_PROCS:-}" ] && pool_args+=(--api-procs "$BENCH_API_PROCS")

command -v wrk >/dev/null || { echo "api.sh: wrk is not installed" >&2; exit 2; }
cmake --build "$build" --target consuma-fcgi consuma-deliverer consuma-storm hello_fcgi >/dev/null
if grep -q '^CONSUMA_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
	echo "api.sh: note: $build is a sanitizer build; numbers are not worth quoting" >&2
fi

D=$(mktemp -d "${TMPDIR:-/tmp}/consuma-bench.XXXXXX")
cleanup() {
	for d in hello consuma failing whole; do
		"$stack" down --dir "$D/$d" >/dev/null 2>&1 || true
	done
	rm -rf "$D"
}
trap cleanup EXIT

. "$(dirname "$0")/common.bash"

bench_stack_env "$build"

sync_body='{"input_data":"hello","iterations":1}'
async_body='{"input_data":"hello","iterations":1,"callback_url":"http://127.0.0.1:9/callback"}'

# run URL BODY [CONNECTIONS]: prints "rps p50 p99 non2xx errors requests"
run() {
	local line
	line=$(BENCH_BODY=$2 wrk -t2 -c"${3:-32}" -d"$duration" -s "$here/post.lua" "$1" | grep '^BENCH ')
	echo "$line" | sed -E 's/.*requests=([0-9]+) rps=([0-9.]+) non2xx=([0-9]+) errors=([0-9]+) p50_ms=([0-9.]+) p99_ms=([0-9.]+).*/\2 \5 \6 \3 \4 \1/'
}

up() { # DIR [--no-deliverer] [--postgres] [env...]
	local dir=$1 opt=()
	shift
	while [ "${1:-}" = --no-deliverer ] || [ "${1:-}" = --postgres ]; do
		opt+=("$1")
		shift
	done
	env "$@" "$stack" up --dir "$dir" --port "$(free_port)" "${pool_args[@]}" "${opt[@]}" \
		2>/dev/null | tail -n 1
}

# committed DIR: "jobs_per_fsync transactions_per_job" from the API pool committers.
# store.committer lines (written when consuma-fcgi stops)
committed() {
	cat "$1"/fcgi-api-*.log 2>/dev/null | awk '/event=store.committer/ {
		for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] += kv[2] }
	} END {
		jpf = "-"; tpj = "-"
		if (v["fsyncs"] > 0) jpf = sprintf("%.1f", v["jobs"] / v["fsyncs"])
		if (v["jobs"] > 0) tpj = sprintf("%.3f", v["transactions"] / v["jobs"])
		print jpf, tpj
	}'
}

# hello_fcgi serves one request at a time per process: 8 processes per pool
# is past where more stop helping on this machine, so it is the FastCGI
# ceiling to compare with (BENCH_HELLO_PROCS).
hello_procs=${BENCH_HELLO_PROCS:-8}
hello=$(pool_args=(--sync-procs "$hello_procs" --api-procs "$hello_procs")
	up "$D/hello" --no-deliverer CONSUMA_STACK_FCGI_BIN="$build/hello_fcgi")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# pair HELLO_URL CONSUMA_URL BODY [CONNECTIONS]: the rounds, hello and
# consuma side by side (each first in turn). Prints one line,
#   ratio|hello run|consuma run|every round's ratio|consuma requests|consuma non-2xx
# the ratio and runs of the median round, the counts of every consuma run
# (the durability check counts them all).
pair() {
	local r h c reqs=0 bad=0 nr n2 all=() picked
	for ((r = 1; r <= rounds; r++)); do
		if ((r % 2)); then
			h=$(run "$1" "$3" "${4:-32}")
			c=$(run "$2" "$3" "${4:-32}")
		else
			c=$(run "$2" "$3" "${4:-32}")
			h=$(run "$1" "$3" "${4:-32}")
		fi
		read -r _ _ _ n2 _ nr <<<"$c"
		reqs=$((reqs + nr))
		bad=$((bad + n2))
		all+=("$(ratio "${c%% *}" "${h%% *}")|$h|$c")
	done
	picked=$(printf '%s\n' "${all[@]}" | sort -t'|' -k1,1g | sed -n "$(((rounds + 1) / 2))p")
	echo "$picked|$(printf '%s\n' "${all[@]}" | cut -d'|' -f1 | paste -sd' ')|$reqs|$bad"
}

consuma=$(up "$D/consuma" --no-deliverer)
IFS='|' read -r r_sync h_sync c_sync all_sync _ _ <<<"$(pair "$hello/sync" "$consuma/sync" "$sync_body")"
IFS='|' read -r r_async h_async c_async all_async a_reqs a_non2xx \
	<<<"$(pair "$hello/async" "$consuma/async" "$async_body")"
# A storm has more clients than a process has threads: parked requests
# (fcgi-app/park.h) let a batch hold every job in flight.
IFS='|' read -r r_wide h_async_wide c_async_wide all_wide w_reqs w_non2xx \
	<<<"$(pair "$hello/async" "$consuma/async" "$async_body" 128)"
rows=$(sqlite3 "$D/consuma/consuma.db" "SELECT count(*) FROM requests WHERE mode='async';" 2>/dev/null || echo '?')
# WAL size right after the load (before down checkpoints it): checkpoints
# must keep up, or it grows without bound (wal_autocheckpoint).
wal_kb=$(( $(stat -c %s "$D/consuma/consuma.db-wal" 2>/dev/null || echo 0) / 1024 ))
"$stack" down --dir "$D/consuma" >/dev/null 2>&1
read -r intake_jpf intake_tpj <<<"$(committed "$D/consuma")"

# Every callback fails: nothing listens on port 9, so each job is retried
# until CONSUMA_CALLBACK_MAX_RETRIES while intake goes on (default backoff).
failing=$(up "$D/failing")
IFS='|' read -r r_fail _ c_fail all_fail _ _ <<<"$(pair "$hello/async" "$failing/async" "$async_body")"
"$stack" down --dir "$D/failing" >/dev/null 2>&1

# The whole async path: consuma-storm receives and checks every callback.
# whole_storm URL PORT NAME: the storm against URL, its callbacks on PORT,
# its report in $D/NAME.txt and $D/NAME.json; returns the storm's status.
whole_storm() {
	"$build/consuma-storm" --server-url "$1" --mode async --num-requests "$jobs" --concurrency 64 \
		--iterations 1 --callback-port "$2" --callback-wait 120 --no-progress \
		--json "$D/$3.json" >"$D/$3.txt" 2>&1
}
# The issue's figure: jobs/s from the first POST to the last callback, as
# consuma-storm measured it (callbacks.span_s); the storm's wall time, which
# adds its own start, set-up and report, is printed beside it.
span_rate() { # NAME: callbacks received per second of callbacks.span_s
	python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["async"]["callbacks"]
print("%.1f" % (c["received"] / c["span_s"]) if c["span_s"] else 0)' "$D/$1.json" 2>/dev/null || echo 0
}
missing_of() { # NAME: the callbacks the storm's report counted missing
	sed -n 's/.*callbacks *\([0-9]*\) expected, \([0-9]*\) received, \([0-9]*\) missing.*/\3/p' \
		"$D/$1.txt" | head -n 1
}
whole=$(up "$D/whole")
h_before=$(run "$hello/async" "$async_body")
cb_port=$(free_port)
t0=$(date +%s.%N)
storm_rc=0
whole_storm "$whole" "$cb_port" whole || storm_rc=$?
t1=$(date +%s.%N)
"$stack" down --dir "$D/whole" >/dev/null 2>&1
h_after=$(run "$hello/async" "$async_body")
h_whole=$(awk -v a="${h_before%% *}" -v b="${h_after%% *}" 'BEGIN { printf "%.1f", (a + b) / 2 }')
"$stack" down --dir "$D/hello" >/dev/null 2>&1
wall_rate=$(awk -v n="$jobs" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')
whole_rate=$(span_rate whole)
missing=$(missing_of whole)

# The same intake and whole path on PostgreSQL (issue 10: >= 0.50x SQLite
# each, every 202 committed at synchronous_commit=on), each run on a private
# cluster of tools/pg.sh (fsync on), when consuma-fcgi has the backend and
# PostgreSQL is installed; BENCH_POSTGRES=0 skips it.
pg_async='' pg_rows='?' pg_whole='' pg_missing='' pg_jpc='-'
if [ "${BENCH_POSTGRES:-1}" != 0 ] && ldd "$build/consuma-fcgi" 2>/dev/null | grep -q libpq &&
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	pg=$(up "$D/pg-intake" --no-deliverer --postgres)
	pg_async=$(run "$pg/async" "$async_body")
	pg_rows=$(psql -qtA "$(cat "$D/pg-intake/pg/url")" \
		-c "SELECT count(*) FROM requests WHERE mode = 'async'" 2>/dev/null || echo '?')
	"$stack" down --dir "$D/pg-intake" >/dev/null 2>&1
	read -r pg_jpc _ <<<"$(committed "$D/pg-intake")"
	pg=$(up "$D/pg-whole" --postgres)
	whole_storm "$pg" "$(free_port)" pg-whole || true
	"$stack" down --dir "$D/pg-whole" >/dev/null 2>&1
	pg_whole=$(span_rate pg-whole)
	pg_missing=$(missing_of pg-whole)
fi

row() { # NAME "rps p50 p99 non2xx errors requests" RATIO TARGET
	read -r rps p50 p99 non2xx errs _ <<<"$2"
	printf '%-22s %10s %8s %8s %8s %7s %9s %s\n' "$1" "$rps" "$p50" "$p99" "$non2xx" "$errs" "$3" "$4"
}
echo "== api: wrk -t2 -c32 -d$duration through lighttpd, consuma in tools/stack.sh pools${pool_args[*]:+ (${pool_args[*]})}, hello in $hello_procs + $hello_procs processes, $(nproc) cpus =="
printf '%-22s %10s %8s %8s %8s %7s %9s %s\n' endpoint 2xx/s p50_ms p99_ms non-2xx errors vs_hello target
row "hello POST /sync" "$h_sync" 1.00 ""
row "consuma POST /sync" "$c_sync" "$r_sync" ">= 0.70"
row "hello POST /async" "$h_async" 1.00 ""
row "consuma POST /async" "$c_async" "$r_async" ">= 0.60"
row "  128 connections" "$c_async_wide" "$r_wide" "(hello at 128 connections: ${h_async_wide%% *}/s)"
row "  callbacks failing" "$c_fail" "$r_fail" ">= 0.50"
printf '%-22s %10s %8s %8s %8s %7s %9s %s\n' "  whole path (storm)" "$whole_rate" - - - \
	"${missing:-?}" "$(ratio "$whole_rate" "$h_whole")" ">= 0.35 (errors: missing callbacks; storm exit $storm_rc)"
echo "ratios by round ($rounds rounds of $duration, the median round above): /sync $all_sync;" \
	"/async $all_async; 128 connections $all_wide; failing $all_fail;" \
	"whole path against hello at $h_whole/s (${h_before%% *} before, ${h_after%% *} after);" \
	"whole path over consuma-storm's wall time $wall_rate/s"
echo "async durability: $rows rows on disk for $((a_reqs + w_reqs)) responses counted by wrk" \
	"in the intake runs ($((a_non2xx + w_non2xx)) non-2xx)"
echo "group commit (intake run): $intake_jpf jobs per fsync, $intake_tpj write transactions per job"
echo "WAL after the intake runs: ${wal_kb} KiB"
if [ -n "$pg_async" ]; then
	echo "== postgres (tools/pg.sh cluster, fsync and synchronous_commit on): vs_sqlite is against the consuma rows above (the median rounds) =="
	row "postgres POST /async" "$pg_async" "$(ratio "${pg_async%% *}" "${c_async%% *}")" ">= 0.50 vs sqlite"
	printf '%-22s %10s %8s %8s %8s %7s %9s %s\n' "  whole path (storm)" "$pg_whole" - - - \
		"${pg_missing:-?}" "$(ratio "$pg_whole" "$whole_rate")" ">= 0.50 vs sqlite (errors: missing callbacks)"
	read -r _ _ _ p_non2xx _ p_reqs <<<"$pg_async"
	echo "postgres durability: $pg_rows rows committed for $p_reqs responses counted by wrk ($p_non2xx non-2xx)"
	echo "group commit (postgres intake): $pg_jpc jobs per commit"
fi

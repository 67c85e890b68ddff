# tests/integration/lib.sh: shared helpers for the integration tests.
# Source it first thing:   . "$(dirname "$0")/lib.sh"
#
# Every test gets its own temporary directory ($T) and stops exactly the
# processes it started, by pid, on any exit. Assertions count; t_done prints
# "N passed, N failed" and exits non-zero when anything failed.
set -uo pipefail

SRC=${CONSUMA_SRC_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${CONSUMA_BUILD_DIR:-$SRC/build-test}
T=$(mktemp -d "${TMPDIR:-/tmp}/consuma-test.XXXXXX")
T_PASSED=0
T_FAILED=0
T_PIDS=()
T_STACKS=()
T_PGS=()

t_cleanup() {
	local d p
	kill "$T_WATCHDOG" 2>/dev/null || true
	for d in "${T_STACKS[@]}"; do
		"$SRC/tools/stack.sh" down --dir "$d" >/dev/null 2>&1 || true
	done
	for p in "${T_PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${T_PIDS[@]}"; do
		wait_for "! kill -0 $p 2>/dev/null" 5 || kill -9 "$p" 2>/dev/null || true
	done
	# after the stacks and pids: a cluster's clients are gone by now
	for d in "${T_PGS[@]}"; do
		"$SRC/tools/pg.sh" down "$d" >/dev/null 2>&1 || true
	done
	if [ "${T_KEEP:-0}" = 1 ] || [ "$T_FAILED" -gt 0 ]; then
		echo "# kept $T for inspection" >&2
	else
		rm -rf "$T"
	fi
}
trap t_cleanup EXIT

# t_track PID: stop PID when the test exits.
t_track() {
	T_PIDS+=("$1")
	echo "$1" >>"$T/.pids"
}

# A hung test must still stop what it started: ctest's TIMEOUT kills the
# script without its EXIT trap. So a watchdog, at T_LIMIT seconds (below
# ctest's 300), stops every stack under $T and every tracked pid itself,
# then ends the test.
T_LIMIT=${T_LIMIT:-270}
t_watchdog() {
	local sleeper d p
	trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
	sleep "$T_LIMIT" &
	sleeper=$!
	wait "$sleeper"
	echo "# test ran past ${T_LIMIT}s: stopping what it started" >&2
	while read -r d; do
		"$SRC/tools/stack.sh" down --dir "$(dirname "$d")" >/dev/null 2>&1
	done < <(find "$T" -maxdepth 4 -name lighttpd.pid -o -maxdepth 4 -name deliverer.pid)
	if [ -f "$T/.pids" ]; then
		while read -r p; do kill "$p" 2>/dev/null; done <"$T/.pids"
	fi
	# PostgreSQL clusters of pg_up (DIR/data/postmaster.pid), by their pid
	while read -r d; do
		"$SRC/tools/pg.sh" down "$(dirname "$(dirname "$d")")" >/dev/null 2>&1
	done < <(find "$T" -maxdepth 5 -name postmaster.pid)
	kill -TERM "$1" 2>/dev/null
}
t_watchdog $$ &
T_WATCHDOG=$!

ok() { T_PASSED=$((T_PASSED + 1)); echo "ok - $*"; }
not_ok() { T_FAILED=$((T_FAILED + 1)); echo "not ok - $*"; }

# assert_eq WHAT EXPECTED ACTUAL
assert_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: expected [$2], got [$3]"; fi
}
# assert_match WHAT REGEX ACTUAL
assert_match() {
	if [[ "$3" =~ $2 ]]; then ok "$1"; else not_ok "$1: [$3] does not match /$2/"; fi
}
# assert_cmd WHAT CMD...: passes when CMD exits 0
assert_cmd() {
	local what=$1; shift
	if "$@"; then ok "$what"; else not_ok "$what (command failed: $*)"; fi
}

t_done() {
	echo "$T_PASSED passed, $T_FAILED failed"
	[ "$T_FAILED" -eq 0 ] && [ "$T_PASSED" -gt 0 ]
	exit $?
}

# wait_for COND TIMEOUT: evaluates COND (a command line: a test, a
# function, a pipeline; in this shell, so variables it sets stay set) every
# 0.1 s until it succeeds (returns 0) or TIMEOUT seconds (fractions too)
# have passed (returns 1). A test waits for the event it needs, never for a
# fixed time, so a slow machine (ASan) only takes longer; the assertion
# after it says what was missing. (Its locals are named so that COND does
# not meet them instead of the caller's.)
wait_for() {
	local wait_for_cond=$1 wait_for_deadline
	wait_for_deadline=$(($(date +%s%3N) + $(awk -v s="$2" 'BEGIN { printf "%d", s * 1000 }')))
	until eval "$wait_for_cond"; do
		[ "$(date +%s%3N)" -lt "$wait_for_deadline" ] || return 1
		sleep 0.1
	done
}

# count_lines FILE REGEX: how many lines of FILE match REGEX (grep's basic
# syntax); 0 when FILE does not exist (yet).
count_lines() {
	local n
	n=$(grep -c -e "$2" "$1" 2>/dev/null)
	echo "${n:-0}"
}

# sql QUERY: QUERY on the database $db, columns separated by one space.
sql() { sqlite3 -separator ' ' "$db" "$1"; }

# The HTTP callback receiver of the tests (usage at its top).
RECV=$SRC/tests/integration/receiver.py

# receiver_up NAME [TIMEOUT]: waits (at most TIMEOUT s, 10 by default) until
# the receiver started with --port-file $T/NAME.port answers: it writes the
# file (whole, by a rename) once it listens. Ends the test when it does not.
receiver_up() {
	wait_for "[ -s '$T/$1.port' ]" "${2:-10}" && return 0
	not_ok "receiver $1 did not come up (its stderr: $T/$1.err)"
	t_done
}

# receiver_start NAME PORTVAR [serve options...]: starts a receiver (log
# $T/NAME.jsonl, port file $T/NAME.port, its stderr in $T/NAME.err, stopped
# when the test exits), waits for it (receiver_up) and sets PORTVAR to its
# port.
receiver_start() {
	local name=$1 var=$2
	shift 2
	python3 "$RECV" serve --port-file "$T/$name.port" --log "$T/$name.jsonl" "$@" \
		</dev/null >/dev/null 2>>"$T/$name.err" &
	t_track $!
	receiver_up "$name"
	printf -v "$var" '%s' "$(cat "$T/$name.port")"
}

# free_port: a TCP port on 127.0.0.1 that nobody listens on right now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# stack_up DIR [stack.sh up options...]: starts a stack, sets BASE to its URL.
stack_up() {
	local dir=$1; shift
	local port
	port=$(free_port)
	T_STACKS+=("$dir")
	BASE=$("$SRC/tools/stack.sh" up --dir "$dir" --port "$port" "$@") || {
		not_ok "stack.sh up failed"; cat "$dir"/*.log >&2 2>/dev/null; t_done; }
	BASE=$(echo "$BASE" | tail -n 1)
}

# deliver_up [stack.sh up options...]: what the deliver tests start with: a
# receiver r (its port in $rport), a stack in $T/s (BASE) and its database
# in $db (for sql).
deliver_up() {
	receiver_start r rport
	stack_up "$T/s" "$@"
	db=$T/s/consuma.db
}

# pg_up DIR [tools/pg.sh up options...]: starts a private PostgreSQL
# cluster in DIR (stopped when the test exits), sets PG_URL to its
# database's URL. Ends the test when the cluster does not start.
pg_up() {
	local dir=$1; shift
	T_PGS+=("$dir")
	PG_URL=$("$SRC/tools/pg.sh" up "$dir" "$@" 2>"$T/.pg_up.err" | tail -n 1) && [ -n "$PG_URL" ] || {
		not_ok "tools/pg.sh up $dir failed"; cat "$T/.pg_up.err" >&2; t_done; }
}

# pg_down DIR: stops the cluster in DIR now (by the postmaster's pid).
pg_down() {
	"$SRC/tools/pg.sh" down "$1"
}

# http METHOD URL [curl args...]: sets HTTP_CODE, HTTP_BODY, HTTP_HEADERS.
http() {
	local method=$1 url=$2; shift 2
	local out="$T/.http.body" hdr="$T/.http.headers"
	HTTP_CODE=$(curl -s -m 30 -X "$method" -o "$out" -D "$hdr" -w '%{http_code}' "$@" "$url") || HTTP_CODE=000
	HTTP_BODY=$(cat "$out" 2>/dev/null)
	HTTP_HEADERS=$(cat "$hdr" 2>/dev/null)
}

# json_get JSON EXPR: python3 expression over the parsed value `j`.
json_get() {
	python3 -c 'import json,sys; j=json.loads(sys.argv[1]); v=eval(sys.argv[2]); print(v if not isinstance(v,(dict,list,bool)) and v is not None else json.dumps(v))' "$1" "$2"
}

# json_file FILE EXPR: json_get over a JSON file (reports too large for an
# argument: the storm's timeline).
json_file() {
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); v=eval(sys.argv[2]); print(v if not isinstance(v,(dict,list,bool)) and v is not None else json.dumps(v))' "$1" "$2"
}

# need_storm: STORM is the build's consuma-storm, or the test ends here
# (it is built only when libmicrohttpd was found at configure time).
need_storm() {
	STORM=$BUILD/consuma-storm
	if [ ! -x "$STORM" ]; then
		not_ok "no consuma-storm in $BUILD (libmicrohttpd missing at configure time?)"
		t_done
	fi
	export CONSUMA_BUILD_DIR=$BUILD
}

# header_get NAME: the value of response header NAME from the last `http`
# call (case-insensitive name, first occurrence, CR stripped); empty if absent.
header_get() {
	printf '%s\n' "$HTTP_HEADERS" | tr -d '\r' |
		awk -v n="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" \
			'{ i = index($0, ":"); if (i > 0 && tolower(substr($0, 1, i - 1)) == n) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); print v; exit } }'
}

# assert_http WHAT CODE [DETAIL_REGEX]: the last `http` call answered CODE
# with a JSON body (Content-Type: application/json); when DETAIL_REGEX is
# given, the body's "detail" must match it.
assert_http() {
	local what=$1 code=$2 re=${3:-} ct detail
	ct=$(header_get Content-Type)
	if [ "$HTTP_CODE" != "$code" ]; then
		not_ok "$what: expected HTTP $code, got $HTTP_CODE: $HTTP_BODY"
		return
	fi
	case $ct in
	application/json*) ;;
	*) not_ok "$what: Content-Type is [$ct], not application/json"; return ;;
	esac
	if [ -n "$re" ]; then
		detail=$(json_get "$HTTP_BODY" 'j.get("detail","") if isinstance(j, dict) else ""' 2>/dev/null)
		if ! [[ "$detail" =~ $re ]]; then
			not_ok "$what: detail [$detail] does not match /$re/"
			return
		fi
	fi
	ok "$what"
}

# assert_clean_logs DIR: no sanitizer report (ASan, LSan, UBSan) in DIR/*.log.
# Stop the processes first (stack.sh down) so leak checks at exit are in.
assert_clean_logs() {
	local hits
	hits=$(grep -l -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$1"/*.log 2>/dev/null | tr '\n' ' ')
	if [ -z "$hits" ]; then
		ok "no sanitizer report in $1/*.log"
	else
		not_ok "sanitizer reports in: $hits"
		grep -h -A 12 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$1"/*.log | head -40 >&2
	fi
}

# ---- several hosts on one PostgreSQL database ---------------------------------
# need_pg: the test ends here unless PostgreSQL's programs are installed and
# the build has the PostgreSQL store (consuma-fcgi refuses a URL otherwise).
need_pg() {
	if [ ! -x /usr/lib/postgresql/15/bin/initdb ] && [ -z "${PG_BINDIR:-}" ]; then
		not_ok "no PostgreSQL 15 in /usr/lib/postgresql/15/bin (apt-get install postgresql)"
		t_done
	fi
	if ! grep -q '^LIBPQ_FOUND:INTERNAL=1' "$BUILD/CMakeCache.txt" 2>/dev/null; then
		not_ok "$BUILD was configured without libpq (apt-get install libpq-dev)"
		t_done
	fi
}

# pgq SQL: SQL on the database $PG_URL, unaligned, columns separated by one
# space (the PostgreSQL counterpart of sql).
pgq() { psql -X -q -A -t -F ' ' -v ON_ERROR_STOP=1 "$PG_URL" -c "$1"; }

# hosts_up N [stack.sh up options...]: the shape of a cluster on one machine:
# a PostgreSQL cluster in $T/pg (PG_URL) and N stacks $T/h1 .. $T/hN on its
# database, each with its own lighttpd, pools and doorbell (HOST_BASE[i] is
# stack i's URL), and no deliverer yet (host_deliverer starts them).
HOST_BASE=()
hosts_up() {
	local n=$1 i
	shift
	need_pg
	pg_up "$T/pg"
	for ((i = 1; i <= n; i++)); do
		CONSUMA_DATABASE_URL=$PG_URL stack_up "$T/h$i" --no-deliverer "$@"
		HOST_BASE[i]=$BASE
	done
}

# host_deliverer I: starts host I's consuma-deliverer (pid in $T/hI/
# deliverer.pid, log $T/hI/deliverer.log, so stack.sh down and status see it)
# under host name hI, in a UTS namespace of its own. Two machines' deliverers
# differ by host name: a deliverer takes back at once the leases of a dead
# deliverer on its own host (it can see the pid is gone), while another
# host's wait for their lease to expire. Sharing this machine's name, the
# hosts here would take the first path and the lease would go untested.
host_deliverer() {
	local d=$T/h$1 ns=(unshare -u) started
	[ "$(id -u)" -eq 0 ] || ns=(unshare -r -u) # a user namespace may set its host name
	started=$(count_lines "$d/deliverer.log" deliverer.started)
	# started from a subshell, as stack.sh does: not this shell's child, so a
	# kill -9 is no job of the test's for bash to report
	(
		CONSUMA_DATABASE_URL=$PG_URL CONSUMA_DOORBELL_PATH=$d/doorbell.sock \
			"${ns[@]}" -- /bin/sh -c 'hostname "$1" && exec "$2"' sh "h$1" "$BUILD/consuma-deliverer" \
			</dev/null >>"$d/deliverer.log" 2>&1 &
		echo $! >"$d/deliverer.pid"
	)
	wait_for "[ \$(count_lines '$d/deliverer.log' deliverer.started) -gt $started ]" 20 ||
		{ not_ok "host $1's deliverer did not start (see $d/deliverer.log)"; tail -n 5 "$d/deliverer.log" >&2; t_done; }
}

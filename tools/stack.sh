#!/usr/bin/env bash
# tools/stack.sh: runs the whole consuma stack locally, every piece a real
# process with its own pid file, all state under one directory.
#
#   tools/stack.sh up [--port P] [--dir D] [--sync-procs N] [--api-procs N] [--no-deliverer] [--auth]
#                     [--postgres]
#   tools/stack.sh status [--dir D]
#   tools/stack.sh down [--dir D]
#   tools/stack.sh start-deliverer [--dir D]
#   tools/stack.sh stop-deliverer [--dir D]
#
# Defaults: port 8000, D = .stack/ in the checkout (git ignores it), one
# sync-pool process (it computes one hash per CPU at once) and one API-pool
# process, each serving CONSUMA_FCGI_THREADS requests at once. One API
# process, because SQLite writers in different processes cost each other:
# every commit of one throws away the other's page cache, and two
# committers each batch half the jobs (README, Benchmarks); on PostgreSQL
# (--postgres or a postgres CONSUMA_DATABASE_URL) two.
#
# up      builds if needed (cmake into build/ of the checkout, RelWithDebInfo,
#         no sanitizers; CONSUMA_BUILD_DIR=<dir> uses an existing build
#         instead), then starts what is not running yet:
#           fcgi-sync-N, fcgi-api-N  consuma-fcgi via spawn-fcgi, one unix
#                                    socket and one pid file per process
#           lighttpd                 127.0.0.1:P, config from proxy-conf/
#           deliverer                consuma-deliverer, when it is built
#           postgres                 with --postgres: a private PostgreSQL
#                                    cluster in D/pg (tools/pg.sh), first
#         waits (bounded) until /healthz answers and prints the base URL as
#         its last line of stdout (progress goes to stderr).
#         Access: open (no API keys, as for local development) unless
#         CONSUMA_API_KEYS_FILE is set or --auth is given; --auth without
#         the variable uses D/api-keys and, when that file is empty or
#         missing, mints an admin key into D/admin.key (both 0600) and says
#         where on stderr. Send it as `Authorization: Bearer $(cat D/admin.key)`.
#         Store: SQLite at CONSUMA_DATABASE_PATH unless
#         CONSUMA_DATABASE_URL is set, which the processes then use (an
#         existing PostgreSQL server). --postgres without that variable
#         starts the private cluster and exports its URL (D/pg/url) as
#         CONSUMA_DATABASE_URL; with it set, --postgres changes nothing.
# down    SIGTERM to exactly the pids in D/*.pid, waits (bounded; then
#         SIGKILL), removes the pid files; then stops the private cluster
#         by its postmaster's pid (its data stays in D/pg/data).
# status  one line per pid file: name, pid, running or dead. Exit 0 when
#         everything recorded runs, 1 when some of it does, 3 when none.
#
# Configuration: every CONSUMA_* variable of the environment passes through
# to the processes. CONSUMA_DATABASE_PATH defaults to D/consuma.db and
# CONSUMA_DOORBELL_PATH to D/doorbell.sock. The CONSUMA_* values of the
# first `up` are saved in D/stack.env and fill in what a later `up` or
# `start-deliverer` does not set, so a restarted piece gets the same
# configuration; `down` forgets them (and the port and pool sizes).
# CONSUMA_STACK_FCGI_BIN=<path> runs another FastCGI responder in place of
# consuma-fcgi (tools/bench/api.sh puts its hello-world yardstick there).
set -euo pipefail
# Private state: D/stack.env holds CONSUMA_CALLBACK_SECRET (the signing
# secret), D/consuma.db every client's data; what this script and the
# processes it starts create is owner-only (D itself 0700, files 0600).
umask 077

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

HEALTH_WAIT_S=60   # bound on waiting for /healthz after up
STOP_WAIT_S=15     # bound on waiting for SIGTERM to work before SIGKILL
DELIVERER_STOP_WAIT_S=30

say() { echo "stack.sh: $*" >&2; }
die() {
	echo "stack.sh: $*" >&2
	exit "${DIE_CODE:-1}"
}
usage() {
	sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

cmd=${1:-}
[ $# -gt 0 ] && shift
port=8000
port_set=0
dir=$root/.stack
sync_procs=1
api_procs=1
procs_set=0
api_set=0
with_deliverer=1
want_auth=0
want_pg=0
# a URL from the caller's environment, not one saved in D/stack.env
url_given=${CONSUMA_DATABASE_URL:+1}

positive_int() { [[ "$1" =~ ^[1-9][0-9]{0,3}$ ]]; }

while [ $# -gt 0 ]; do
	case $1 in
	--port)
		[[ "${2:-}" =~ ^[1-9][0-9]{0,4}$ ]] && [ "$2" -le 65535 ] ||
			DIE_CODE=2 die "--port needs a port number 1..65535"
		port=$2 port_set=1
		shift 2
		;;
	--dir)
		[ -n "${2:-}" ] || DIE_CODE=2 die "--dir needs a directory"
		dir=$2
		shift 2
		;;
	--sync-procs)
		positive_int "${2:-}" || DIE_CODE=2 die "--sync-procs needs a number 1..9999"
		sync_procs=$2 procs_set=1
		shift 2
		;;
	--api-procs)
		positive_int "${2:-}" || DIE_CODE=2 die "--api-procs needs a number 1..9999"
		api_procs=$2 procs_set=1 api_set=1
		shift 2
		;;
	--no-deliverer)
		with_deliverer=0
		shift
		;;
	--auth)
		want_auth=1
		shift
		;;
	--postgres)
		want_pg=1
		shift
		;;
	-h | --help) usage ;;
	*) DIE_CODE=2 die "unknown option: $1 (try --help)" ;;
	esac
done
# PostgreSQL processes share no page cache to lose: there two API processes
# (two committers) measured +19% POST /async over one (5 alternating
# rounds), as before the SQLite default became one
if [ $api_set = 0 ] && { [ $want_pg = 1 ] || [[ "${CONSUMA_DATABASE_URL:-}" == postgres* ]]; }; then
	api_procs=2
fi

# ---- pid files -------------------------------------------------------------

# expected_comm NAME: the program a pid file of that name must point at.
expected_comm() {
	case $1 in
	fcgi-*) echo 'consuma-fcgi|hello_fcgi' ;;
	lighttpd) echo lighttpd ;;
	deliverer) echo consuma-deliverer ;;
	*) echo "" ;;
	esac
}

# pid_of NAME: prints the pid recorded in D/NAME.pid when that process is
# alive and is the program we started (not a recycled pid); fails otherwise.
pid_of() {
	local f=$dir/$1.pid pid want
	[ -f "$f" ] || return 1
	pid=$(head -n 1 "$f" 2>/dev/null | tr -d ' \r')
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	want=$(expected_comm "$1")
	if [ -n "$want" ] && [ -r "/proc/$pid/cmdline" ]; then
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -Eq -- "$want" || return 1
	fi
	echo "$pid"
}

# stop_pids TIMEOUT PID...: SIGTERM, wait up to TIMEOUT s, then SIGKILL.
stop_pids() {
	local timeout=$1 p left i
	shift
	[ $# -gt 0 ] || return 0
	for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
	for ((i = 0; i < timeout * 10; i++)); do
		left=0
		for p in "$@"; do kill -0 "$p" 2>/dev/null && left=1; done
		[ $left = 0 ] && return 0
		sleep 0.1
	done
	for p in "$@"; do
		if kill -0 "$p" 2>/dev/null; then
			say "pid $p ignored SIGTERM for ${timeout}s; sending SIGKILL"
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
	for ((i = 0; i < 50; i++)); do
		left=0
		for p in "$@"; do kill -0 "$p" 2>/dev/null && left=1; done
		[ $left = 0 ] && return 0
		sleep 0.1
	done
	return 1
}

# ---- environment -------------------------------------------------------------

# Saves the CONSUMA_* environment to D/stack.env (first up), and fills in
# from it what the current environment does not set.
load_env() {
	local line name
	if [ -f "$dir/stack.env" ]; then
		while IFS= read -r line; do
			name=${line%%=*}
			[[ "$name" =~ ^CONSUMA_[A-Z0-9_]+$ ]] || continue
			if [ -z "${!name+x}" ]; then
				eval "export $line"
			fi
		done <"$dir/stack.env"
	fi
	export CONSUMA_DATABASE_PATH=${CONSUMA_DATABASE_PATH:-$dir/consuma.db}
	export CONSUMA_DOORBELL_PATH=${CONSUMA_DOORBELL_PATH:-$dir/doorbell.sock}
}

save_env() {
	local name tmp=$dir/stack.env.tmp
	: >"$tmp"
	for name in $(compgen -e | grep '^CONSUMA_' | grep -v '^CONSUMA_BUILD_DIR$' | sort); do
		printf '%s=%q\n' "$name" "${!name}" >>"$tmp"
	done
	mv "$tmp" "$dir/stack.env"
}

load_layout() {
	# port and pool sizes of the stack in D, unless given now
	local saved_port='' saved_sync='' saved_api=''
	if [ -f "$dir/stack.layout" ]; then
		saved_port=$(sed -n 's/^port=\([0-9]*\)$/\1/p' "$dir/stack.layout")
		saved_sync=$(sed -n 's/^sync_procs=\([0-9]*\)$/\1/p' "$dir/stack.layout")
		saved_api=$(sed -n 's/^api_procs=\([0-9]*\)$/\1/p' "$dir/stack.layout")
		# a stack started with --postgres keeps its cluster until down
		grep -qx 'postgres=private' "$dir/stack.layout" && want_pg=1
	fi
	if pid_of lighttpd >/dev/null && [ -n "$saved_port" ]; then
		if [ $port_set = 1 ] && [ "$port" != "$saved_port" ]; then
			say "lighttpd already runs on port $saved_port; keeping it"
		fi
		port=$saved_port
		if [ $procs_set = 1 ] && { [ "$sync_procs" != "$saved_sync" ] || [ "$api_procs" != "$saved_api" ]; }; then
			say "lighttpd already runs with $saved_sync sync and $saved_api api processes; keeping them"
		fi
		sync_procs=${saved_sync:-$sync_procs}
		api_procs=${saved_api:-$api_procs}
	elif [ $port_set = 0 ] && [ $procs_set = 0 ] && [ -n "$saved_port" ]; then
		port=$saved_port
		sync_procs=${saved_sync:-$sync_procs}
		api_procs=${saved_api:-$api_procs}
	fi
}

save_layout() {
	printf 'port=%s\nsync_procs=%s\napi_procs=%s\n' "$port" "$sync_procs" "$api_procs" \
		>"$dir/stack.layout"
	[ "$pg_private" = 0 ] || echo postgres=private >>"$dir/stack.layout"
}

# start_postgres: with --postgres and no CONSUMA_DATABASE_URL from the
# caller, the private cluster in D/pg; its URL replaces a saved one (the port
# may differ after a restart). Returns 0 when it changed the environment.
pg_private=0
start_postgres() {
	local url
	[ $want_pg = 1 ] || return 1
	if [ -n "$url_given" ]; then
		say "postgres: CONSUMA_DATABASE_URL is set; using that server, no private cluster"
		return 1
	fi
	pg_private=1
	url=$("$root/tools/pg.sh" up "$dir/pg" 2>>"$dir/pg.log" | tail -n 1) ||
		{ tail -n 10 "$dir/pg.log" >&2; die "the private PostgreSQL cluster did not start (see $dir/pg.log)"; }
	say "postgres: private cluster in $dir/pg, ${url%%:*}://...@${url##*@}"
	[ "${CONSUMA_DATABASE_URL:-}" != "$url" ] || return 1
	export CONSUMA_DATABASE_URL=$url
	return 0
}

# ---- build ---------------------------------------------------------------------

find_binaries() {
	local build
	if [ -n "${CONSUMA_BUILD_DIR:-}" ]; then
		build=$CONSUMA_BUILD_DIR
		[ -x "$build/consuma-fcgi" ] || die "CONSUMA_BUILD_DIR=$build has no consuma-fcgi"
	else
		build=$root/build
		# the build is no private state: ordinary modes there
		umask 022
		if [ ! -f "$build/CMakeCache.txt" ]; then
			say "configuring $build"
			cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
				-DCONSUMA_SANITIZE=OFF >"$dir/build.log" 2>&1 ||
				{ tail -n 30 "$dir/build.log" >&2; die "cmake configure failed (see $dir/build.log)"; }
		fi
		cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" >"$dir/build.log" 2>&1 ||
			{ tail -n 30 "$dir/build.log" >&2; die "build failed (see $dir/build.log)"; }
		umask 077
	fi
	fcgi_bin=${CONSUMA_STACK_FCGI_BIN:-$build/consuma-fcgi}
	mint_bin=$build/consuma-fcgi
	deliverer_bin=$build/consuma-deliverer
}

# ---- pieces ----------------------------------------------------------------------

start_fcgi() {
	local name=fcgi-$1-$2 out
	pid_of "$name" >/dev/null && return 0
	rm -f "$dir/$name.pid"
	# spawn-fcgi points the child's stdout and stderr at /dev/null: the shell
	# in between sends stderr (the log lines) to D/NAME.log, then execs, so
	# the pid spawn-fcgi records is consuma-fcgi's.
	if ! out=$(spawn-fcgi -s "$dir/$name.sock" -P "$dir/$name.pid" -F 1 -- \
		/bin/sh -c 'exec "$0" 2>>"$1"' "$fcgi_bin" "$dir/$name.log" 2>&1); then
		echo "$out" >&2
		tail -n 5 "$dir/$name.log" >&2 2>/dev/null || true
		die "could not start $name"
	fi
	[ -s "$dir/$name.pid" ] || die "spawn-fcgi wrote no pid file for $name"
	# spawn-fcgi writes the pid without a newline; end it, so that
	# `cat D/*.pid` lists one pid per line
	local pid
	pid=$(head -n 1 "$dir/$name.pid")
	printf '%s\n' "$pid" >"$dir/$name.pid"
}

backends() { # POOL COUNT: lighttpd fastcgi host entries, on one line
	local i out=''
	for ((i = 1; i <= $2; i++)); do
		out+="\"$1-$i\" => ( \"socket\" => \"$dir/fcgi-$1-$i.sock\", \"check-local\" => \"disable\" ), "
	done
	echo "$out"
}

# fill_template SRC DST: replaces the @PLACEHOLDERS@ of SRC into DST.
fill_template() {
	local text max_kb
	text=$(cat "$1")
	max_kb=$(((${CONSUMA_MAX_BODY_BYTES:-65536} * 4 + 1023) / 1024))
	[ "$max_kb" -ge 1024 ] || max_kb=1024
	text=${text//@PORT@/$port}
	text=${text//@SYNC_BACKENDS@/$(backends sync "$sync_procs")}
	text=${text//@API_BACKENDS@/$(backends api "$api_procs")}
	text=${text//@MAX_REQUEST_KB@/$max_kb}
	text=${text//@ERRORS_DIR@/$dir/errors}
	text=${text//@DIR@/$dir}
	printf '%s\n' "$text" >"$2"
}

start_lighttpd() {
	pid_of lighttpd >/dev/null && return 0
	rm -f "$dir/lighttpd.pid"
	if [ -f "$root/proxy-conf/lighttpd-limits.conf" ]; then
		fill_template "$root/proxy-conf/lighttpd-limits.conf" "$dir/lighttpd-limits.conf"
	else
		: >"$dir/lighttpd-limits.conf"
	fi
	# lighttpd's own error bodies, in JSON (errorfile-prefix wants .html)
	local f
	mkdir -p "$dir/errors"
	for f in "$root"/proxy-conf/errors/*.json; do
		[ -e "$f" ] || continue
		cp "$f" "$dir/errors/$(basename "$f" .json).html"
	done
	fill_template "$root/proxy-conf/lighttpd.conf" "$dir/lighttpd.conf"
	lighttpd -tt -f "$dir/lighttpd.conf" >"$dir/lighttpd.check" 2>&1 ||
		{ cat "$dir/lighttpd.check" >&2; die "lighttpd refused $dir/lighttpd.conf"; }
	# lighttpd daemonizes and writes its pid file itself
	lighttpd -f "$dir/lighttpd.conf" </dev/null >>"$dir/lighttpd.out" 2>&1 ||
		{ cat "$dir/lighttpd.out" >&2; tail -n 5 "$dir/lighttpd.log" >&2 2>/dev/null; die "lighttpd did not start"; }
	local i
	for ((i = 0; i < 50; i++)); do
		pid_of lighttpd >/dev/null && return 0
		sleep 0.1
	done
	tail -n 5 "$dir/lighttpd.log" >&2 2>/dev/null || true
	die "lighttpd did not stay up (port $port taken?)"
}

start_deliverer() {
	if [ ! -x "$deliverer_bin" ]; then
		say "no consuma-deliverer in ${deliverer_bin%/*}; jobs are accepted but not delivered"
		return 0
	fi
	pid_of deliverer >/dev/null && return 0
	nohup "$deliverer_bin" </dev/null >>"$dir/deliverer.log" 2>&1 &
	echo $! >"$dir/deliverer.pid"
}

wait_healthy() {
	local url=$1 i body
	for ((i = 0; i < HEALTH_WAIT_S * 5; i++)); do
		body=$(curl -s -m 2 "$url/healthz" 2>/dev/null || true)
		case $body in *'"db_connected"'*) return 0 ;; esac
		# a stand-in responder (CONSUMA_STACK_FCGI_BIN) answers anything
		[ -n "${CONSUMA_STACK_FCGI_BIN:-}" ] && [ -n "$body" ] && return 0
		sleep 0.2
	done
	return 1
}

# setup_auth: with --auth and no CONSUMA_API_KEYS_FILE, a keys file in D
# holding one minted admin key (kept across ups until D is removed).
# Returns 0 when it changed the environment.
setup_auth() {
	local out
	if [ -n "${CONSUMA_API_KEYS_FILE:-}" ]; then
		say "auth: API keys from $CONSUMA_API_KEYS_FILE"
		return 1
	fi
	[ $want_auth = 1 ] || return 1
	export CONSUMA_API_KEYS_FILE=$dir/api-keys
	if [ ! -s "$dir/api-keys" ] || [ ! -s "$dir/admin.key" ]; then
		out=$(umask 077 && "$mint_bin" --mint-key admin admin 2>/dev/null) ||
			die "consuma-fcgi --mint-key failed"
		(umask 077 && sed -n 1p <<<"$out" >"$dir/admin.key" &&
			sed -n 2p <<<"$out" >"$dir/api-keys")
		chmod 600 "$dir/admin.key" "$dir/api-keys"
	fi
	say "auth: admin key in $dir/admin.key (0600), keys file $dir/api-keys"
	return 0
}

# ---- commands ----------------------------------------------------------------------

cmd_up() {
	local i url
	mkdir -p "$dir" # 0700: umask 077 above
	dir=$(cd "$dir" && pwd)
	# a unix socket path holds at most 107 bytes
	[ ${#dir} -le 80 ] || DIE_CODE=2 die "--dir $dir is too long for unix socket paths (80 bytes at most)"
	load_env
	load_layout
	find_binaries
	if setup_auth; then save_env; fi
	if start_postgres; then save_env; fi
	[ -f "$dir/stack.env" ] || save_env
	for ((i = 1; i <= sync_procs; i++)); do start_fcgi sync "$i"; done
	for ((i = 1; i <= api_procs; i++)); do start_fcgi api "$i"; done
	start_lighttpd
	save_layout
	[ $with_deliverer = 1 ] && start_deliverer
	url=http://127.0.0.1:$port
	wait_healthy "$url" || {
		tail -n 5 "$dir"/*.log >&2 2>/dev/null || true
		die "no answer from $url/healthz within ${HEALTH_WAIT_S}s"
	}
	say "up: $sync_procs sync + $api_procs api consuma-fcgi, lighttpd on port $port, state in $dir"
	echo "$url"
}

cmd_down() {
	local f name pid pids=() files=()
	[ -d "$dir" ] || return 0
	for f in "$dir"/*.pid; do
		[ -e "$f" ] || continue
		name=$(basename "$f" .pid)
		files+=("$f")
		if pid=$(pid_of "$name"); then
			pids+=("$pid")
		fi
	done
	stop_pids "$STOP_WAIT_S" "${pids[@]}" || die "some processes would not stop: ${pids[*]}"
	[ ${#files[@]} -gt 0 ] && rm -f "${files[@]}"
	# the cluster last: its clients (pools, deliverer) are gone now
	if [ -f "$dir/pg/data/postmaster.pid" ]; then
		pid=$("$root/tools/pg.sh" status "$dir/pg" | awk '{ print $2 }') || true
		"$root/tools/pg.sh" down "$dir/pg" 2>>"$dir/pg.log" || die "the PostgreSQL cluster in $dir/pg would not stop"
		[[ "$pid" =~ ^[0-9]+$ ]] && pids+=("$pid")
	fi
	# a full stop forgets the configuration: the next up starts fresh
	rm -f "$dir"/fcgi-*.sock "$dir/stack.env" "$dir/stack.layout"
	say "down: stopped ${#pids[@]} processes in $dir"
}

cmd_status() {
	local f name pid running=0 dead=0 port_now
	if [ -d "$dir" ]; then
		for f in "$dir"/*.pid; do
			[ -e "$f" ] || continue
			name=$(basename "$f" .pid)
			if pid=$(pid_of "$name"); then
				printf '%-14s %-8s running\n' "$name" "$pid"
				running=$((running + 1))
			else
				printf '%-14s %-8s dead\n' "$name" "$(head -n 1 "$f" 2>/dev/null)"
				dead=$((dead + 1))
			fi
		done
	fi
	if [ -f "$dir/pg/data/postmaster.pid" ]; then
		if pid=$("$root/tools/pg.sh" status "$dir/pg"); then
			printf '%-14s %-8s running\n' postgres "$(awk '{ print $2 }' <<<"$pid")"
			running=$((running + 1))
		else
			printf '%-14s %-8s dead\n' postgres "$(head -n 1 "$dir/pg/data/postmaster.pid" 2>/dev/null)"
			dead=$((dead + 1))
		fi
	fi
	if pid_of lighttpd >/dev/null && [ -f "$dir/stack.layout" ]; then
		port_now=$(sed -n 's/^port=\([0-9]*\)$/\1/p' "$dir/stack.layout")
		echo "url            http://127.0.0.1:$port_now"
	fi
	if [ $running -eq 0 ]; then
		echo "stack in $dir is not running"
		return 3
	fi
	[ $dead -eq 0 ] || return 1
	return 0
}

cmd_start_deliverer() {
	mkdir -p "$dir" # 0700: umask 077 above
	dir=$(cd "$dir" && pwd)
	load_env
	find_binaries
	[ -x "$deliverer_bin" ] || die "no consuma-deliverer in ${deliverer_bin%/*}"
	start_deliverer
	pid_of deliverer
}

cmd_stop_deliverer() {
	local pid
	[ -d "$dir" ] || return 0
	if pid=$(pid_of deliverer); then
		stop_pids "$DELIVERER_STOP_WAIT_S" "$pid" || die "deliverer $pid would not stop"
	fi
	rm -f "$dir/deliverer.pid"
}

case $cmd in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
start-deliverer) cmd_start_deliverer ;;
stop-deliverer) cmd_stop_deliverer ;;
-h | --help | help) usage ;;
*) DIE_CODE=2 die "usage: stack.sh up|down|status|start-deliverer|stop-deliverer [options] (try --help)" ;;
esac

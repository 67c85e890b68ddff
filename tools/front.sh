#!/usr/bin/env bash
# tools/front.sh: nginx in front of several local stacks, the way the front
# of a cluster sits in front of several hosts (README: Scale out). Renders
# proxy-conf/nginx.conf with every stack's pool sockets as its upstreams and
# runs it; the stacks are tools/stack.sh stacks, normally on one PostgreSQL
# database (CONSUMA_DATABASE_URL).
#
#   tools/front.sh up --dir D [--port P] [--rate R] [--burst B] [--addr-rate R] [--addr-burst B]
#                     [--exempt CIDR]... STACK_DIR...
#   tools/front.sh down --dir D
#
# up     writes D/nginx.conf (nginx -t must accept it), starts nginx on
#        127.0.0.1:P (default 8000) unless it runs already, waits (bounded)
#        until /healthz answers through it and prints the base URL as its
#        last line of stdout. The rate limit at the front, per client (bearer
#        key, else address): R in nginx's syntax (default 100r/m, consuma's
#        default per client), burst B (default 100); per address whatever
#        keys it sends, --addr-rate (default 1000r/m) and --addr-burst
#        (default 1000); --exempt takes a client
#        address or CIDR it does not limit (repeatable; a load test from
#        127.0.0.1). The upstreams are the sockets D/fcgi-sync-N.sock and
#        D/fcgi-api-N.sock each STACK_DIR has when up runs: run it after the
#        stacks' up, again after changing their pool sizes.
# down   SIGQUIT (graceful) to the pid in D/nginx.pid when it is this nginx's
#        master; waits (bounded; then SIGTERM, then SIGKILL). Never by name.
set -euo pipefail
umask 077

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HEALTH_WAIT_S=30
STOP_WAIT_S=15

say() { echo "front.sh: $*" >&2; }
die() {
	echo "front.sh: $*" >&2
	exit "${DIE_CODE:-1}"
}
usage() {
	sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in -h | --help | help | '') usage ;; esac
dir=''
port=8000
rate=100r/m
burst=100
addr_rate=1000r/m
addr_burst=1000
exempt=''
stacks=()
while [ $# -gt 0 ]; do
	case $1 in
	--dir)
		[ -n "${2:-}" ] || DIE_CODE=2 die "--dir needs a directory"
		dir=$2
		shift 2
		;;
	--port)
		[[ "${2:-}" =~ ^[1-9][0-9]{0,4}$ ]] && [ "$2" -le 65535 ] ||
			DIE_CODE=2 die "--port needs a port number 1..65535"
		port=$2
		shift 2
		;;
	--rate | --addr-rate)
		[[ "${2:-}" =~ ^[1-9][0-9]{0,6}r/[sm]$ ]] || DIE_CODE=2 die "$1 needs nginx's NNNr/s or NNNr/m"
		if [ "$1" = --rate ]; then rate=$2; else addr_rate=$2; fi
		shift 2
		;;
	--burst | --addr-burst)
		[[ "${2:-}" =~ ^[0-9]{1,7}$ ]] || DIE_CODE=2 die "$1 needs a number 0..9999999"
		if [ "$1" = --burst ]; then burst=$2; else addr_burst=$2; fi
		shift 2
		;;
	--exempt)
		[[ "${2:-}" =~ ^[0-9A-Fa-f.:]+(/[0-9]{1,3})?$ ]] || DIE_CODE=2 die "--exempt needs an address or CIDR"
		exempt+="$2 0; "
		shift 2
		;;
	-h | --help) usage ;;
	-*) DIE_CODE=2 die "unknown option: $1 (try --help)" ;;
	*)
		[ -d "$1" ] || DIE_CODE=2 die "$1: no such stack directory"
		stacks+=("$(cd "$1" && pwd)")
		shift
		;;
	esac
done
[ -n "$dir" ] || DIE_CODE=2 die "--dir is required (try --help)"

# master_pid: the pid in D/nginx.pid when it is the master of D/nginx.conf.
master_pid() {
	local pid
	[ -f "$dir/nginx.pid" ] || return 1
	pid=$(head -n 1 "$dir/nginx.pid" | tr -d ' \r')
	[[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/nginx.conf" || return 1
	echo "$pid"
}

# upstreams POOL: one "server unix:...;" per socket of that pool in every stack
upstreams() {
	local s f out=''
	for s in "${stacks[@]}"; do
		for f in "$s"/fcgi-"$1"-*.sock; do
			[ -S "$f" ] && out+="server unix:$f; "
		done
	done
	[ -n "$out" ] || die "no fcgi-$1-N.sock in ${stacks[*]} (are the stacks up?)"
	echo "$out"
}

render() {
	local text max_kb
	text=$(cat "$root/proxy-conf/nginx.conf")
	max_kb=$(((${CONSUMA_MAX_BODY_BYTES:-65536} * 4 + 1023) / 1024))
	[ "$max_kb" -ge 1024 ] || max_kb=1024
	text=${text//@PORT@/$port}
	text=${text//@SYNC_UPSTREAMS@/$(upstreams sync)}
	text=${text//@API_UPSTREAMS@/$(upstreams api)}
	text=${text//@MAX_REQUEST_KB@/$max_kb}
	text=${text//@USER@/$(id -un)}
	text=${text//@FRONT_RATE@/$rate}
	text=${text//@FRONT_BURST@/$burst}
	text=${text//@FRONT_EXEMPT@/$exempt}
	text=${text//@FRONT_ADDR_RATE@/$addr_rate}
	text=${text//@FRONT_ADDR_BURST@/$addr_burst}
	text=${text//@DIR@/$dir}
	printf '%s\n' "$text" >"$dir/nginx.conf"
}

cmd_up() {
	local url i
	[ ${#stacks[@]} -gt 0 ] || DIE_CODE=2 die "up needs at least one stack directory"
	mkdir -p "$dir/nginx-tmp"
	dir=$(cd "$dir" && pwd)
	if master_pid >/dev/null; then
		say "nginx already runs for $dir; keeping it"
	else
		render
		nginx -t -q -c "$dir/nginx.conf" -e "$dir/nginx.log" 2>"$dir/nginx.check" ||
			{ cat "$dir/nginx.check" >&2; die "nginx refused $dir/nginx.conf"; }
		nginx -c "$dir/nginx.conf" -e "$dir/nginx.log" </dev/null >>"$dir/nginx.out" 2>&1 ||
			{ cat "$dir/nginx.out" >&2; tail -n 5 "$dir/nginx.log" >&2 2>/dev/null; die "nginx did not start"; }
	fi
	url=http://127.0.0.1:$port
	for ((i = 0; i < HEALTH_WAIT_S * 5; i++)); do
		master_pid >/dev/null && curl -s -m 2 -o /dev/null "$url/healthz" && break
		sleep 0.2
	done
	master_pid >/dev/null || die "nginx did not stay up (port $port taken? see $dir/nginx.log)"
	say "up: nginx on port $port over ${#stacks[@]} stacks, rate $rate burst $burst, state in $dir"
	echo "$url"
}

cmd_down() {
	local pid sig i
	[ -n "$dir" ] && [ -d "$dir" ] || return 0
	dir=$(cd "$dir" && pwd)
	pid=$(master_pid) || return 0
	for sig in QUIT TERM KILL; do
		kill -"$sig" "$pid" 2>/dev/null || true
		for ((i = 0; i < STOP_WAIT_S * 10; i++)); do
			kill -0 "$pid" 2>/dev/null || { say "down: stopped nginx $pid"; return 0; }
			sleep 0.1
		done
		say "nginx $pid still runs after SIG$sig"
	done
	die "nginx $pid would not stop"
}

case $cmd in
up) cmd_up ;;
down) cmd_down ;;
*) DIE_CODE=2 die "usage: front.sh up|down --dir D [options] [STACK_DIR...] (try --help)" ;;
esac

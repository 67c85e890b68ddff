#!/usr/bin/env bash
# tools/storm.sh: the README's main command. Storms consuma's /sync and
# /async paths with consuma-storm and reports what each did.
#
#   tools/storm.sh --num-requests 200 --concurrency 30
#   tools/storm.sh --server-url http://host:8000 [options]
#
# Without --server-url it brings up a private local stack (tools/stack.sh)
# in a temporary directory on free ports, configured for a storm from one
# address (rate limit off, loopback callbacks allowed, queue and per-host
# bounds raised to fit --num-requests, a fresh signing secret that
# consuma-storm verifies), runs consuma-storm against it with a free
# --callback-port unless one is given, and tears the stack down on any exit
# (Ctrl-C included). CONSUMA_* variables in the environment override those
# settings. With --server-url it runs against that server only.
#
# Access: the private stack runs open (no API keys) unless --auth is given:
# then tools/stack.sh --auth mints an admin key into the stack's directory
# and consuma-storm sends it (--api-key). --api-key KEY goes to
# consuma-storm as it is (a server of your own with CONSUMA_API_KEYS_FILE).
#
# Store: --backend sqlite (the default) or --backend postgres. postgres
# starts the private stack with tools/stack.sh --postgres: a private
# PostgreSQL cluster in the stack's directory, or the server named by
# CONSUMA_DATABASE_URL when that is set. Not with --server-url (that server
# has its store already).
#
# Every option goes to consuma-storm (see `tools/storm.sh --help`). It
# builds first when needed (cmake, Release, into build/ of the checkout; as
# root it installs missing Debian packages, else it prints the apt-get line
# and exits 2). CONSUMA_BUILD_DIR=<dir> uses an existing build instead.
# STORM_KEEP=1 keeps the stack's directory (logs, database) afterwards.
# Exit status: consuma-storm's (0 all good, 1 something failed or was lost,
# 2 usage), 1 when the stack would not start.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { echo "storm.sh: $*" >&2; }

# ---- what the arguments ask for (consuma-storm validates them) --------------
server_url=''
callback_port_given=0
secret_given=0
num_requests=100
info_only=0
auth=0
api_key_given=0
backend=''
args=("$@")
storm_args=() # the arguments without storm.sh's own (--auth, --backend)
for ((i = 0; i < ${#args[@]}; i++)); do
	a=${args[i]}
	next=${args[i + 1]:-}
	case $a in
	--auth)
		auth=1
		continue
		;;
	--backend)
		backend=$next
		i=$((i + 1))
		continue
		;;
	--backend=*)
		backend=${a#*=}
		continue
		;;
	esac
	storm_args+=("$a")
	case $a in
	--server-url) server_url=$next ;;
	--server-url=*) server_url=${a#*=} ;;
	--callback-port | --callback-port=*) callback_port_given=1 ;;
	--secret | --secret=*) secret_given=1 ;;
	--api-key | --api-key=*) api_key_given=1 ;;
	--num-requests) num_requests=$next ;;
	--num-requests=*) num_requests=${a#*=} ;;
	--help | -h | --version | --dry-run | --compare | --compare=*) info_only=1 ;;
	esac
done

case $backend in
'' | sqlite) backend=sqlite ;;
postgres) ;;
*)
	say "--backend takes sqlite or postgres, not [$backend]"
	exit 2
	;;
esac
if [ "$backend" = postgres ] && [ -n "$server_url" ]; then
	say "--backend postgres starts a private stack; a --server-url server has its store already"
	exit 2
fi

# ---- build -------------------------------------------------------------------
packages=(build-essential cmake pkg-config
	libfcgi-dev libsqlite3-dev libssl-dev libjson-c-dev libcurl4-openssl-dev libpq-dev
	libcmocka-dev libmicrohttpd-dev libsystemd-dev libjemalloc-dev lighttpd spawn-fcgi curl python3)
[ "$backend" = sqlite ] || [ -n "${CONSUMA_DATABASE_URL:-}" ] || packages+=(postgresql)

ensure_packages() {
	local p missing=()
	command -v dpkg-query >/dev/null || return 0
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -eq 0 ]; then
		say "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q >&2
		apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
	else
		say "missing packages; run as root or:"
		echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
		exit 2
	fi
}

if [ -n "${CONSUMA_BUILD_DIR:-}" ]; then
	build=$CONSUMA_BUILD_DIR
	[ -x "$build/consuma-storm" ] || { say "CONSUMA_BUILD_DIR=$build has no consuma-storm"; exit 1; }
else
	build=$root/build
	ensure_packages
	mkdir -p "$build"
	if [ ! -f "$build/CMakeCache.txt" ]; then
		say "configuring $build (Release)"
		cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >"$build/storm-build.log" 2>&1 ||
			{ tail -n 30 "$build/storm-build.log" >&2; say "cmake failed (see $build/storm-build.log)"; exit 1; }
	fi
	targets=(--target consuma-storm)
	[ -n "$server_url" ] || targets+=(consuma-fcgi consuma-deliverer)
	cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" "${targets[@]}" >>"$build/storm-build.log" 2>&1 ||
		{ tail -n 30 "$build/storm-build.log" >&2; say "build failed (see $build/storm-build.log)"; exit 1; }
fi
storm=$build/consuma-storm

if [ $auth = 1 ] && [ -n "$server_url" ]; then
	say "--auth starts a private stack with API keys; against --server-url pass --api-key KEY"
	exit 2
fi
# Usage errors, --help, --version and --compare (saved runs) need no stack.
if [ $info_only = 1 ] || [ -n "$server_url" ]; then
	exec "$storm" "${storm_args[@]}"
fi
"$storm" --dry-run "${storm_args[@]}" >/dev/null || exit $?

# ---- a private stack ------------------------------------------------------------
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

stack_dir=''
storm_pid=''
interrupted=0
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$storm_pid" ]; then
		kill -TERM "$storm_pid" 2>/dev/null || true
	fi
	if [ -n "$stack_dir" ]; then
		"$root/tools/stack.sh" down --dir "$stack_dir" >>"$stack_dir/storm-stack.log" 2>&1 ||
			say "stack.sh down failed; see $stack_dir"
		if [ "${STORM_KEEP:-0}" = 1 ] || [ $rc -gt 1 ]; then
			say "kept $stack_dir"
		else
			rm -rf "$stack_dir"
		fi
	fi
	exit $rc
}
trap cleanup EXIT
# Ctrl-C reaches consuma-storm through the terminal's process group: it
# stops sending, reports what it has and exits; the trap only remembers.
trap 'interrupted=1' INT
trap 'interrupted=1; [ -z "$storm_pid" ] || kill -TERM "$storm_pid" 2>/dev/null || true' TERM

stack_dir=$(mktemp -d "${TMPDIR:-/tmp}/consuma-storm.XXXXXX")
[[ "$num_requests" =~ ^[0-9]{1,9}$ ]] || num_requests=100
room=$((num_requests * 2 > 1000 ? num_requests * 2 : 1000))
export CONSUMA_RATE_LIMIT_REQUESTS=${CONSUMA_RATE_LIMIT_REQUESTS:-0}
export CONSUMA_ALLOW_PRIVATE_CALLBACKS=${CONSUMA_ALLOW_PRIVATE_CALLBACKS:-true}
export CONSUMA_MAX_QUEUE_SIZE=${CONSUMA_MAX_QUEUE_SIZE:-$room}
export CONSUMA_MAX_PENDING_PER_HOST=${CONSUMA_MAX_PENDING_PER_HOST:-$room}
export CONSUMA_MAX_QUEUE_SHARE=${CONSUMA_MAX_QUEUE_SHARE:-1}
extra=()
if [ $secret_given = 0 ] && [ -z "${CONSUMA_CALLBACK_SECRET:-}" ]; then
	CONSUMA_CALLBACK_SECRET=whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')
	export CONSUMA_CALLBACK_SECRET
	extra+=(--secret "$CONSUMA_CALLBACK_SECRET")
elif [ $secret_given = 0 ]; then
	# a rotation list signs with each; the storm verifies with the first
	extra+=(--secret "${CONSUMA_CALLBACK_SECRET%% *}")
fi
export CONSUMA_BUILD_DIR=$build
stack_opts=()
[ "$backend" = sqlite ] || stack_opts+=(--postgres)
if [ $auth = 1 ]; then
	# the stack's own keys file and admin key, whatever the environment names
	unset CONSUMA_API_KEYS_FILE
	stack_opts+=(--auth)
elif [ -n "${CONSUMA_API_KEYS_FILE:-}" ] && [ $api_key_given = 0 ]; then
	say "CONSUMA_API_KEYS_FILE is set but no --api-key given: expect 401s (or use --auth)"
fi

port=$(free_port)
say "starting a local stack on port $port, store $backend (state in $stack_dir)"
url=$("$root/tools/stack.sh" up --dir "$stack_dir" --port "$port" "${stack_opts[@]}" 2>>"$stack_dir/storm-stack.log" | tail -n 1) || {
	tail -n 20 "$stack_dir/storm-stack.log" >&2 || true
	say "the local stack did not start"
	STORM_KEEP=1
	exit 1
}
[ $interrupted = 0 ] || exit 130
[ $callback_port_given = 1 ] || extra+=(--callback-port "$(free_port)")
if [ $auth = 1 ] && [ $api_key_given = 0 ]; then
	say "API keys on: storming with the admin key minted in $stack_dir/admin.key"
	extra+=(--api-key "$(cat "$stack_dir/admin.key")")
fi

# In the background so a TERM can be passed on; wait returns early when a
# trapped signal arrives, so wait again until consuma-storm has ended.
"$storm" --server-url "$url" "${extra[@]}" "${storm_args[@]}" &
storm_pid=$!
rc=0
while :; do
	wait "$storm_pid" && rc=0 || rc=$?
	kill -0 "$storm_pid" 2>/dev/null || break
done
storm_pid=''
exit "$rc"

#!/usr/bin/env bash
# tools/pg.sh: a private PostgreSQL cluster in one directory, for
# tools/stack.sh --postgres and the integration tests (tests/integration/
# lib.sh: pg_up, pg_down). Nothing of the system's PostgreSQL is used but
# its programs: no service, no /etc/postgresql, no shared socket directory.
#
#   tools/pg.sh up DIR [--port P] [--max-connections N]
#   tools/pg.sh down DIR
#   tools/pg.sh url DIR
#   tools/pg.sh createdb DIR NAME
#   tools/pg.sh status DIR
#
# up        initdb into DIR/data when it is empty, then starts the
#           postmaster (unless it runs already) on 127.0.0.1:P (a free port
#           when not given, kept across restarts while it stays free) and on
#           a unix socket in DIR, waits until it accepts connections, and
#           prints the URL of database `consuma` (role `consuma`, its owner,
#           with a generated password; CREATEDB, so tests can make more) as
#           its last line of stdout. Progress goes to stderr.
# down      SIGINT (PostgreSQL's fast shutdown: clients are disconnected,
#           the checkpoint is written) to the pid in DIR/data/postmaster.pid
#           when that pid is the postmaster of DIR/data; waits (bounded; then
#           SIGQUIT, then SIGKILL). Never by name. The data stays.
# url       prints the URL again (DIR/url).
# createdb  a new database NAME owned by `consuma`; prints its URL.
# status    "postgres PID running" or "postgres - stopped"; exit 0 or 3.
#
# Durability as in production: fsync on, synchronous_commit on,
# full_page_writes on. Authentication: scram-sha-256 on the socket and on
# loopback TCP for every role (the superuser `postgres` too, its password in
# DIR/admin.pw), nothing else listens. DIR/url (0600) holds the password.
#
# As root, the cluster runs as the `postgres` system user (initdb and the
# postmaster refuse root): DIR is chowned to it, and each directory above DIR
# that it cannot search and that is root's and closed to its group (mktemp's
# 0700) gets group postgres with search only (0710), so postgres reaches DIR
# and still lists nothing. Another user runs the cluster as itself.
#
# PG_BINDIR=<dir> picks the programs (default: /usr/lib/postgresql/15/bin,
# else the newest /usr/lib/postgresql/*/bin, else PATH).
set -euo pipefail
umask 077

START_WAIT_S=60 # pg_ctl -w bound on the postmaster becoming ready
STOP_WAIT_S=30  # bound on fast shutdown before SIGQUIT
PORT_TRIES=5    # a picked port can be taken before the postmaster binds it

say() { echo "pg.sh: $*" >&2; }
die() {
	echo "pg.sh: $*" >&2
	exit "${DIE_CODE:-1}"
}
usage() {
	sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in -h | --help | help | '') usage ;; esac
[ -n "${1:-}" ] || DIE_CODE=2 die "$cmd needs a directory (try --help)"
dir=$1
shift
port=''
max_connections=200
dbname=''
while [ $# -gt 0 ]; do
	case $1 in
	--port)
		[[ "${2:-}" =~ ^[1-9][0-9]{0,4}$ ]] && [ "$2" -le 65535 ] ||
			DIE_CODE=2 die "--port needs a port number 1..65535"
		port=$2
		shift 2
		;;
	--max-connections)
		[[ "${2:-}" =~ ^[1-9][0-9]{0,4}$ ]] || DIE_CODE=2 die "--max-connections needs a number 1..99999"
		max_connections=$2
		shift 2
		;;
	*)
		if [ "$cmd" != createdb ] || [ -n "$dbname" ]; then
			DIE_CODE=2 die "unknown argument: $1 (try --help)"
		fi
		[[ "$1" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || DIE_CODE=2 die "database name: lower-case letters, digits and _"
		dbname=$1
		shift
		;;
	esac
done

if [ -z "${PG_BINDIR:-}" ]; then
	if [ -x /usr/lib/postgresql/15/bin/initdb ]; then
		PG_BINDIR=/usr/lib/postgresql/15/bin
	else
		PG_BINDIR=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
		[ -n "$PG_BINDIR" ] || PG_BINDIR=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
	fi
fi
[ -x "$PG_BINDIR/initdb" ] || die "no initdb in $PG_BINDIR (apt-get install postgresql, or set PG_BINDIR)"

owner=$(id -un)
[ "$(id -u)" -ne 0 ] || owner=postgres

# as_owner CMD...: CMD as the cluster's owner, from a directory it can enter.
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

# reach DIR: as root, lets postgres search every directory from / to DIR
# (see the header); fails, naming it, on one it must not change.
reach() {
	local d=$1 mode
	[ "$(id -u)" -eq 0 ] || return 0
	while [ "$d" != / ]; do
		if ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
			mode=$(stat -c '%a %U' "$d")
			if [ "${mode#* }" = root ] && [ $((8#${mode% *} & 8#070)) -eq 0 ]; then
				chgrp postgres "$d"
				chmod g=x "$d"
				say "$d: group postgres may search it now (mode 0$(stat -c %a "$d"))"
			else
				die "user postgres cannot reach $d (mode ${mode% *}, owner ${mode#* }); pick a directory it can reach"
			fi
		fi
		d=$(dirname "$d")
	done
}

data=''
set_dir() {
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	data=$dir/data
	# the socket is DIR/.s.PGSQL.PORT: a unix socket path holds 107 bytes
	[ ${#dir} -le 90 ] || DIE_CODE=2 die "$dir is too long for the socket path (90 bytes at most)"
}

# postmaster_pid: the pid of DIR/data/postmaster.pid when it is alive and
# the postmaster of this data directory (not a recycled pid); fails otherwise.
postmaster_pid() {
	local pid
	[ -f "$data/postmaster.pid" ] || return 1
	pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null | tr -d ' \r')
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-D $data " || return 1
	echo "$pid"
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# port_free P: nobody listens on P. With SO_REUSEADDR, as the postmaster
# binds: the connections a stopped postmaster closed linger in TIME_WAIT on
# its port for a minute, and a plain bind counts them, so the port looked
# taken and a restart moved the cluster to another (its clients' URL dead).
port_free() {
	python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1",int(sys.argv[1])))' "$1" 2>/dev/null
}

secret() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

# admin_sql SQL: runs SQL as the superuser over the socket.
admin_sql() {
	PGPASSWORD=$(cat "$dir/admin.pw") "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 \
		-h "$dir" -p "$(cat "$dir/port")" -U postgres -d postgres -c "$1" >/dev/null
}

url_of() { # DB
	printf 'postgresql://consuma:%s@127.0.0.1:%s/%s\n' "$(cat "$dir/consuma.pw")" "$(cat "$dir/port")" "$1"
}

init_cluster() {
	[ -f "$data/PG_VERSION" ] && return 0
	say "initdb $data (owner $owner)"
	[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$dir"
	reach "$(dirname "$dir")"
	chmod 0700 "$dir"
	secret >"$dir/admin.pw"
	secret >"$dir/consuma.pw"
	[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$dir/admin.pw" "$dir/consuma.pw"
	as_owner "$PG_BINDIR/initdb" -D "$data" -U postgres --pwfile="$dir/admin.pw" \
		--auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		{ tail -n 20 "$dir/initdb.log" >&2; die "initdb failed (see $dir/initdb.log)"; }
	# only what differs from the defaults; the durability settings are the
	# defaults, spelled out so that nobody turns them off by accident here
	cat >>"$data/postgresql.conf" <<EOF

# ---- tools/pg.sh ----
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = $max_connections
shared_buffers = 32MB
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
include_if_exists = 'pg_sh_port.conf'
EOF
	cat >"$data/pg_hba.conf" <<'EOF'
# tools/pg.sh: passwords (scram-sha-256) everywhere, loopback only
local all all               scram-sha-256
host  all all 127.0.0.1/32  scram-sha-256
host  all all ::1/128       scram-sha-256
EOF
	[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$data/postgresql.conf" "$data/pg_hba.conf"
}

start_postmaster() {
	local try p
	p=$port
	[ -n "$p" ] || p=$(cat "$dir/port" 2>/dev/null || true)
	for ((try = 1; try <= PORT_TRIES; try++)); do
		if [ -z "$p" ] || { [ -z "$port" ] && ! port_free "$p"; }; then
			p=$(free_port)
		fi
		echo "port = $p" >"$data/pg_sh_port.conf"
		[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$data/pg_sh_port.conf"
		echo "$p" >"$dir/port"
		if as_owner "$PG_BINDIR/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t "$START_WAIT_S" \
			start >>"$dir/pg_ctl.log" 2>&1; then
			return 0
		fi
		[ -z "$port" ] || break # a port asked for is not swapped for another
		say "postmaster did not start on port $p (try $try of $PORT_TRIES)"
		p=''
	done
	tail -n 10 "$dir/postgres.log" >&2 2>/dev/null || true
	die "the postmaster did not start (see $dir/postgres.log)"
}

create_app_db() {
	[ -f "$dir/url" ] && return 0
	admin_sql "CREATE ROLE consuma LOGIN CREATEDB PASSWORD '$(cat "$dir/consuma.pw")'"
	admin_sql "CREATE DATABASE consuma OWNER consuma"
	url_of consuma >"$dir/url.tmp"
	mv "$dir/url.tmp" "$dir/url"
}

cmd_up() {
	local pid
	set_dir
	init_cluster
	if ! postmaster_pid >/dev/null; then
		start_postmaster
	elif [ -n "$port" ] && [ "$port" != "$(cat "$dir/port")" ]; then
		say "the postmaster already runs on port $(cat "$dir/port"); keeping it"
	fi
	pid=$(postmaster_pid) || die "the postmaster of $data is not running after start"
	create_app_db
	# the port may have changed since the URL was written
	url_of consuma >"$dir/url.tmp"
	mv "$dir/url.tmp" "$dir/url"
	say "up: postmaster $pid on 127.0.0.1:$(cat "$dir/port"), socket in $dir, data in $data"
	cat "$dir/url"
}

cmd_down() {
	local pid i
	[ -d "$dir" ] || return 0
	set_dir
	pid=$(postmaster_pid) || return 0
	kill -INT "$pid" 2>/dev/null || true
	for ((i = 0; i < STOP_WAIT_S * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || { say "down: stopped postmaster $pid"; return 0; }
		sleep 0.1
	done
	say "postmaster $pid still runs after ${STOP_WAIT_S}s of fast shutdown; SIGQUIT"
	kill -QUIT "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	die "postmaster $pid would not stop"
}

cmd_url() {
	set_dir
	[ -f "$dir/url" ] || die "no cluster in $dir (tools/pg.sh up $dir)"
	cat "$dir/url"
}

cmd_createdb() {
	set_dir
	[ -n "$dbname" ] || DIE_CODE=2 die "createdb needs a database name"
	postmaster_pid >/dev/null || die "the cluster in $dir is not running"
	admin_sql "CREATE DATABASE $dbname OWNER consuma"
	url_of "$dbname"
}

cmd_status() {
	local pid
	set_dir
	if pid=$(postmaster_pid); then
		echo "postgres $pid running"
		return 0
	fi
	echo "postgres - stopped"
	return 3
}

case $cmd in
up) cmd_up ;;
down) cmd_down ;;
url) cmd_url ;;
createdb) cmd_createdb ;;
status) cmd_status ;;
*) DIE_CODE=2 die "usage: pg.sh up|down|url|createdb|status DIR [options] (try --help)" ;;
esac

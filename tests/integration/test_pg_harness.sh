#!/usr/bin/env bash
# test_pg_harness: tools/pg.sh by itself (a private PostgreSQL cluster that
# psql reaches through the URL it prints, durable settings on, passwords
# required, data kept across a restart, stopped by the postmaster's pid),
# then tools/stack.sh --postgres (its own cluster in the stack directory,
# the URL in the pools' environment, stopped with the rest) and a stack on
# an existing server named by CONSUMA_DATABASE_URL. The stacks here run the
# stand-in responder (hello_fcgi) and no deliverer: this is stack.sh's
# plumbing, whatever the build's store; real stacks on PostgreSQL are the
# multi-host tests'.
. "$(dirname "$0")/lib.sh"

if [ ! -x /usr/lib/postgresql/15/bin/initdb ] && [ -z "${PG_BINDIR:-}" ]; then
	not_ok "no PostgreSQL 15 in /usr/lib/postgresql/15/bin (apt-get install postgresql)"
	t_done
fi
export CONSUMA_RATE_LIMIT_REQUESTS=0

# q URL SQL: one psql query, unaligned tuples only
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$1" -c "$2" 2>&1; }
# alive PID: the process exists and is no zombie
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# ---- the harness alone -------------------------------------------------------------
P=$T/pg
pg_up "$P"
assert_match "pg.sh up prints the database's URL" \
	'^postgresql://consuma:[0-9a-f]{32}@127\.0\.0\.1:[0-9]+/consuma$' "$PG_URL"
assert_eq "pg.sh url prints the same URL" "$PG_URL" "$("$SRC/tools/pg.sh" url "$P")"
assert_eq "psql reaches the database as its owner" "consuma|consuma" \
	"$(q "$PG_URL" 'SELECT current_database() || $$|$$ || current_user')"
assert_eq "fsync, synchronous_commit and full_page_writes are on" "on on on" \
	"$(q "$PG_URL" "SELECT string_agg(setting, ' ' ORDER BY name) FROM pg_settings
		WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')")"
assert_eq "the app role may create databases (tests make their own), is no superuser" "t f" \
	"$(q "$PG_URL" "SELECT rolcreatedb || ' ' || rolsuper FROM pg_roles WHERE rolname = current_user" |
		sed 's/true/t/; s/false/f/')"
pid=$(head -n 1 "$P/data/postmaster.pid")
assert_cmd "the postmaster of postmaster.pid runs" alive "$pid"
if [ "$(id -u)" -eq 0 ]; then
	assert_eq "as root the postmaster runs as postgres" postgres "$(ps -o user= -p "$pid" | tr -d ' ')"
	assert_eq "the data directory is postgres's, 0700" "postgres 700" "$(stat -c '%U %a' "$P/data")"
fi
assert_eq "the URL file is private" 600 "$(stat -c %a "$P/url")"
assert_eq "listens on loopback only" "127.0.0.1" "$(q "$PG_URL" 'SHOW listen_addresses')"
bad="postgresql://consuma:wrong@${PG_URL##*@}"
out=$(q "$bad" 'SELECT 1')
assert_match "a wrong password is refused" 'password authentication failed' "$out"
sock=$(q "postgresql://consuma:$(cat "$P/consuma.pw")@/consuma?host=$P&port=$(cat "$P/port")" 'SELECT 1')
assert_eq "the unix socket in DIR answers too" 1 "$sock"
url2=$("$SRC/tools/pg.sh" createdb "$P" second 2>/dev/null)
assert_eq "pg.sh createdb: a second database with its URL" "second" "$(q "$url2" 'SELECT current_database()')"

q "$PG_URL" 'CREATE TABLE kept (v text); INSERT INTO kept VALUES ($$before$$)' >/dev/null
assert_cmd "pg.sh up again while it runs changes nothing" \
	test "$("$SRC/tools/pg.sh" up "$P" 2>/dev/null)" = "$PG_URL"
assert_eq "... same postmaster" "$pid" "$(head -n 1 "$P/data/postmaster.pid")"

pg_down "$P" 2>/dev/null
assert_cmd "pg.sh down: the postmaster is gone" test -z "$(alive "$pid" && echo up)"
assert_cmd "pg.sh down: postmaster.pid removed (a clean shutdown)" test ! -e "$P/data/postmaster.pid"
assert_match "pg.sh down: no connection any more" 'Connection refused|could not connect' "$(q "$PG_URL" 'SELECT 1')"
st=$("$SRC/tools/pg.sh" status "$P")
assert_eq "pg.sh status after down: exit 3" "3 postgres - stopped" "$? $st"
"$SRC/tools/pg.sh" down "$P" 2>/dev/null
assert_eq "pg.sh down twice is fine" 0 $?

pg_up "$P"
assert_eq "restarted: committed data is still there" before "$(q "$PG_URL" 'SELECT v FROM kept')"

# a recycled pid in postmaster.pid is not killed: the harness checks the
# process is this data directory's postmaster
sleep 300 &
decoy=$!
t_track $decoy
pid=$(head -n 1 "$P/data/postmaster.pid")
pg_down "$P" 2>/dev/null
printf '%s\n%s\n' "$decoy" "$P/data" >"$P/data/postmaster.pid"
"$SRC/tools/pg.sh" down "$P" 2>/dev/null
assert_cmd "pg.sh down leaves a process that is not the postmaster alone" alive "$decoy"
rm -f "$P/data/postmaster.pid"
kill "$decoy" 2>/dev/null

# ---- tools/stack.sh --postgres -------------------------------------------------------------
export CONSUMA_STACK_FCGI_BIN=$BUILD/hello_fcgi
S=$T/stack
stack_up "$S" --postgres --sync-procs 1 --api-procs 1 --no-deliverer
assert_cmd "stack.sh --postgres: a cluster in D/pg" test -f "$S/pg/data/PG_VERSION"
surl=$("$SRC/tools/pg.sh" url "$S/pg")
assert_eq "stack.sh --postgres: the cluster answers" 1 "$(q "$surl" 'SELECT 1')"
assert_cmd "D/stack.env holds the URL" grep -qxF "CONSUMA_DATABASE_URL=$surl" "$S/stack.env"
for n in fcgi-sync-1 fcgi-api-1; do
	p=$(head -n 1 "$S/$n.pid")
	assert_cmd "$n has CONSUMA_DATABASE_URL of the cluster" \
		grep -qzxF "CONSUMA_DATABASE_URL=$surl" "/proc/$p/environ"
done
status=$("$SRC/tools/stack.sh" status --dir "$S")
assert_match "stack.sh status lists the postmaster" 'postgres +[0-9]+ +running' "$status"
spid=$(head -n 1 "$S/pg/data/postmaster.pid")
"$SRC/tools/stack.sh" down --dir "$S" 2>/dev/null
assert_cmd "stack.sh down stops the cluster" test -z "$(alive "$spid" && echo up)"
assert_eq "stack.sh down: nothing of the stack runs" 3 \
	"$("$SRC/tools/stack.sh" status --dir "$S" >/dev/null; echo $?)"

# ---- an existing server: CONSUMA_DATABASE_URL -----------------------------------------------
pg_up "$P"
E=$T/existing
CONSUMA_DATABASE_URL=$PG_URL stack_up "$E" --postgres --sync-procs 1 --api-procs 1 --no-deliverer
assert_cmd "CONSUMA_DATABASE_URL set: no private cluster" test ! -e "$E/pg"
p=$(head -n 1 "$E/fcgi-api-1.pid")
assert_cmd "CONSUMA_DATABASE_URL set: the pools have that URL" \
	grep -qzxF "CONSUMA_DATABASE_URL=$PG_URL" "/proc/$p/environ"
"$SRC/tools/stack.sh" down --dir "$E" 2>/dev/null
pid=$(head -n 1 "$P/data/postmaster.pid")
assert_cmd "stack.sh down leaves an existing server alone" alive "$pid"

# ---- the SQLite default is untouched ------------------------------------------------------
unset CONSUMA_STACK_FCGI_BIN
Q=$T/sqlite
stack_up "$Q" --sync-procs 1 --api-procs 1 --no-deliverer
assert_cmd "no --postgres: no cluster" test ! -e "$Q/pg"
assert_cmd "no --postgres: no CONSUMA_DATABASE_URL saved" bash -c "! grep -q '^CONSUMA_DATABASE_URL=' '$Q/stack.env'"
assert_cmd "no --postgres: SQLite at D/consuma.db" test -f "$Q/consuma.db"

t_done

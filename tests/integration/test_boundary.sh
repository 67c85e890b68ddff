#!/usr/bin/env bash
# test_boundary: what the service answers at its edge, through the real
# stack (lighttpd, consuma-fcgi, SQLite), no deliverer:
#
#  1. The per-destination bound (CONSUMA_MAX_PENDING_PER_HOST=1) counts
#     resolved addresses, not spellings: after [::1], every other spelling
#     of ::1 is refused (429); after 127.0.0.1, "localhost" and "LOCALHOST"
#     are too; a name that does not resolve ("localhost.") is a 400, never a
#     202 with a bound of its own.
#  2. POST without application/json is 415 naming Content-Type, and creates
#     nothing (a browser's cross-origin form or text/plain POST); a charset
#     parameter and any case pass. Invalid UTF-8 anywhere in the body is
#     422. offset is bounded; a long unknown query parameter is ignored.
#  3. Private state: the stack directory is 0700, stack.env (which holds
#     the signing secret) and consuma.db with its WAL 0600, whatever the
#     caller's umask; the systemd units keep the state directory 0700.
#  4. Answers that never arrived: a FastCGI client (the front) that sends
#     POST /async and goes away before the answer. The job is committed,
#     the 202 never reaches anyone, and consuma-fcgi logs it so:
#     status=202 delivered=false, at level warn, with the request id of the
#     job on disk; an answer that did arrive logs delivered=true.
. "$(dirname "$0")/lib.sh"
J='Content-Type: application/json'

export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_RATE_LIMIT_REQUESTS=0 \
	CONSUMA_MAX_PENDING_PER_HOST=1
CONSUMA_CALLBACK_SECRET="whsec_$(head -c 32 /dev/urandom | base64)"
export CONSUMA_CALLBACK_SECRET
umask 022 # a permissive caller: stack.sh and the store must not depend on it
stack_up "$T/s" --api-procs 1 --sync-procs 1 --no-deliverer
D=$T/s

# job URL: one POST /async with callback_url URL
job() {
	http POST "$BASE/async" -H "$J" \
		-d "{\"input_data\": \"x\", \"iterations\": 1, \"callback_url\": \"$1\"}"
}

# ---- 1. the per-destination bound ------------------------------------------------------
job 'http://127.0.0.1:9/'
assert_http "127.0.0.1: first job accepted" 202
for u in 'http://localhost:9/' 'http://LOCALHOST:10/x' 'http://127.0.0.1:11/'; do
	job "$u"
	assert_http "$u: the same address as 127.0.0.1, refused" 429 'too many unfinished jobs'
done
job 'http://localhost.:9/'
assert_eq "localhost. (does not resolve here): refused, not a bound of its own" 400 "$HTTP_CODE"
job 'http://[::1]:9/'
assert_http "[::1]: another address, accepted" 202
for u in 'http://[0::1]:9/' 'http://[0:0::1]:9/' 'http://[0000::0001]:9/' \
	'http://[0:0:0:0:0:0:0:1]/' 'http://[::1]:10/'; do
	job "$u"
	assert_http "$u: the same /64 as [::1], refused" 429 'too many unfinished jobs'
done
assert_eq "two jobs on disk" 2 \
	"$(sqlite3 "$D/consuma.db" "SELECT count(*) FROM requests WHERE mode = 'async'")"

# ---- 2. Content-Type, UTF-8, the query ----------------------------------------------------
before=$(sqlite3 "$D/consuma.db" "SELECT count(*) FROM requests")
SB='{"input_data": "hello", "iterations": 1}'
AB='{"input_data": "x", "callback_url": "http://127.0.0.1:12/"}'
for ct in '' 'text/plain' 'application/x-www-form-urlencoded' 'multipart/form-data; boundary=b' \
	'application/json; charset=latin1' 'application/jsonp'; do
	for route in sync async; do
		if [ "$route" = sync ]; then b=$SB; else b=$AB; fi
		if [ -z "$ct" ]; then
			# curl -d adds a form Content-Type; "Content-Type:" removes it
			http POST "$BASE/$route" -H 'Content-Type:' -d "$b"
		else
			http POST "$BASE/$route" -H "Content-Type: $ct" -d "$b"
		fi
		assert_http "POST /$route with Content-Type [$ct]: 415" 415 '^Content-Type: must be application/json'
	done
done
assert_eq "no record was written by a 415" "$before" \
	"$(sqlite3 "$D/consuma.db" "SELECT count(*) FROM requests")"
for ct in 'application/json; charset=utf-8' 'Application/JSON' 'application/json;charset="UTF-8"'; do
	http POST "$BASE/sync" -H "Content-Type: $ct" -d "$SB"
	assert_http "POST /sync with Content-Type [$ct]: 200" 200
done
printf '{"input_data": "a", "k\xff": 1}' >"$T/bad-key.json"
http POST "$BASE/sync" -H "$J" --data-binary @"$T/bad-key.json"
assert_http "invalid UTF-8 in an unknown key: 422" 422 '^body: is not valid UTF-8'
printf '{"input_data": "a", "callback_url": "http://127.0.0.1:13/", "z": "\xc0\xaf"}' >"$T/bad-val.json"
http POST "$BASE/async" -H "$J" --data-binary @"$T/bad-val.json"
assert_http "invalid UTF-8 in an unknown value: 422" 422 '^body: is not valid UTF-8'
http GET "$BASE/requests?offset=10000&limit=1"
assert_http "offset=10000 is the bound" 200
http GET "$BASE/requests?offset=10001"
assert_http "offset past the bound: 422" 422 '^offset'
long=$(head -c 3000 /dev/zero | tr '\0' 'k')
http GET "$BASE/requests?$long=1&limit=1"
assert_http "a 3000-byte unknown parameter is ignored" 200
assert_eq "...and limit still applies" 1 "$(json_get "$HTTP_BODY" 'len(j)')"

# ---- 3. private state ------------------------------------------------------------------------
mode() { stat -c %a "$1" 2>/dev/null || echo missing; }
assert_eq "the stack directory is 0700" 700 "$(mode "$D")"
assert_eq "stack.env is 0600" 600 "$(mode "$D/stack.env")"
assert_cmd "stack.env holds the signing secret (so it must be private)" \
	grep -q '^CONSUMA_CALLBACK_SECRET=' "$D/stack.env"
assert_eq "consuma.db is 0600" 600 "$(mode "$D/consuma.db")"
# -wal and -shm exist while a connection is open (the pools hold theirs)
# and copy the database's mode
assert_eq "consuma.db-wal is 0600" 600 "$(mode "$D/consuma.db-wal")"
assert_eq "consuma.db-shm is 0600" 600 "$(mode "$D/consuma.db-shm")"
others=$(find "$D" -perm /077 ! -type s ! -type l | tr '\n' ' ')
assert_eq "nothing in the stack directory is open to others (sockets aside)" "" "$others"
for u in "$SRC"/proxy-conf/systemd/*.service; do
	n=$(basename "$u")
	if grep -q '^StateDirectory=' "$u"; then
		assert_eq "$n: StateDirectoryMode=0700" 0700 "$(sed -n 's/^StateDirectoryMode=//p' "$u")"
		assert_match "$n: UMask keeps others out" '^0[0-7]07$' "$(sed -n 's/^UMask=//p' "$u")"
	fi
done
assert_cmd "systemd README installs consuma.env 0600" \
	grep -q 'install -m 0600 .env.example /etc/consuma/consuma.env' "$SRC/proxy-conf/systemd/README.md"

# ---- 4. answers that never arrived ----------------------------------------------------------
cat >"$T/fcgi_send.py" <<'PY'
# fcgi_send.py SOCKET wait|vanish: one POST /async; "wait" reads the answer
# and prints its status, "vanish" closes the connection right after sending.
import json, socket, struct, sys
def rec(t, content):
    return struct.pack('!BBHHBx', 1, t, 1, len(content), 0) + content
def ln(n):
    return struct.pack('!B', n) if n < 128 else struct.pack('!I', n | 0x80000000)
body = json.dumps({"input_data": "x", "callback_url": "http://127.0.0.1:14/"}).encode()
env = {"REQUEST_METHOD": "POST", "REQUEST_URI": "/async", "REMOTE_ADDR": "127.0.0.1",
       "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body))}
params = b''.join(ln(len(k)) + ln(len(v)) + k.encode() + v.encode() for k, v in env.items())
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(rec(1, struct.pack('!HB5x', 1, 0)) + rec(4, params) + rec(4, b'') + rec(5, body) + rec(5, b''))
if sys.argv[2] == "vanish":
    s.close()
    sys.exit(0)
out = b''
while True:
    c = s.recv(65536)
    if not c:
        break
    out += c
i = out.find(b'Status: ')
print(out[i + 8:i + 11].decode())
PY
CONSUMA_MAX_PENDING_PER_HOST=0 CONSUMA_DATABASE_PATH=$T/direct.db "$BUILD/consuma-fcgi" --socket "$T/direct.sock" 2>"$T/direct.log" &
t_track $!
wait_for '[ -S "$T/direct.sock" ]' 10
assert_eq "a front that waits gets the 202" 202 "$(python3 "$T/fcgi_send.py" "$T/direct.sock" wait)"
wait_for 'grep -q delivered=true "$T/direct.log"' 10
assert_match "...logged delivered=true" 'level=info .*event=request route=async method="POST" status=202 delivered=true' \
	"$(grep 'event=request' "$T/direct.log")"
# the front vanishes after sending; on a loaded machine the answer may
# still beat the close, so a few tries
for _ in 1 2 3 4 5; do
	python3 "$T/fcgi_send.py" "$T/direct.sock" vanish
	wait_for '[ "$(count_lines "$T/direct.log" event=request)" -ge 2 ]' 10
	grep -q 'delivered=false' "$T/direct.log" && break
done
line=$(grep 'delivered=false' "$T/direct.log" | head -n 1)
assert_match "a 202 that never arrived is logged so, at warn" \
	'level=warn .*event=request route=async method="POST" status=202 delivered=false' "$line"
rid=$(sed -n 's/.*request_id=\([0-9a-f-]*\).*/\1/p' <<<"$line")
assert_eq "...and its job is on disk, to be delivered" "1 pending" \
	"$(sqlite3 -separator ' ' "$T/direct.db" "SELECT count(*), callback_status FROM requests WHERE id = '$rid'")"

t_done

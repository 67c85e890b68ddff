#!/usr/bin/env bash
# test_api: every route and error of the HTTP API through the real stack
# (lighttpd + spawn-fcgi pools of consuma-fcgi + a SQLite file), with curl.
# No deliverer runs, so async jobs stay queued: that makes the intake bounds
# (per-host pending, queue size) reachable on purpose.
. "$(dirname "$0")/lib.sh"

export CONSUMA_RATE_LIMIT_REQUESTS=0      # admission control has its own test
export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true # callbacks to loopback hosts below
export CONSUMA_MAX_QUEUE_SIZE=6
export CONSUMA_MAX_QUEUE_SHARE=1
export CONSUMA_MAX_PENDING_PER_HOST=3
export CONSUMA_DEFAULT_ITERATIONS=10

stack_up "$T/stack" --sync-procs 1 --api-procs 2 --no-deliverer
J='Content-Type: application/json'

# ---- POST /sync ---------------------------------------------------------------
http POST "$BASE/sync" -H "$J" -d '{"input_data": "hello", "iterations": 1}'
assert_http "sync hello x1" 200
assert_eq "sync result is sha256(hello)" \
	2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 \
	"$(json_get "$HTTP_BODY" 'j["result"]')"
assert_eq "sync status" completed "$(json_get "$HTTP_BODY" 'j["status"]')"
assert_eq "sync iterations echoed" 1 "$(json_get "$HTTP_BODY" 'j["iterations"]')"
assert_match "sync request_id is a UUIDv7" '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' \
	"$(json_get "$HTTP_BODY" 'j["request_id"]')"
assert_match "sync duration_ms is a number" '^[0-9]+(\.[0-9]+)?$' "$(json_get "$HTTP_BODY" 'j["duration_ms"]')"
sync_id=$(json_get "$HTTP_BODY" 'j["request_id"]')

# sha256(sha256("hello")) over the 32 raw bytes
http POST "$BASE/sync" -H "$J" -d '{"input_data": "hello", "iterations": 2}'
assert_eq "sync hello x2" 9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50 \
	"$(json_get "$HTTP_BODY" 'j["result"]')"

http POST "$BASE/sync" -H "$J" -d '{"input_data": "hello"}'
assert_eq "sync without iterations uses CONSUMA_DEFAULT_ITERATIONS" 10 \
	"$(json_get "$HTTP_BODY" 'j["iterations"]')"

# 422: every error names its field
http POST "$BASE/sync" -H "$J" -d '{"iterations": 1}'
assert_http "sync without input_data" 422 'input_data'
http POST "$BASE/sync" -H "$J" -d '{"input_data": "x", "iterations": "5"}'
assert_http "sync iterations as a string" 422 'iterations'
http POST "$BASE/sync" -H "$J" -d '{"input_data": "x", "iterations": 0}'
assert_http "sync iterations 0" 422 'iterations'
http POST "$BASE/sync" -H "$J" -d '{"input_data": "x", "iterations": 1.5}'
assert_http "sync iterations 1.5" 422 'iterations'
http POST "$BASE/sync" -H "$J" -d '{"input_data": "", "iterations": 1}'
assert_http "sync empty input_data" 422 'input_data'
http POST "$BASE/sync" -H "$J" -d '{"input_data": "x", '
assert_http "sync truncated JSON" 422 'body|JSON|json'
http POST "$BASE/sync" -H "$J" --data-binary "{\"input_data\": \"$(printf 'a%.0s' $(seq 10001))\"}"
assert_http "sync input_data of 10001 characters" 422 'input_data'

# 413 without reading the body whole: larger than CONSUMA_MAX_BODY_BYTES (64 KiB)
head -c 100000 /dev/zero | tr '\0' 'a' >"$T/big"
http POST "$BASE/sync" -H "$J" --data-binary @"$T/big"
assert_http "sync body over the cap" 413 'body'

# ---- routing --------------------------------------------------------------------
http GET "$BASE/nope"
assert_http "unknown route" 404 'path'
http GET "$BASE/sync"
assert_http "GET /sync" 405 'method'
assert_eq "405 names the allowed method" POST "$(header_get Allow)"
http POST "$BASE/healthz" -H "$J" -d '{}'
assert_http "POST /healthz" 405 'method'
assert_eq "405 Allow on /healthz" GET "$(header_get Allow)"
http DELETE "$BASE/requests"
assert_http "DELETE /requests" 405
http GET "$BASE/async"
assert_http "GET /async" 405
assert_eq "405 Allow on /async" POST "$(header_get Allow)"

# ---- POST /async -------------------------------------------------------------------
cb1=http://127.0.0.1:9/cb
http POST "$BASE/async" -H "$J" -d "{\"input_data\": \"hello\", \"iterations\": 1, \"callback_url\": \"$cb1\"}"
assert_http "async accepted" 202
async_id=$(json_get "$HTTP_BODY" 'j["request_id"]')
assert_eq "async status accepted" accepted "$(json_get "$HTTP_BODY" 'j["status"]')"
assert_eq "async Location" "/requests/$async_id" "$(header_get Location)"

http POST "$BASE/async" -H "$J" -d '{"input_data": "hello", "callback_url": "ftp://127.0.0.1/cb"}'
assert_http "async ftp callback" 400 '^callback_url'
http POST "$BASE/async" -H "$J" -d '{"input_data": "hello", "callback_url": "http://user:pw@127.0.0.1/cb"}'
assert_http "async callback with userinfo" 400 '^callback_url'
http POST "$BASE/async" -H "$J" -d '{"input_data": "hello"}'
assert_http "async without callback_url" 422 'callback_url'
http POST "$BASE/async" -H "$J" --data-binary @"$T/big"
assert_http "async body over the cap" 413 'body'

# Idempotency-Key: same key + same body replays, other body conflicts
body2="{\"input_data\": \"idem\", \"iterations\": 1, \"callback_url\": \"$cb1\"}"
http POST "$BASE/async" -H "$J" -H 'Idempotency-Key: key-1' -d "$body2"
assert_http "async with a key" 202
idem_id=$(json_get "$HTTP_BODY" 'j["request_id"]')
http POST "$BASE/async" -H "$J" -H 'Idempotency-Key: key-1' -d "$body2"
assert_http "async replay" 202
assert_eq "replay returns the first id" "$idem_id" "$(json_get "$HTTP_BODY" 'j["request_id"]')"
assert_eq "replay returns the current status" queued "$(json_get "$HTTP_BODY" 'j["status"]')"
assert_eq "replay is marked" true "$(header_get Idempotency-Replayed)"
assert_eq "replay Location" "/requests/$idem_id" "$(header_get Location)"
http POST "$BASE/async" -H "$J" -H 'Idempotency-Key: key-1' \
	-d "{\"input_data\": \"other\", \"iterations\": 1, \"callback_url\": \"$cb1\"}"
assert_http "key reused with another body" 422 '^Idempotency-Key'
http POST "$BASE/async" -H "$J" -H "Idempotency-Key: $(printf 'k%.0s' $(seq 256))" -d "$body2"
assert_http "key of 256 characters" 422 '^Idempotency-Key'

# intake bounds: 3 pending per host (two jobs to 127.0.0.1 so far), queue of 6
http POST "$BASE/async" -H "$J" -d "{\"input_data\": \"h3\", \"callback_url\": \"$cb1\"}"
assert_http "third job for 127.0.0.1" 202
http POST "$BASE/async" -H "$J" -d "{\"input_data\": \"h4\", \"callback_url\": \"$cb1\"}"
assert_http "fourth job for 127.0.0.1" 429 '127\.0\.0\.1'
assert_match "host bound carries Retry-After" '^[0-9]+$' "$(header_get Retry-After)"
for i in 1 2 3; do
	http POST "$BASE/async" -H "$J" -d "{\"input_data\": \"q$i\", \"callback_url\": \"http://127.0.0.2:9/cb\"}"
	assert_http "job $i for 127.0.0.2" 202
done
http POST "$BASE/async" -H "$J" -d '{"input_data": "full", "callback_url": "http://127.0.0.3:9/cb"}'
assert_http "queue full" 503 'queue is full'
assert_match "queue full carries Retry-After" '^[0-9]+$' "$(header_get Retry-After)"
http POST "$BASE/async" -H "$J" -H 'Idempotency-Key: key-1' -d "$body2"
assert_http "replay still works when the queue is full" 202

# ---- GET /requests/{id} ------------------------------------------------------------
http GET "$BASE/requests/$async_id"
assert_http "get async record" 200
assert_eq "record id" "$async_id" "$(json_get "$HTTP_BODY" 'j["id"]')"
assert_eq "record mode" async "$(json_get "$HTTP_BODY" 'j["mode"]')"
assert_eq "record has a delivery_trace list" list "$(json_get "$HTTP_BODY" 'type(j["delivery_trace"]).__name__')"
http GET "$BASE/requests/$sync_id"
assert_http "get sync record" 200
assert_eq "sync record result" 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 \
	"$(json_get "$HTTP_BODY" 'j["result"]')"
http GET "$BASE/requests/01890000-0000-7000-8000-000000000000"
assert_http "unknown id" 404 'request_id'
http GET "$BASE/requests/not-a-uuid"
assert_http "malformed id" 404 'request_id'
http GET "$BASE/requests/$(echo "$async_id" | tr 'a-f' 'A-F')"
assert_http "uppercase id is not canonical" 404

# ---- GET /requests -----------------------------------------------------------------
http GET "$BASE/requests"
assert_http "list" 200
assert_eq "list holds every request (3 sync + 6 async)" 9 "$(json_get "$HTTP_BODY" 'len(j)')"
assert_eq "list is newest first" true \
	"$(json_get "$HTTP_BODY" '[r["id"] for r in j] == sorted([r["id"] for r in j], reverse=True)')"
http GET "$BASE/requests?mode=sync"
assert_eq "mode=sync" "3 sync" "$(json_get "$HTTP_BODY" '"%d %s" % (len(j), ",".join(sorted(set(r["mode"] for r in j))))')"
http GET "$BASE/requests?mode=async&status=queued&limit=2"
assert_eq "mode=async&status=queued&limit=2" "2 async queued" \
	"$(json_get "$HTTP_BODY" '"%d %s %s" % (len(j), ",".join(set(r["mode"] for r in j)), ",".join(set(r["status"] for r in j)))')"
http GET "$BASE/requests?mode=async&limit=200&offset=5"
assert_eq "offset skips the newest" 1 "$(json_get "$HTTP_BODY" 'len(j)')"
http GET "$BASE/requests?status=completed&mode=%73ync"
assert_eq "percent-decoded values" 3 "$(json_get "$HTTP_BODY" 'len(j)')"
http GET "$BASE/requests?mode=batch"
assert_http "bad mode" 422 '^mode'
http GET "$BASE/requests?status=lost"
assert_http "bad status" 422 '^status'
http GET "$BASE/requests?status=pending"
assert_eq "status=pending matches the callback state" 6 "$(json_get "$HTTP_BODY" 'len(j)')"
http GET "$BASE/requests?status=delivered"
assert_eq "status=delivered (none yet)" 0 "$(json_get "$HTTP_BODY" 'len(j)')"
for bad in 0 201 -1 abc 1.5 '' '%31%30x'; do
	http GET "$BASE/requests?limit=$bad"
	assert_http "limit=$bad" 422 '^limit'
done
for bad in -1 x 1e3; do
	http GET "$BASE/requests?offset=$bad"
	assert_http "offset=$bad" 422 '^offset'
done
http GET "$BASE/requests?limit=1&limit=2"
assert_http "limit given twice" 422 '^limit'
http GET "$BASE/requests?limit=%zz"
assert_http "malformed escape" 422 '^limit'

# ---- GET /healthz ----------------------------------------------------------------------
http GET "$BASE/healthz"
assert_http "healthz" 200
assert_eq "healthz ok" ok "$(json_get "$HTTP_BODY" 'j["status"]')"
assert_eq "healthz queue_depth" 6 "$(json_get "$HTTP_BODY" 'j["queue_depth"]')"
assert_eq "healthz db_connected" true "$(json_get "$HTTP_BODY" 'j["db_connected"]')"
assert_eq "healthz deliverer never seen" unknown "$(json_get "$HTTP_BODY" 'j["deliverer"]["status"]')"
assert_match "healthz uptime" '^[0-9]+(\.[0-9]+)?$' "$(json_get "$HTTP_BODY" 'j["uptime_seconds"]')"

# a deliverer that used to beat and stopped: degraded, 503
sqlite3 "$T/stack/consuma.db" "PRAGMA busy_timeout=5000; INSERT INTO heartbeats (owner, pid, started_at, beat_at) VALUES ('test', 1, 1000, 1000);" >/dev/null
http GET "$BASE/healthz"
assert_http "healthz with a stale deliverer" 503
assert_eq "stale deliverer degrades" "degraded stale" \
	"$(json_get "$HTTP_BODY" 'j["status"] + " " + j["deliverer"]["status"]')"

# every request was logged once with its route and status
assert_match "request log lines" 'event=request route=sync method="POST" status=200' "$(cat "$T"/stack/fcgi-sync-*.log)"
# ... with its duration in milliseconds to the microsecond
req_lines=$(cat "$T"/stack/fcgi-*.log | grep -c 'event=request ' || true)
ms_lines=$(cat "$T"/stack/fcgi-*.log | grep -cE 'event=request .* duration_ms=[0-9]+\.[0-9]{3} ' || true)
assert_eq "every request line has duration_ms as N.NNN ($req_lines lines)" "$req_lines" "$ms_lines"
assert_cmd "request lines were logged" test "$req_lines" -gt 0

# ---- straight FastCGI: what a proxy would never send --------------------------------
# consuma-fcgi on its own socket (--socket), spoken to by a minimal FastCGI
# client, for the CGI variables lighttpd and nginx always get right.
cat >"$T/fcgi.py" <<'PY'
import json, socket, struct, sys
path, env, body = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3].encode()
def rec(t, content):
    return struct.pack('!BBHHBx', 1, t, 1, len(content), 0) + content
def ln(n):
    return struct.pack('!B', n) if n < 128 else struct.pack('!I', n | 0x80000000)
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(path)
params = b''.join(ln(len(k)) + ln(len(v)) + k.encode() + v.encode() for k, v in env.items())
s.sendall(rec(1, struct.pack('!HB5x', 1, 0)) + rec(4, params) + rec(4, b'') +
          (rec(5, body) if body else b'') + rec(5, b''))
out, buf = b'', b''
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
    while len(buf) >= 8:
        _, t, _, clen, plen = struct.unpack('!BBHHB', buf[:7])
        if len(buf) < 8 + clen + plen:
            break
        if t == 6:
            out += buf[8:8 + clen]
        buf = buf[8 + clen + plen:]
        if t == 3:
            buf = b''
            break
    else:
        continue
    if t == 3:
        break
head, _, payload = out.decode().partition('\r\n\r\n')
closed = ''
if len(sys.argv) > 4:  # has the responder closed its end, 0.5 s after END_REQUEST?
    import time
    time.sleep(0.5)
    try:
        s.send(b'x')  # a socket shut down for writing but still open takes it
        closed = ' closed=no'
    except OSError:
        closed = ' closed=yes'
print(head.split('\r\n')[0].split()[1], payload + closed)
PY
CONSUMA_DATABASE_PATH=$T/direct.db "$BUILD/consuma-fcgi" --socket "$T/direct.sock" 2>"$T/direct.log" &
direct_pid=$!
t_track $direct_pid
wait_for '[ -S "$T/direct.sock" ]' 10
fcgi() { python3 "$T/fcgi.py" "$T/direct.sock" "$1" "${2:-}" ${3:+"$3"}; }
post='"REQUEST_METHOD": "POST", "REQUEST_URI": "/sync", "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": "application/json"'
assert_match "direct: a valid /sync" '^200 .*2cf24dba5fb0a30e' \
	"$(fcgi "{$post, \"CONTENT_LENGTH\": \"37\"}" '{"input_data":"hello","iterations":1}')"
# A request read to the end of its input is closed at once: libfcgi's
# linger (shut down for writing, then read until the server closes,
# polling 2 s at a time) held a worker per request (fcgi-app/main.c,
# serve_one). A body left unread keeps the linger, so no reset can cut the
# response short.
assert_match "direct: read to the end, closed at once" '^200 .*closed=yes$' \
	"$(fcgi "{$post, \"CONTENT_LENGTH\": \"37\"}" '{"input_data":"hello","iterations":1}' close)"
assert_match "direct: a body left unread keeps the linger" '^413 .*closed=no$' \
	"$(fcgi "{$post, \"CONTENT_LENGTH\": \"99999999999999999999\"}" '' close)"
assert_match "direct: CONTENT_LENGTH not a number" '^400 .*Content-Length' \
	"$(fcgi "{$post, \"CONTENT_LENGTH\": \"12x\"}" '{"input_data":"hello"}')"
assert_match "direct: CONTENT_LENGTH negative" '^400 .*Content-Length' \
	"$(fcgi "{$post, \"CONTENT_LENGTH\": \"-5\"}" '')"
assert_match "direct: body shorter than CONTENT_LENGTH" '^400 .*shorter' \
	"$(fcgi "{$post, \"CONTENT_LENGTH\": \"100\"}" '{"input_data":"hello"}')"
assert_match "direct: CONTENT_LENGTH of 20 digits, nothing read" '^413 .*body' \
	"$(fcgi "{$post, \"CONTENT_LENGTH\": \"99999999999999999999\"}" '')"
assert_match "direct: no CONTENT_LENGTH is an empty body" '^422 .*body' \
	"$(fcgi "{$post}" '')"
assert_match "direct: SCRIPT_NAME + PATH_INFO without REQUEST_URI" '^200 .*"status":"ok"' \
	"$(fcgi '{"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/healthz", "PATH_INFO": ""}')"
assert_match "direct: a malformed escape in the path" '^404 ' \
	"$(fcgi '{"REQUEST_METHOD": "GET", "REQUEST_URI": "/health%zz"}')"
assert_match "direct: %00 in the path" '^404 ' \
	"$(fcgi '{"REQUEST_METHOD": "GET", "REQUEST_URI": "/healthz%00"}')"
assert_match "direct: the path is percent-decoded" '^200 ' \
	"$(fcgi '{"REQUEST_METHOD": "GET", "REQUEST_URI": "/health%7a?x=1"}')"
assert_match "direct: no REQUEST_METHOD" '^405 ' \
	"$(fcgi '{"REQUEST_URI": "/healthz"}')"

kill -TERM "$direct_pid"
wait "$direct_pid"
assert_eq "direct: SIGTERM while idle exits 0" 0 "$?"
"$SRC/tools/stack.sh" down --dir "$T/stack" >/dev/null 2>&1
assert_clean_logs "$T/stack"
assert_clean_logs "$T"

t_done

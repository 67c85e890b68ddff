#!/usr/bin/env bash
# test_auth: access control through the real stack (lighttpd, two API and
# one sync consuma-fcgi, the deliverer, SQLite, a receiver on loopback).
#
#  - keys minted with consuma-fcgi --mint-key: two clients (alice, bob), an
#    admin (root), and carol, whose key is revoked later
#  - /healthz needs no key and says "auth": "keys", nothing about clients
#  - a missing, wrong or malformed key is 401 with WWW-Authenticate: Bearer
#    and a JSON detail; a client key on GET /metrics or a redelivery route
#    is 403, the admin key scrapes
#  - isolation both ways: alice lists and reads only hers, bob only his;
#    another client's id answers exactly what an unknown id answers; root
#    sees both
#  - ownership and per-client scoping are on disk: owner, and client_addr
#    "key:<client>" (rate limit, queue share and Idempotency-Key key); the
#    same Idempotency-Key from two clients is two jobs; on a second stack
#    two clients from one address each get their own rate limit and share
#  - revoking carol by editing the file (mv over it) takes effect without a
#    restart while the others keep working; SIGHUP reloads too; a bad file
#    keeps the last good set and logs why
#  - rotation: CONSUMA_CALLBACK_SECRET holds two secrets; every callback
#    carries two v1 signatures that Python's hmac verifies, and a receiver
#    holding either secret (and not a third) accepts
. "$(dirname "$0")/lib.sh"
FCGI=$BUILD/consuma-fcgi

keys=$T/api-keys
mint() { # NAME ROLE: the key on stdout, its keys-file line into $T/line.NAME
	local out
	out=$("$FCGI" --mint-key "$1" "$2" 2>/dev/null) || return 1
	sed -n 2p <<<"$out" >"$T/line.$1"
	sed -n 1p <<<"$out"
}
k_alice=$(mint alice client) && k_bob=$(mint bob client) && k_root=$(mint root admin) &&
	k_carol=$(mint carol client)
assert_match "--mint-key prints a key" '^ck_[0-9a-f]{64}$' "$k_alice"
assert_match "--mint-key prints the keys-file line" '^alice client [0-9a-f]{64}$' "$(cat "$T/line.alice")"
want_hash=$(printf '%s' "$k_alice" | sha256sum | cut -d' ' -f1)
assert_eq "the line holds sha256 of the key (sha256sum)" "alice client $want_hash" "$(cat "$T/line.alice")"
"$FCGI" --mint-key alice root >/dev/null 2>&1
assert_eq "--mint-key with a bad role exits 2" 2 $?
"$FCGI" --mint-key 'a b' client >/dev/null 2>&1
assert_eq "--mint-key with a bad name exits 2" 2 $?

write_keys() { # LINES...: replaces the keys file atomically
	printf '# consuma API keys\n' >"$keys.tmp"
	for n in "$@"; do cat "$T/line.$n" >>"$keys.tmp"; done
	mv "$keys.tmp" "$keys"
}
write_keys alice bob root carol

# a keys file that does not parse stops consuma-fcgi at start-up (exit 2)
printf 'alice client nothex\n' >"$T/bad-keys"
CONSUMA_API_KEYS_FILE=$T/bad-keys CONSUMA_DATABASE_PATH=$T/x.db "$FCGI" --socket "$T/x.sock" \
	>/dev/null 2>"$T/bad.err"
assert_eq "a bad keys file at start-up exits 2" 2 $?
assert_match "and names the variable and the line" 'CONSUMA_API_KEYS_FILE: line 1' "$(cat "$T/bad.err")"

secret_a=$(head -c 32 /dev/urandom | base64 -w0)
secret_b=$(head -c 24 /dev/urandom | base64 -w0)
export CONSUMA_API_KEYS_FILE=$keys CONSUMA_ALLOW_PRIVATE_CALLBACKS=true \
	CONSUMA_RATE_LIMIT_REQUESTS=0 CONSUMA_CALLBACK_SECRET="whsec_$secret_a whsec_$secret_b"

receiver_start r rport
cb="http://127.0.0.1:$rport/ok"

stack_up "$T/s" --sync-procs 1 --api-procs 2
db=$T/s/consuma.db

as() { # KEY METHOD PATH [curl args...]
	local key=$1 method=$2 path=$3
	shift 3
	http "$method" "$BASE$path" -H "Authorization: Bearer $key" "$@"
}
body() { printf '{"input_data":"%s","iterations":10,"callback_url":"%s"}' "$1" "$cb"; }
json=(-H 'Content-Type: application/json')

# ---- health and refusals ------------------------------------------------------
http GET "$BASE/healthz"
assert_http "/healthz without a key" 200
assert_eq "/healthz says auth: keys" keys "$(json_get "$HTTP_BODY" 'j["auth"]')"
case $HTTP_BODY in *alice* | *root* | *ck_*) not_ok "/healthz names a client: $HTTP_BODY" ;;
*) ok "/healthz names no client" ;; esac

http GET "$BASE/requests"
assert_http "GET /requests without a key" 401 '^authorization: '
assert_match "401 carries WWW-Authenticate: Bearer" '^Bearer realm="consuma"$' "$(header_get WWW-Authenticate)"
http POST "$BASE/sync" "${json[@]}" -d '{"input_data":"x"}'
assert_http "POST /sync without a key" 401
for bad in "Bearer ck_0000" "Bearer $k_alice$k_alice" "Basic YWxpY2U6eA==" "Bearer" \
	"Bearer ${k_alice}x" "bearer  ${k_alice} extra"; do
	http GET "$BASE/requests" -H "Authorization: $bad"
	assert_http "Authorization: ${bad:0:20}... is 401" 401 'unknown, revoked or malformed'
	assert_match "  with error=invalid_token" 'Bearer realm="consuma", error="invalid_token"' \
		"$(header_get WWW-Authenticate)"
done
http GET "$BASE/requests" -H "Authorization: bearer $k_alice"
assert_http "the scheme is case-insensitive" 200

# ---- two clients, isolation both ways -------------------------------------------
as "$k_alice" POST /sync "${json[@]}" -d '{"input_data":"a-sync","iterations":10}'
assert_http "alice POST /sync" 200
a_sync=$(json_get "$HTTP_BODY" 'j["request_id"]')
as "$k_alice" POST /async "${json[@]}" -H 'Idempotency-Key: same' -d "$(body a-async)"
assert_http "alice POST /async" 202
a_async=$(json_get "$HTTP_BODY" 'j["request_id"]')
as "$k_bob" POST /sync "${json[@]}" -d '{"input_data":"b-sync","iterations":10}'
assert_http "bob POST /sync" 200
b_sync=$(json_get "$HTTP_BODY" 'j["request_id"]')
as "$k_bob" POST /async "${json[@]}" -H 'Idempotency-Key: same' -d "$(body b-async)"
assert_http "bob POST /async with alice's Idempotency-Key (another body)" 202
b_async=$(json_get "$HTTP_BODY" 'j["request_id"]')
assert_eq "  is a job of its own, not a replay or a 422" "" "$(header_get Idempotency-Replayed)"
as "$k_alice" POST /async "${json[@]}" -H 'Idempotency-Key: same' -d "$(body a-async)"
assert_eq "alice repeating her key replays her job" "$a_async true" \
	"$(json_get "$HTTP_BODY" 'j["request_id"]') $(header_get Idempotency-Replayed)"

ids_of() { json_get "$HTTP_BODY" '" ".join(sorted(r["id"] for r in j))'; }
sorted() { printf '%s\n' "$@" | sort | tr '\n' ' ' | sed 's/ $//'; }
as "$k_alice" GET "/requests?limit=200"
assert_eq "alice lists only hers" "$(sorted "$a_sync" "$a_async")" "$(ids_of)"
as "$k_bob" GET "/requests?limit=200"
assert_eq "bob lists only his" "$(sorted "$b_sync" "$b_async")" "$(ids_of)"
as "$k_bob" GET "/requests?mode=async"
assert_eq "bob's mode=async list" "$b_async" "$(ids_of)"
as "$k_root" GET "/requests?limit=200"
assert_eq "root (admin) lists both" "$(sorted "$a_sync" "$a_async" "$b_sync" "$b_async")" "$(ids_of)"

unknown=01234567-89ab-7def-8123-456789abcdef
as "$k_alice" GET "/requests/$unknown"
assert_http "an unknown id is 404" 404
unknown_answer="$HTTP_CODE $HTTP_BODY"
for pair in "$k_alice:$b_sync" "$k_alice:$b_async" "$k_bob:$a_sync" "$k_bob:$a_async"; do
	as "${pair%%:*}" GET "/requests/${pair#*:}"
	assert_eq "another client's record answers as an unknown id" "$unknown_answer" "$HTTP_CODE $HTTP_BODY"
done
for pair in "$k_alice:$a_sync" "$k_alice:$a_async" "$k_bob:$b_sync" "$k_root:$a_async" "$k_root:$b_sync"; do
	as "${pair%%:*}" GET "/requests/${pair#*:}"
	assert_eq "own record (or admin) reads: ${pair#*:}" "200 ${pair#*:}" \
		"$HTTP_CODE $(json_get "$HTTP_BODY" 'j["id"]')"
done
assert_eq "on disk: owner and the per-client key" \
	"alice key:alice 2|bob key:bob 2" \
	"$(sqlite3 "$db" "SELECT owner || ' ' || client_addr || ' ' || count(*) FROM requests GROUP BY owner ORDER BY owner" | tr '\n' '|' | sed 's/|$//')"

# ---- admin-only routes: 403 for a client key ----------------------------------------
http GET "$BASE/metrics" -H "Authorization: Bearer $k_alice"
assert_http "GET /metrics with a client key is 403" 403 'needs an admin key'
assert_match "  with error=insufficient_scope" 'error="insufficient_scope"' "$(header_get WWW-Authenticate)"
http GET "$BASE/metrics"
assert_eq "GET /metrics without a key is 401" 401 "$HTTP_CODE"
http GET "$BASE/metrics" -H "Authorization: Bearer $k_root"
assert_eq "GET /metrics with the admin key is 200" 200 "$HTTP_CODE"
as "$k_bob" POST "/requests/$b_async/redeliver" "${json[@]}" -d '{}'
assert_http "a client key cannot redeliver, even its own job" 403
as "$k_bob" POST /requests/redeliver "${json[@]}" -d '{}'
assert_http "nor in bulk" 403

# ---- revocation and reload without a restart -------------------------------------
pids_before=$(cat "$T"/s/fcgi-*.pid | sort | tr '\n' ' ')
as "$k_carol" GET /requests
assert_http "carol reads before revocation" 200
write_keys alice bob root
edited=$(date +%s.%N)
# every process looks at the file at most a second after its last look:
# poll (bounded) until carol is refused and that second has passed
carol_refused_and_past() {
	as "$k_carol" GET /requests
	carol=$HTTP_CODE
	[ "$carol" = 401 ] &&
		[ "$(python3 -c "import sys,time; print(int(time.time() - float(sys.argv[1]) > 1.5))" "$edited")" = 1 ]
}
wait_for carol_refused_and_past 10
assert_eq "carol's key is refused after the edit" 401 "$carol"
codes=''
for _ in 1 2 3 4 5 6; do
	as "$k_carol" GET /requests
	codes+="$HTTP_CODE "
	as "$k_alice" GET /requests
	codes+="$HTTP_CODE "
done
assert_eq "carol refused and alice served on every process" \
	"401 200 401 200 401 200 401 200 401 200 401 200 " "$codes"
assert_eq "no process was restarted" "$pids_before" "$(cat "$T"/s/fcgi-*.pid | sort | tr '\n' ' ')"
assert_match "the reload is logged" 'event=auth.reloaded .*cause=changed keys=3 was=4' \
	"$(cat "$T"/s/fcgi-api-*.log)"

# SIGHUP: carol back, then every process told at once
cat "$keys" "$T/line.carol" >"$keys.tmp" && mv "$keys.tmp" "$keys"
for p in $(cat "$T"/s/fcgi-*.pid); do kill -HUP "$p"; done
wait_for 'as "$k_carol" GET /requests; [ "$HTTP_CODE" = 200 ]' 5
assert_eq "a key added and SIGHUP: carol reads again" 200 "$HTTP_CODE"
assert_cmd "SIGHUP reload is logged" \
	wait_for 'grep -q "event=auth.reloaded .*cause=sighup" "$T"/s/fcgi-*.log' 5

# a bad file keeps the last good set
printf 'alice client nothex\n' >"$keys.tmp" && mv "$keys.tmp" "$keys"
assert_cmd "a bad file is logged with its line" wait_for 'as "$k_alice" GET /requests
	grep -q "event=auth.reload_failed .*line 1: key hash" "$T"/s/fcgi-api-*.log' 10
codes=''
for _ in 1 2 3 4; do
	as "$k_alice" GET /requests
	codes+="$HTTP_CODE "
	as "$k_carol" GET /requests
	codes+="$HTTP_CODE "
done
assert_eq "  and the last good set stays: alice and carol served" "200 200 200 200 200 200 200 200 " "$codes"

# ---- rate limit and queue share per client, not per address --------------------------
# A second stack without a deliverer (jobs stay queued): 6 requests per
# window per client, a queue of 4 with a share of 0.5 (2 per client). Both
# clients come from 127.0.0.1: per address, bob would be refused with alice.
write_keys alice bob root carol # a good file again: a bad one stops a new stack (exit 2)
CONSUMA_RATE_LIMIT_REQUESTS=6 CONSUMA_MAX_QUEUE_SIZE=4 CONSUMA_MAX_QUEUE_SHARE=0.5 \
	CONSUMA_DATABASE_PATH=$T/l/consuma.db stack_up "$T/l" --sync-procs 1 --api-procs 1 --no-deliverer
codes=''
for i in 1 2 3; do
	as "$k_alice" POST /async "${json[@]}" -d "$(body "share-a-$i")"
	codes+="$HTTP_CODE "
done
assert_eq "alice: two jobs, then her share of the queue is full" "202 202 429 " "$codes"
assert_match "  the 429 names her key, not an address" 'client key:alice holds its share' \
	"$(json_get "$HTTP_BODY" 'j["detail"]')"
codes=''
for i in 1 2; do
	as "$k_bob" POST /async "${json[@]}" -d "$(body "share-b-$i")"
	codes+="$HTTP_CODE "
done
assert_eq "bob from the same address still has his own share" "202 202 " "$codes"
codes=''
for _ in 1 2 3 4; do
	as "$k_alice" GET /requests
	codes+="$HTTP_CODE "
done
assert_eq "alice: 6 requests in the window, then 429" "200 200 200 429 " "$codes"
assert_match "  rate limited as her key" 'rate limit exceeded for client key:alice' \
	"$(json_get "$HTTP_BODY" 'j["detail"]')"
as "$k_bob" GET /requests
assert_http "bob from the same address is not rate limited with her" 200

# ---- rotation: two secrets, two signatures ----------------------------------------
python3 "$RECV" wait --log "$T/r.jsonl" --count 2 --timeout 60 >/dev/null
assert_eq "both async jobs called back" 0 $?
check=$(python3 - "$T/r.jsonl" "$secret_a" "$secret_b" <<'PY'
import base64, hashlib, hmac, json, os, sys

def sign(secret_b64, h, body):
    msg = ("%s.%s.%s" % (h["webhook-id"], h["webhook-timestamp"], body)).encode()
    return "v1," + base64.b64encode(
        hmac.new(base64.b64decode(secret_b64), msg, hashlib.sha256).digest()).decode()

def receiver_accepts(secret_b64, h, body):
    # what a receiver holding one secret does: any listed signature may match
    want = sign(secret_b64, h, body)
    return any(hmac.compare_digest(want, s) for s in h.get("webhook-signature", "").split(" "))

other = base64.b64encode(os.urandom(32)).decode()
n = both = a_ok = b_ok = other_ok = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    h, body = r["headers"], r["body"]
    sigs = h.get("webhook-signature", "").split(" ")
    n += 1
    both += sigs == [sign(sys.argv[2], h, body), sign(sys.argv[3], h, body)]
    a_ok += receiver_accepts(sys.argv[2], h, body)
    b_ok += receiver_accepts(sys.argv[3], h, body)
    other_ok += receiver_accepts(other, h, body)
print(n, both, a_ok, b_ok, other_ok)
PY
)
read -r n both a_ok b_ok other_ok <<<"$check"
assert_eq "callbacks received" 2 "$n"
assert_eq "each carries both v1 signatures, in order, verified by Python's hmac" 2 "$both"
assert_eq "a receiver with the old secret accepts every callback" 2 "$a_ok"
assert_eq "a receiver with the new secret accepts every callback" 2 "$b_ok"
assert_eq "a receiver with a third secret accepts none" 0 "$other_ok"
t_done

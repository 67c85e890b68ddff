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
. "$(dirname "$0")/lib.sh"
J='Content-Type: application/json'

export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_RATE_LIMIT_REQUESTS=0 \
	CONSUMA_MAX_PENDING_PER_HOST=1
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

t_done

#!/usr/bin/env bash
# test_boundary: what the service answers at its edge, through the real
# stack (lighttpd, consuma-fcgi, SQLite), no deliverer:
#
#  1. The per-destination bound (CONSUMA_MAX_PENDING_PER_HOST=1) counts
#     resolved addresses, not spellings: after [::1], every other spelling
#     of ::1 is refused (429); after 127.0.0.1, "localhost" and "LOCALHOST"
#     are too; a name that does not resolve ("localhost.") is a 400, never a
#     202 with a bound of its own.
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

t_done

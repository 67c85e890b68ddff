#!/usr/bin/env bash
# test_redeliver: POST /requests/{id}/redeliver and POST /requests/redeliver
# through the real stack and a real receiver on loopback:
#  - a job that failed because nobody listened is delivered once the
#    receiver is up and it is redelivered: its trace holds the failed
#    attempts and the new one, its callback carries its webhook-id;
#  - a delivered job redelivered calls back again with the same webhook-id
#    (two callbacks, attempts 1 and 2, the same signature scheme);
#  - 404 for an unknown or malformed id, 409 while a job is in progress and
#    for a /sync record, 405 for GET, 415 unless the Content-Type is JSON,
#    422 for bad bulk bodies;
#  - the bulk dry run counts exactly the failed jobs of the window (and of
#    a callback_host); the bulk run delivers them all, never more than
#    CONSUMA_MAX_PER_HOST at once (measured from the attempts' own times),
#    and leaves the jobs outside the window alone;
#  - consuma_jobs_redelivered_total counts them.
. "$(dirname "$0")/lib.sh"

export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_RATE_LIMIT_REQUESTS=0 \
	CONSUMA_MAX_PENDING_PER_HOST=0 CONSUMA_CALLBACK_MAX_RETRIES=2 \
	CONSUMA_CALLBACK_BACKOFF_BASE_MS=100 CONSUMA_CALLBACK_BACKOFF_MAX_MS=200 \
	CONSUMA_BREAKER_FAILURES=0 CONSUMA_MAX_PER_HOST=2 \
	CONSUMA_CALLBACK_SECRET="whsec_$(head -c 32 /dev/urandom | base64 -w0)"
stack_up "$T/s"
db=$T/s/consuma.db

submit() { # URL: sets ID
	http POST "$BASE/async" -H 'Content-Type: application/json' \
		-d "{\"input_data\":\"redeliver\",\"iterations\":1,\"callback_url\":\"$1\"}"
	[ "$HTTP_CODE" = 202 ] || not_ok "POST /async: $HTTP_CODE $HTTP_BODY"
	ID=$(json_get "$HTTP_BODY" 'j["request_id"]')
}
status_of() { sql "SELECT callback_status FROM requests WHERE id='$1'"; }
wait_status() { wait_for "[ \"\$(status_of $1)\" = $2 ]" 30; } # ID STATUS
redeliver() { http POST "$BASE/requests/$1/redeliver" -H 'Content-Type: application/json' -d ''; }
bulk() { http POST "$BASE/requests/redeliver" -H 'Content-Type: application/json' -d "$1"; }
now3339() { python3 -c 'import datetime; print(datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")'; }
# callbacks LOG ID: "attempt webhook-id" per callback of job ID received in LOG
callbacks() {
	python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    h = e["headers"]
    if h.get("x-request-id") == sys.argv[2]:
        print(h.get("x-attempt-number"), h.get("webhook-id"), "signed" if h.get("webhook-signature", "").startswith("v1,") else "unsigned")
' "$1" "$2"
}

receiver_start up up_port
up=http://127.0.0.1:$up_port

# ---- errors -------------------------------------------------------------------
redeliver 01a2338b-7ecb-7034-a672-cf1767c61599
assert_http "unknown id: 404" 404 '^request_id'
redeliver not-a-uuid
assert_http "malformed id: 404" 404
http POST "$BASE/requests/01a2338b-7ecb-7034-a672-cf1767c61599/redeliver" -d ''
assert_http "a form POST (a browser's simple request): 415" 415 '^Content-Type'
http POST "$BASE/requests/redeliver" -H 'Content-Type: text/plain' -d '{"status":"failed"}'
assert_http "bulk as text/plain: 415" 415 '^Content-Type'
http GET "$BASE/requests/01a2338b-7ecb-7034-a672-cf1767c61599/redeliver"
assert_http "GET on the redeliver route: 405" 405
assert_eq "405 says POST" POST "$(header_get Allow)"
submit "$up/hang/4"
hang=$ID
redeliver "$hang"
assert_http "a job in progress: 409" 409 'in progress'
http POST "$BASE/sync" -H 'Content-Type: application/json' -d '{"input_data":"s","iterations":1}'
redeliver "$(json_get "$HTTP_BODY" 'j["request_id"]')"
assert_http "a /sync record: 409" 409 'sync'
for body in '{}' '{"status":"pending","since":"2026-01-01T00:00:00Z","until":"2027-01-01T00:00:00Z"}' \
	'{"status":"failed","since":"yesterday","until":"2027-01-01T00:00:00Z"}' \
	'{"status":"failed","since":"2027-01-01T00:00:00Z","until":"2026-01-01T00:00:00Z"}' \
	'{"status":"failed","since":"2026-01-01T00:00:00Z","until":"2027-01-01T00:00:00Z","dry_run":"yes"}' \
	'{"status":"failed","since":"2026-01-01T00:00:00Z","until":"2027-01-01T00:00:00Z","callback_host":7}' \
	'{"status":"failed"} trailing' '[]'; do
	bulk "$body"
	assert_http "bulk body refused: $body" 422
done

# ---- a job that failed because nobody listened ---------------------------------
dead=$(free_port)
submit "http://127.0.0.1:$dead/ok"
a=$ID
assert_cmd "job to a closed port failed" wait_status "$a" failed
assert_eq "after CONSUMA_CALLBACK_MAX_RETRIES=2 attempts" 2 "$(sql "SELECT attempts FROM requests WHERE id='$a'")"
receiver_start late late_port --port "$dead"
redeliver "$a"
assert_http "redeliver the failed job: 202" 202
assert_eq "Location names it" "/requests/$a" "$(header_get Location)"
assert_cmd "it is delivered now" wait_status "$a" delivered
http GET "$BASE/requests/$a"
assert_eq "its trace: two refused attempts, then the 200" "1:null 2:null 3:200" \
	"$(json_get "$HTTP_BODY" '" ".join("%d:%s" % (t["attempt"], "null" if t["http_status"] is None else t["http_status"]) for t in j["delivery_trace"])')"
assert_eq "the callback came as attempt 3 with the job's webhook-id, signed" "3 $a signed" "$(callbacks "$T/late.jsonl" "$a")"

# ---- a delivered job, delivered again -------------------------------------------
submit "$up/ok"
b=$ID
assert_cmd "job delivered" wait_status "$b" delivered
redeliver "$b"
assert_http "redeliver a delivered job: 202" 202
wait_for '[ "$(callbacks "$T/up.jsonl" "$b" | wc -l)" -ge 2 ]' 10
assert_eq "two callbacks, attempts 1 and 2, the same webhook-id" "1 $b signed
2 $b signed" "$(callbacks "$T/up.jsonl" "$b")"
assert_cmd "and it is delivered again" wait_status "$b" delivered
assert_eq "two attempts in its trace" 2 "$(sql "SELECT count(*) FROM attempts JOIN requests ON seq = request_seq WHERE id='$b'")"

# ---- bulk -----------------------------------------------------------------------
slow=$(free_port)
for i in 1 2; do submit "http://127.0.0.1:$slow/slow/300~early$i"; done
early=$ID
assert_cmd "the jobs before the window failed" wait_status "$early" failed
sleep 0.05
since=$(now3339)
sleep 0.05
ids=()
for i in 1 2 3 4 5 6 7; do submit "http://127.0.0.1:$slow/slow/300~in$i"; ids+=("$ID"); done
sleep 0.05
until=$(now3339)
for id in "${ids[@]}"; do wait_status "$id" failed || not_ok "job $id did not fail"; done
sleep 0.05
submit "http://127.0.0.1:$slow/slow/300~late"
wait_status "$ID" failed
# The hanging job (its receiver answers after 4 s) has ended, so the queue
# is empty when the dry runs are checked to leave it so.
assert_cmd "the hanging job has ended" \
	wait_for "[ \"\$(sql \"SELECT finished_at IS NOT NULL FROM requests WHERE id='$hang'\")\" = 1 ]" 30
window="\"since\":\"$since\",\"until\":\"$until\""
bulk "{\"status\":\"failed\",$window,\"dry_run\":true}"
assert_http "dry run: 200" 200
assert_eq "the dry run counts exactly the 7 failed jobs of the window" 7 "$(json_get "$HTTP_BODY" 'j["count"]')"
bulk "{\"status\":\"failed\",$window,\"callback_host\":\"LOCALHOST\",\"dry_run\":true}"
assert_eq "none of them calls back to localhost" 0 "$(json_get "$HTTP_BODY" 'j["count"]')"
bulk "{\"status\":\"failed\",$window,\"callback_host\":\"127.0.0.1\",\"dry_run\":true}"
assert_eq "all of them to 127.0.0.1" 7 "$(json_get "$HTTP_BODY" 'j["count"]')"
bulk "{\"status\":\"delivered\",$window,\"dry_run\":true}"
assert_eq "no delivered job in the window" 0 "$(json_get "$HTTP_BODY" 'j["count"]')"
assert_eq "a dry run changes nothing" 0 "$(sql "SELECT value FROM counters WHERE name='queue_depth'")"

receiver_start slow slow_port --port "$slow"
bulk "{\"status\":\"failed\",$window}"
assert_http "bulk run: 202" 202
assert_eq "7 scheduled, none remaining" "7 0" "$(json_get "$HTTP_BODY" '"%d %d" % (j["count"], j["remaining"])')"
for id in "${ids[@]}"; do wait_status "$id" delivered || not_ok "job $id was not delivered"; done
assert_eq "every job of the window delivered" 7 \
	"$(sql "SELECT count(*) FROM requests WHERE callback_url LIKE '%~in%' AND callback_status = 'delivered'")"
assert_eq "the jobs outside the window stay failed" "failed failed failed" \
	"$(sql "SELECT callback_status FROM requests WHERE callback_url LIKE '%~early%' OR callback_url LIKE '%~late'" | tr '\n' ' ' | sed 's/ $//')"
# the most redelivery attempts in flight at once, from their start times
# and durations (started_at has millisecond resolution and is taken just
# before the request leaves: an interval is trusted to 1 ms)
peak=$(sql "SELECT a.started_at, a.duration_ms FROM attempts a JOIN requests r ON r.seq = a.request_seq
            WHERE r.callback_url LIKE '%~in%' AND a.http_status = 200" | python3 -c '
import sys
ev = []
for line in sys.stdin:
    s, d = line.split()
    s = float(s); ev += [(s, 1), (s + float(d) - 1.0, -1)]
ev.sort(key=lambda e: (e[0], e[1]))
n = peak = 0
for _, k in ev:
    n += k; peak = max(peak, n)
print(peak)')
assert_eq "the replay never had more than CONSUMA_MAX_PER_HOST=2 in flight (peak $peak)" true \
	"$([ "$peak" -ge 1 ] && [ "$peak" -le 2 ] && echo true)"
assert_eq "each replayed job called back once" 7 "$(grep -c '~in' "$T/slow.jsonl")"
http GET "$BASE/metrics"
assert_eq "consuma_jobs_redelivered_total counts 1 + 1 + 7" 9 \
	"$(printf '%s\n' "$HTTP_BODY" | awk '$1 == "consuma_jobs_redelivered_total" { print $2 }')"
"$SRC/tools/stack.sh" down --dir "$T/s" >/dev/null 2>&1
assert_clean_logs "$T/s"
t_done

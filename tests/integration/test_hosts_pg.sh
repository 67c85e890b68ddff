#!/usr/bin/env bash
# test_hosts_pg: two "hosts" (two stacks on loopback ports, each with its
# own lighttpd, pools and deliverer under a host name of its own) on one
# PostgreSQL database, a real server the test starts (tools/pg.sh):
#  1. what one host accepts the other reads: GET /requests/{id}, the shared
#     queue depth, an Idempotency-Key replayed at the other host;
#  2. two deliverers, no crash: every job delivered exactly once (leases of
#     2 s renewed while 2.5 s callbacks run), both hosts took a share, and
#     the server logged no deadlock (a deliverer's lease renewal against its
#     own delivery batch did, and cost duplicates);
#  3. the server goes away (pg.sh down) and comes back (pg.sh up, same
#     directory): POST /async answers 503 with Retry-After while it is gone,
#     never 202; /healthz is 503 "degraded"; then, with no process
#     restarted, 202 again, /healthz 200, and the deliverers deliver.
# Crashes (kill -9 of a deliverer, of a whole host) are test_hosts_pg_crash.
. "$(dirname "$0")/lib.sh"

export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_RATE_LIMIT_REQUESTS=0 \
	CONSUMA_MAX_PENDING_PER_HOST=0 CONSUMA_MAX_QUEUE_SIZE=100000 CONSUMA_MAX_QUEUE_SHARE=1 \
	CONSUMA_MAX_PER_HOST=16 CONSUMA_CLAIM_BATCH=16 CONSUMA_POLL_INTERVAL_MS=200 \
	CONSUMA_LOG_LEVEL=debug CONSUMA_LEASE_SECONDS=2

receiver_start r rport
hosts_up 2 --sync-procs 1 --api-procs 2
H1=${HOST_BASE[1]} H2=${HOST_BASE[2]}
json='Content-Type: application/json'

# ---- 1. one database: what one host accepts, the other reads ---------------
http POST "$H1/async" -H "$json" -H 'Idempotency-Key: across-hosts' \
	-d "{\"input_data\": \"read me\", \"callback_url\": \"http://127.0.0.1:$rport/ok~first\"}"
assert_http "host 1 accepts a job" 202
id=$(json_get "$HTTP_BODY" 'j["request_id"]')
http GET "$H2/requests/$id"
assert_http "host 2 reads host 1's job" 200
assert_eq "... the same record" "$id async http://127.0.0.1:$rport/ok~first" \
	"$(json_get "$HTTP_BODY" 'j["id"] + " " + j["mode"] + " " + j["callback_url"]')"
http GET "$H2/healthz"
assert_eq "host 2's /healthz: PostgreSQL, and host 1's job in its queue depth" "postgres 1" \
	"$(json_get "$HTTP_BODY" 'j["backend"] + " " + str(j["queue_depth"])')"
http POST "$H2/async" -H "$json" -H 'Idempotency-Key: across-hosts' \
	-d "{\"input_data\": \"read me\", \"callback_url\": \"http://127.0.0.1:$rport/ok~first\"}"
assert_eq "the key replayed at host 2 names host 1's job" "$id" "$(json_get "$HTTP_BODY" 'j["request_id"]')"
assert_eq "... and enqueues nothing" 1 "$(pgq "SELECT count(*) FROM requests WHERE mode = 'async'")"

# ---- 2. two deliverers, no crash: exactly once --------------------------------
host_deliverer 1
host_deliverer 2
# a storm split across the hosts, then slow callbacks that outlast a lease
python3 "$RECV" post --base "$H1" --n 1000 --concurrency 4 \
	--callback "http://127.0.0.1:$rport/slow/5" --out "$T/jobs1.txt" &
p1=$!
t_track $p1
python3 "$RECV" post --base "$H2" --n 1000 --concurrency 4 \
	--callback "http://127.0.0.1:$rport/slow/5" --out "$T/jobs2.txt"
assert_eq "1,000 jobs accepted by host 2" 0 $?
wait "$p1"
assert_eq "1,000 jobs accepted by host 1" 0 $?
python3 "$RECV" post --base "$H1" --n 8 --concurrency 1 \
	--callback "http://127.0.0.1:$rport/slow/2500" --out "$T/slow.txt"
assert_eq "8 slow jobs accepted" 0 $?
python3 "$RECV" wait --log "$T/r.jsonl" --count 2009 --timeout 120 >/dev/null
assert_eq "2,009 delivered" 0 $?
sleep 3 # a lease lost to the other deliverer would show as a second request by now
read -r total distinct <<<"$(python3 "$RECV" dupes --log "$T/r.jsonl")"
assert_eq "exactly once: 2,009 callbacks for 2,009 jobs" "2009 2009" "$total $distinct"
assert_eq "one attempt each in the database, all delivered" "2009 2009" \
	"$(pgq "SELECT count(*), count(*) FILTER (WHERE attempts = 1 AND callback_status = 'delivered')
		FROM requests WHERE mode = 'async'")"
n1=$(count_lines "$T/h1/deliverer.log" "event=callback.delivered")
n2=$(count_lines "$T/h2/deliverer.log" "event=callback.delivered")
echo "# host 1's deliverer delivered $n1, host 2's $n2"
assert_eq "the two deliverers' counts add up" 2009 $((n1 + n2))
assert_cmd "both deliverers took a share" test "$n1" -gt 0 -a "$n2" -gt 0
assert_eq "the server logged no deadlock (a deliverer's renewal against its own batch once did)" 0 \
	"$(count_lines "$T/pg/postgres.log" 'deadlock detected')"
assert_eq "two heartbeats, one per host" "h1 h2" \
	"$(pgq "SELECT string_agg(split_part(owner, ':', 1), ' ' ORDER BY owner) FROM heartbeats")"

# ---- 3. the server goes away and comes back -----------------------------------
pids_before=$(cat "$T"/h[12]/*.pid | sort | tr '\n' ' ')
pg_down "$T/pg" 2>/dev/null
codes='' retry_missing=0
for i in $(seq 20); do
	http POST "${HOST_BASE[i % 2 + 1]}/async" -H "$json" \
		-d "{\"input_data\": \"while down $i\", \"callback_url\": \"http://127.0.0.1:$rport/ok~down\"}"
	[ "$i" -gt 1 ] || echo "# POST /async, server down: $HTTP_CODE $HTTP_BODY"
	codes+="$HTTP_CODE "
	[ "$HTTP_CODE" != 503 ] || [[ "$(header_get Retry-After)" =~ ^[1-9][0-9]*$ ]] || retry_missing=$((retry_missing + 1))
done
assert_eq "server gone: 20 POST /async to both hosts answer 503" "$(printf '503 %.0s' $(seq 20))" "$codes"
assert_eq "... each with a Retry-After in seconds" 0 "$retry_missing"
for h in 1 2; do
	http GET "${HOST_BASE[h]}/healthz"
	assert_eq "server gone: host $h's /healthz is 503 degraded, db_connected false" "503 degraded False" \
		"$HTTP_CODE $(json_get "$HTTP_BODY" 'j["status"] + " " + str(j["db_connected"])')"
done
assert_eq "nothing was accepted while it was gone" 0 "$(count_lines "$T/r.jsonl" "~down")"

url_before=$PG_URL
pg_up "$T/pg"
assert_eq "pg.sh up on the same directory: the same URL (the port kept)" "$url_before" "$PG_URL"
post_ok() {
	http POST "$1/async" -H "$json" \
		-d "{\"input_data\": \"after $2\", \"callback_url\": \"http://127.0.0.1:$rport/ok~after\"}"
	[ "$HTTP_CODE" = 202 ]
}
for h in 1 2; do
	wait_for "post_ok '${HOST_BASE[h]}' $h" 30
	assert_eq "server back: host $h answers 202 again" 202 "$HTTP_CODE"
	wait_for "http GET '${HOST_BASE[h]}/healthz'; [ \"\$HTTP_CODE\" = 200 ]" 30
	assert_eq "server back: host $h's /healthz is 200" "200 ok" \
		"$HTTP_CODE $(json_get "$HTTP_BODY" 'j["status"]')"
done
python3 "$RECV" wait --log "$T/r.jsonl" --count 2011 --timeout 30 >/dev/null
assert_eq "server back: the deliverers deliver what was accepted since" 0 $?
assert_eq "no process was restarted" "$pids_before" "$(cat "$T"/h[12]/*.pid | sort | tr '\n' ' ')"
assert_eq "the database holds exactly the jobs answered 202" 2011 \
	"$(pgq "SELECT count(*) FROM requests WHERE mode = 'async'")"

for h in 1 2; do "$SRC/tools/stack.sh" down --dir "$T/h$h" 2>/dev/null; done
for h in 1 2; do assert_clean_logs "$T/h$h"; done
assert_eq "heartbeat rows removed on a clean stop" 0 "$(pgq "SELECT count(*) FROM heartbeats")"

t_done

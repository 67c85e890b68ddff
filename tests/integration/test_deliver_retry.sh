#!/usr/bin/env bash
# test_deliver_retry: the retry policy against a real receiver on loopback,
# through the real stack, with test-sized backoff and timeouts:
#   500,500,200 -> three attempts, codes recorded, spacing as the backoff says
#   410 -> one attempt, failed "gone";  404 -> one attempt, failed
#   429 + Retry-After: 2 -> the next attempt waits ~2 s
#   receiver down -> failed after CONSUMA_CALLBACK_MAX_RETRIES attempts, each
#   "connection refused";  hang -> each attempt ends at the timeout
#   close without answer -> retried;  302 -> not followed, one attempt
#   100 MiB answer -> cut at the byte cap, memory does not grow
#   a destination the deliverer's policy refuses -> failed at once, says why
# and --check-url verdicts for public addresses (nothing is sent).
. "$(dirname "$0")/lib.sh"

export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_RATE_LIMIT_REQUESTS=0 \
	CONSUMA_MAX_PENDING_PER_HOST=0 CONSUMA_CALLBACK_BACKOFF_BASE_MS=300 \
	CONSUMA_CALLBACK_BACKOFF_MAX_MS=3000 CONSUMA_CALLBACK_MAX_RETRIES=3 \
	CONSUMA_CALLBACK_TIMEOUT=1 CONSUMA_BREAKER_FAILURES=0 \
	CONSUMA_CALLBACK_MAX_RESPONSE_BYTES=65536

deliver_up
r=http://127.0.0.1:$rport
dead=$(free_port)
dpid=$(cat "$T/s/deliverer.pid")
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$dpid/status"; }
rss0=$(rss_kb)

submit() { # NAME URL: posts a job, sets id_NAME
	http POST "$BASE/async" -H 'Content-Type: application/json' \
		-d "{\"input_data\":\"$1\",\"iterations\":1,\"callback_url\":\"$2\"}"
	[ "$HTTP_CODE" = 202 ] || not_ok "POST /async for $1: $HTTP_CODE $HTTP_BODY"
	printf -v "id_$1" '%s' "$(json_get "$HTTP_BODY" 'j["request_id"]')"
}
submit seq "$r/seq/500,500,200"
submit gone "$r/status/410"
submit notfound "$r/status/404"
submit ra "$r/retry-after/429/2"
submit down "http://127.0.0.1:$dead/x"
submit hang "$r/hang/5"
submit close "$r/close"
submit redirect "$r/redirect"
submit big "$r/big/100"

unfinished() { sql "SELECT count(*) FROM requests WHERE mode='async' AND finished_at IS NULL"; }
wait_for '[ "$(unfinished)" = 0 ]' 30
assert_eq "every job finished within 30 s" 0 "$(unfinished)"

job() { sql "SELECT callback_status, attempts FROM requests WHERE id='$1'"; }
# attempts of a job, one field per attempt, in order: COLUMN per attempt
att() { sql "SELECT group_concat(v, '|') FROM (SELECT $2 AS v FROM attempts WHERE request_seq=(SELECT seq FROM requests WHERE id='$1') ORDER BY number)"; }

assert_eq "500,500,200: delivered on the third attempt" "delivered 3" "$(job "$id_seq")"
assert_eq "500,500,200: codes recorded" "500|500|200" "$(att "$id_seq" http_status)"
gaps=$(sql "SELECT group_concat(g, ' ') FROM (SELECT b.started_at - a.started_at AS g FROM attempts a JOIN attempts b ON b.request_seq=a.request_seq AND b.number=a.number+1 WHERE a.request_seq=(SELECT seq FROM requests WHERE id='$id_seq') ORDER BY a.number)")
read -r gap1 gap2 <<<"$gaps"
echo "# 500,500,200 spacing: ${gap1} ms, ${gap2} ms (backoff 300 ms doubling, +-25%)"
assert_cmd "first retry after 225..1300 ms (got $gap1)" test "$gap1" -ge 220 -a "$gap1" -le 1300
assert_cmd "second retry after 450..1800 ms (got $gap2)" test "$gap2" -ge 445 -a "$gap2" -le 1800
assert_eq "each retry's scheduled time recorded on the attempt" 2 \
	"$(sql "SELECT count(*) FROM attempts WHERE request_seq=(SELECT seq FROM requests WHERE id='$id_seq') AND next_attempt_at IS NOT NULL")"

assert_eq "410: one attempt, failed" "failed 1" "$(job "$id_gone")"
assert_match "410: reason says gone" "^gone" "$(sql "SELECT last_error FROM requests WHERE id='$id_gone'")"
assert_eq "404: one attempt, failed (4xx is permanent)" "failed 1" "$(job "$id_notfound")"

assert_eq "429: three attempts, then failed" "failed 3" "$(job "$id_ra")"
ra_gap=$(sql "SELECT b.started_at - a.started_at FROM attempts a JOIN attempts b ON b.request_seq=a.request_seq AND b.number=2 WHERE a.number=1 AND a.request_seq=(SELECT seq FROM requests WHERE id='$id_ra')")
echo "# 429 Retry-After 2: next attempt after ${ra_gap} ms"
assert_cmd "429 Retry-After: 2 waited 1950..3500 ms (got $ra_gap)" test "$ra_gap" -ge 1950 -a "$ra_gap" -le 3500

assert_eq "receiver down: failed after 3 attempts" "failed 3" "$(job "$id_down")"
assert_eq "receiver down: every attempt says connection refused" "1|1|1" \
	"$(att "$id_down" "error_message LIKE 'connection refused%'")"

assert_eq "hang: failed after 3 attempts" "failed 3" "$(job "$id_hang")"
assert_eq "hang: every attempt is a timeout" "timeout|timeout|timeout" "$(att "$id_hang" error_class)"
assert_eq "hang: every attempt ended at the 1 s timeout" "1|1|1" \
	"$(att "$id_hang" "duration_ms BETWEEN 950 AND 2500")"

assert_eq "close: retried, then failed" "failed 3" "$(job "$id_close")"
assert_eq "close: recorded as closed" "closed|closed|closed" "$(att "$id_close" error_class)"

assert_eq "302: one attempt, failed" "failed 1" "$(job "$id_redirect")"
assert_eq "302: status recorded" 302 "$(att "$id_redirect" http_status)"
assert_eq "302: the redirect was not followed" 0 "$(grep -c '"path": "/ok"' "$T/r.jsonl")"

assert_eq "100 MiB answer: the 200 counts, one attempt" "delivered 1" "$(job "$id_big")"
rss1=$(rss_kb)
echo "# deliverer RSS ${rss0} kB -> ${rss1} kB"
assert_cmd "100 MiB answer cut at the cap: RSS grew < 64 MiB" test $((rss1 - rss0)) -lt 65536

assert_eq "every attempt row is done" 0 "$(sql "SELECT count(*) FROM attempts WHERE state != 'done'")"

# A destination refused at delivery fails at once: intake (consuma-fcgi)
# still allows private callbacks, the restarted deliverer no longer does.
"$SRC/tools/stack.sh" stop-deliverer --dir "$T/s" >/dev/null
CONSUMA_ALLOW_PRIVATE_CALLBACKS=false "$SRC/tools/stack.sh" start-deliverer --dir "$T/s" >/dev/null
submit refused "$r/ok~refused"
finished() { sql "SELECT finished_at IS NOT NULL FROM requests WHERE id='$1'"; }
wait_for '[ "$(finished "$id_refused")" = 1 ]' 10
assert_eq "refused at delivery: one attempt, failed" "failed 1" "$(job "$id_refused")"
assert_eq "refused at delivery: the attempt says why" \
	"refused|destination refused: 127.0.0.1 is loopback" "$(att "$id_refused" "error_class || '|' || error_message")"
assert_eq "refused at delivery: nothing was sent" 0 "$(grep -c '~refused' "$T/r.jsonl")"

# --check-url: verdicts without sending anything.
unset CONSUMA_ALLOW_PRIVATE_CALLBACKS
cu() { "$BUILD/consuma-deliverer" --check-url "$1"; echo "rc=$?"; }
assert_match "--check-url allows a public address" "^allow rc=0$" "$(cu http://93.184.216.34/x | tr '\n' ' ' | sed 's/ $//')"
assert_match "--check-url denies RFC 1918" "^deny: .*10\.1\.2\.3.* rc=1$" "$(cu http://10.1.2.3/x | tr '\n' ' ' | sed 's/ $//')"
assert_match "--check-url denies loopback" "^deny: .*loopback.* rc=1$" "$(cu http://127.0.0.1:$rport/ok | tr '\n' ' ' | sed 's/ $//')"
assert_match "--check-url denies a userinfo URL" "^deny: .* rc=1$" "$(cu 'http://a@93.184.216.34/' | tr '\n' ' ' | sed 's/ $//')"
assert_eq "--check-url sent nothing to the receiver" 0 "$(grep -c '"path": "/ok"' "$T/r.jsonl")"

t_done

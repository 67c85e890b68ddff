#!/usr/bin/env bash
# test_metrics: GET /metrics on live stacks.
#  1. a small storm (consuma-storm, both modes) against a stack whose
#     per-host pending bound (and one compute worker) makes it refuse some
#     jobs: promtool accepts
#     the scrape; accepted, delivered, /sync completed and the refusals
#     agree with what the storm counted; no series appeared with traffic;
#     the histograms count what happened; deliverer gauges are there;
#  2. every refusal reason on a second stack, each provoked an exact number
#     of times from its own client address (X-Forwarded-For from a trusted
#     proxy): rate_limit, bad_request, body_too_large, callback_url,
#     client_share, host_pending, queue_full; /metrics itself is never rate
#     limited; without a deliverer the oldest pending job ages.
. "$(dirname "$0")/lib.sh"

STORM=$BUILD/consuma-storm
if ! command -v promtool >/dev/null; then
	not_ok "promtool missing (Debian package prometheus; tools/test.sh installs it)"
	t_done
fi

scrape() { # FILE: the body of GET /metrics into FILE, headers into FILE.h
	curl -s -m 30 -D "$1.h" -o "$1" "$BASE/metrics"
}
# value FILE SERIES: the sample of SERIES (name with labels, exactly), or "absent"
value() {
	awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print "absent" }' "$1"
}
# sum FILE REGEX: the sum of the samples whose series matches REGEX
sum() {
	awk -v re="$2" '$1 ~ re { s += $2 } END { printf "%d\n", s }' "$1"
}
py() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# ---- 1. a storm --------------------------------------------------------------
CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_RATE_LIMIT_REQUESTS=0 \
	CONSUMA_MAX_PENDING_PER_HOST=5 CONSUMA_HEARTBEAT_STALE_SECONDS=60 CONSUMA_MAX_WORKERS=1 \
	stack_up "$T/s" --api-procs 2 --sync-procs 2

# the deliverer's first heartbeat
wait_for 'scrape "$T/before.prom"; [ "$(value "$T/before.prom" consuma_deliverers_alive)" = 1 ]' 10
assert_match "Content-Type is the text exposition 0.0.4" '^text/plain; version=0.0.4' \
	"$(tr -d '\r' <"$T/before.prom.h" | awk -F': ' 'tolower($1) == "content-type" { print $2 }')"
assert_cmd "promtool accepts a scrape of an idle stack" promtool check metrics <"$T/before.prom"

rc=0
"$STORM" --server-url "$BASE" --num-requests 40 --concurrency 8 --mode both \
	--iterations 100000 --callback-port "$(free_port)" --callback-wait 60 --timeout 60 \
	--no-progress --json "$T/storm.json" >"$T/storm.out" 2>&1 || rc=$?
if [ ! -s "$T/storm.json" ]; then
	not_ok "the storm wrote no JSON (exit $rc)"
	cat "$T/storm.out" >&2
	t_done
fi
# the deliverer's last writes: every accepted job finished, and counted
# (an attempt is counted just after the commit that finishes its job)
received=$(py "$T/storm.json" 'j["async"]["callbacks"]["received"]')
all_counted() {
	scrape "$T/after.prom"
	[ "$(value "$T/after.prom" consuma_queue_depth)" = 0 ] &&
		[ "$(sum "$T/after.prom" '^consuma_callback_attempts_total[{]outcome="delivered",')" -ge "$received" ]
}
wait_for all_counted 30
promtool check metrics <"$T/after.prom" >"$T/promtool.out" 2>&1 && ok "promtool accepts the scrape after the storm" ||
	{ not_ok "promtool refused the scrape"; cat "$T/promtool.out" >&2; }

accepted=$(py "$T/storm.json" 'j["async"]["succeeded"]')
assert_eq "jobs accepted = the storm's 202s" "$accepted" "$(value "$T/after.prom" consuma_jobs_accepted_total)"
assert_eq "the storm got some 202s" true "$([ "$accepted" -gt 0 ] && echo true)"
assert_eq "callbacks delivered = the storm's callbacks received" "$received" \
	"$(sum "$T/after.prom" '^consuma_callback_attempts_total[{]outcome="delivered",')"
assert_eq "every delivered attempt was a 2xx" \
	"$(sum "$T/after.prom" '^consuma_callback_attempts_total[{]outcome="delivered",')" \
	"$(value "$T/after.prom" 'consuma_callback_attempts_total{outcome="delivered",http_class="2xx"}')"
assert_eq "e2e histogram counts each delivered job" "$accepted" \
	"$(value "$T/after.prom" consuma_callback_e2e_seconds_count)"
assert_eq "e2e +Inf bucket = count" "$accepted" \
	"$(value "$T/after.prom" 'consuma_callback_e2e_seconds_bucket{le="+Inf"}')"
assert_eq "intake jobs made durable = accepted" "$accepted" "$(value "$T/after.prom" consuma_intake_jobs_total)"
fsyncs=$(value "$T/after.prom" consuma_intake_fsyncs_total)
assert_eq "1 <= intake fsyncs <= jobs" true "$([ "$fsyncs" -ge 1 ] && [ "$fsyncs" -le "$accepted" ] && echo true)"
assert_eq "host_pending refusals = the storm's async 429s" \
	"$(py "$T/storm.json" 'j["async"]["failures"]["http_429"]')" \
	"$(value "$T/after.prom" 'consuma_requests_refused_total{reason="host_pending"}')"
assert_eq "the bound refused some jobs (the check above is not 0 = 0)" true \
	"$([ "$(value "$T/after.prom" 'consuma_requests_refused_total{reason="host_pending"}')" -gt 0 ] && echo true)"
assert_eq "queue_full refusals = the storm's async 503s" \
	"$(py "$T/storm.json" 'j["async"]["failures"]["http_503"]')" \
	"$(value "$T/after.prom" 'consuma_requests_refused_total{reason="queue_full"}')"
assert_eq "/sync completed = the storm's /sync successes" \
	"$(py "$T/storm.json" 'j["sync"]["succeeded"]')" \
	"$(value "$T/after.prom" 'consuma_sync_requests_total{outcome="completed"}')"
assert_eq "/sync refused = the storm's /sync 429s and 503s" \
	"$(py "$T/storm.json" 'j["sync"]["failures"]["http_429"] + j["sync"]["failures"]["http_503"]')" \
	"$(value "$T/after.prom" 'consuma_sync_requests_total{outcome="refused"}')"
assert_eq "sync_saturated refusals = the storm's /sync 503s" \
	"$(py "$T/storm.json" 'j["sync"]["failures"]["http_503"]')" \
	"$(value "$T/after.prom" 'consuma_requests_refused_total{reason="sync_saturated"}')"
assert_eq "the sync duration histogram counts every completed /sync" \
	"$(py "$T/storm.json" 'j["sync"]["succeeded"]')" \
	"$(value "$T/after.prom" consuma_sync_duration_seconds_count)"
series() { grep -v '^#' "$1" | awk '{ print $1 }' | sort; }
assert_eq "no series appeared with traffic (bounded labels)" "$(series "$T/before.prom")" "$(series "$T/after.prom")"
assert_eq "one deliverer alive" 1 "$(value "$T/after.prom" consuma_deliverers_alive)"
age=$(value "$T/after.prom" consuma_deliverer_heartbeat_age_seconds)
assert_eq "heartbeat age is under the stale bound" true \
	"$(python3 -c "import sys; print('true' if 0 <= float(sys.argv[1]) < 60 else sys.argv[1])" "$age")"
assert_eq "no job pending, oldest pending age 0" 0 "$(value "$T/after.prom" consuma_oldest_pending_age_seconds)"
assert_eq "the metrics zone is shared and up" 1 "$(value "$T/after.prom" consuma_metrics_zone_up)"
"$SRC/tools/stack.sh" down --dir "$T/s" >/dev/null 2>&1
assert_clean_logs "$T/s"

# ---- 2. every refusal reason, exactly ---------------------------------------------
CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_TRUSTED_PROXIES=127.0.0.1/32 \
	CONSUMA_RATE_LIMIT_REQUESTS=5 CONSUMA_RATE_LIMIT_WINDOW=600 CONSUMA_MAX_BODY_BYTES=1024 \
	CONSUMA_MAX_QUEUE_SIZE=2 CONSUMA_MAX_QUEUE_SHARE=0.5 CONSUMA_MAX_PENDING_PER_HOST=1 \
	stack_up "$T/r" --api-procs 1 --sync-procs 1 --no-deliverer
as() { # CLIENT METHOD PATH [curl args]: one request from CLIENT, sets HTTP_CODE
	local client=$1 method=$2 path=$3; shift 3
	http "$method" "$BASE$path" -H "X-Forwarded-For: $client" "$@"
}
job() { # URL
	printf '{"input_data":"x","iterations":1,"callback_url":"%s"}' "$1"
}
J=(-H 'Content-Type: application/json')
as 198.51.100.1 POST /sync "${J[@]}" -d '{"input_data":1}'
assert_eq "422 for a bad body" 422 "$HTTP_CODE"
as 198.51.100.1 POST /sync -H 'Content-Type: text/plain' -d '{}'
assert_eq "415 for a body that is not JSON" 415 "$HTTP_CODE"
as 198.51.100.1 POST /sync "${J[@]}" -d "{\"input_data\":\"$(head -c 2000 /dev/zero | tr '\0' a)\"}"
assert_eq "413 for a body over the cap" 413 "$HTTP_CODE"
as 198.51.100.1 POST /async "${J[@]}" -d "$(job ftp://127.0.0.1/x)"
assert_eq "400 for a refused callback URL" 400 "$HTTP_CODE"
for _ in 1 2 3 4 5 6 7; do as 198.51.100.2 GET /requests; done
assert_eq "the 6th and 7th request of one client are rate limited" 429 "$HTTP_CODE"
as 198.51.100.3 POST /async "${J[@]}" -d "$(job http://127.0.0.1:9/a)"
assert_eq "first job accepted" 202 "$HTTP_CODE"
as 198.51.100.3 POST /async "${J[@]}" -d "$(job http://127.0.0.2:9/b)"
assert_eq "the same client's second job is over its share" 429 "$HTTP_CODE"
as 198.51.100.4 POST /async "${J[@]}" -d "$(job http://127.0.0.1:9/c)"
assert_eq "a second job for the same host is over the host's bound" 429 "$HTTP_CODE"
as 198.51.100.5 POST /async "${J[@]}" -d "$(job http://127.0.0.2:9/d)"
assert_eq "another host's job is accepted" 202 "$HTTP_CODE"
as 198.51.100.6 POST /async "${J[@]}" -d "$(job http://127.0.0.2:9/e)"
assert_eq "then the queue is full" 503 "$HTTP_CODE"
for _ in $(seq 10); do as 198.51.100.2 GET /metrics; done
assert_eq "/metrics is not rate limited (client over its limit)" 200 "$HTTP_CODE"
printf '%s\n' "$HTTP_BODY" >"$T/refusals.prom"
assert_cmd "promtool accepts it" promtool check metrics <"$T/refusals.prom"
for pair in rate_limit=2 bad_request=2 body_too_large=1 callback_url=1 client_share=1 \
	host_pending=1 queue_full=1 sync_saturated=0; do
	assert_eq "refused{reason=${pair%=*}}" "${pair#*=}" \
		"$(value "$T/refusals.prom" "consuma_requests_refused_total{reason=\"${pair%=*}\"}")"
done
assert_eq "accepted 2" 2 "$(value "$T/refusals.prom" consuma_jobs_accepted_total)"
assert_eq "/sync: 3 invalid (422, 415, 413)" 3 "$(value "$T/refusals.prom" 'consuma_sync_requests_total{outcome="invalid"}')"
assert_eq "queue depth 2" 2 "$(value "$T/refusals.prom" consuma_queue_depth)"
assert_eq "no deliverer ever beat: no heartbeat age" absent \
	"$(value "$T/refusals.prom" consuma_deliverer_heartbeat_age_seconds)"
assert_eq "no deliverer alive" 0 "$(value "$T/refusals.prom" consuma_deliverers_alive)"
a1=$(value "$T/refusals.prom" consuma_oldest_pending_age_seconds)
sleep 1.2
scrape "$T/later.prom"
a2=$(value "$T/later.prom" consuma_oldest_pending_age_seconds)
assert_eq "the oldest pending job ages ($a1 s, then $a2 s)" true \
	"$(python3 -c "import sys; a, b = map(float, sys.argv[1:]); print('true' if 0 < a and b >= a + 1 else 'false')" "$a1" "$a2")"
"$SRC/tools/stack.sh" down --dir "$T/r" >/dev/null 2>&1
assert_clean_logs "$T/r"
t_done

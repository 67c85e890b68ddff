#!/usr/bin/env bash
# test_deliver_origin: no head-of-line blocking inside one origin (issue 11,
# item 1). The issue's reproducer: 10 jobs to /hang (the receiver never
# answers within the timeout), right after them 50 to /ok on the same
# receiver. Once the breaker opens, a half-open trial used to be one of the
# old failing jobs (acceptance order), so each cool-down burnt one bad
# attempt and reopened the breaker: 8 of the 50 healthy callbacks were
# still missing after 120 s. Now a never-tried job is the trial and tried
# jobs take at most half of an origin's slots: every healthy callback
# arrives within a few cool-downs.
#
# Then two services on different ports of one host: the hanging one's
# open breaker and full slots do not hold up the other one's deliveries
# (slots, breaker and claim exclusions are per origin). Last, never-tried
# jobs to a path that is failing do not take the trial from healthy ones,
# and (item 4) a capped Retry-After is recorded as the delay applied.
. "$(dirname "$0")/lib.sh"

COOLDOWN_MS=3000
export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_RATE_LIMIT_REQUESTS=0 \
	CONSUMA_CALLBACK_TIMEOUT=2 CONSUMA_BREAKER_COOLDOWN_MS=$COOLDOWN_MS \
	CONSUMA_CALLBACK_BACKOFF_BASE_MS=500 CONSUMA_CALLBACK_BACKOFF_MAX_MS=4000

deliver_up

# arrived ACCEPTED LOG: how many jobs of ACCEPTED (receiver.py post's
# output) have reached LOG, and the worst accept->arrival latency in ms.
arrived() {
	python3 - "$1" "$2" <<'PY'
import json, sys
acc = {l.split()[0]: float(l.split()[1]) for l in open(sys.argv[1])}
first = {}
try:
    for line in open(sys.argv[2]):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        rid = e["headers"].get("webhook-id")
        if rid in acc and rid not in first:
            first[rid] = e["t"]
except FileNotFoundError:
    pass
lat = [(first[r] - acc[r]) * 1000 for r in first]
print(len(first), int(max(lat)) if lat else -1)
PY
}

# wait_arrived ACCEPTED LOG WANT DEADLINE_S: polls until WANT arrived or
# DEADLINE_S seconds after the last acceptance; sets GOT and LAT_MAX.
wait_arrived() {
	local accepted=$1 log=$2 want=$3 last_acc left
	last_acc=$(cut -d' ' -f2 "$accepted" | sort -n | tail -n 1)
	left=$(awk -v a="$last_acc" -v d="$4" -v now="$(date +%s.%N)" 'BEGIN { print a + d - now }')
	wait_for 'read -r GOT LAT_MAX <<<"$(arrived "$accepted" "$log")"; [ "$GOT" -ge "$want" ]' "$left"
}

# ---- the reproducer: /hang then /ok on one receiver --------------------------
python3 "$RECV" post --base "$BASE" --n 10 --concurrency 10 --iterations 1000 \
	--callback "http://127.0.0.1:$rport/hang" --out "$T/hang.txt"
python3 "$RECV" post --base "$BASE" --n 50 --concurrency 4 --iterations 1000 \
	--callback "http://127.0.0.1:$rport/ok" --out "$T/ok.txt"
assert_eq "60 jobs accepted" 60 "$(cat "$T/hang.txt" "$T/ok.txt" | wc -l)"

# The first wave of /hang jobs times out after 2 s and opens the breaker;
# the healthy jobs then wait one cool-down, the trial is one of them, and
# the rest follow. Five cool-downs (15 s) leave room for a second opening
# and a loaded machine; before the fix 42 of 50 had arrived after 20 s.
bound_s=$((5 * COOLDOWN_MS / 1000))
wait_arrived "$T/ok.txt" "$T/r.jsonl" 50 "$bound_s"
echo "# healthy callbacks: $GOT of 50 within ${bound_s} s of the last acceptance; worst accept->arrival ${LAT_MAX} ms"
assert_eq "all 50 healthy callbacks to the origin arrive within ${bound_s} s while /hang fails" 50 "$GOT"
# Whether the healthy jobs met an open breaker depends on how the timeouts
# fell into the loop's turns; the bad jobs alone open it soon after.
wait_for 'grep -q "event=breaker.open origin=\"http://127.0.0.1:$rport\"" "$T/s/deliverer.log"' 15
assert_match "the breaker opened on the hanging URLs, keyed by origin" \
	"event=breaker.open origin=\"http://127.0.0.1:$rport\"" "$(cat "$T/s/deliverer.log")"
hang_ids=$(cut -d' ' -f1 "$T/hang.txt" | sed "s/.*/'&'/" | paste -sd,)
assert_match "a retry that ended while the breaker was open says it was held (and how long)" \
	"retry held [0-9]+ ms: the destination's circuit breaker is open" \
	"$(sql "SELECT error_message FROM attempts WHERE request_seq IN (SELECT seq FROM requests WHERE id IN ($hang_ids)) AND error_message LIKE '%retry held%' LIMIT 1")"
ok_ids=$(cut -d' ' -f1 "$T/ok.txt" | sed "s/.*/'&'/" | paste -sd,)
assert_eq "every healthy job is delivered at its first attempt" 50 \
	"$(sql "SELECT count(*) FROM requests WHERE id IN ($ok_ids) AND callback_status='delivered' AND attempts=1")"

# ---- two origins on one host -------------------------------------------------
# H hangs on every path; B answers. Both are 127.0.0.1: one host name, two
# ports. H's jobs fill its slots and open its breaker; B's callbacks still
# arrive as they would alone (well below one timeout, let alone a cool-down).
receiver_start b bport
python3 "$RECV" post --base "$BASE" --n 12 --concurrency 1 \
	--callback "http://127.0.0.1:$rport/hang/5" --out "$T/hang2.txt"
wait_for '[ "$(count_lines "$T/r.jsonl" "\"/hang/5\"")" -ge 8 ]' 10
python3 "$RECV" post --base "$BASE" --n 20 --concurrency 1 \
	--callback "http://127.0.0.1:$bport/ok" --out "$T/b.txt"
wait_arrived "$T/b.txt" "$T/b.jsonl" 20 10
echo "# other port of the same host: $GOT of 20, worst accept->arrival ${LAT_MAX} ms"
assert_eq "20 callbacks to the other port arrive while the first port hangs" 20 "$GOT"

# ---- many never-tried jobs to a failing path, then healthy ones ---------------
# 24 jobs to /status/500 on a third receiver open its breaker; 5 jobs to /ok
# accepted while it is open. The trial must not walk through the 500s one
# per cool-down (they are never-tried, but their path has failed: suspect):
# a healthy job is the trial at the first cool-down's end.
receiver_start c cport
opened() { grep -c "event=breaker.open origin=\"http://127.0.0.1:$cport\"" "$T/s/deliverer.log"; }
python3 "$RECV" post --base "$BASE" --n 24 --concurrency 8 \
	--callback "http://127.0.0.1:$cport/status/500" --out "$T/c500.txt"
wait_for '[ "$(opened)" -ge 1 ]' 10
assert_cmd "the 500s opened the third receiver's breaker" test "$(opened)" -ge 1
python3 "$RECV" post --base "$BASE" --n 5 --concurrency 1 \
	--callback "http://127.0.0.1:$cport/ok" --out "$T/cok.txt"
bound_s=$((3 * COOLDOWN_MS / 1000))
wait_arrived "$T/cok.txt" "$T/c.jsonl" 5 "$bound_s"
echo "# healthy jobs behind 24 failing ones: $GOT of 5 within ${bound_s} s; worst accept->arrival ${LAT_MAX} ms"
assert_eq "healthy jobs are trialled ahead of never-tried jobs to a failing path" 5 "$GOT"

# ---- item 4: a capped Retry-After is recorded as the delay applied ----------
python3 "$RECV" post --base "$BASE" --n 1 --concurrency 1 \
	--callback "http://127.0.0.1:$bport/retry-after/429/3600" --out "$T/ra.txt"
ra_id=$(cut -d' ' -f1 "$T/ra.txt")
ra_msg() { sql "SELECT coalesce(error_message, '') FROM attempts WHERE number = 1 AND request_seq = (SELECT seq FROM requests WHERE id = '$ra_id') AND state = 'done'"; }
wait_for '[ -n "$(ra_msg)" ]' 10
assert_eq "Retry-After: 3600 capped at CONSUMA_CALLBACK_BACKOFF_MAX_MS: the attempt names the delay applied" \
	"HTTP 429 (Retry-After 3600000 ms, capped: retrying in 4000 ms)" "$(ra_msg)"

stack_down_ok=0
"$SRC/tools/stack.sh" down --dir "$T/s" >/dev/null 2>&1 && stack_down_ok=1
assert_eq "stack stops cleanly" 1 "$stack_down_ok"
assert_clean_logs "$T/s"

t_done

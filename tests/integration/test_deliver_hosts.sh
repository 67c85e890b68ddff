#!/usr/bin/env bash
# test_deliver_hosts: per-destination bounds (issue 4, item 8).
#  - At most CONSUMA_MAX_PER_HOST deliveries in flight to one host, and a
#    host that hangs does not delay callbacks to another host.
#  - After CONSUMA_BREAKER_FAILURES consecutive failures the host's jobs
#    wait out CONSUMA_BREAKER_COOLDOWN_MS without burning attempts; then one
#    trial delivery.
. "$(dirname "$0")/lib.sh"

export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_RATE_LIMIT_REQUESTS=0 \
	CONSUMA_MAX_PENDING_PER_HOST=0 CONSUMA_MAX_PER_HOST=2 CONSUMA_BREAKER_FAILURES=2 \
	CONSUMA_BREAKER_COOLDOWN_MS=2000 CONSUMA_CALLBACK_BACKOFF_BASE_MS=10000 \
	CONSUMA_CALLBACK_BACKOFF_MAX_MS=20000

deliver_up

# ---- a hanging host does not hold up another host ------------------------
python3 "$RECV" post --base "$BASE" --n 6 --concurrency 1 \
	--callback "http://localhost:$rport/hang/4" --out "$T/hang.txt"
wait_for '[ "$(count_lines "$T/r.jsonl" "\"/hang/4\"")" -ge 2 ]' 10
python3 "$RECV" post --base "$BASE" --n 20 --concurrency 1 \
	--callback "http://127.0.0.1:$rport/ok" --out "$T/fast.txt"
python3 "$RECV" wait --log "$T/r.jsonl" --count 22 --timeout 10 >/dev/null
assert_eq "20 callbacks to 127.0.0.1 arrive while localhost hangs" 0 $?
read -r hangs_seen lat_max lat_p50 <<<"$(python3 - "$T/fast.txt" "$T/r.jsonl" <<'PY'
import json, sys
acc = {l.split()[0]: float(l.split()[1]) for l in open(sys.argv[1])}
lat, hangs, first_hang = [], 0, None
entries = [json.loads(l) for l in open(sys.argv[2])]
for e in entries:
    if e["path"] == "/hang/4":
        first_hang = e["t"] if first_hang is None else min(first_hang, e["t"])
last_ok = 0
for e in entries:
    rid = e["headers"].get("webhook-id")
    if rid in acc:
        lat.append((e["t"] - acc[rid]) * 1000)
        last_ok = max(last_ok, e["t"])
hangs = sum(1 for e in entries if e["path"] == "/hang/4" and e["t"] <= last_ok)
lat.sort()
print(hangs, int(lat[-1]), int(lat[len(lat) // 2]))
PY
)"
echo "# accept->callback to the healthy host while the other hangs: p50 ${lat_p50} ms, max ${lat_max} ms"
assert_cmd "no head-of-line blocking: every healthy callback within 1 s, far below the 4 s hang (max ${lat_max} ms)" \
	test "$lat_max" -lt 1000
assert_eq "at most CONSUMA_MAX_PER_HOST=2 in flight to the hanging host" 2 "$hangs_seen"

# ---- circuit breaker -------------------------------------------------------
dead=$(free_port)
python3 "$RECV" post --base "$BASE" --n 6 --concurrency 1 \
	--callback "http://[::1]:$dead/x" --out "$T/dead.txt"
ids=$(cut -d' ' -f1 "$T/dead.txt" | sed "s/.*/'&'/" | paste -sd,)
opens() { grep 'event=breaker.open' "$T/s/deliverer.log" | grep -cF "[::1]:$dead"; }
# The breaker opens; after the cool-down one trial fails and opens it again
# for another 2 s, in which the attempts are counted. Those before the trial
# all started before the first opening, the trial at least the cool-down
# after the last of them (connection refused ends an attempt at once).
wait_for '[ "$(opens)" -ge 1 ]' 20
wait_for '[ "$(opens)" -ge 2 ]' 20
starts=$(sql "SELECT started_at FROM attempts WHERE request_seq IN (SELECT seq FROM requests WHERE id IN ($ids)) ORDER BY started_at")
untouched=$(sql "SELECT count(*) FROM requests WHERE id IN ($ids) AND attempts=0")
read -r a1 trials gap <<<"$(awk 'NR > 1 && !gap && $1 - prev >= 1000 { gap = $1 - prev }
	{ if (gap) t++; else a++; prev = $1 } END { print a + 0, t + 0, gap + 0 }' <<<"$starts")"
echo "# breaker: $a1 attempts, then $trials trial(s) ${gap} ms later; jobs without an attempt: $untouched"
# Two failures open the breaker; a delivery already in flight then (at most
# MAX_PER_HOST - 1 = 1) still ends: 2 or 3 attempts, one per job.
assert_cmd "the breaker opened after 2 failures (2..3 attempts, got $a1)" test "$a1" -ge 2 -a "$a1" -le 3
assert_eq "the other jobs wait without burning an attempt" $((6 - a1 - trials)) "$untouched"
assert_eq "after the 2 s cool-down exactly one trial delivery" 1 "$trials"
assert_cmd "the trial waited the cool-down (${gap} ms after the last attempt)" test "$gap" -ge 1950
assert_match "breaker opening logged" "event=breaker.open" "$(cat "$T/s/deliverer.log")"
assert_eq "waiting jobs are not failed" 0 \
	"$(sql "SELECT count(*) FROM requests WHERE id IN ($ids) AND callback_status='failed'")"

t_done

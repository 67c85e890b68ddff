#!/usr/bin/env bash
# test_deliver_basic: 500 async jobs through the real stack (lighttpd,
# consuma-fcgi, consuma-deliverer, SQLite) to a real receiver on loopback.
# Every job is called back once, with the result /sync gives for the same
# input, one attempt in its trace, and a Standard Webhooks signature that an
# independent implementation (Python's hmac) verifies. Then the idle
# deliverer's CPU time over 10 s stays near zero.
. "$(dirname "$0")/lib.sh"

export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_RATE_LIMIT_REQUESTS=0 \
	CONSUMA_MAX_PENDING_PER_HOST=0 CONSUMA_MAX_QUEUE_SIZE=100000 CONSUMA_MAX_QUEUE_SHARE=1
secret_raw=$(head -c 32 /dev/urandom | base64 -w0)
export CONSUMA_CALLBACK_SECRET="whsec_$secret_raw"

deliver_up

python3 "$RECV" post --base "$BASE" --n 500 --concurrency 8 --sync \
	--callback "http://127.0.0.1:$rport/ok" --out "$T/jobs.txt"
assert_eq "500 jobs accepted (and 500 /sync answered)" 0 $?

python3 "$RECV" wait --log "$T/r.jsonl" --count 500 --timeout 90 >/dev/null
assert_eq "500 distinct callbacks arrived" 0 $?
# The last outcomes are written right after the answers.
delivered_once() { sql "SELECT count(*) FROM requests WHERE mode='async' AND status='completed' AND callback_status='delivered' AND attempts=1 AND finished_at IS NOT NULL AND lease_owner IS NULL"; }
wait_for '[ "$(delivered_once)" = 500 ]' 30

check=$(python3 - "$T/jobs.txt" "$T/r.jsonl" "$secret_raw" <<'PY'
import base64, hashlib, hmac, json, sys
jobs = {}
for line in open(sys.argv[1]):
    rid, _, inp, res = line.split()
    jobs[rid] = res
key = base64.b64decode(sys.argv[3])
seen, bad_result, bad_sig, bad_hdr = {}, 0, 0, 0
for line in open(sys.argv[2]):
    e = json.loads(line)
    h, body = e["headers"], e["body"]
    b = json.loads(body)
    rid = b["request_id"]
    seen[rid] = seen.get(rid, 0) + 1
    if jobs.get(rid) != b["result"] or b["status"] != "completed":
        bad_result += 1
    msg = ("%s.%s.%s" % (h["webhook-id"], h["webhook-timestamp"], body)).encode()
    want = "v1," + base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()
    if want not in h.get("webhook-signature", "").split(" "):
        bad_sig += 1
    if (h.get("webhook-id") != rid or h.get("x-request-id") != rid
            or h.get("x-attempt-number") != "1" or h.get("content-type") != "application/json"
            or not h.get("user-agent", "").startswith("consuma/")):
        bad_hdr += 1
    for k in ("iterations", "duration_ms", "created_at", "completed_at"):
        if k not in b:
            bad_hdr += 1
print(len(jobs), len(seen), sum(1 for v in seen.values() if v > 1),
      sum(1 for r in jobs if r not in seen), bad_result, bad_sig, bad_hdr)
PY
)
read -r njobs nseen ndup nmissing nbadres nbadsig nbadhdr <<<"$check"
assert_eq "every accepted job was called back" "500 500 0" "$njobs $nseen $nmissing"
assert_eq "no duplicate callbacks" 0 "$ndup"
assert_eq "every callback result equals /sync's" 0 "$nbadres"
assert_eq "every signature verifies with Python's hmac" 0 "$nbadsig"
assert_eq "headers and body fields as DESIGN.md says" 0 "$nbadhdr"

assert_eq "500 delivered with one attempt each" 500 "$(delivered_once)"
assert_eq "one attempt row each, 200, done" "500 500" \
	"$(sql "SELECT count(*), sum(state='done' AND http_status=200 AND number=1) FROM attempts")"
assert_eq "queue depth back to 0" 0 "$(sql "SELECT value FROM counters WHERE name='queue_depth'")"

http GET "$BASE/requests/$(head -n1 "$T/jobs.txt" | cut -d' ' -f1)"
assert_eq "GET /requests/{id} shows one delivered attempt" "delivered 1 200" \
	"$(json_get "$HTTP_BODY" 'j["callback_status"] + " " + str(len(j["delivery_trace"])) + " " + str(j["delivery_trace"][0]["http_status"])')"

# Idle: no busy polling. utime+stime (clock ticks) of the deliverer over 10 s.
dpid=$(cat "$T/s/deliverer.pid")
ticks() { awk '{print $14 + $15}' "/proc/$dpid/stat"; }
sleep 1
t0=$(ticks)
sleep 10
t1=$(ticks)
hz=$(getconf CLK_TCK)
used_ms=$(( (t1 - t0) * 1000 / hz ))
echo "# idle deliverer used ${used_ms} ms of CPU in 10 s"
assert_cmd "idle deliverer CPU over 10 s < 200 ms (got ${used_ms} ms)" test "$used_ms" -lt 200

t_done

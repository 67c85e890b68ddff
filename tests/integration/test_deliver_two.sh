#!/usr/bin/env bash
# test_deliver_two: two consuma-deliverer processes on one database, no
# crash: leases keep them apart, so every job is delivered exactly once, and
# both share the work. Leases last 1 s here, so the callbacks that take
# 2.5 s are delivered once only because the holder renews its leases.
. "$(dirname "$0")/lib.sh"

export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_RATE_LIMIT_REQUESTS=0 \
	CONSUMA_MAX_PENDING_PER_HOST=0 CONSUMA_MAX_QUEUE_SIZE=100000 CONSUMA_MAX_QUEUE_SHARE=1 \
	CONSUMA_MAX_PER_HOST=16 CONSUMA_CLAIM_BATCH=16 CONSUMA_POLL_INTERVAL_MS=50 \
	CONSUMA_LOG_LEVEL=debug CONSUMA_LEASE_SECONDS=1

deliver_up --no-deliverer

# The first deliverer hears the doorbell; the second polls every 50 ms.
CONSUMA_DATABASE_PATH=$db CONSUMA_DOORBELL_PATH=$T/s/doorbell.sock \
	"$BUILD/consuma-deliverer" 2>"$T/d1.log" &
d1=$!
t_track $d1
CONSUMA_DATABASE_PATH=$db CONSUMA_DOORBELL_PATH=$T/d2.sock \
	"$BUILD/consuma-deliverer" 2>"$T/d2.log" &
d2=$!
t_track $d2
wait_for 'grep -q deliverer.started "$T/d1.log" && grep -q deliverer.started "$T/d2.log"' 10

python3 "$RECV" post --base "$BASE" --n 1000 --concurrency 8 \
	--callback "http://127.0.0.1:$rport/slow/5" --out "$T/jobs.txt"
assert_eq "1,000 jobs accepted" 0 $?
python3 "$RECV" post --base "$BASE" --n 8 --concurrency 1 \
	--callback "http://127.0.0.1:$rport/slow/2500" --out "$T/slow.txt"
assert_eq "8 slow jobs accepted" 0 $?
python3 "$RECV" wait --log "$T/r.jsonl" --count 1008 --timeout 90 >/dev/null
assert_eq "1,008 delivered" 0 $?
sleep 3 # a lease lost to the other deliverer would show as a second request by now
read -r total distinct <<<"$(python3 "$RECV" dupes --log "$T/r.jsonl")"
assert_eq "exactly once: 1,008 callbacks for 1,008 jobs" "1008 1008" "$total $distinct"
assert_eq "one attempt each in the database" "1008 1008" \
	"$(sql "SELECT count(*), sum(attempts=1 AND callback_status='delivered') FROM requests WHERE mode='async'")"
n1=$(grep -c "event=callback.delivered" "$T/d1.log")
n2=$(grep -c "event=callback.delivered" "$T/d2.log")
echo "# deliverer 1 delivered $n1, deliverer 2 delivered $n2"
assert_eq "the two deliverers' counts add up" 1008 $((n1 + n2))
assert_cmd "both deliverers took a share" test "$n1" -gt 0 -a "$n2" -gt 0

kill -TERM "$d1" "$d2"
wait "$d1"
assert_eq "deliverer 1 exits 0 on SIGTERM" 0 $?
wait "$d2"
assert_eq "deliverer 2 exits 0 on SIGTERM" 0 $?
assert_eq "heartbeat rows removed on a clean stop" 0 "$(sql "SELECT count(*) FROM heartbeats")"

t_done

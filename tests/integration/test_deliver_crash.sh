#!/usr/bin/env bash
# test_deliver_crash: a 202 is a promise that survives the deliverer.
#  1. kill -9 of the deliverer in the middle of a 1,000-job storm, then a
#     restart: every accepted job is delivered, duplicates are bounded by
#     what was in flight (CONSUMA_MAX_PER_HOST to the one receiver), no job
#     is left running and no attempt is left 'sending'. The dead process's
#     leases are taken back at start-up, not after CONSUMA_LEASE_SECONDS.
#  2. SIGTERM while callbacks that outlast the grace are in flight: exit 0
#     within the grace, everything handed back (unknown attempts, no
#     leases); after a restart all are delivered, nothing stuck.
#  3. SIGTERM twice with a 60 s grace: the second one hands back and exits
#     at once, cleanly.
. "$(dirname "$0")/lib.sh"

export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_RATE_LIMIT_REQUESTS=0 \
	CONSUMA_MAX_PENDING_PER_HOST=0 CONSUMA_MAX_QUEUE_SIZE=100000 CONSUMA_MAX_QUEUE_SHARE=1 \
	CONSUMA_MAX_PER_HOST=32 CONSUMA_MAX_INFLIGHT_DELIVERIES=64 CONSUMA_SHUTDOWN_GRACE=1 \
	CONSUMA_CALLBACK_BACKOFF_BASE_MS=200 CONSUMA_CALLBACK_TIMEOUT=10 CONSUMA_LEASE_SECONDS=60
per_host=32

deliver_up
stuck() { sql "SELECT count(*) FROM requests WHERE mode='async' AND (status='running' OR callback_status='delivering' OR lease_owner IS NOT NULL)"; }
deliverer_pid() { cat "$T/s/deliverer.pid"; }
# gone PID: the process ended (a zombie not yet reaped by init counts).
gone() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }

# ---- 1. kill -9 mid-storm ------------------------------------------------
python3 "$RECV" post --base "$BASE" --n 1000 --concurrency 8 \
	--callback "http://127.0.0.1:$rport/slow/40~storm" --out "$T/storm.txt" &
poster=$!
t_track $poster
python3 "$RECV" wait --log "$T/r.jsonl" --count 150 --timeout 60 >/dev/null
pid=$(deliverer_pid)
kill -9 "$pid"
echo "# killed deliverer $pid after $(python3 "$RECV" dupes --log "$T/r.jsonl" | cut -d' ' -f2) callbacks"
wait_for 'gone "$pid"' 5
wait "$poster"
assert_eq "1,000 jobs accepted while the deliverer died" 0 $?
assert_eq "1,000 accepted" 1000 "$(wc -l <"$T/storm.txt")"
"$SRC/tools/stack.sh" start-deliverer --dir "$T/s" >/dev/null
python3 "$RECV" wait --log "$T/r.jsonl" --count 1000 --timeout 30 >/dev/null
assert_eq "after the restart every accepted job was delivered, well before the 60 s lease ran out" 0 $?
assert_match "the restart recovered the dead deliverer's leases at once" "event=recover.dead_owner jobs=[1-9]" \
	"$(cat "$T/s/deliverer.log")"
wait_for '[ "$(stuck)" = 0 ]' 5
read -r total distinct <<<"$(python3 "$RECV" dupes --log "$T/r.jsonl")"
dups=$((total - distinct))
unknown=$(sql "SELECT count(*) FROM attempts WHERE state='unknown'")
echo "# kill -9: $total callbacks for $distinct jobs, $dups duplicates, $unknown attempts of unknown outcome"
assert_cmd "duplicates ($dups) bounded by what was in flight ($per_host)" test "$dups" -le "$per_host"
assert_eq "all 1,000 delivered in the database" 1000 \
	"$(sql "SELECT count(*) FROM requests WHERE mode='async' AND callback_status='delivered' AND status='completed'")"
assert_eq "no job left running, delivering or leased" 0 "$(stuck)"
assert_eq "no attempt left 'sending'" 0 "$(sql "SELECT count(*) FROM attempts WHERE state='sending'")"
assert_eq "queue depth back to 0" 0 "$(sql "SELECT value FROM counters WHERE name='queue_depth'")"

# ---- 2. SIGTERM with deliveries that outlast the grace -------------------
: >"$T/r2.jsonl"
python3 "$RECV" post --base "$BASE" --n 64 --concurrency 4 \
	--callback "http://127.0.0.1:$rport/slow/1500~term" --out "$T/term.txt"
assert_eq "64 slow jobs accepted" 0 $?
wait_for '[ "$(count_lines "$T/r.jsonl" "~term")" -ge 20 ]' 10
pid=$(deliverer_pid)
t0=$(date +%s%N)
kill -TERM "$pid"
wait_for 'gone "$pid"' 5
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
echo "# SIGTERM -> exit in $ms ms (grace 1 s)"
assert_cmd "deliverer exited within grace + 1.5 s ($ms ms)" test "$ms" -le 2500
assert_match "deliverer logged a clean stop with exit 0" "event=deliverer.stopped exit=0" \
	"$(tail -n 5 "$T/s/deliverer.log")"
assert_match "the jobs in hand were handed back" "event=shutdown.handback jobs=[1-9]" \
	"$(tail -n 5 "$T/s/deliverer.log")"
assert_eq "after SIGTERM: no job leased, running or delivering" 0 "$(stuck)"
assert_eq "after SIGTERM: no attempt left 'sending'" 0 "$(sql "SELECT count(*) FROM attempts WHERE state='sending'")"
rm -f "$T/s/deliverer.pid"
"$SRC/tools/stack.sh" start-deliverer --dir "$T/s" >/dev/null
python3 "$RECV" wait --log "$T/r.jsonl" --count 1064 --timeout 60 >/dev/null
assert_eq "after the restart all 64 delivered" 0 $?
wait_for '[ "$(stuck)" = 0 ]' 5
assert_eq "all 1,064 delivered in the database, nothing stuck" "1064 0" \
	"$(sql "SELECT count(*) FROM requests WHERE mode='async' AND callback_status='delivered'") $(stuck)"
assert_eq "handed-back attempts recorded as unknown, then retried" 0 \
	"$(sql "SELECT count(*) FROM requests r WHERE EXISTS (SELECT 1 FROM attempts a WHERE a.request_seq=r.seq AND a.state='unknown') AND r.callback_status != 'delivered'")"

# ---- 3. a second SIGTERM does not wait for a long grace ------------------
"$SRC/tools/stack.sh" stop-deliverer --dir "$T/s" >/dev/null
CONSUMA_SHUTDOWN_GRACE=60 "$SRC/tools/stack.sh" start-deliverer --dir "$T/s" >/dev/null
python3 "$RECV" post --base "$BASE" --n 8 --concurrency 4 \
	--callback "http://127.0.0.1:$rport/slow/3000~twice" --out "$T/twice.txt"
wait_for '[ "$(count_lines "$T/r.jsonl" "~twice")" -ge 8 ]' 10
pid=$(deliverer_pid)
drains() { count_lines "$T/s/deliverer.log" "event=shutdown.draining"; }
drained=$(drains)
kill -TERM "$pid"
# the second SIGTERM once the first one's drain has begun
wait_for '[ "$(drains)" -gt "$drained" ]' 5
t0=$(date +%s%N)
kill -TERM "$pid"
wait_for 'gone "$pid"' 5
ms=$((($(date +%s%N) - t0) / 1000000))
echo "# SIGTERM, SIGTERM -> exit in $ms ms (grace 60 s)"
assert_cmd "a second SIGTERM exits at once ($ms ms)" test "$ms" -le 2000
assert_match "and cleanly, handing back" "event=shutdown.now .*event=shutdown.handback jobs=8 .*event=deliverer.stopped exit=0" \
	"$(tail -n 4 "$T/s/deliverer.log" | tr '\n' ' ')"
assert_eq "after the double SIGTERM: nothing leased or running" 0 "$(stuck)"
rm -f "$T/s/deliverer.pid"
"$SRC/tools/stack.sh" start-deliverer --dir "$T/s" >/dev/null
python3 "$RECV" wait --log "$T/r.jsonl" --count 1072 --timeout 30 >/dev/null
assert_eq "after the restart the 8 were delivered" 0 $?

t_done

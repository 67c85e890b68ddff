#!/usr/bin/env bash
# test_hosts_pg_crash: two "hosts" on one PostgreSQL database (as
# test_hosts_pg: two stacks, each deliverer under a host name of its own),
# and crashes. Leases last 3 s.
#  1. a storm split across both hosts, host 1's deliverer killed -9 in the
#     middle of it: every accepted job is delivered (host 2's deliverer takes
#     over host 1's leased jobs once their lease expires), and the duplicates
#     are bounded by what was in flight. The bound asserted: at most
#     CONSUMA_MAX_PER_HOST (the dead deliverer's callbacks in flight to the
#     one receiver origin), and each duplicate is a job with an attempt of
#     unknown outcome: one the dead deliverer had written 'sending' before
#     sending it and had not finished. A duplicate of anything else would
#     be a job delivered twice without a crash in between.
#  2. host 2's whole stack killed -9 (every pid in its directory: lighttpd,
#     the pools, the deliverer) while its deliverer holds leases: host 1's
#     deliverer finishes those jobs, each only after its lease expired (the
#     callback arrives after the lease_expires_at the dead one left), and
#     nothing stays stuck.
. "$(dirname "$0")/lib.sh"

per_host=16
lease_s=3
export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_RATE_LIMIT_REQUESTS=0 \
	CONSUMA_MAX_PENDING_PER_HOST=0 CONSUMA_MAX_QUEUE_SIZE=100000 CONSUMA_MAX_QUEUE_SHARE=1 \
	CONSUMA_MAX_PER_HOST=$per_host CONSUMA_MAX_INFLIGHT_DELIVERIES=64 CONSUMA_CLAIM_BATCH=16 \
	CONSUMA_POLL_INTERVAL_MS=200 CONSUMA_LEASE_SECONDS=$lease_s CONSUMA_SHUTDOWN_GRACE=1 \
	CONSUMA_CALLBACK_BACKOFF_BASE_MS=200 CONSUMA_CALLBACK_TIMEOUT=10

receiver_start r rport
hosts_up 2 --sync-procs 1 --api-procs 2
H1=${HOST_BASE[1]} H2=${HOST_BASE[2]}
host_deliverer 1
host_deliverer 2

stuck() {
	pgq "SELECT count(*) FROM requests WHERE mode = 'async' AND (status = 'running'
		OR callback_status IN ('pending', 'delivering', 'retrying') OR lease_owner IS NOT NULL)"
}
delivered() { python3 "$RECV" dupes --log "$T/r.jsonl" | cut -d' ' -f2; }
# gone PID: the process ended (a zombie not yet reaped counts).
gone() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
# dup_ids: the X-Request-ID of every job the receiver saw more than once
dup_ids() {
	python3 - "$T/r.jsonl" <<'PY'
import collections, json, sys
n = collections.Counter(json.loads(l)["headers"].get("x-request-id") for l in open(sys.argv[1]))
print("\n".join(sorted(k for k, c in n.items() if c > 1)))
PY
}

# ---- 1. a storm over both hosts, host 1's deliverer killed -9 --------------------
python3 "$RECV" post --base "$H1" --n 600 --concurrency 4 --rate 150 \
	--callback "http://127.0.0.1:$rport/slow/200~storm" --out "$T/storm1.txt" &
p1=$!
t_track $p1
python3 "$RECV" post --base "$H2" --n 600 --concurrency 4 --rate 150 \
	--callback "http://127.0.0.1:$rport/slow/200~storm" --out "$T/storm2.txt" &
p2=$!
t_track $p2
python3 "$RECV" wait --log "$T/r.jsonl" --count 150 --timeout 60 >/dev/null
d1=$(cat "$T/h1/deliverer.pid")
kill -9 "$d1"
assert_cmd "the kill came mid-storm: both hosts were still taking jobs" kill -0 "$p1" "$p2"
echo "# killed host 1's deliverer ($d1) after $(delivered) callbacks"
wait_for 'gone "$d1"' 5
held=$(pgq "SELECT count(*) FROM requests WHERE lease_owner LIKE 'h1:%'")
assert_cmd "it held leases ($held) when it died" test "$held" -gt 0
wait "$p1"
assert_eq "host 1 accepted its 600 while its deliverer died" 0 $?
wait "$p2"
assert_eq "host 2 accepted its 600" 0 $?
python3 "$RECV" wait --log "$T/r.jsonl" --count 1200 --timeout 90 >/dev/null
assert_eq "every accepted job delivered, by host 2's deliverer alone after the kill" 0 $?
wait_for '[ "$(stuck)" = 0 ]' 10
read -r total distinct <<<"$(python3 "$RECV" dupes --log "$T/r.jsonl")"
dups=$((total - distinct))
unknown=$(pgq "SELECT count(*) FROM attempts WHERE state = 'unknown'")
echo "# kill -9: $total callbacks for $distinct jobs, $dups duplicates, $unknown attempts of unknown outcome"
assert_cmd "duplicates ($dups) bounded by the dead deliverer's callbacks in flight ($per_host)" \
	test "$dups" -le "$per_host"
dup_list=$(dup_ids | tr '\n' ' ')
not_unknown=''
for id in $dup_list; do
	[ "$(pgq "SELECT count(*) FROM attempts a JOIN requests r ON r.seq = a.request_seq
		WHERE r.id = '$id' AND a.state = 'unknown'")" -gt 0 ] || not_unknown+="$id "
done
assert_eq "each duplicate was in flight at the kill (an attempt of unknown outcome)" "" "$not_unknown"
assert_eq "all 1,200 delivered in the database, completed" 1200 \
	"$(pgq "SELECT count(*) FROM requests WHERE mode = 'async' AND callback_status = 'delivered' AND status = 'completed'")"
assert_eq "no job left running, pending, delivering or leased" 0 "$(stuck)"
assert_eq "no attempt left 'sending'" 0 "$(pgq "SELECT count(*) FROM attempts WHERE state = 'sending'")"
assert_eq "host 2 took nothing back by pid: host 1 is another machine to it" 0 \
	"$(count_lines "$T/h2/deliverer.log" "event=recover.dead_owner")"
http GET "$H1/healthz"
assert_eq "queue depth back to 0, seen from host 1" 0 "$(json_get "$HTTP_BODY" 'j["queue_depth"]')"

# ---- 2. host 2's whole stack killed -9 ------------------------------------------
host_deliverer 1
python3 "$RECV" post --base "$H2" --n 300 --concurrency 4 \
	--callback "http://127.0.0.1:$rport/slow/300~whole" --out "$T/whole.txt"
assert_eq "host 2 accepted 300" 0 $?
wait_for '[ "$(count_lines "$T/r.jsonl" "~whole")" -ge 40 ]' 30
pids=$(cat "$T"/h2/*.pid | tr '\n' ' ')
kill -9 $pids
t_kill=$(date +%s.%N)
for p in $pids; do wait_for "gone $p" 5; done
http GET "$H2/healthz"
assert_eq "host 2 is gone (lighttpd, pools, deliverer: $pids)" 000 "$HTTP_CODE"
# what the dead deliverer held, and when each lease runs out
pgq "SELECT id, lease_expires_at FROM requests WHERE lease_owner LIKE 'h2:%'
	AND callback_status <> 'delivered'" >"$T/held.txt"
echo "# killed host 2 ($pids) after $(count_lines "$T/r.jsonl" "~whole") of its callbacks; its deliverer held $(wc -l <"$T/held.txt") leases"
assert_cmd "host 2's deliverer held leases when it died" test -s "$T/held.txt"
python3 "$RECV" wait --log "$T/r.jsonl" --count 1500 --timeout 60 >/dev/null
assert_eq "host 1's deliverer delivered every one of host 2's jobs" 0 $?
# the held jobs host 2 had sent are among the 1,500 already: their second
# callbacks may still be on the way until the database says all is done
wait_for '[ "$(stuck)" = 0 ]' 10
early=$(python3 - "$T/r.jsonl" "$T/held.txt" "$t_kill" <<'PY'
import json, sys
held = dict(l.split() for l in open(sys.argv[2]))
t_kill = float(sys.argv[3])
first = {}
for l in open(sys.argv[1]):
    e = json.loads(l)
    rid = e["headers"].get("x-request-id")
    if rid in held and e["t"] > t_kill:
        first.setdefault(rid, e["t"])
missing = [r for r in held if r not in first]
early = [r for r, t in first.items() if t * 1000 < int(held[r])]
print(len(missing), len(early))
PY
)
assert_eq "each held job was delivered after the kill, none before its lease expired (missing, early)" "0 0" "$early"
assert_eq "nothing stuck: no job running, pending, delivering or leased" 0 "$(stuck)"
assert_eq "no attempt left 'sending'" 0 "$(pgq "SELECT count(*) FROM attempts WHERE state = 'sending'")"
read -r total distinct <<<"$(python3 "$RECV" dupes --log "$T/r.jsonl")"
echo "# whole host killed: $total callbacks for $distinct jobs in all"
assert_cmd "duplicates bounded by two crashes' in flight ($((total - distinct)) <= $((2 * per_host)))" \
	test $((total - distinct)) -le $((2 * per_host))

assert_eq "the server logged no deadlock" 0 "$(count_lines "$T/pg/postgres.log" 'deadlock detected')"

"$SRC/tools/stack.sh" down --dir "$T/h1" 2>/dev/null
for h in 1 2; do assert_clean_logs "$T/h$h"; done

t_done

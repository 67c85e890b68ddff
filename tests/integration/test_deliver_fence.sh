#!/usr/bin/env bash
# test_deliver_fence: a deliverer that stalls past its lease cannot
# overwrite the new owner's outcome. Deliverer A sends four callbacks and is
# frozen (SIGSTOP) while they are in flight; its leases expire; deliverer B
# claims the jobs (A's attempts become 'unknown') and delivers them. When A
# thaws, its answers arrive but every write it tries is fenced by the lease
# token: the jobs keep B's outcome.
# Then a deliverer killed while holding jobs: its neighbour takes them back
# within seconds (it checks whether holders on this host still live).
. "$(dirname "$0")/lib.sh"

export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_LEASE_SECONDS=2 CONSUMA_POLL_INTERVAL_MS=50 \
	CONSUMA_DATABASE_PATH=$T/q.db CONSUMA_LOG_LEVEL=debug
db=$T/q.db
receiver_start r rport
# deliverer NAME: a deliverer on $db (doorbell $T/NAME.bell, log
# $T/NAME.log), its pid in $NAME once it has logged its start.
deliverer() {
	CONSUMA_DOORBELL_PATH=$T/$1.bell "$BUILD/consuma-deliverer" 2>"$T/$1.log" &
	printf -v "$1" '%s' $!
	t_track $!
	wait_for "grep -q deliverer.started '$T/$1.log'" 10
}
# queue_four NAME PATH: four jobs NAME-1..4, due now, to the receiver's PATH.
queue_four() {
	local now i
	now=$(date +%s%3N)
	{
		echo "BEGIN;"
		for i in 1 2 3 4; do
			echo "INSERT INTO requests (id, mode, status, callback_status, input_data,
			      iterations, callback_url, callback_host, created_at, next_attempt_at)
			      VALUES ('$1-$i', 'async', 'queued', 'pending', '$1 $i', 1,
			      'http://127.0.0.1:$rport$2', '127.0.0.1', $now, $now);"
		done
		# counted as the store counts enqueued jobs (sql/sqlite/010)
		echo "UPDATE counters SET value = value + 4 WHERE name = 'queue_depth';
		      INSERT INTO host_pending (host, n) VALUES ('127.0.0.1', 4)
		          ON CONFLICT (host) DO UPDATE SET n = n + excluded.n;
		      INSERT INTO client_pending (client, n) VALUES ('', 4)
		          ON CONFLICT (client) DO UPDATE SET n = n + excluded.n;
		      COMMIT;"
	} | sqlite3 "$db"
}

deliverer a
queue_four fence /slow/2500
python3 "$RECV" wait --log "$T/r.jsonl" --count 4 --timeout 10 >/dev/null
assert_eq "deliverer A sent the four callbacks" 0 $?
kill -STOP "$a"

deliverer b
# B may claim only once A's leases ran out (2 s after A's last renewal).
wait_for '[ "$(sql "SELECT count(*) FROM attempts WHERE number = 2")" = 4 ]' 10
assert_eq "B claimed the four jobs after A's leases expired" 4 \
	"$(sql "SELECT count(*) FROM attempts WHERE number = 2")"
assert_eq "A's attempts in flight became 'unknown'" 4 \
	"$(sql "SELECT count(*) FROM attempts WHERE number = 1 AND state = 'unknown'")"
kill -CONT "$a"
delivered() { sql "SELECT count(*) FROM requests WHERE callback_status = 'delivered'"; }
wait_for '[ "$(count_lines "$T/a.log" event=callback.fenced)" -ge 4 ] && [ "$(delivered)" = 4 ]' 10
assert_eq "A's four late outcomes were fenced" 4 "$(grep -c 'event=callback.fenced' "$T/a.log")"
assert_eq "the jobs carry B's outcome: delivered on attempt 2" "4 4" \
	"$(sql "SELECT count(*), sum(callback_status = 'delivered' AND attempts = 2) FROM requests")"
assert_eq "A's attempt rows stay 'unknown', B's are done with 200" "4 4" \
	"$(sql "SELECT sum(number = 1 AND state = 'unknown'), sum(number = 2 AND state = 'done' AND http_status = 200) FROM attempts")"
read -r total distinct <<<"$(python3 "$RECV" dupes --log "$T/r.jsonl")"
assert_eq "the receiver saw each job twice, with one webhook-id per job" "8 4" "$total $distinct"

kill -TERM "$a" "$b"
wait "$a"
assert_eq "A exits 0" 0 $?
wait "$b"
assert_eq "B exits 0" 0 $?

# A neighbour that dies while holding jobs: with 60 s leases, the survivor
# takes the jobs back within seconds (dead-process check), not a minute.
export CONSUMA_LEASE_SECONDS=60
deliverer c
queue_four dead /slow/2000~dead
wait_for '[ "$(count_lines "$T/r.jsonl" "~dead")" -ge 4 ]' 10
deliverer d
kill -9 "$c"
t0=$(date +%s)
dead_delivered() { sql "SELECT count(*) FROM requests WHERE id LIKE 'dead-%' AND callback_status = 'delivered'"; }
wait_for '[ "$(dead_delivered)" = 4 ]' 20
took=$(($(date +%s) - t0))
echo "# survivor delivered the dead neighbour's jobs ${took} s after the kill (lease 60 s)"
assert_eq "the survivor delivered the dead neighbour's 4 jobs" 4 "$(dead_delivered)"
assert_cmd "well before the 60 s lease ran out (${took} s)" test "$took" -le 15
assert_match "the survivor logged the recovery" "event=recover.dead_owner jobs=4" "$(cat "$T/d.log")"
kill -TERM "$d"
wait "$d"
assert_eq "the survivor exits 0" 0 $?
t_done

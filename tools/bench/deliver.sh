#!/usr/bin/env bash
# tools/bench/deliver.sh BUILD_DIR: the deliverer's numbers (issue 3).
#
#  1. Callbacks per second at iterations=1: BENCH_JOBS jobs (default 20000)
#     are put straight into the queue (one SQL statement), then one
#     consuma-deliverer starts against it and posts every callback to
#     bench_receiver (a C receiver on loopback that is not the bottleneck).
#     Rate = jobs / (last callback - deliverer start). Target: >= 3000/s.
#  2. POST /async -> callback latency at a steady 1,000 accepts/s:
#     consuma-storm --mode async --rate 1000 against the whole stack
#     (tools/stack.sh: lighttpd, consuma-fcgi, consuma-deliverer), with its
#     own callback receiver; latency is counted from each request's
#     scheduled start to its callback (so it includes the 202 round trip).
#     BENCH_SECONDS (default 10) long. Target: p99 < 50 ms.
#
# Prints numbers; asserts nothing. Use a build without sanitizers.
set -euo pipefail
if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
	sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
build=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
jobs=${BENCH_JOBS:-20000}
seconds=${BENCH_SECONDS:-10}
[[ "$jobs" =~ ^[1-9][0-9]{0,6}$ ]] || { echo "deliver.sh: BENCH_JOBS must be 1..9999999" >&2; exit 2; }
[[ "$seconds" =~ ^[1-9][0-9]{0,3}$ ]] || { echo "deliver.sh: BENCH_SECONDS must be whole seconds" >&2; exit 2; }
cmake --build "$build" --target consuma-deliverer consuma-fcgi consuma-storm bench_receiver >/dev/null
if grep -q '^CONSUMA_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
	echo "deliver.sh: note: $build is a sanitizer build; numbers are not worth quoting" >&2
fi

D=$(mktemp -d "${TMPDIR:-/tmp}/consuma-bench-deliver.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	"$root/tools/stack.sh" down --dir "$D/stack" >/dev/null 2>&1 || true
	rm -rf "$D"
}
trap cleanup EXIT
. "$(dirname "$0")/common.bash"

export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_LOG_LEVEL=warn \
	CONSUMA_MAX_PER_HOST=256 CONSUMA_MAX_INFLIGHT_DELIVERIES=256 CONSUMA_CLAIM_BATCH=256 \
	CONSUMA_RATE_LIMIT_REQUESTS=0 CONSUMA_MAX_PENDING_PER_HOST=0 \
	CONSUMA_MAX_QUEUE_SIZE=10000000 CONSUMA_MAX_QUEUE_SHARE=1

# ---- 1. callbacks per second ------------------------------------------------
db=$D/q.db
"$build/bench_receiver" --port-file "$D/recv.port" --expect "$jobs" --timeout 300 >"$D/recv.out" &
recv=$!
pids+=("$recv")
for _ in $(seq 50); do [ -s "$D/recv.port" ] && break; sleep 0.1; done
port=$(cat "$D/recv.port")

# The schema comes from the deliverer's own migrations: start and stop one.
CONSUMA_DATABASE_PATH=$db "$build/consuma-deliverer" 2>>"$D/deliverer.log" &
p=$!
for _ in $(seq 50); do [ -s "$db" ] && break; sleep 0.1; done
sleep 0.3
kill -TERM "$p"
wait "$p" || true
now=$(date +%s%3N)
sqlite3 "$db" "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $jobs)
INSERT INTO requests (id, mode, status, callback_status, input_data, iterations, callback_url,
                      callback_host, created_at, next_attempt_at)
SELECT printf('00000000-0000-7000-8000-%012d', i), 'async', 'queued', 'pending', 'bench ' || i, 1,
       'http://127.0.0.1:$port/cb', '127.0.0.1', $now, $now FROM c;
-- counted as the store counts an enqueued job (sql/sqlite/010)
UPDATE counters SET value = value + $jobs WHERE name = 'queue_depth';
INSERT INTO host_pending (host, n) VALUES ('127.0.0.1', $jobs)
    ON CONFLICT (host) DO UPDATE SET n = n + excluded.n;
INSERT INTO client_pending (client, n) VALUES ('', $jobs)
    ON CONFLICT (client) DO UPDATE SET n = n + excluded.n;"

t0=$(date +%s%3N)
CONSUMA_DATABASE_PATH=$db "$build/consuma-deliverer" 2>>"$D/deliverer.log" &
dpid=$!
pids+=("$dpid")
wait "$recv" || true
read -r _ first last < <(tr ' =' '  ' <"$D/recv.out" | awk '{print $2, $4, $6}')
# Outcomes are written right after the answers: wait for the last of them.
t_done=0
for _ in $(seq 200); do
	left=$(sqlite3 "$db" "SELECT count(*) FROM requests WHERE finished_at IS NULL")
	if [ "$left" = 0 ]; then t_done=$(date +%s%3N); break; fi
	sleep 0.05
done
ticks=$(awk '{print $14 + $15}' "/proc/$dpid/stat")
kill -TERM "$dpid"
wait "$dpid" || true
got=$(sed -n 's/^requests=\([0-9]*\).*/\1/p' "$D/recv.out")
span=$((last - t0))
[ "$span" -gt 0 ] || span=1
echo "deliver.sh: $got of $jobs callbacks in $span ms from deliverer start to the last arrival"
awk -v n="$got" -v ms="$span" 'BEGIN { printf "deliver.sh: callbacks/s at iterations=1: %.0f (target >= 3000)\n", n * 1000 / ms }'
if [ "$t_done" -gt 0 ]; then
	awk -v n="$jobs" -v ms="$((t_done - t0))" \
		'BEGIN { printf "deliver.sh: every outcome on disk after %d ms: %.0f jobs/s\n", ms, n * 1000 / ms }'
fi
awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$jobs" \
	'BEGIN { printf "deliver.sh: deliverer CPU %.2f s (%.0f us per job)\n", t / hz, t / hz * 1e6 / n }'
echo "deliver.sh: delivered in the database: $(sqlite3 "$db" "SELECT count(*) FROM requests WHERE callback_status = 'delivered'"), attempts: $(sqlite3 "$db" "SELECT count(*) FROM attempts")"

# ---- 2. latency at a steady 1,000 accepts/s -----------------------------------
sport=$(free_port)
base=$(CONSUMA_BUILD_DIR=$build "$root/tools/stack.sh" up --dir "$D/stack" --port "$sport" 2>"$D/stack.err" | tail -n 1) || {
	cat "$D/stack.err" >&2
	exit 1
}
n=$((seconds * 1000))
cport=$(free_port)
"$build/consuma-storm" --server-url "$base" --mode async --rate 1000 --num-requests "$n" \
	--iterations 1 --concurrency 256 --callback-port "$cport" --callback-wait 30 \
	--json "$D/storm.json" --no-progress >"$D/storm.out" 2>&1 || true
python3 - "$D/storm.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
def find(o, key):
    if isinstance(o, dict):
        if key in o:
            return o[key]
        for v in o.values():
            x = find(v, key)
            if x is not None:
                return x
    elif isinstance(o, list):
        for v in o:
            x = find(v, key)
            if x is not None:
                return x
    return None
acc, cb, cbs = find(r, "latency_ms"), find(r, "callback_latency_ms"), find(r, "callbacks")
print("deliver.sh: 1,000 accepts/s for %d requests: 202 p50 %.2f ms p99 %.2f ms" % (acc["count"], acc["p50"], acc["p99"]))
print("deliver.sh: start -> callback p50 %.2f ms p95 %.2f ms p99 %.2f ms max %.2f ms (target p99 < 50)" % (cb["p50"], cb["p95"], cb["p99"], cb["max"]))
print("deliver.sh: callbacks %s" % json.dumps(cbs))
PY
# The deliverer's own share: job committed (created_at) -> its first attempt
# on disk and leaving (attempts.started_at), from the database.
python3 - "$D/stack/consuma.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
d = sorted(r[0] for r in db.execute(
    "SELECT a.started_at - r.created_at FROM attempts a JOIN requests r ON r.seq = a.request_seq"
    " WHERE a.number = 1"))
if d:
    pct = lambda p: d[min(len(d) - 1, int(p / 100 * len(d)))]
    print("deliver.sh: job committed -> attempt sent (database clock, ms): p50 %d p99 %d max %d"
          % (pct(50), pct(99), d[-1]))
PY

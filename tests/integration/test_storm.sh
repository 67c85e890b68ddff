#!/usr/bin/env bash
# test_storm: consuma-storm and tools/storm.sh against real stacks.
#
#  1. bad options are refused with exit 2, naming the option (also through
#     storm.sh, before any stack starts);
#  2. a small storm through tools/storm.sh (its own private stack): the JSON
#     parses, sent = succeeded + failed in each mode, no callback missing,
#     wrong or badly signed, the HTML is well-formed and holds the SVG chart,
#     and the stack is down afterwards;
#  3. open loop at about twice what one sync process sustains: p99 grows with
#     the length of the run (the queueing shows), printed beside a closed-loop
#     run of the same settings;
#  4. with the deliverer stopped the run ends within --callback-wait, reports
#     every callback missing and exits non-zero;
#  5. the checks can fail: a stand-in server (consuma cannot be made to lie on
#     demand) answers wrong results, calls back twice, signs with the wrong
#     key and forgets callbacks, and each is counted.
# Counts are small: this checks behaviour, tools/bench/storm.sh measures.
. "$(dirname "$0")/lib.sh"

need_storm

# ---- 1. usage errors ---------------------------------------------------------
usage_case() { # OPTION-NAME ARGS...
	local name=$1 rc
	shift
	"$STORM" "$@" >"$T/usage.out" 2>"$T/usage.err" && rc=0 || rc=$?
	assert_eq "consuma-storm $* exits 2" 2 "$rc"
	assert_match "consuma-storm $* names $name" "$name" "$(cat "$T/usage.err")"
}
usage_case --bogus --bogus
usage_case --num-requests --num-requests 0
usage_case --num-requests --num-requests 10000001
usage_case --num-requests --num-requests 5x
usage_case --num-requests --num-requests
usage_case --mode --mode fast
usage_case --concurrency --concurrency 0
usage_case --rate --rate -3
usage_case --timeout --timeout never
usage_case --callback-port --callback-port 65536
usage_case --callback-wait --callback-wait 1e999
usage_case --server-url --server-url ftp://127.0.0.1/
usage_case --secret --secret not-a-secret
usage_case --raw --raw --mode async
usage_case --threads --threads 0
rc=0
"$SRC/tools/storm.sh" --mode fast >/dev/null 2>"$T/usage.err" || rc=$?
assert_eq "storm.sh refuses a bad option with exit 2" 2 "$rc"
assert_match "storm.sh's refusal names the option" "--mode" "$(cat "$T/usage.err")"
assert_eq "storm.sh started no stack for a bad option" 0 "$(grep -c 'starting a local stack' "$T/usage.err")"
"$STORM" --help >"$T/help.out" && rc=0 || rc=$?
assert_eq "--help exits 0" 0 "$rc"
assert_match "--help lists --rate" "--rate R" "$(cat "$T/help.out")"
assert_match "--version prints the version" "^consuma-storm [0-9]" "$("$STORM" --version)"

# ---- 2. a small storm through tools/storm.sh -----------------------------------
rc=0
STORM_KEEP=1 TMPDIR=$T "$SRC/tools/storm.sh" --num-requests 40 --concurrency 6 \
	--iterations 1000 --callback-wait 60 --timeout 60 \
	--json "$T/small.json" --html "$T/small.html" >"$T/small.out" 2>"$T/small.err" || rc=$?
assert_eq "small storm exits 0" 0 "$rc"
[ "$rc" = 0 ] || { cat "$T/small.out" "$T/small.err" >&2; }
if [ -s "$T/small.json" ]; then
	ok "small storm wrote its JSON"
	assert_eq "JSON parses, schema named" "consuma-storm/1" "$(json_file "$T/small.json" 'j["schema"]')"
	for m in sync async; do
		assert_eq "$m: sent = succeeded + failed" true \
			"$(json_file "$T/small.json" "j['$m']['sent'] == j['$m']['succeeded'] + j['$m']['failed']")"
		assert_eq "$m: 40 sent" 40 "$(json_file "$T/small.json" "j['$m']['sent']")"
		# a busy sync pool may refuse (429/503) under a parallel test run: an answer, not a loss
		assert_eq "$m: nothing failed but refusals" true "$(json_file "$T/small.json" "j['$m']['failed'] == j['$m']['refused']")"
		assert_eq "$m: one latency sample per success" true \
			"$(json_file "$T/small.json" "j['$m']['latency_ms']['count'] == j['$m']['succeeded']")"
	done
	cb="j['async']['callbacks']"
	assert_eq "async: all 40 accepted" 40 "$(json_file "$T/small.json" "j['async']['succeeded']")"
	assert_eq "every accepted job's callback expected" 40 "$(json_file "$T/small.json" "$cb['expected']")"
	assert_eq "every callback received" 40 "$(json_file "$T/small.json" "$cb['received']")"
	assert_eq "no callback missing" 0 "$(json_file "$T/small.json" "$cb['missing']")"
	assert_eq "no callback with a wrong result" 0 "$(json_file "$T/small.json" "$cb['wrong_result']")"
	assert_eq "signatures were checked (storm.sh made a secret)" true "$(json_file "$T/small.json" 'j["settings"]["signatures_checked"]')"
	assert_eq "no bad signature" 0 "$(json_file "$T/small.json" "$cb['bad_signature']")"
	# the whole path's span lies within the storm's own run and its wait
	assert_eq "span: first POST to last callback within duration + wait" true \
		"$(json_file "$T/small.json" "0 < $cb['span_s'] <= j['async']['duration_s'] + $cb['waited_s'] + 0.01")"
	assert_eq "span: at least the slowest callback" true \
		"$(json_file "$T/small.json" "$cb['span_s'] * 1000 >= j['async']['callback_latency_ms']['max'] - 0.01")"
	assert_eq "callback latency has 40 samples" 40 "$(json_file "$T/small.json" "j['async']['callback_latency_ms']['count']")"
	assert_eq "ok is true" true "$(json_file "$T/small.json" 'j["ok"]')"
else
	not_ok "small storm wrote no JSON"
fi
assert_cmd "HTML is well-formed XML (xmllint)" xmllint --noout "$T/small.html"
assert_cmd "HTML holds the SVG chart" grep -q '<svg xmlns="http://www.w3.org/2000/svg"' "$T/small.html"
percentile_curves() { # the polylines of the percentile chart only (the page has more charts)
	python3 -c 'import re,sys; s=open(sys.argv[1]).read(); m=re.search(r"<svg[^>]*aria-label=\"latency by percentile\".*?</svg>", s, re.S); print(m.group(0).count("<polyline") if m else -1)' "$1"
}
assert_eq "HTML chart has one curve per distribution" 3 "$(percentile_curves "$T/small.html")"
assert_match "terminal report says what the numbers say" "What the numbers say" "$(cat "$T/small.out")"
assert_match "terminal report compares p99 bars" "p99 +sync response" "$(cat "$T/small.out")"
kept=$(sed -n 's/.*(state in \(.*\))$/\1/p' "$T/small.err" | head -n 1)
if [ -n "$kept" ] && [ -d "$kept" ]; then
	rc=0
	"$SRC/tools/stack.sh" status --dir "$kept" >/dev/null 2>&1 || rc=$?
	assert_eq "storm.sh took its stack down (status: not running)" 3 "$rc"
else
	not_ok "storm.sh did not say where its stack was"
fi

# ---- one stack for the rest: one sync process, so it saturates early --------
# (serving one request at a time, so that it saturates at a rate it can be told)
export CONSUMA_RATE_LIMIT_REQUESTS=0 CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_MAX_QUEUE_SHARE=1
export CONSUMA_FCGI_THREADS=1
stack_up "$T/stack" --sync-procs 1 --api-procs 2

# ---- 3. open loop shows the queueing; closed loop hides it ---------------------
ITER=1000000
storm_sync() { # NAME ARGS...: a sync-only run, JSON to $T/NAME.json
	local name=$1
	shift
	"$STORM" --server-url "$BASE" --mode sync --iterations "$ITER" --timeout 60 \
		--json "$T/$name.json" "$@" >"$T/$name.out" 2>"$T/$name.err" || true
}
# warm the process up first (a fresh one answers its first requests slowly),
# then measure with the connections the open loop will use
storm_sync warmup --num-requests 4 --concurrency 1
storm_sync calib --num-requests 16 --concurrency 4
cap=$(json_file "$T/calib.json" 'j["sync"]["achieved_rate"]' 2>/dev/null || echo 0)
rate=$(python3 -c "import sys; c=float(sys.argv[1]); print(max(2.0, round(2*c, 1)))" "$cap")
short=$(python3 -c "import sys; print(max(10, int(float(sys.argv[1]) * 0.75)))" "$rate")
long=$((short * 3))
storm_sync open_short --rate "$rate" --num-requests "$short" --concurrency 4
storm_sync open_long --rate "$rate" --num-requests "$long" --concurrency 4
storm_sync closed_long --num-requests "$long" --concurrency 4
row() { # NAME LABEL
	json_file "$T/$1.json" "'%-22s %8d %8s %11.1f %9.1f %9.1f' % ('$2', j['sync']['sent'], j['settings']['rate'] or '-', j['sync']['achieved_rate'], j['sync']['latency_ms']['p50'] or 0, j['sync']['latency_ms']['p99'] or 0)"
}
echo "# one sync process sustains about $cap req/s; open loop at $rate req/s, 4 connections:"
printf '# %-22s %8s %8s %11s %9s %9s\n' run requests rate achieved/s "p50 ms" "p99 ms"
for r in "open_short:open loop, short" "open_long:open loop, 3x longer" "closed_long:closed loop, same"; do
	echo "# $(row "${r%%:*}" "${r#*:}" 2>/dev/null || echo "${r#*:}: no result")"
done
p99() { json_file "$T/$1.json" 'j["sync"]["latency_ms"]["p99"] or 0' 2>/dev/null || echo 0; }
grows=$(python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(b > 1.3*a and a > 0)" "$(p99 open_short)" "$(p99 open_long)")
assert_eq "open loop: p99 grows with the run's length (queueing shows)" True "$grows"
hides=$(python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(a > b > 0)" "$(p99 open_long)" "$(p99 closed_long)")
assert_eq "closed loop at the same settings reports a lower p99 (coordinated omission)" True "$hides"
for r in open_short open_long closed_long; do
	assert_eq "$r: every request answered" true \
		"$(json_file "$T/$r.json" 'j["sync"]["sent"] == j["sync"]["succeeded"] + j["sync"]["failed"]' 2>/dev/null)"
done

# ---- worker threads share one schedule and one receiver ------------------------
rc=0
"$STORM" --server-url "$BASE" --mode async --threads 3 --num-requests 30 --concurrency 6 \
	--iterations 10 --rate 200 --callback-port "$(free_port)" --callback-wait 30 --timeout 30 \
	--json "$T/threads.json" >"$T/threads.out" 2>"$T/threads.err" || rc=$?
assert_eq "--threads 3: exit 0" 0 "$rc"
assert_eq "--threads 3: 30 sent, 30 accepted" "30 30" \
	"$(json_file "$T/threads.json" '"%d %d" % (j["async"]["sent"], j["async"]["succeeded"])' 2>/dev/null)"
assert_eq "--threads 3: every callback back" 30 "$(json_file "$T/threads.json" 'j["async"]["callbacks"]["received"]' 2>/dev/null)"
assert_eq "--threads 3: one latency sample per request" 30 "$(json_file "$T/threads.json" 'j["async"]["latency_ms"]["count"]' 2>/dev/null)"

# ---- 4. deliverer stopped: bounded wait, every callback missing ----------------
"$SRC/tools/stack.sh" stop-deliverer --dir "$T/stack" >/dev/null 2>&1
t0=$(date +%s%N)
rc=0
"$STORM" --server-url "$BASE" --mode async --num-requests 6 --concurrency 3 --iterations 10 \
	--callback-port "$(free_port)" --callback-wait 2 --timeout 30 \
	--json "$T/nodeliver.json" >"$T/nodeliver.out" 2>"$T/nodeliver.err" || rc=$?
elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
assert_eq "no deliverer: exit 1" 1 "$rc"
assert_eq "no deliverer: 6 accepted" 6 "$(json_file "$T/nodeliver.json" 'j["async"]["callbacks"]["expected"]' 2>/dev/null)"
assert_eq "no deliverer: all 6 reported missing" 6 "$(json_file "$T/nodeliver.json" 'j["async"]["callbacks"]["missing"]' 2>/dev/null)"
waited=$(json_file "$T/nodeliver.json" 'j["async"]["callbacks"]["waited_s"]' 2>/dev/null || echo 0)
assert_eq "no deliverer: waited the 2 s callback wait, not more" True \
	"$(python3 -c "import sys; print(1.9 <= float(sys.argv[1]) < 3.5)" "$waited")"
assert_eq "no deliverer: the whole run ended in bounded time (<30 s)" True \
	"$([ "$elapsed_ms" -lt 30000 ] && echo True || echo "False ($elapsed_ms ms)")"
assert_match "no deliverer: the report says so" "never called back" "$(cat "$T/nodeliver.out")"

# ---- 5. a lying stand-in: every check must notice -----------------------------
cat >"$T/liar.py" <<'PY'
import base64, hashlib, hmac, json, sys, threading, time, urllib.request, uuid
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
port, secret = int(sys.argv[1]), sys.argv[2]
key = base64.b64decode(secret[6:])
lock, count = threading.Lock(), [0]
def work(s, n):
    d = hashlib.sha256(s.encode()).digest()
    for _ in range(n - 1):
        d = hashlib.sha256(d).digest()
    return d.hex()
def post(url, rid, body, k):
    wid, ts = "msg_" + rid, str(int(time.time()))
    sig = base64.b64encode(hmac.new(k, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    h = {"Content-Type": "application/json", "webhook-id": wid, "webhook-timestamp": ts, "webhook-signature": "v1," + sig}
    urllib.request.urlopen(urllib.request.Request(url, data=body, headers=h, method="POST"), timeout=5).read()
def deliver(kind, rid, j):
    result = work(j["input_data"], j["iterations"]) if kind != 1 else "0" * 64
    body = json.dumps({"request_id": rid, "status": "completed", "result": result, "iterations": j["iterations"]}).encode()
    if kind == 4:
        return  # forgotten
    post(j["callback_url"], rid, body, key if kind != 2 else b"not the key")
    if kind == 3:
        post(j["callback_url"], rid, body, key)  # delivered twice
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        j = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        rid = str(uuid.uuid4())
        if self.path == "/sync":
            code, out = 200, {"request_id": rid, "status": "completed", "result": "f" * 64}
        else:
            with lock:
                kind = count[0] % 5
                count[0] += 1
            code, out = 202, {"request_id": rid, "status": "accepted"}
            threading.Thread(target=deliver, args=(kind, rid, j)).start()
        b = json.dumps(out).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
liar_port=$(free_port)
secret=whsec_$(head -c 24 /dev/urandom | base64 | tr -d '\n')
python3 "$T/liar.py" "$liar_port" "$secret" 2>"$T/liar.err" &
t_track $!
wait_for 'curl -s -o /dev/null "http://127.0.0.1:$liar_port/"' 5
rc=0
"$STORM" --server-url "http://127.0.0.1:$liar_port" --num-requests 10 --concurrency 2 --iterations 10 \
	--callback-port "$(free_port)" --callback-wait 3 --timeout 10 --secret "$secret" \
	--json "$T/liar.json" >"$T/liar.out" 2>"$T/liar.err2" || rc=$?
assert_eq "lying server: exit 1" 1 "$rc"
assert_eq "lying server: every sync result caught as wrong" 10 "$(json_file "$T/liar.json" 'j["sync"]["failures"]["wrong_result"]' 2>/dev/null)"
for f in "received 8" "missing 2" "duplicated 2" "wrong_result 2" "bad_signature 2" "expected 10"; do
	assert_eq "lying server: callbacks ${f% *} = ${f#* }" "${f#* }" \
		"$(json_file "$T/liar.json" "j['async']['callbacks']['${f% *}']" 2>/dev/null)"
done
assert_match "lying server: the report says a result was wrong" "disagreed with the request" "$(cat "$T/liar.out")"

t_done

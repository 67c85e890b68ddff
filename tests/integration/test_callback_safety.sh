#!/usr/bin/env bash
# test_callback_safety: the SSRF guard and the delivery bounds end to end
# (issue 4), through the real stack with CONSUMA_ALLOW_PRIVATE_CALLBACKS=false.
#
# Every packet stays on loopback. The receivers listen on 127.0.0.2 and
# 127.0.0.3, which the operator list CONSUMA_CALLBACK_ALLOW_CIDRS admits;
# 127.0.0.1 stays denied (loopback), so one stack shows both sides:
#  - consuma-deliverer --check-url: public literals allow, private ones deny
#    (a verdict only: nothing is sent)
#  - intake: a loopback callback URL gets 400 naming the address and class,
#    a non-canonical IPv4 or a userinfo URL gets 400, an allowed one 202
#  - the signature verifies with `openssl dgst -sha256 -mac HMAC`
#  - a 302 to a loopback address is not followed: one attempt, 302 recorded,
#    nothing reaches the redirect target (a listener waits there)
#  - a 100 MiB response is cut at the cap; the deliverer's VmRSS stays put
#  - a host that hangs does not hold up callbacks to another host
#  - the delivery-time check: a job accepted at intake, then a deliverer
#    whose policy refuses the address, fails at once with the reason
. "$(dirname "$0")/lib.sh"

export CONSUMA_ALLOW_PRIVATE_CALLBACKS=false CONSUMA_RATE_LIMIT_REQUESTS=0 \
	CONSUMA_CALLBACK_ALLOW_CIDRS="127.0.0.2/32, 127.0.0.3/32" \
	CONSUMA_MAX_PENDING_PER_HOST=0 CONSUMA_MAX_PER_HOST=1 CONSUMA_BREAKER_FAILURES=0 \
	CONSUMA_CALLBACK_MAX_RETRIES=1 CONSUMA_CALLBACK_MAX_RESPONSE_BYTES=65536
secret_raw=$(head -c 32 /dev/urandom | base64 -w0)
export CONSUMA_CALLBACK_SECRET="whsec_$secret_raw"

# ---- verdicts without sending: --check-url ---------------------------------
check() { "$BUILD/consuma-deliverer" --check-url "$1" 2>/dev/null; }
for u in "http://8.8.8.8/" "https://1.1.1.1:8443/hook" "http://[2606:4700:4700::1111]/" \
	"http://[64:ff9b::808:808]/" "http://127.0.0.2:9/"; do
	out=$(check "$u")
	assert_eq "--check-url $u: allow, exit 0" "allow 0" "$out $?"
done
while IFS='|' read -r u want; do
	out=$(check "$u")
	rc=$?
	assert_match "--check-url $u: deny ($want), exit 1" "^deny: .*$want" "$out"
	assert_eq "--check-url $u exits 1" 1 "$rc"
done <<'EOF'
http://127.0.0.1/|127.0.0.1 is loopback
http://10.0.0.1/|private \(RFC 1918\)
http://169.254.169.254/latest/meta-data/|cloud metadata
http://168.63.129.16/|cloud metadata \(Azure
http://[::1]/|::1 is loopback
http://[::ffff:127.0.0.2]/|IPv4-mapped
http://[fd00::1]/|unique-local
http://[64:ff9b:1:a00:0:100:808:808]/|local-use NAT64
http://127.1/|dotted decimal
http://user@8.8.8.8/|userinfo
ftp://8.8.8.8/|scheme
EOF

# ---- receivers: A (127.0.0.2), H (127.0.0.3, hangs), L (127.0.0.1, port of A) ----
receiver_start A pa --host 127.0.0.2
receiver_start H ph --host 127.0.0.3
receiver_start L pl --host 127.0.0.1 --port "$pa"
A="http://127.0.0.2:$pa"
H="http://127.0.0.3:$ph"
assert_cmd "three receivers listen" test -n "$pa" -a -n "$ph" -a "$pl" = "$pa"

stack_up "$T/s"

# post URL: POST /async with callback URL; sets HTTP_CODE and ID
post() {
	http POST "$BASE/async" -H 'Content-Type: application/json' \
		--data "{\"input_data\":\"safety\",\"iterations\":1,\"callback_url\":\"$1\"}"
	ID=$(json_get "$HTTP_BODY" 'j.get("request_id", "")' 2>/dev/null)
}
# settle ID: waits (bounded) until the callback is delivered or failed;
# HTTP_BODY is the job's last GET /requests/ID
settled() {
	http GET "$BASE/requests/$1"
	case $(json_get "$HTTP_BODY" 'j["callback_status"]') in
	delivered | failed) return 0 ;;
	esac
	return 1
}
settle() { wait_for "settled $1" 30; }

# ---- intake --------------------------------------------------------------
post "http://127.0.0.1:$pl/ok"
assert_eq "intake: loopback callback URL refused with 400" 400 "$HTTP_CODE"
assert_match "intake: the detail names the address and its class" \
	"127\.0\.0\.1 is loopback" "$(json_get "$HTTP_BODY" 'j["detail"]')"
for u in "http://127.1:$pa/ok" "http://user@127.0.0.2:$pa/ok" "http://[::1]:$pa/ok" \
	"http://169.254.169.254/" "gopher://127.0.0.2:$pa/"; do
	post "$u"
	assert_eq "intake: $u refused with 400" 400 "$HTTP_CODE"
done

# ---- signature, verified with openssl ---------------------------------------
post "$A/ok~sig"
assert_eq "intake: a callback to an allowed address is accepted" 202 "$HTTP_CODE"
sig_id=$ID
settle "$sig_id"
assert_eq "the signed callback was delivered" delivered \
	"$(json_get "$HTTP_BODY" 'j["callback_status"]')"
python3 - "$T/A.jsonl" "$T" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["path"] == "/ok~sig":
        h = e["headers"]
        d = sys.argv[2]
        open(d + "/sig.id", "w").write(h["webhook-id"])
        open(d + "/sig.ts", "w").write(h["webhook-timestamp"])
        open(d + "/sig.header", "w").write(h["webhook-signature"])
        open(d + "/sig.body", "wb").write(e["body"].encode())
PY
# The receiver's side, as the README shows it: key = base64 after "whsec_".
verify() { # ID TS BODYFILE -> prints v1,<base64>
	local hexkey
	hexkey=$(printf %s "${CONSUMA_CALLBACK_SECRET#whsec_}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
	{ printf '%s.%s.' "$1" "$2"; cat "$3"; } |
		openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hexkey" -binary | base64 -w0 |
		sed 's/^/v1,/'
}
want=$(verify "$(cat "$T/sig.id")" "$(cat "$T/sig.ts")" "$T/sig.body")
assert_eq "webhook-signature verifies with openssl dgst -mac HMAC" "$want" "$(cat "$T/sig.header")"
assert_eq "webhook-id is the request id" "$sig_id" "$(cat "$T/sig.id")"
printf ' ' >>"$T/sig.body"
assert_cmd "a changed body does not verify" test \
	"$(verify "$(cat "$T/sig.id")" "$(cat "$T/sig.ts")" "$T/sig.body")" != "$want"

# ---- a 302 to a loopback address is not followed ------------------------------
post "$A/redirect~r"
assert_eq "redirecting receiver accepted at intake" 202 "$HTTP_CODE"
settle "$ID"
assert_eq "302: failed after one attempt, status 302 recorded" "failed 1 302" \
	"$(json_get "$HTTP_BODY" 'j["callback_status"] + " " + str(len(j["delivery_trace"])) + " " + str(j["delivery_trace"][0]["http_status"])')"
assert_match "302: the attempt says redirects are not followed" "redirect" \
	"$(json_get "$HTTP_BODY" 'j["delivery_trace"][0]["error_message"]')"
assert_eq "302: the receiver saw one request" 1 "$(grep -c '"/redirect~r"' "$T/A.jsonl")"
assert_eq "302: nothing reached the redirect target 127.0.0.1:$pl" 0 \
	"$(cat "$T/L.jsonl" 2>/dev/null | wc -l)"

# ---- 100 MiB response: cut at the cap, no memory growth ----------------------
dpid=$(cat "$T/s/deliverer.pid")
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$dpid/status"; }
rss0=$(rss)
post "$A/big/100"
big_id=$ID
settle "$big_id"
rss1=$(rss)
assert_eq "100 MiB response: the attempt ends with the 200 received, cut at the cap" \
	"delivered 200" \
	"$(json_get "$HTTP_BODY" 'j["callback_status"] + " " + str(j["delivery_trace"][0]["http_status"])')"
grow=$(((rss1 - rss0) / 1024))
echo "# deliverer VmRSS ${rss0} kB before, ${rss1} kB after a 100 MiB response (cap 64 KiB)"
assert_cmd "deliverer VmRSS grew < 16 MiB over a 100 MiB response (grew ${grow} MiB)" \
	test "$grow" -lt 16

# ---- a hanging host does not hold up another host ----------------------------
post "$H/hang/9~1"
hang1=$ID
post "$H/hang/9~2" # waits behind the first: CONSUMA_MAX_PER_HOST=1
wait_for 'grep -q "\"/hang/9~1\"" "$T/H.jsonl"' 5
ids=()
: >"$T/fast.txt"
for i in 1 2 3 4 5; do
	post "$A/ok~fast$i"
	ids+=("$ID")
done
for id in "${ids[@]}"; do settle "$id"; done
# The hanging host's first callback was still in flight when the last fast
# one arrived: its attempt has not ended, or ended after that (asking only
# "is it still in flight?" once they are settled races a slow machine).
last_fast_ms=$(python3 -c 'import json, sys
print(int(max(e["t"] for e in map(json.loads, open(sys.argv[1])) if "~fast" in e["path"]) * 1000))' "$T/A.jsonl")
hang1_end_ms=$(sqlite3 "$T/s/consuma.db" "SELECT coalesce(a.started_at + CAST(a.duration_ms AS INTEGER), $(date +%s%3N)) FROM attempts a JOIN requests r ON r.seq = a.request_seq WHERE r.id = '$hang1' AND a.number = 1")
assert_cmd "the hanging host's first callback is still in flight when the fast ones arrive" \
	test "$last_fast_ms" -lt "$hang1_end_ms"
n=0
for id in "${ids[@]}"; do
	http GET "$BASE/requests/$id"
	[ "$(json_get "$HTTP_BODY" 'j["callback_status"]')" = delivered ] && n=$((n + 1))
	echo "$id $(json_get "$HTTP_BODY" 'j["created_at"]')" >>"$T/fast.txt"
done
assert_eq "5 callbacks to 127.0.0.2 delivered while 127.0.0.3 hangs" 5 "$n"
lat=$(python3 - "$T/fast.txt" "$T/A.jsonl" <<'PY'
import datetime, json, sys
def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
acc = {l.split()[0]: ts(l.split()[1]) for l in open(sys.argv[1])}
lat = sorted((json.loads(l)["t"] - acc[json.loads(l)["headers"].get("webhook-id")]) * 1000
             for l in open(sys.argv[2]) if json.loads(l)["headers"].get("webhook-id") in acc)
print("%d callbacks, max %.1f ms" % (len(lat), lat[-1] if lat else -1))
PY
)
echo "# created_at->arrival at the healthy host while another hangs: $lat"

# ---- checked again at delivery ------------------------------------------------
"$SRC/tools/stack.sh" stop-deliverer --dir "$T/s" >/dev/null 2>&1
post "$A/ok~late"
late=$ID
assert_eq "accepted while 127.0.0.2 is allowed" 202 "$HTTP_CODE"
CONSUMA_CALLBACK_DENY_CIDRS=127.0.0.2/32 "$SRC/tools/stack.sh" start-deliverer --dir "$T/s" \
	>/dev/null 2>&1
settle "$late"
assert_eq "refused at delivery: failed after one attempt" "failed 1" \
	"$(json_get "$HTTP_BODY" 'j["callback_status"] + " " + str(len(j["delivery_trace"]))')"
assert_eq "refused at delivery: nothing reached the receiver" 0 \
	"$(grep -c '"/ok~late"' "$T/A.jsonl")"
assert_match "the attempt says why" "destination refused: 127\.0\.0\.2 is denied by CONSUMA_CALLBACK_DENY_CIDRS" \
	"$(json_get "$HTTP_BODY" 'j["delivery_trace"][0]["error_message"]')"

t_done

#!/usr/bin/env bash
# test_lookups: a callback host with a name server that never answers
# (issue 11, item 5) must not take the API pool with it.
#
# consuma-fcgi runs with the slowdns shim preloaded (tests/integration/
# slowdns.c): *.slow.test lookups hang until the test releases them,
# *.fast.test resolve to 127.0.0.1 at once, nothing leaves the machine. One
# API process of 4 threads: at most 2 lookups in flight, 1 per client
# (fcgi-app/main.c), and CONSUMA_DNS_TIMEOUT_MS at its maximum, so a held
# lookup holds its thread until the release.
#
#  1. A client holding its one lookup gets 503 + Retry-After for a second
#     slow host at once, naming callback_url; its Idempotency-Key replay of
#     an earlier job is answered (202, replayed) and a reused key with
#     another body is 422, both without a lookup (the replay check comes
#     before the DNS).
#  2. A second client takes the process's other place; a third gets 503
#     (the process's bound), but its IP-literal callback needs no lookup and
#     is accepted.
#  3. While both lookups hang, /healthz and GET /requests answer.
#  4. Released, the held requests end with 400 (did not resolve), and the
#     gate is free again.
# Before the gate, (1) hangs instead of 503 and (3) waits for the release.
. "$(dirname "$0")/lib.sh"
J='Content-Type: application/json'
SHIM=$BUILD/libslowdns.so
[ -f "$SHIM" ] || { not_ok "no $SHIM (built with the tests)"; t_done; }

# The wrapper preloads the shim into consuma-fcgi only (not spawn-fcgi, not
# the shell): a sanitizer build wants its runtime first in the list.
asan=$(ldd "$BUILD/consuma-fcgi" 2>/dev/null | awk '/libasan/ { print $3 }')
cat >"$T/fcgi-slowdns.sh" <<EOF
#!/bin/sh
LD_PRELOAD="${asan:+$asan }$SHIM" exec "$BUILD/consuma-fcgi" "\$@"
EOF
chmod 700 "$T/fcgi-slowdns.sh"
export SLOWDNS_LOG=$T/holds.log SLOWDNS_RELEASE=$T/release
export CONSUMA_STACK_FCGI_BIN=$T/fcgi-slowdns.sh CONSUMA_FCGI_THREADS=4 \
	CONSUMA_DNS_TIMEOUT_MS=60000 CONSUMA_ALLOW_PRIVATE_CALLBACKS=true \
	CONSUMA_TRUSTED_PROXIES=127.0.0.1/32 CONSUMA_RATE_LIMIT_REQUESTS=0 \
	CONSUMA_MAX_PENDING_PER_HOST=0
stack_up "$T/s" --api-procs 1 --sync-procs 1 --no-deliverer
grep -q 'lookups.bounds.*in_flight=2 per_client=1' "$T"/s/fcgi-api-1.log &&
	ok "4 threads: 2 lookups in flight, 1 per client" ||
	not_ok "bounds not logged as expected: $(grep lookups.bounds "$T"/s/fcgi-api-1.log)"

job() { # HOST: a job body for http://HOST/cb
	printf '{"input_data": "x", "iterations": 1, "callback_url": "http://%s/cb"}' "$1"
}
post() { # CLIENT HOST [curl args...]: POST /async on behalf of CLIENT, answered here
	local client=$1 host=$2; shift 2
	http POST "$BASE/async" -m 15 -H "$J" -H "X-Forwarded-For: $client" -d "$(job "$host")" "$@"
}
HELD=()
post_held() { # CLIENT HOST NAME: POST /async in the background; code in $T/NAME.code
	curl -s -m 150 -o "$T/$3.body" -w '%{http_code}' -X POST "$BASE/async" -H "$J" \
		-H "X-Forwarded-For: $1" -d "$(job "$2")" >"$T/$3.code" &
	t_track $!
	HELD+=($!)
}
holds() { count_lines "$SLOWDNS_LOG" '^hold '; } # lookups held so far
still_held() { # all background requests still waiting?
	local p
	for p in "${HELD[@]}"; do kill -0 "$p" 2>/dev/null || return 1; done
	[ ! -e "$SLOWDNS_RELEASE" ]
}

A=198.51.100.1 B=198.51.100.2 C=198.51.100.3

# an earlier job of client A, with a key, to a name that resolves
post $A a.fast.test:9 -H 'Idempotency-Key: k-1'
assert_http "a job to a resolving name is accepted" 202
first_id=$(json_get "$HTTP_BODY" 'j["request_id"]')

# ---- 1. one client, one lookup ------------------------------------------------------
post_held $A one.slow.test a1
assert_cmd "client A's lookup is in flight" wait_for '[ "$(holds)" -ge 1 ]' 20
post $A two.slow.test
assert_http "client A's second slow host: 503 at once" 503 '^callback_url: .*two\.slow\.test.*client.*\(bound 1\); retry after 60 s$'
assert_eq "it carries Retry-After (the DNS timeout)" 60 "$(header_get Retry-After)"
post $A a.fast.test:9 -H 'Idempotency-Key: k-1'
assert_http "client A's replay is answered while its lookup hangs" 202
assert_eq "the replay names the first job" "$first_id" "$(json_get "$HTTP_BODY" 'j["request_id"]')"
assert_eq "marked replayed" true "$(header_get Idempotency-Replayed)"
http POST "$BASE/async" -m 15 -H "$J" -H "X-Forwarded-For: $A" -H 'Idempotency-Key: k-1' \
	-d '{"input_data": "other", "iterations": 1, "callback_url": "http://a.fast.test:9/cb"}'
assert_http "the key with another body is 422, no lookup needed" 422 "^Idempotency-Key: .*$first_id"
assert_eq "client A never held more than one lookup" 1 "$(holds)"

# ---- 2. the process's bound -----------------------------------------------------------
post_held $B three.slow.test b1
assert_cmd "client B's lookup is in flight too" wait_for '[ "$(holds)" -ge 2 ]' 20
post $C four.slow.test
assert_http "client C: the process's places are taken, 503" 503 '^callback_url: .*four\.slow\.test.*this process.*\(bound 2\); retry after 60 s$'
post $C 127.0.0.1:9
assert_http "client C's IP literal needs no lookup: accepted" 202

# ---- 3. the rest of the pool answers ----------------------------------------------------
http GET "$BASE/healthz" -m 15
assert_match "/healthz answers while two lookups hang ($HTTP_CODE)" '^(200|503)$' "$HTTP_CODE"
assert_match "with its body" '"db_connected"' "$HTTP_BODY"
http GET "$BASE/requests?limit=5" -m 15 -H "X-Forwarded-For: $A"
assert_http "GET /requests answers while two lookups hang" 200
http GET "$BASE/requests/$first_id" -m 15 -H "X-Forwarded-For: $A"
assert_http "GET /requests/{id} answers while two lookups hang" 200
assert_cmd "all of that while the lookups were still held" still_held

# ---- 4. released ------------------------------------------------------------------------
touch "$SLOWDNS_RELEASE"
for p in "${HELD[@]}"; do wait "$p"; done
assert_eq "client A's held request ends: 400" 400 "$(cat "$T/a1.code")"
assert_match "naming the host that did not resolve" 'one\.slow\.test did not resolve' "$(cat "$T/a1.body")"
assert_eq "client B's held request ends: 400" 400 "$(cat "$T/b1.code")"
post $A five.slow.test
assert_http "the places came back: a lookup runs again (and ends at once, released)" 400 'did not resolve'

"$SRC/tools/stack.sh" down --dir "$T/s" >/dev/null 2>&1
assert_clean_logs "$T/s"
t_done

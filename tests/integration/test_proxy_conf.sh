#!/usr/bin/env bash
# test_proxy_conf: proxy-conf/lighttpd.conf and proxy-conf/nginx.conf, filled
# in with test paths, pass `lighttpd -tt` and `nginx -t`; then nginx runs for
# real in front of a stack's consuma-fcgi pools and routes like lighttpd does.
. "$(dirname "$0")/lib.sh"

export CONSUMA_RATE_LIMIT_REQUESTS=0
export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true

# fill SRC DST PORT DIR SYNC_N API_N: the @PLACEHOLDERS@ of a template
fill() {
	local text i sync_l='' api_l='' sync_n='' api_n=''
	for ((i = 1; i <= $5; i++)); do
		sync_l+="\"sync-$i\" => ( \"socket\" => \"$4/fcgi-sync-$i.sock\", \"check-local\" => \"disable\" ), "
		sync_n+="server unix:$4/fcgi-sync-$i.sock; "
	done
	for ((i = 1; i <= $6; i++)); do
		api_l+="\"api-$i\" => ( \"socket\" => \"$4/fcgi-api-$i.sock\", \"check-local\" => \"disable\" ), "
		api_n+="server unix:$4/fcgi-api-$i.sock; "
	done
	text=$(cat "$1")
	text=${text//@PORT@/$3}
	text=${text//@SYNC_BACKENDS@/$sync_l}
	text=${text//@API_BACKENDS@/$api_l}
	text=${text//@SYNC_UPSTREAMS@/$sync_n}
	text=${text//@API_UPSTREAMS@/$api_n}
	text=${text//@MAX_REQUEST_KB@/256}
	text=${text//@USER@/$(id -un)}
	text=${text//@DIR@/$4}
	printf '%s\n' "$text" >"$2"
	local left
	left=$(grep -v '^[[:space:]]*#' "$2" | grep -o '@[A-Z_]*@' | sort -u | tr '\n' ' ')
	[ -z "$left" ] || not_ok "$(basename "$1"): placeholders left: $left"
}

# ---- syntax ------------------------------------------------------------------------
C=$T/conf
mkdir -p "$C/nginx-tmp"
if [ -f "$SRC/proxy-conf/lighttpd-limits.conf" ]; then
	fill "$SRC/proxy-conf/lighttpd-limits.conf" "$C/lighttpd-limits.conf" 8000 "$C" 2 2
else
	: >"$C/lighttpd-limits.conf"
fi
fill "$SRC/proxy-conf/lighttpd.conf" "$C/lighttpd.conf" 8000 "$C" 2 3
assert_cmd "lighttpd -tt accepts lighttpd.conf" lighttpd -tt -f "$C/lighttpd.conf"
fill "$SRC/proxy-conf/nginx.conf" "$C/nginx.conf" 8000 "$C" 2 3
assert_cmd "nginx -t accepts nginx.conf" nginx -t -q -c "$C/nginx.conf" -e "$C/nginx.log"

# ---- nginx in front of real pools ------------------------------------------------------
stack_up "$T/stack" --sync-procs 1 --api-procs 1 --no-deliverer
D=$T/stack
N=$T/nginx
mkdir -p "$N/nginx-tmp"
nport=$(free_port)
fill "$SRC/proxy-conf/nginx.conf" "$N/nginx.conf" "$nport" "$N" 1 1
# the upstream sockets are the stack's
sed -i "s|unix:$N/|unix:$D/|g" "$N/nginx.conf"
nginx -c "$N/nginx.conf" -e "$N/nginx.log" -g 'daemon off;' &
t_track $!
NB=http://127.0.0.1:$nport
for _ in $(seq 100); do curl -s -o /dev/null "$NB/healthz" && break; sleep 0.1; done

J='Content-Type: application/json'
http POST "$NB/sync" -H "$J" -d '{"input_data": "hello", "iterations": 1}'
assert_http "nginx: POST /sync" 200
assert_eq "nginx: /sync result" 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 \
	"$(json_get "$HTTP_BODY" 'j["result"]')"
http POST "$NB/async" -H "$J" -H 'Idempotency-Key: nginx-1' \
	-d '{"input_data": "hello", "callback_url": "http://127.0.0.1:9/cb"}'
assert_http "nginx: POST /async" 202
id=$(json_get "$HTTP_BODY" 'j["request_id"]')
http POST "$NB/async" -H "$J" -H 'Idempotency-Key: nginx-1' \
	-d '{"input_data": "hello", "callback_url": "http://127.0.0.1:9/cb"}'
assert_eq "nginx: the Idempotency-Key header reaches the app" "$id" "$(json_get "$HTTP_BODY" 'j["request_id"]')"
http GET "$NB/requests/$id"
assert_http "nginx: GET /requests/{id}" 200
http GET "$NB/requests?mode=async&limit=1"
assert_eq "nginx: query string reaches the app" 1 "$(json_get "$HTTP_BODY" 'len(j)')"
http GET "$NB/healthz"
assert_http "nginx: GET /healthz" 200
http GET "$NB/nope"
assert_http "nginx: unknown route" 404 'path'
http GET "$NB/sync"
assert_http "nginx: GET /sync" 405
assert_eq "nginx: Allow" POST "$(header_get Allow)"
head -c 100000 /dev/zero | tr '\0' 'a' >"$T/big"
http POST "$NB/sync" -H "$J" --data-binary @"$T/big"
assert_http "nginx: body over CONSUMA_MAX_BODY_BYTES, 413 from the app" 413 '^body'
head -c 400000 /dev/zero | tr '\0' 'a' >"$T/huge"
http POST "$NB/sync" -H "$J" --data-binary @"$T/huge"
assert_http "nginx: body over the proxy's bound, 413 in JSON" 413 '^body'

# the same request through lighttpd and nginx reaches the same handler
http GET "$BASE/requests/$id"
assert_http "lighttpd: the job nginx accepted" 200

t_done

#!/usr/bin/env bash
# test_proxy_conf: proxy-conf/lighttpd.conf and proxy-conf/nginx.conf, filled
# in with test paths, pass `lighttpd -tt` and `nginx -t`; then nginx runs for
# real in front of a stack's consuma-fcgi pools and routes like lighttpd does.
. "$(dirname "$0")/lib.sh"

export CONSUMA_RATE_LIMIT_REQUESTS=0
export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true

# fill SRC DST PORT DIR SYNC_N API_N: the @PLACEHOLDERS@ of a template
# (FRONT_RATE, FRONT_BURST, FRONT_ADDR_RATE, FRONT_ADDR_BURST, FRONT_EXEMPT:
# nginx's rate limits, generous unless set)
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
	text=${text//@FRONT_RATE@/${FRONT_RATE:-100r/s}}
	text=${text//@FRONT_BURST@/${FRONT_BURST:-1000}}
	text=${text//@FRONT_EXEMPT@/${FRONT_EXEMPT:-}}
	text=${text//@FRONT_ADDR_RATE@/${FRONT_ADDR_RATE:-100r/s}}
	text=${text//@FRONT_ADDR_BURST@/${FRONT_ADDR_BURST:-1000}}
	text=${text//@ERRORS_DIR@/$4/errors}
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
# several hosts (proxy-conf/README.md): every host's processes over TCP
fill "$SRC/proxy-conf/nginx.conf" "$C/nginx-hosts.conf" 8000 "$C" 1 1
sed -i -e "s|server unix:$C/fcgi-sync-1.sock;|server 10.0.0.11:9001; server 10.0.0.12:9001;|" \
	-e "s|server unix:$C/fcgi-api-1.sock;|server 10.0.0.11:9101; server 10.0.0.11:9102; server 10.0.0.12:9101; server 10.0.0.12:9102;|" \
	"$C/nginx-hosts.conf"
assert_cmd "nginx -t accepts nginx.conf with two hosts' pools over TCP" \
	nginx -t -q -c "$C/nginx-hosts.conf" -e "$C/nginx.log"
assert_eq "... and it lists them" 6 "$(grep -v '^[[:space:]]*#' "$C/nginx-hosts.conf" | grep -o 'server 10\.0\.0\.1[12]:9[01]0[12];' | wc -l)"

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
wait_for 'curl -s -o /dev/null "$NB/healthz"' 10

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

# ---- the rate limit at the front -------------------------------------------------------
# one client (address, or bearer key) gets rate + burst requests, then 429
# in JSON with Retry-After; another key or an exempt address is not
# affected. 127.0.0.2 reaches nginx's 127.0.0.1 over lo.
L=$T/limit
mkdir -p "$L/nginx-tmp"
lrport=$(free_port)
FRONT_RATE=1r/m FRONT_BURST=2 FRONT_ADDR_RATE=1r/m FRONT_ADDR_BURST=5 FRONT_EXEMPT='127.0.0.2 0;' fill "$SRC/proxy-conf/nginx.conf" "$L/nginx.conf" "$lrport" "$L" 1 1
sed -i "s|unix:$L/|unix:$D/|g" "$L/nginx.conf"
nginx -c "$L/nginx.conf" -e "$L/nginx.log" -g 'daemon off;' &
t_track $!
LB=http://127.0.0.1:$lrport
for _ in $(seq 100); do curl -s -o /dev/null --interface 127.0.0.2 "$LB/healthz" && break; sleep 0.1; done
codes=''
for _ in 1 2 3 4; do
	http GET "$LB/healthz"
	codes+="$HTTP_CODE "
done
assert_eq "front limit: rate + burst pass, then 429" "200 200 200 429 " "$codes"
assert_http "front limit: the 429 is JSON" 429 '^rate: too many requests'
assert_eq "front limit: Retry-After on the 429" 1 "$(header_get Retry-After)"
http GET "$LB/healthz" -H 'Authorization: Bearer someone-else'
assert_eq "front limit: a bearer key is a client of its own" 200 "$HTTP_CODE"
codes=''
for _ in 1 2 3 4 5; do
	http GET "$LB/healthz" --interface 127.0.0.2
	codes+="$HTTP_CODE "
done
assert_eq "front limit: an exempt address is not limited" "200 200 200 200 200 " "$codes"
codes=''
for k in 1 2 3 4 5 6 7; do
	http GET "$LB/healthz" --interface 127.0.0.3 -H "Authorization: Bearer made-up-$k"
	codes+="$HTTP_CODE "
done
assert_eq "front limit: one address with a new key each time is limited by address" \
	"200 200 200 200 200 200 429 " "$codes"

# the same request through lighttpd and nginx reaches the same handler
http GET "$BASE/requests/$id"
assert_http "lighttpd: the job nginx accepted" 200

# ---- every response is JSON, the fronts' own too ------------------------------------------
# raw PORT: sends stdin as it is, prints "status<TAB>media type<TAB>json|notjson<TAB>detail"
cat >"$T/raw.py" <<'PY'
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
try:
    s.sendall(sys.stdin.buffer.read())
except OSError:
    pass
data = b""
try:
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
        head, sep, body = data.partition(b"\r\n\r\n")
        cl = [l.split(b":", 1)[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
        if sep and cl and len(body) >= int(cl[0]):
            break
except OSError:
    pass
head, _, body = data.partition(b"\r\n\r\n")
lines = head.decode("latin1").split("\r\n")
parts = lines[0].split(" ")
ct = next((l.split(":", 1)[1].strip() for l in lines[1:] if l.lower().startswith("content-type:")), "")
ra = next((l.split(":", 1)[1].strip() for l in lines[1:] if l.lower().startswith("retry-after:")), "-")
try:
    j = json.loads(body)
    kind, detail = "json", (j.get("detail", "-") if isinstance(j, dict) else "-")
except ValueError:
    kind, detail = "notjson", body[:60].decode("latin1").replace("\n", " ")
print(parts[1] if len(parts) > 1 else "000", ct.split(";")[0], kind, detail, ra, sep="\t")
PY
lport=${BASE##*:}
# front NAME PORT STATUS DETAIL_REGEX FORMAT [ARGS...]: the raw request
# (printf FORMAT ARGS) is answered STATUS in JSON, with a string detail
# matching DETAIL_REGEX
front() {
	local out st ct kind detail
	# shellcheck disable=SC2059 # the format is the request
	out=$(printf "$5" "${@:6}" | python3 "$T/raw.py" "$2")
	IFS=$'\t' read -r st ct kind detail _ <<<"$out"
	if [ "$st" = "$3" ] && [ "$ct" = application/json ] && [ "$kind" = json ] &&
		[[ "$detail" =~ $4 ]]; then
		ok "$1: $3 in JSON ($detail)"
	else
		not_ok "$1: expected $3 in JSON with detail /$4/, got [$out]"
	fi
}
H=$'Host: 127.0.0.1\r\n'
for f in lighttpd:$lport nginx:$nport; do
	n=${f%%:*} p=${f#*:}
	front "$n: body over the front's bound" "$p" 413 '^body: larger than the front end accepts' \
		'POST /sync HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n' "$H"
	front "$n: Content-Length not a number" "$p" 400 '^request: malformed' \
		'POST /sync HTTP/1.1\r\n%sContent-Length: abc\r\n\r\n' "$H"
	front "$n: Content-Length and Transfer-Encoding" "$p" 400 '^request: malformed' \
		'POST /sync HTTP/1.1\r\n%sContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' "$H"
	front "$n: a 70 kB header" "$p" 431 '^headers: request header fields too large' \
		'GET /healthz HTTP/1.1\r\n%sX-Big: %s\r\n\r\n' "$H" "$(head -c 70000 /dev/zero | tr '\0' a)"
	front "$n: an unknown Transfer-Encoding" "$p" 501 '^method: not implemented' \
		'POST /sync HTTP/1.1\r\n%sTransfer-Encoding: gzip\r\n\r\n' "$H"
	front "$n: an HTTP version it does not speak" "$p" 505 'HTTP version' \
		'GET /healthz HTTP/3.0\r\n%s\r\n' "$H"
done
# lighttpd refuses these itself; nginx hands them to consuma-fcgi, which
# answers in JSON too
front "lighttpd: %00 in the path" "$lport" 400 '^request' \
	'GET /healthz%%00 HTTP/1.1\r\n%s\r\n' "$H"
front "nginx: %00 in the path" "$nport" 400 '^request' \
	'GET /healthz%%00 HTTP/1.1\r\n%s\r\n' "$H"
front "lighttpd: %00 in the query" "$lport" 400 '^request' \
	'GET /requests?limit=%%00 HTTP/1.1\r\n%s\r\n' "$H"
front "nginx: %00 in the query (the app)" "$nport" 422 '^limit' \
	'GET /requests?limit=%%00 HTTP/1.1\r\n%s\r\n' "$H"
front "lighttpd: POST without Content-Length" "$lport" 411 '^Content-Length' \
	'POST /healthz HTTP/1.1\r\n%s\r\n' "$H"
front "nginx: POST without Content-Length (the app)" "$nport" 405 '^method' \
	'POST /healthz HTTP/1.1\r\n%s\r\n' "$H"
front "lighttpd: an unknown method" "$lport" 501 '^method' \
	'FOO /sync HTTP/1.1\r\n%s\r\n' "$H"
front "nginx: an unknown method (the app)" "$nport" 405 '^method' \
	'FOO /sync HTTP/1.1\r\n%s\r\n' "$H"

# no backend at all: the fronts rendered in $C point at sockets that do not exist
mkdir -p "$C/errors"
for f in "$SRC"/proxy-conf/errors/*.json; do cp "$f" "$C/errors/$(basename "$f" .json).html"; done
lp2=$(free_port)
np2=$(free_port)
fill "$SRC/proxy-conf/lighttpd.conf" "$C/lighttpd.conf" "$lp2" "$C" 1 1
fill "$SRC/proxy-conf/nginx.conf" "$C/nginx.conf" "$np2" "$C" 1 1
lighttpd -D -f "$C/lighttpd.conf" &
t_track $!
nginx -c "$C/nginx.conf" -e "$C/nginx.log" -g 'daemon off;' &
t_track $!
wait_for 'curl -s -o /dev/null "http://127.0.0.1:$lp2/" && curl -s -o /dev/null "http://127.0.0.1:$np2/"' 10
front "lighttpd: no backend" "$lp2" 503 '^service: no backend available' \
	'GET /healthz HTTP/1.1\r\n%s\r\n' "$H"
front "nginx: no backend" "$np2" 502 '^service: the backend gave no valid answer' \
	'GET /healthz HTTP/1.1\r\n%s\r\n' "$H"
assert_eq "nginx: Retry-After on a front-end 502" 1 \
	"$(printf 'GET /healthz HTTP/1.1\r\n%s\r\n' "$H" | python3 "$T/raw.py" "$np2" | cut -f5)"

# one text per status for both fronts
for f in "$SRC"/proxy-conf/errors/*.json; do
	c=$(basename "$f" .json)
	d=$(json_get "$(cat "$f")" 'j["detail"]')
	grep -qF "$c \"$d\";" "$SRC/proxy-conf/nginx.conf" && ok "nginx.conf has errors/$c.json's detail" ||
		not_ok "nginx.conf's map lacks [$c \"$d\";] of proxy-conf/errors/$c.json"
done

t_done

#!/usr/bin/env bash
# test_front: tools/front.sh runs proxy-conf/nginx.conf in front of two
# stacks' pools, the shape of a cluster's front over two hosts: requests
# reach both, /sync goes to the sync pools, a stack that goes away is
# skipped, and down stops exactly that nginx. (The stacks keep SQLite here:
# what two hosts on one PostgreSQL database share is another test's.)
. "$(dirname "$0")/lib.sh"

export CONSUMA_RATE_LIMIT_REQUESTS=0
stack_up "$T/h1" --sync-procs 1 --api-procs 1 --no-deliverer
B1=$BASE
stack_up "$T/h2" --sync-procs 1 --api-procs 2 --no-deliverer
F=$T/front
fport=$(free_port)
FB=$("$SRC/tools/front.sh" up --dir "$F" --port "$fport" --exempt 127.0.0.1 "$T/h1" "$T/h2" 2>"$T/front.err" | tail -n 1)
assert_eq "front.sh up prints its URL" "http://127.0.0.1:$fport" "$FB"
[ -n "$FB" ] || { cat "$T/front.err" >&2; t_done; }
fpid=$(head -n 1 "$F/nginx.pid")
t_track "$fpid"
assert_eq "the front's upstreams are both stacks' sockets" 5 \
	"$(grep -v '^[[:space:]]*#' "$F/nginx.conf" | grep -o "server unix:$T/h[12]/fcgi-[a-z]*-[0-9].sock;" | wc -l)"

# served_by STACK: requests the stack's API pool logged
served_by() { cat "$1"/fcgi-api-*.log | grep -c 'route=healthz'; }
# healthz_codes N: the statuses of N GET /healthz through the front, run together
healthz_codes() {
	local codes=''
	for _ in $(seq "$1"); do
		http GET "$FB/healthz"
		codes+=$HTTP_CODE
	done
	echo "$codes"
}
b1=$(served_by "$T/h1")
b2=$(served_by "$T/h2")
assert_eq "12 x /healthz through the front: 200" "$(printf '200%.0s' $(seq 12))" "$(healthz_codes 12)"
n1=$(($(served_by "$T/h1") - b1))
n2=$(($(served_by "$T/h2") - b2))
assert_cmd "both stacks served some ($n1 + $n2)" test "$n1" -gt 0 -a "$n2" -gt 0
assert_eq "... and together all" 12 $((n1 + n2))

http POST "$FB/sync" -H 'Content-Type: application/json' -d '{"input_data": "hello", "iterations": 1}'
assert_http "POST /sync through the front" 200
assert_cmd "... answered by a sync pool" bash -c "cat '$T'/h[12]/fcgi-sync-1.log | grep -q 'route=sync'"

"$SRC/tools/stack.sh" down --dir "$T/h2" 2>/dev/null
assert_eq "one stack gone: the front still answers, from the other" "$(printf '200%.0s' $(seq 6))" \
	"$(healthz_codes 6)"

"$SRC/tools/front.sh" down --dir "$F" 2>/dev/null
assert_cmd "front.sh down stops its nginx" bash -c "! kill -0 $fpid 2>/dev/null"
http GET "$B1/healthz"
assert_http "... and leaves the stacks alone" 200

t_done

#!/usr/bin/env bash
# test_disk_full: the database on a small tmpfs that fills up (issue 11,
# "disk full"), through the real stack (lighttpd, the pools, the deliverer).
#
#  1. While the disk is full, POST /async answers 503 with Retry-After and a
#     JSON detail naming the database, never 202 and never another 5xx;
#     /healthz is 503 "degraded" with writes_ok false (each API process
#     reports its own writes).
#  2. Every job that did get a 202 is on disk and readable.
#  3. Once space returns, without a restart: POST /async is 202 again and
#     /healthz goes back to 200.
# Needs root (mount -t tmpfs); CI runs the suite as root.
. "$(dirname "$0")/lib.sh"
J='Content-Type: application/json'

if [ "$(id -u)" -ne 0 ]; then
	not_ok "needs root to mount a tmpfs"
	t_done
fi
DISK=$T/disk
mkdir -p "$DISK"
if ! mount -t tmpfs -o size=4m,mode=0700 tmpfs "$DISK"; then
	not_ok "mount -t tmpfs failed"
	t_done
fi
# The stack must be down before the tmpfs goes (its files are open there).
disk_cleanup() {
	"$SRC/tools/stack.sh" down --dir "$T/s" >/dev/null 2>&1 || true
	umount "$DISK" 2>/dev/null || umount -l "$DISK" 2>/dev/null || true
	t_cleanup
}
trap disk_cleanup EXIT

receiver_start r rport
CB="http://127.0.0.1:$rport/ok"

export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true CONSUMA_DEFAULT_ITERATIONS=1 \
	CONSUMA_MAX_PENDING_PER_HOST=0 CONSUMA_RATE_LIMIT_REQUESTS=0 \
	CONSUMA_DATABASE_PATH=$DISK/consuma.db
stack_up "$T/s"

PAD=$(head -c 6000 /dev/zero | tr '\0' 'x')
post() {
	http POST "$BASE/async" -H "$J" \
		-d "{\"input_data\": \"$PAD\", \"iterations\": 1, \"callback_url\": \"$CB\"}"
}

post
assert_http "before: POST /async" 202
ACCEPTED=("$(json_get "$HTTP_BODY" 'j["request_id"]')")

# ---- 1. fill the disk, then keep posting ----------------------------------------
dd if=/dev/zero of="$DISK/filler" bs=64k 2>/dev/null
n202=0 n503=0 other=0 noretry=0 badbody=0
for _ in $(seq 300); do
	post
	case $HTTP_CODE in
	202)
		n202=$((n202 + 1))
		ACCEPTED+=("$(json_get "$HTTP_BODY" 'j["request_id"]')")
		;;
	503)
		n503=$((n503 + 1))
		[ -n "$(header_get Retry-After)" ] || noretry=$((noretry + 1))
		detail=$(json_get "$HTTP_BODY" 'j.get("detail","")' 2>/dev/null)
		[[ "$detail" =~ database ]] || badbody=$((badbody + 1))
		;;
	*)
		other=$((other + 1))
		echo "# unexpected HTTP $HTTP_CODE: $HTTP_BODY"
		;;
	esac
	[ "$n503" -ge 20 ] && break
done
echo "# disk full: $n202 accepted (WAL room left), $n503 refused"
assert_cmd "a full disk refuses jobs with 503" test "$n503" -ge 20
assert_eq "no other status while full" 0 "$other"
assert_eq "every 503 carries Retry-After" 0 "$noretry"
assert_eq "every 503 names the database in its JSON detail" 0 "$badbody"

# Each API process reports its own committer's failures: a probe may reach
# one whose last write was a while ago, so post and probe in turn.
wait_for 'post; http GET "$BASE/healthz"; [ "$HTTP_CODE" = 503 ]' 10
assert_http "/healthz while writes fail" 503
assert_eq "/healthz status" degraded "$(json_get "$HTTP_BODY" 'j["status"]')"
assert_eq "/healthz writes_ok" false "$(json_get "$HTTP_BODY" 'str(j["writes_ok"]).lower()')"

# ---- 2. what was accepted is on disk ----------------------------------------------
missing=0
for id in "${ACCEPTED[@]}"; do
	http GET "$BASE/requests/$id"
	[ "$HTTP_CODE" = 200 ] || missing=$((missing + 1))
done
assert_eq "every 202 is readable (${#ACCEPTED[@]} jobs)" 0 "$missing"

# ---- 3. space returns: recovery without restart -----------------------------------
rm -f "$DISK/filler"
wait_for 'post; [ "$HTTP_CODE" = 202 ]' 10
assert_eq "POST /async after space returns" 202 "$HTTP_CODE"
wait_for 'http GET "$BASE/healthz"; [ "$HTTP_CODE" = 200 ]' 10
assert_eq "/healthz after space returns" 200 "$HTTP_CODE"

"$SRC/tools/stack.sh" down --dir "$T/s" >/dev/null 2>&1
assert_clean_logs "$T/s"
t_done

#!/usr/bin/env bash
# test_storm_auth: the storm with API keys on.
#
#  1. consuma-storm --api-key refuses a malformed key with exit 2, naming
#     the option; storm.sh --auth with --server-url is refused (exit 2);
#  2. tools/storm.sh --auth: its private stack mints an admin key (0600 in
#     the stack directory) and the storm sends it: every request succeeds,
#     every callback arrives and verifies, and the records are owned by the
#     key's client;
#  3. the keys are really enforced: with CONSUMA_API_KEYS_FILE set and no
#     --api-key every request fails (401) and the storm exits 1; with
#     --api-key of a minted client key passed through, it succeeds;
#  4. with two signing secrets (rotation) storm.sh verifies with the first.
. "$(dirname "$0")/lib.sh"

need_storm
small=(--num-requests 20 --concurrency 4 --iterations 100 --callback-wait 60 --timeout 60)

# ---- 1. usage ------------------------------------------------------------------
for bad in "" "ck 1" "ck=1" 'ck"'; do
	rc=0
	"$STORM" --api-key "$bad" >/dev/null 2>"$T/usage.err" || rc=$?
	assert_eq "consuma-storm --api-key '$bad' exits 2" 2 "$rc"
	assert_match "  naming --api-key" "--api-key" "$(cat "$T/usage.err")"
done
rc=0
"$SRC/tools/storm.sh" --auth --server-url http://127.0.0.1:9 >/dev/null 2>"$T/usage.err" || rc=$?
assert_eq "storm.sh --auth with --server-url exits 2" 2 "$rc"
assert_match "  and says to pass --api-key" "--api-key" "$(cat "$T/usage.err")"

# ---- 2. storm.sh --auth ----------------------------------------------------------
mkdir -p "$T/auth"
rc=0
STORM_KEEP=1 TMPDIR=$T/auth "$SRC/tools/storm.sh" --auth "${small[@]}" --json "$T/auth.json" \
	>"$T/auth.out" 2>"$T/auth.err" || rc=$?
assert_eq "storm.sh --auth exits 0" 0 "$rc"
[ "$rc" = 0 ] || cat "$T/auth.out" "$T/auth.err" >&2
assert_match "it says where the key is" 'admin key minted in .*/admin.key' "$(cat "$T/auth.err")"
sdir=$(find "$T/auth" -maxdepth 1 -name 'consuma-storm.*' | head -n 1)
assert_eq "the admin key file is 0600" 600 "$(stat -c %a "$sdir/admin.key" 2>/dev/null)"
assert_eq "the keys file is 0600" 600 "$(stat -c %a "$sdir/api-keys" 2>/dev/null)"
assert_match "the keys file holds its hash only" '^admin admin [0-9a-f]{64}$' "$(cat "$sdir/api-keys" 2>/dev/null)"
if [ -s "$T/auth.json" ]; then
	for m in sync async; do
		assert_eq "$m: 20 of 20 succeeded with the key" 20 "$(json_file "$T/auth.json" "j['$m']['succeeded']")"
	done
	assert_eq "every callback received" 20 "$(json_file "$T/auth.json" "j['async']['callbacks']['received']")"
	assert_eq "no bad signature" 0 "$(json_file "$T/auth.json" "j['async']['callbacks']['bad_signature']")"
else
	not_ok "storm.sh --auth wrote no JSON"
fi
assert_eq "the 40 records are owned by the key's client" "40 admin" \
	"$(sqlite3 "$sdir/consuma.db" "SELECT count(*) || ' ' || group_concat(DISTINCT owner) FROM requests" 2>/dev/null)"

# ---- 3. keys enforced; --api-key passed through -------------------------------------
out=$("$BUILD/consuma-fcgi" --mint-key stormer client 2>/dev/null)
sed -n 2p <<<"$out" >"$T/keys"
key=$(sed -n 1p <<<"$out")
mkdir -p "$T/nokey" "$T/withkey"
rc=0
CONSUMA_API_KEYS_FILE=$T/keys TMPDIR=$T/nokey "$SRC/tools/storm.sh" "${small[@]}" --mode sync \
	--json "$T/nokey.json" >"$T/nokey.out" 2>"$T/nokey.err" || rc=$?
assert_eq "keys on and no --api-key: the storm fails (exit 1)" 1 "$rc"
assert_eq "  every request failed" 20 "$(json_file "$T/nokey.json" "j['sync']['failed']" 2>/dev/null)"
assert_match "  storm.sh warned" 'no --api-key given' "$(cat "$T/nokey.err")"
rc=0
CONSUMA_API_KEYS_FILE=$T/keys TMPDIR=$T/withkey "$SRC/tools/storm.sh" "${small[@]}" \
	--api-key "$key" --json "$T/withkey.json" >"$T/withkey.out" 2>"$T/withkey.err" || rc=$?
assert_eq "keys on and --api-key passed through: exit 0" 0 "$rc"
[ "$rc" = 0 ] || cat "$T/withkey.out" "$T/withkey.err" >&2
assert_eq "  async: 20 of 20 succeeded" 20 "$(json_file "$T/withkey.json" "j['async']['succeeded']" 2>/dev/null)"

# ---- 4. a rotation list: the storm verifies the first secret's signature -----------
mkdir -p "$T/rot"
rc=0
CONSUMA_CALLBACK_SECRET="whsec_$(head -c 32 /dev/urandom | base64 -w0) whsec_$(head -c 32 /dev/urandom | base64 -w0)" \
	TMPDIR=$T/rot "$SRC/tools/storm.sh" "${small[@]}" --mode async --json "$T/rot.json" \
	>"$T/rot.out" 2>"$T/rot.err" || rc=$?
assert_eq "two secrets in CONSUMA_CALLBACK_SECRET: storm.sh exits 0" 0 "$rc"
[ "$rc" = 0 ] || cat "$T/rot.out" "$T/rot.err" >&2
assert_eq "  signatures were checked" true "$(json_file "$T/rot.json" 'j["settings"]["signatures_checked"]' 2>/dev/null)"
assert_eq "  and every one verified" "20 0" \
	"$(json_file "$T/rot.json" "'%d %d' % (j['async']['callbacks']['received'], j['async']['callbacks']['bad_signature'])" 2>/dev/null)"
t_done

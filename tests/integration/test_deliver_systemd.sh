#!/usr/bin/env bash
# test_deliver_systemd: the units of proxy-conf/systemd pass
# `systemd-analyze verify` (on copies whose binary paths point at the build
# directory, since verify requires every ExecStart binary to exist; no
# running systemd is needed), carry the hardening the issue asks for, and the
# deliverer speaks sd_notify: READY=1, WATCHDOG=1, STOPPING=1 through a fake
# NOTIFY_SOCKET.
. "$(dirname "$0")/lib.sh"
U=$SRC/proxy-conf/systemd

if ! command -v systemd-analyze >/dev/null; then
	echo "# SKIP: systemd-analyze is not installed (package systemd)"
	ok "skipped: no systemd-analyze"
	t_done
fi
spawn=$(command -v spawn-fcgi || echo /usr/bin/spawn-fcgi)

mkdir -p "$T/units"
for f in "$U"/*.service "$U"/*.target; do
	sed -e "s#/usr/local/bin/#$BUILD/#g" -e "s#/usr/bin/spawn-fcgi#$spawn#g" "$f" >"$T/units/${f##*/}"
done
# Templates are verified through an instance.
for p in sync api; do
	cp "$T/units/consuma-fcgi-$p@.service" "$T/units/consuma-fcgi-$p@1.service"
done
units=("$T/units/consuma-deliverer.service" "$T/units/consuma-fcgi-sync@1.service"
	"$T/units/consuma-fcgi-api@1.service" "$T/units/consuma.target")
out=$(systemd-analyze verify --man=no --generators=no "${units[@]}" 2>&1)
rc=$?
assert_eq "systemd-analyze verify passes" 0 "$rc"
assert_eq "systemd-analyze verify has nothing to say" "" "$out"

# A host of several (consuma-host.target): the pools on TCP through the
# drop-in consuma-fcgi-tcp.conf, an instance per port.
H=$T/host-units
mkdir -p "$H/consuma-fcgi-api@.service.d" "$H/consuma-fcgi-sync@.service.d"
cp "$T/units/consuma-deliverer.service" "$T/units/consuma-host.target" "$H/"
for p in sync api; do
	cp "$T/units/consuma-fcgi-$p@.service" "$H/"
	sed -e "s#/usr/local/bin/#$BUILD/#g" -e "s#/usr/bin/spawn-fcgi#$spawn#g" "$U/consuma-fcgi-tcp.conf" \
		>"$H/consuma-fcgi-$p@.service.d/tcp.conf"
done
cp "$H/consuma-fcgi-sync@.service" "$H/consuma-fcgi-sync@9001.service"
cp "$H/consuma-fcgi-api@.service" "$H/consuma-fcgi-api@9101.service"
out=$(systemd-analyze verify --man=no --generators=no "$H/consuma-host.target" \
	"$H/consuma-fcgi-sync@9001.service" "$H/consuma-fcgi-api@9101.service" 2>&1)
assert_eq "systemd-analyze verify passes a cluster host's units and drop-in" "0 " "$? $out"
for w in consuma-fcgi-sync@9001.service consuma-fcgi-api@9101.service consuma-deliverer.service; do
	assert_cmd "consuma-host.target wants $w" grep -q "^Wants=.*$w" "$U/consuma-host.target"
done
assert_cmd "consuma-host.target starts no lighttpd (nginx is the front)" \
	bash -c "! grep -q '^Wants=.*lighttpd' '$U/consuma-host.target'"
assert_cmd "the TCP drop-in binds the instance's port" \
	grep -q '^ExecStart=/usr/bin/spawn-fcgi -n -a ${FCGI_LISTEN_ADDR} -p %i -- ' "$U/consuma-fcgi-tcp.conf"
# the drop-in is read: a broken one fails verify
sed -i "s#^ExecStart=$spawn#ExecStart=$T/no-such-spawn-fcgi#" "$H/consuma-fcgi-api@.service.d/tcp.conf"
systemd-analyze verify --man=no --generators=no "$H/consuma-fcgi-api@9101.service" >/dev/null 2>&1
assert_eq "a broken drop-in fails verify" 1 $?
for u in consuma-deliverer.service consuma-fcgi-sync@.service consuma-fcgi-api@.service; do
	assert_cmd "$u: after a local postgresql.service" grep -q '^After=.*postgresql.service' "$U/$u"
done

# The checker is live: a broken copy fails.
sed -e 's/^Type=notify/Type=notifyy/' -e "s#^ExecStart=.*#ExecStart=$T/no-such-binary#" \
	"$T/units/consuma-deliverer.service" >"$T/units/broken.service"
systemd-analyze verify --man=no --generators=no "$T/units/broken.service" >/dev/null 2>&1
assert_eq "a broken unit fails verify" 1 $?

d=$U/consuma-deliverer.service
for want in Type=notify Restart=on-failure WatchdogSec= NoNewPrivileges=yes ProtectSystem=strict \
	ReadWritePaths=/var/lib/consuma PrivateTmp=yes ProtectHome=yes User=consuma \
	EnvironmentFile=/etc/consuma/consuma.env; do
	assert_cmd "deliverer unit has $want" grep -q "^$want" "$d"
done
for p in sync api; do
	assert_cmd "fcgi-$p unit runs spawn-fcgi with a socket per instance" \
		grep -q "^ExecStart=/usr/bin/spawn-fcgi -n -s /run/consuma/fcgi-$p-%i.sock" \
		"$U/consuma-fcgi-$p@.service"
	assert_cmd "fcgi-$p unit reads the environment file" \
		grep -q "^EnvironmentFile=/etc/consuma/consuma.env" "$U/consuma-fcgi-$p@.service"
done

# sd_notify through a fake NOTIFY_SOCKET.
python3 - "$T/notify.sock" "$T/notify.log" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(0.5)
end = time.time() + 30
with open(sys.argv[2], "a") as f:
    while time.time() < end:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            continue
        f.write(msg.replace("\n", " ") + "\n")
        f.flush()
        if "STOPPING=1" in msg:
            break
PY
listener=$!
t_track $listener
wait_for '[ -S "$T/notify.sock" ]' 10
NOTIFY_SOCKET=$T/notify.sock CONSUMA_DATABASE_PATH=$T/n.db "$BUILD/consuma-deliverer" 2>"$T/d.log" &
dpid=$!
t_track $dpid
wait_for 'grep -q WATCHDOG=1 "$T/notify.log" 2>/dev/null' 10
kill -TERM "$dpid"
wait "$dpid"
assert_eq "deliverer exits 0 on SIGTERM" 0 $?
wait "$listener"
log=$(tr '\n' ' ' <"$T/notify.log")
assert_match "sd_notify READY=1 first" "^READY=1" "$log"
assert_match "sd_notify WATCHDOG=1 while running" "WATCHDOG=1" "$log"
assert_match "sd_notify STOPPING=1 on SIGTERM" "STOPPING=1" "$log"

t_done

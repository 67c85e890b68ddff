#!/usr/bin/env bash
# test_install: the install rules and the Debian package.
#  - cmake --install --prefix /usr into a DESTDIR lays out exactly the
#    expected files (programs, units, sysusers, proxy templates, the
#    environment file in /etc and as an example), the units start the
#    installed programs, and those programs run;
#  - cpack -G DEB builds a .deb whose contents are the same files, with the
#    control fields, the conffile and the postinst it should have;
#  - -DBUILD_TESTING=OFF configures without looking for cmocka and defines
#    no test.
. "$(dirname "$0")/lib.sh"

expected="etc/consuma/consuma.env
usr/bin/consuma-deliverer
usr/bin/consuma-fcgi
usr/lib/systemd/system/consuma-deliverer.service
usr/lib/systemd/system/consuma-fcgi-api@.service
usr/lib/systemd/system/consuma-fcgi-sync@.service
usr/lib/systemd/system/consuma.target
usr/lib/sysusers.d/consuma.conf
usr/share/doc/consuma/README.md
usr/share/doc/consuma/examples/README.proxy-conf.md
usr/share/doc/consuma/examples/README.systemd.md
usr/share/doc/consuma/examples/consuma.env
usr/share/doc/consuma/examples/lighttpd-limits.conf
usr/share/doc/consuma/examples/lighttpd.conf
usr/share/doc/consuma/examples/nginx.conf"
if [ -x "$BUILD/consuma-storm" ]; then
	expected=$(printf '%s\nusr/bin/consuma-storm\n' "$expected" | sort)
fi

# ---- cmake --install into a DESTDIR -------------------------------------------
D=$T/root
DESTDIR=$D cmake --install "$BUILD" --prefix /usr >"$T/install.out" 2>&1 ||
	{ not_ok "cmake --install failed"; cat "$T/install.out" >&2; t_done; }
assert_eq "the DESTDIR holds exactly the expected files" "$expected" \
	"$(cd "$D" && find . -type f -o -type l | sed 's|^\./||' | sort)"
for unit in consuma-deliverer.service consuma-fcgi-api@.service consuma-fcgi-sync@.service; do
	exe=$(awk -F= '$1 == "ExecStart" { print $2 }' "$D/usr/lib/systemd/system/$unit" | awk '{ print $NF }')
	assert_match "$unit starts a program under /usr/bin" '^/usr/bin/consuma-' "$exe"
	assert_cmd "$unit's program is installed" test -x "$D$exe"
done
assert_eq "no unit still names /usr/local" 0 "$(cat "$D"/usr/lib/systemd/system/* | grep -c /usr/local)"
assert_match "the installed consuma-fcgi runs" "^consuma-fcgi $(sed -n 's/^project(consuma VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")" \
	"$("$D/usr/bin/consuma-fcgi" --version 2>&1)"
assert_match "the installed consuma-deliverer runs" "^consuma-deliverer" "$("$D/usr/bin/consuma-deliverer" --version 2>&1)"
assert_cmd "/etc/consuma/consuma.env is .env.example" cmp -s "$SRC/.env.example" "$D/etc/consuma/consuma.env"
assert_eq "and only root and its group read it (it may hold the signing secret)" 640 \
	"$(stat -c %a "$D/etc/consuma/consuma.env")"
assert_cmd "the sysusers file is the repository's" cmp -s "$SRC/proxy-conf/systemd/consuma.sysusers.conf" \
	"$D/usr/lib/sysusers.d/consuma.conf"

# ---- cpack -G DEB ---------------------------------------------------------------------
(cd "$T" && cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$T/pkg") >"$T/cpack.out" 2>&1 ||
	{ not_ok "cpack -G DEB failed"; cat "$T/cpack.out" >&2; t_done; }
deb=$(ls "$T"/pkg/*.deb 2>/dev/null | head -n 1)
assert_cmd "cpack made a .deb" test -s "$deb"
assert_eq "the .deb holds the same files" "$expected" \
	"$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\./||' | sort)"
assert_eq "Package" consuma "$(dpkg-deb -f "$deb" Package)"
assert_match "Depends names spawn-fcgi and the libraries" 'spawn-fcgi.*libsqlite3|libsqlite3.*spawn-fcgi' \
	"$(dpkg-deb -f "$deb" Depends)"
mkdir -p "$T/ctl" && dpkg-deb -e "$deb" "$T/ctl"
assert_eq "the environment file is a conffile" /etc/consuma/consuma.env "$(cat "$T/ctl/conffiles")"
assert_cmd "the postinst is executable" test -x "$T/ctl/postinst"
assert_match "the postinst creates the user" 'systemd-sysusers consuma.conf' "$(cat "$T/ctl/postinst")"
mkdir -p "$T/x" && dpkg-deb -x "$deb" "$T/x"
assert_eq "the packaged deliverer unit starts /usr/bin/consuma-deliverer" /usr/bin/consuma-deliverer \
	"$(awk -F= '$1 == "ExecStart" { print $2 }' "$T/x/usr/lib/systemd/system/consuma-deliverer.service")"

# ---- BUILD_TESTING=OFF -----------------------------------------------------------------
cmake -S "$SRC" -B "$T/notest" -DBUILD_TESTING=OFF >"$T/notest.out" 2>&1 ||
	{ not_ok "configure with BUILD_TESTING=OFF failed"; cat "$T/notest.out" >&2; }
assert_eq "BUILD_TESTING=OFF never looks for cmocka" 0 "$(grep -ci cmocka "$T/notest.out" "$T/notest/CMakeCache.txt" | awk -F: '{ s += $NF } END { print s + 0 }')"
assert_eq "and defines no test" 0 "$(cd "$T/notest" && ctest -N | awk '/Total Tests:/ { print $3 }')"
t_done

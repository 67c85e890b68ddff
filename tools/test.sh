#!/usr/bin/env bash
# tools/test.sh: the one test command. Installs what is missing (as root),
# checks formatting, builds with clang (compile only, -Werror), builds with
# gcc and ASan+UBSan and runs every test with ctest,
# then runs each libFuzzer harness of tests/fuzz for a short fixed time
# (tools/fuzz.sh; CONSUMA_FUZZ_SECONDS per harness, 15 by default, 0 skips).
#
#   tools/test.sh            # everything
#   tools/test.sh -R store   # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

packages=(build-essential cmake pkg-config git
	libfcgi-dev libsqlite3-dev sqlite3 libssl-dev openssl libjson-c-dev
	libcurl4-openssl-dev libcmocka-dev libmicrohttpd-dev libsystemd-dev systemd libjemalloc-dev
	lighttpd spawn-fcgi nginx-light curl python3 libxml2-utils wrk procps iproute2
	clang-format clang libclang-rt-14-dev chromium prometheus postgresql libpq-dev)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -eq 0 ]; then
		echo "test.sh: installing ${missing[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q
		apt-get install -y -q --no-install-recommends "${missing[@]}"
	else
		echo "test.sh: missing packages; run as root or:" >&2
		echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
		exit 2
	fi
fi

# prometheus: promtool checks a live scrape of GET /metrics (test_metrics).
# postgresql: the private clusters of tools/pg.sh (tests, stack.sh
# --postgres); libpq-dev: the PostgreSQL store.
# Formatting is part of the contract (.clang-format).
mapfile -t sources < <(git ls-files '*.c' '*.h' 2>/dev/null || find lib fcgi-app deliverer tools tests -name '*.[ch]')
if [ ${#sources[@]} -gt 0 ]; then
	if ! clang-format --dry-run -Werror "${sources[@]}"; then
		echo "test.sh: clang-format would change the files above (run clang-format -i)" >&2
		exit 1
	fi
fi

# clang checks what gcc does not (CMakeLists.txt adds its flags): the same
# tree compiled once more, unsanitized and unoptimized (its warnings come
# from the front end), and not run, so it costs seconds, not a test run.
clang_build=${CONSUMA_CLANG_BUILD_DIR:-$root/build-clang}
CC=clang cmake -S "$root" -B "$clang_build" -DCMAKE_BUILD_TYPE=Debug -DCONSUMA_WERROR=ON >/dev/null
cmake --build "$clang_build" -j "$(nproc)" >/dev/null

build=${CONSUMA_TEST_BUILD_DIR:-$root/build-test}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DCONSUMA_SANITIZE=ON -DCONSUMA_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(cd "$build" && ctest --output-on-failure -j "$(nproc)" "$@")

# Four harnesses x 15 s: about a minute of fuzzing on every run.
fuzz_s=${CONSUMA_FUZZ_SECONDS:-15}
if [ "$fuzz_s" -gt 0 ] && [ $# -eq 0 ]; then
	"$root/tools/fuzz.sh" -t "$fuzz_s"
fi

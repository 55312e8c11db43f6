#!/bin/sh
# Installs the build and test dependencies (Debian/Ubuntu), builds ferry
# and runs every test: the libcheck unit suites and the end-to-end tests
# against the real daemon.  Needs root (apt-get; the end-to-end tests
# start ferryd as root so the workers really drop privileges).
#
#   sudo sh tests/run-all.sh
set -eu
cd "$(dirname "$0")/.."

DEPS="build-essential autoconf automake pkg-config libconfuse-dev
      libssl-dev libsqlite3-dev libjansson-dev libc-ares-dev libcrypt-dev
      libcurl4-openssl-dev
      check python3 python3-prometheus-client python3-dkim sqlite3 clang
      libsystemd-dev
      openssl ca-certificates procps iproute2 e2fsprogs mount util-linux
      swaks libio-socket-ssl-perl libnet-ssleay-perl libauthen-sasl-perl
      haproxy"
if command -v apt-get >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $DEPS >/dev/null
fi

autoreconf -fi
./configure --enable-werror
make -j"$(nproc)"

status=0
make -j2 check || status=$?

# A short fuzz run of the parsers (tests/fuzz) when clang is installed:
# each harness FERRY_FUZZ_SECONDS (30) seconds, two at a time.  A crash
# fails the run; run.sh prints the input that crashed and the report.
if command -v clang >/dev/null 2>&1; then
	if make fuzz && sh tests/fuzz/run.sh "${FERRY_FUZZ_SECONDS:-30}"
	then
		fuzz_result=passed
	else
		echo "fuzz: a harness did not build or found a crash"
		fuzz_result=failed
		status=1
	fi
else
	echo "fuzz: clang is not installed, skipped"
fi

# One summary line, whatever the harness printed above.
pass=0; fail=0
for t in tests/*.trs tests/e2e/*.trs; do
	[ -f "$t" ] || continue
	case "$(sed -n 's/^:test-result: //p' "$t" | head -n1)" in
	PASS|SKIP) pass=$((pass + 1)) ;;
	*) fail=$((fail + 1)) ;;
	esac
done
if [ "$status" -ne 0 ]; then
	for log in tests/*.log tests/e2e/*.log; do
		[ -f "$log" ] || continue
		case "$log" in */test-suite.log) continue ;; esac
		if ! grep -q '^:test-result: PASS\|^:test-result: SKIP' \
		    "${log%.log}.trs" 2>/dev/null; then
			echo "==== $log"; tail -n 80 "$log"
		fi
	done
fi
if [ $((pass + fail)) -eq 0 ]; then
	echo "no tests ran"
	exit 1
fi
# Test cases inside the programs: Check's "Checks: N, Failures: F,
# Errors: E" and unittest's "Ran N tests" / "FAILED (...)".
cases=$(cat tests/*.log tests/e2e/*.log 2>/dev/null | awk '
	/^[0-9]+%: Checks: / { gsub(",", ""); n += $3; f += $5 + $7 }
	/^Ran [0-9]+ tests? in / { n += $2 }
	/^FAILED \(/ { if (match($0, /failures=[0-9]+/)) f += substr($0, RSTART + 9, RLENGTH - 9);
	               if (match($0, /errors=[0-9]+/)) f += substr($0, RSTART + 7, RLENGTH - 7) }
	END { printf "%d %d", n - f, f }')

# The Debian package: build, install, check, run, purge (about a minute;
# FERRY_TEST_PACKAGE=0 skips it).  Last, so the main tests never see an
# installed ferry; the script purges the package whatever happens.
if [ "${FERRY_TEST_PACKAGE:-1}" != 0 ] && command -v apt-get >/dev/null 2>&1
then
	if sh tests/package/test-deb.sh; then
		echo "package test: passed"
		package_result=passed
	else
		echo "package test: FAILED"
		package_result=failed
		status=1
	fi
else
	echo "package test: skipped"
fi

# The summary comes last, so it is the closing line of the run.  The fuzz
# run and the package test count as one case each.
extra_pass=0; extra_fail=0
[ "${fuzz_result:-skipped}" = passed ] && extra_pass=$((extra_pass + 1))
[ "${fuzz_result:-skipped}" = failed ] && extra_fail=$((extra_fail + 1))
[ "${package_result:-skipped}" = passed ] && extra_pass=$((extra_pass + 1))
[ "${package_result:-skipped}" = failed ] && extra_fail=$((extra_fail + 1))
echo "test programs: $pass passed, $fail failed"
echo "$(( ${cases% *} + extra_pass )) passed, $(( ${cases#* } + extra_fail )) failed"
exit "$status"

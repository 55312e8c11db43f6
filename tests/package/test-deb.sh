#!/bin/sh
# tests/package/test-deb.sh - the Debian package, end to end, as root on a
# Debian 12 machine (CI has no running systemd):
#   build it ("make deb", DEB_BUILD_OPTIONS=nocheck: the suites ran already),
#   install it with apt, check users, spool, unit, man pages, binaries and
#   the sendmail alternative, run the installed "ferryd -n" on the installed
#   configuration, start the installed daemon directly and relay a message
#   through it to a test smarthost (run_installed.py), then purge it and
#   check that only what policy keeps (the system users) is left.
# Run from a configured build tree (tests/run-all.sh does that).
set -eu
cd "$(dirname "$0")/../.."
top=$(pwd)
work=$(mktemp -d /tmp/ferry-pkgtest.XXXXXX)
fails=0

say() { printf 'test-deb: %s\n' "$*"; }
bad() { printf 'test-deb: FAIL: %s\n' "$*" >&2; fails=$((fails + 1)); }
check() { # check DESCRIPTION COMMAND...
	desc=$1; shift
	if "$@"; then say "ok: $desc"; else bad "$desc"; fi
}
mode_owner() { stat -c '%a %U:%G' "$1" 2>/dev/null; }

cleanup() {
	# never leave the package (or its sendmail link) behind
	if dpkg -s ferry >/dev/null 2>&1; then
		apt-get purge -y -qq ferry >/dev/null 2>&1 || dpkg --purge ferry || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

if dpkg -s ferry >/dev/null 2>&1; then
	say "a ferry package is installed already; refusing to touch it"
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends debhelper dpkg-dev fakeroot \
	build-essential autoconf automake pkg-config libconfuse-dev libssl-dev \
	libsqlite3-dev libjansson-dev libc-ares-dev libcurl4-openssl-dev libsystemd-dev libcrypt-dev \
	check python3 >/dev/null

# --- build ---------------------------------------------------------------
[ -f Makefile ] || { autoreconf -fi && ./configure; }
t0=$(date +%s)
if ! make deb DEB_BUILD_OPTIONS=nocheck DEB_BUILD_DIR="$work/build" \
    DEB_OUT_DIR="$work" >"$work/build.log" 2>&1; then
	tail -n 60 "$work/build.log"
	bad "make deb"
	exit 1
fi
deb=$(ls "$work"/ferry_*.deb | head -n 1)
say "built $(basename "$deb") in $(( $(date +%s) - t0 )) s"
dpkg-deb -c "$deb" | awk '{print $1, $2, $6}' > "$work/contents"

# --- install -------------------------------------------------------------
apt-get install -y -qq --no-install-recommends "$deb" >/dev/null

for u in ferry ferry-smtpd ferry-deliver ferry-token; do
	check "user $u, no login shell" sh -c \
	    "getent passwd $u | grep -q ':/usr/sbin/nologin\$'"
done
check "spool 0755 root:root" test "$(mode_owner /var/spool/ferry)" = "755 root:root"
check "spool/queue 0700 ferry:ferry" test "$(mode_owner /var/spool/ferry/queue)" = "700 ferry:ferry"
check "spool/smtpd 0755 root:root" test "$(mode_owner /var/spool/ferry/smtpd)" = "755 root:root"
for f in /usr/sbin/ferryd /usr/sbin/ferryctl /usr/sbin/ferry-sendmail \
    /usr/libexec/ferry/ferry-smtpd /usr/libexec/ferry/ferry-queue \
    /usr/libexec/ferry/ferry-deliver /usr/libexec/ferry/ferry-token \
    /usr/libexec/ferry/ferry-check; do
	check "$f" test -x "$f"
done
check "ferryd links neither OpenSSL nor SQLite (ferry-check does)" sh -c \
    "! ldd /usr/sbin/ferryd | grep -qE 'libcrypto|libssl|libsqlite3'"
check "/etc/ferry/ferry.conf is a conffile" sh -c \
    "dpkg-query -W -f='\${Conffiles}' ferry | grep -q ' /etc/ferry/ferry.conf '"
check "unit file" grep -q '^Type=notify' /lib/systemd/system/ferry.service
check "unit paths" grep -q '^ExecStart=/usr/sbin/ferryd -f /etc/ferry/ferry.conf' \
    /lib/systemd/system/ferry.service
check "unit enabled" test -L /etc/systemd/system/multi-user.target.wants/ferry.service
check "sysusers.d" test -f /usr/lib/sysusers.d/ferry.conf
check "tmpfiles.d" test -f /usr/lib/tmpfiles.d/ferry.conf
for m in man8/ferryd.8 man8/ferryctl.8 man8/ferry-sendmail.8 man5/ferry.conf.5; do
	check "man page $m" test -f "/usr/share/man/$m.gz"
done
check "copyright" test -f /usr/share/doc/ferry/copyright
if [ -e /usr/sbin/sendmail ] && [ ! -L /usr/sbin/sendmail ]; then
	say "/usr/sbin/sendmail belongs to another MTA: alternative not taken"
else
	check "sendmail alternative" test "$(readlink -f /usr/sbin/sendmail)" = /usr/sbin/ferry-sendmail
	check "/usr/lib/sendmail" test "$(readlink -f /usr/lib/sendmail)" = /usr/sbin/ferry-sendmail
fi
check "installed ferryd -n on the installed config" /usr/sbin/ferryd -n -f /etc/ferry/ferry.conf
if command -v systemd-analyze >/dev/null 2>&1; then
	check "systemd-analyze verify" sh -c \
	    "systemd-analyze verify /lib/systemd/system/ferry.service 2>&1 | grep -v 'Cannot add dependency job' | tee $work/verify.log; ! grep -q . $work/verify.log"
fi

# --- run the installed daemon ------------------------------------------------
check "the installed daemon relays a message" python3 tests/package/run_installed.py

# --- remove and purge ----------------------------------------------------
apt-get remove -y -qq ferry >/dev/null
check "remove keeps the conffile" test -f /etc/ferry/ferry.conf
check "remove drops the sendmail alternative" sh -c \
    "! update-alternatives --query sendmail 2>/dev/null | grep -q ferry-sendmail"
apt-get purge -y -qq ferry >/dev/null
check "purged" sh -c "! dpkg -s ferry >/dev/null 2>&1"
for p in /etc/ferry /var/spool/ferry /usr/sbin/ferryd /usr/libexec/ferry \
    /lib/systemd/system/ferry.service /usr/share/man/man8/ferryd.8.gz \
    /etc/systemd/system/multi-user.target.wants/ferry.service; do
	check "gone: $p" test ! -e "$p"
done
check "no dangling sendmail link" sh -c \
    "! [ -L /usr/sbin/sendmail ] || [ -e /usr/sbin/sendmail ]"
say "kept by policy: the system users ferry, ferry-smtpd, ferry-deliver, ferry-token"

if [ "$fails" -ne 0 ]; then
	say "$fails check(s) failed"
	exit 1
fi
say "all checks passed"

#!/bin/sh
# Runs every libFuzzer harness of tests/fuzz for a while and fails if any
# of them finds a crash, a leak, a timeout or a broken invariant.
#
#   sh tests/fuzz/run.sh [SECONDS]          (default 60 per harness)
#
# Build the harnesses first (make fuzz).  Each one runs on a copy of its
# seed corpus in a fresh temporary directory - the committed corpus is
# never written to - with a -max_len suited to its input.  On a failure
# the directory is kept and its path, the crashing input and the
# sanitizer report are printed.
#
# Environment: FUZZ_BINDIR (where the harnesses are, default the build
# tree's tests/fuzz), FUZZ_JOBS (harnesses run at once, default 2),
# FUZZ_HARNESSES (a subset, space-separated), FUZZ_KEEP=1 (keep every
# work directory), TMPDIR.
set -u

here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-${FUZZ_SECONDS:-60}}
bindir=${FUZZ_BINDIR:-$here}
jobs=${FUZZ_JOBS:-2}
harnesses=${FUZZ_HARNESSES:-"fuzz_smtp_command fuzz_address \
fuzz_data_scanner fuzz_client_reply fuzz_ipc fuzz_session fuzz_http_request \
fuzz_from_rewrite fuzz_dkim_canon fuzz_proxy_header"}

case $seconds in
''|*[!0-9]*) echo "run.sh: SECONDS must be a number, not '$seconds'" >&2
	exit 2 ;;
esac

# The longest input worth trying for each harness: a command line (512
# bytes at most in SMTP) with room to spare; an address (a path is 256);
# DATA streams, reply streams (lines up to 2048 bytes) and IPC frames
# (fields up to 4096 bytes) large enough to cross every limit.
max_len() {
	case $1 in
	fuzz_smtp_command) echo 1024 ;;
	fuzz_address) echo 600 ;;
	fuzz_data_scanner) echo 4096 ;;
	fuzz_client_reply) echo 6144 ;;
	fuzz_ipc) echo 8192 ;;
	fuzz_session) echo 8192 ;;
	fuzz_http_request) echo 9000 ;;
	fuzz_proxy_header) echo 600 ;;
	*) echo 4096 ;;
	esac
}

for h in $harnesses; do
	if [ ! -x "$bindir/$h" ]; then
		echo "run.sh: $bindir/$h is missing: run 'make fuzz' first" >&2
		exit 2
	fi
done

results=$(mktemp -d "${TMPDIR:-/tmp}/ferry-fuzz.XXXXXX") || exit 2
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export UBSAN_OPTIONS

run_one() {
	h=$1
	work="$results/$h"
	mkdir -p "$work/corpus"
	if [ -d "$here/corpus/$h" ]; then
		cp -R "$here/corpus/$h/." "$work/corpus/"
	fi
	dict=
	if [ -f "$here/$h.dict" ]; then
		dict="-dict=$here/$h.dict"
	fi
	# shellcheck disable=SC2086
	"$bindir/$h" -max_len="$(max_len "$h")" \
	    -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix="$work/" $dict \
	    "$work/corpus" >"$work/log" 2>&1
	echo $? >"$work/rc"
}

# At most $jobs harnesses at a time.
running=0
for h in $harnesses; do
	run_one "$h" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait
		running=0
	fi
done
wait

failed=0
for h in $harnesses; do
	work="$results/$h"
	rc=$(cat "$work/rc" 2>/dev/null || echo 99)
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
	cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$work/log" | tail -n 1)
	if [ "$rc" -eq 0 ]; then
		echo "fuzz: $h ok: ${seconds}s, ${runs:-?} runs," \
		    "${speed:-?} exec/s, $cov"
		continue
	fi
	failed=1
	echo "fuzz: $h FAILED (exit $rc); work directory $work"
	for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* \
	    "$work"/oom-* "$work"/slow-unit-*; do
		[ -f "$f" ] && echo "fuzz: $h: failing input $f"
	done
	echo "---- $h: report"
	# the sanitizer's or the harness's report, not the progress lines
	pat='^==[0-9]*==\|invariant broken\|runtime error\|Deadly\|^ALARM'
	pat="$pat\\|out-of-memory\\|^ERROR\\|error in line"
	if grep -q "$pat" "$work/log"; then
		sed -n "/$pat/,\$p" "$work/log" | head -n 150
	else
		tail -n 40 "$work/log"
	fi
	echo "----"
done
if [ "$failed" -eq 0 ] && [ "${FUZZ_KEEP:-0}" != 1 ]; then
	rm -rf "$results"
elif [ "$failed" -eq 0 ]; then
	echo "fuzz: work directories kept in $results"
fi
exit "$failed"

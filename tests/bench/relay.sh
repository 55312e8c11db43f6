#!/bin/sh
# End-to-end relay benchmark, ferry against Postfix: see relay.py.
#
#   sudo sh tests/bench/relay.sh                    # the four standard cases
#   sudo sh tests/bench/relay.sh MSGS SESS SIZE [ROUNDS]   # one case
set -eu
BENCH=$(cd "$(dirname "$0")" && pwd)
if [ $# -ge 3 ]; then
	exec python3 "$BENCH/relay.py" --cases "$1x$2x$3" --rounds "${4:-3}"
fi
exec python3 "$BENCH/relay.py" "$@"

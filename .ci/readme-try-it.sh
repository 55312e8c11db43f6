#!/bin/sh
# The README's first command ("Try it"), run as a newcomer on a bare
# Debian 12 machine would, as root and without sudo: its install, build
# and start steps, extracted from the README itself so that the two cannot
# drift apart.  It runs in a copy of the tree (the real build and test run
# that follow are not disturbed), with sudo hidden from PATH, and passes
# when the relay answers 220 on 127.0.0.1:2525 and takes a message into
# its queue; then ferryd is stopped and the copy removed.
#
#   sh .ci/readme-try-it.sh        (root; about two minutes)
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
[ "$(id -u)" -eq 0 ] || { echo "readme-try-it: needs root"; exit 1; }

# The indented lines after "Try it" up to the next paragraph of prose.
cmd=$(awk '/^Try it/ { on = 1; next }
	on && /^    / { print substr($0, 5); got = 1; next }
	on && got && /^[^ ]/ { exit }' README)
[ -n "$cmd" ] || { echo "readme-try-it: no command found in README"; exit 1; }

work=$(mktemp -d /tmp/ferry-readme-XXXXXX)
chmod 755 "$work"
nosudo="$work/bin"
log="$work/try-it.log"
pgid_file="$work/pgid"
group() { cat "$pgid_file" 2>/dev/null || true; }
# whether process $1 runs (a zombie has ended; dash's kill takes no --)
running() {
	[ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z ' "/proc/$1/stat"
}
# whether any process of group $1 runs
group_running() {
	for st in /proc/[0-9]*/stat; do
		awk -v g="$1" '{ sub(/^.*\) /, ""); if ($3 == g && $1 != "Z")
			found = 1 } END { exit !found }' "$st" 2>/dev/null &&
			return 0
	done
	return 1
}
cleanup() {
	g=$(group)
	if [ -n "$g" ] && group_running "$g"; then
		kill -TERM "-$g" 2>/dev/null || true
		i=0
		while group_running "$g" && [ $i -lt 30 ]; do
			sleep 0.5; i=$((i + 1))
		done
		kill -KILL "-$g" 2>/dev/null || true
	fi
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# the tree, as a fresh checkout has it
mkdir "$work/ferry"
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
	git -C "$top" ls-files -z | (cd "$top" && xargs -0 cp --parents -t "$work/ferry")
else
	cp -a "$top/." "$work/ferry/"
fi

# PATH without sudo, as on a bare Debian 12 where root has none
mkdir "$nosudo"
for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
	[ -d "$d" ] || continue
	for f in "$d"/*; do
		n=${f##*/}
		[ "$n" = sudo ] || [ -e "$nosudo/$n" ] || ln -s "$f" "$nosudo/$n"
	done
done

echo "readme-try-it: running, as root without sudo:"
printf '%s\n' "$cmd" | sed 's/^/    /'
# its own session and process group (its id in $pgid_file), so that
# ferryd and its children stop with it
(cd "$work/ferry" && exec env PATH="$nosudo" DEBIAN_FRONTEND=noninteractive \
	CMD="$cmd" PGID_FILE="$pgid_file" \
	setsid sh -c 'echo $$ >"$PGID_FILE"; eval "$CMD"' \
	>"$log" 2>&1 </dev/null) &

# 220, then a message into the queue; at most 15 minutes (the build)
answer='
use IO::Socket::INET;
my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:2525", Timeout => 5)
    or exit 2;
$SIG{ALRM} = sub { exit 1 }; alarm 20;
sub reply { my $l; do { $l = <$s>; defined $l or exit 1 }
            while $l =~ /^\d{3}-/; return $l }
reply() =~ /^220 / or exit 1;
for my $c ("EHLO ci.example", "MAIL FROM:<me\@example.org>",
           "RCPT TO:<you\@example.com>", "DATA") {
	print $s "$c\r\n"; my $r = reply();
	$r =~ /^[23]/ or do { print STDERR "$c: $r"; exit 1 };
}
print $s "Subject: try it\r\n\r\nhello\r\n.\r\n";
my $r = reply(); print $r; $r =~ /^250 / or exit 1;
print $s "QUIT\r\n";
exit 0;'
result=1
i=0
answered=0
sleep 1
while [ $i -lt 900 ]; do
	g=$(group)
	if [ -z "$g" ] || ! running "$g"; then
		echo "readme-try-it: the command ended before the relay answered"
		break
	fi
	set +e
	perl -e "$answer"
	rc=$?
	set -e
	if [ $rc -eq 0 ]; then
		result=0
		break
	elif [ $rc -eq 1 ]; then
		# the runner may still be opening its queue: 30 s for that
		answered=$((answered + 1))
		if [ $answered -ge 30 ]; then
			echo "readme-try-it: the relay answers, but does not" \
			    "take the message"
			break
		fi
	fi
	sleep 1; i=$((i + 1))
done
if [ $result -ne 0 ]; then
	echo "readme-try-it: FAILED; the command's output ends:"
	tail -n 40 "$log"
	exit 1
fi
echo "readme-try-it: passed (220 greeting, message queued)"

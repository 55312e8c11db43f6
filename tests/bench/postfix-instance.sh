# Sourced by the benchmarks: a free loopback port, a process tree stopped
# by PID (kill_tree), and a private Postfix instance in "$WORK/postfix"
# (its own queue, its own log) started on a given port with the caller's
# main.cf lines, stopped by postfix_instance_stop (or postfix_down, which
# also kills what the instance left behind when the caller set
# POSTFIX_UP).  Needs root and Debian's postfix package.

free_port() {
	python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# postfix_instance_start PORT: main.cf settings beyond the common ones are
# read from standard input.
postfix_instance_start() {
	mkdir -p "$WORK/postfix" "$WORK/postfix-spool" "$WORK/postfix-data"
	cp /etc/postfix/master.cf "$WORK/postfix/master.cf"
	sed -i "s/^smtp      inet/$1      inet/" "$WORK/postfix/master.cf"
	{
		cat <<CONF
compatibility_level = 3.6
queue_directory = $WORK/postfix-spool
data_directory = $WORK/postfix-data
myhostname = bench.localdomain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = $WORK/postfix.log
maillog_file_prefixes = $WORK
CONF
		cat
	} > "$WORK/postfix/main.cf"
	chown postfix "$WORK/postfix-data"
	# Postfix only starts an instance whose directory the default
	# instance lists in alternate_config_directories.
	alt=$(postconf -h alternate_config_directories)
	case " $alt " in
	*" $WORK/postfix "*) ;;
	*) postconf -e "alternate_config_directories = ${alt:+$alt }$WORK/postfix" ;;
	esac
	postfix -c "$WORK/postfix" check
	postfix -c "$WORK/postfix" start >/dev/null 2>&1
	sleep 1
}

postfix_instance_stop() {
	postfix -c "$WORK/postfix" stop >/dev/null 2>&1 || true
	sleep 1
	postconf -e "alternate_config_directories = $(postconf -h \
	    alternate_config_directories | sed "s|$WORK/postfix||")"
}

# kill_tree PID: PID and every process under it, by PID (TERM, then KILL)
tree_of() {
	python3 - "$1" <<'PY'
import os, sys
kids = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            st = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        kids.setdefault(int(st[st.rindex(")") + 2:].split()[1]), []).append(d)
out, todo = [], [sys.argv[1]]
while todo:
    p = todo.pop()
    out.append(p)
    todo.extend(kids.get(int(p), []))
print(" ".join(out))
PY
}
kill_tree() {
	pids=$(tree_of "$1")
	# shellcheck disable=SC2086
	kill $pids 2>/dev/null || true
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		alive=
		for p in $pids; do
			[ -d "/proc/$p" ] && alive=1
		done
		[ -z "$alive" ] && return 0
		sleep 0.5
	done
	# shellcheck disable=SC2086
	kill -9 $pids 2>/dev/null || true
}

postfix_master_pid() {
	sed -n '1s/ //gp' "$WORK/postfix-spool/pid/master.pid" 2>/dev/null
}
postfix_down() {
	[ -n "$POSTFIX_UP" ] || return 0
	pm=$(postfix_master_pid || true)
	left=
	[ -n "$pm" ] && left=$(tree_of "$pm")
	postfix_instance_stop
	# shellcheck disable=SC2086
	[ -n "$left" ] && kill -9 $left 2>/dev/null || true
	POSTFIX_UP=
}

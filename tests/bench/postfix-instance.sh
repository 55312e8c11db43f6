# Sourced by the benchmarks: a free loopback port, and a private Postfix
# instance in "$WORK/postfix" (its own queue, its own log) started on a
# given port with the caller's main.cf lines, stopped by
# postfix_instance_stop.  Needs root and Debian's postfix package.

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

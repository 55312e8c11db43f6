# Sourced by the shell benchmarks: a ferry configuration for one loopback
# load generator (ferry_bench_conf) and the wait for its first 220
# (ferry_wait_greeting).  The configuration is ferry's shipped defaults
# apart from what one loopback client forces: the listener, the
# smarthost, the spool, the users and the per-client abuse limits.

# ferry_bench_conf SPOOL PORT SINK_PORT: the configuration on standard
# output, with the sections read from standard input appended (pool
# sizes, a retry schedule: whatever the benchmark measures).
ferry_bench_conf() {
	cat <<CONF
hostname = "bench.localdomain"
user = "daemon"
smtpd_user = "nobody"
deliver_user = "mail"
spool_dir = "$1"
listen "bench" {
    address = "127.0.0.1"
    port = $2
}
smarthost {
    host = "127.0.0.1"
    port = $3
    tls = "none"
}
# one load generator on loopback: the per-client limits must not bite
limits {
    max_connections_per_client = 100000
    connection_rate = 1000000
    message_rate = 1000000
}
log {
    target = "stderr"
}
CONF
	cat
}

# ferry_wait_greeting PORT: until ferry answers 220 there (the runner
# takes a moment under load), 60 s at most.
ferry_wait_greeting() {
	python3 -c 'import smtplib, sys, time
end = time.time() + 60
while time.time() < end:
    try:
        s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=5)
        s.quit()
        sys.exit(0)
    except Exception:
        time.sleep(0.3)
sys.exit("ferry did not answer 220")' "$1"
}

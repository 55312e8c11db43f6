/*
 * fuzz_session.c - drives one SMTP session (src/smtp_session.c) through
 * the state machine with random event orders: the input is a script of
 * steps - client bytes in pieces of any size, turns of the session, its
 * deadline coming early, stress mode on and off, draining, the client
 * reading or not reading its replies, the client hanging up - played
 * over a socketpair, the way the worker's loop would play them.
 *
 * Invariants: the session never crashes or leaks (ASan, UBSan), always
 * ends within a bounded number of turns once the client has gone, and
 * asks poll only for POLLIN or POLLOUT.  The queue runner is absent (its
 * socket does not exist), so every message meets the runner's failure
 * path; anvil and TLS are off.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "config.h"
#include "log.h"
#include "smtp_session.h"
#include "util.h"
#include "fuzz.h"

static const char conf_text[] =
    "hostname = \"fuzz.example\"\n"
    "user = \"daemon\"\n"
    "smtpd_user = \"nobody\"\n"
    "deliver_user = \"mail\"\n"
    "spool_dir = \"/nonexistent/ferry-fuzz\"\n"
    "listen \"fuzz\" {\n    address = \"127.0.0.1\"\n    port = 2525\n}\n"
    "limits {\n    line_length = 512\n    errors = 20\n"
    "    junk_commands = 30\n    output_buffer = 4096\n"
    "    message_size = 20000\n}\n"
    "relay {\n    accept_domains = { \"example.com\" }\n}\n";

static struct ferry_config *cfg;

static void
drain_client(int fd)
{
	char buf[8192];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		continue;
}

/* One turn as the worker runs it: poll first, and tell the session
 * when its connection is readable. */
static void
turn(struct smtp_session *s, int64_t now)
{
	struct pollfd p = { smtp_session_fd(s), POLLIN, 0 };

	if (p.fd >= 0 && poll(&p, 1, 0) > 0 && p.revents != 0)
		smtp_session_readable(s);
	smtp_session_run(s, now);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session_control control;
	struct session_params sp;
	struct sockaddr_in peer;
	struct smtp_session *s;
	size_t i = 0;
	int sv[2], turns, client_open = 1;
	int64_t skew = 0;   /* how far the session's clock is pushed */

	if (cfg == NULL) {
		char err[512];

		log_init("fuzz_session", LOG_TO_STDERR, 0);
		cfg = config_load_flags("/fuzz/ferry.conf", conf_text, CONFIG_NO_FILE_CHECKS,
		    err, sizeof(err));
		if (cfg == NULL) {
			fprintf(stderr, "fuzz config: %s\n", err);
			abort();
		}
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	fd_set_nonblock(sv[0], 1);
	fd_set_nonblock(sv[1], 1);
	memset(&control, 0, sizeof(control));
	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	peer.sin_addr.s_addr = htonl(size % 2 ? 0x7f000001 : 0xc0000201);
	memset(&sp, 0, sizeof(sp));
	sp.cfg = cfg;
	sp.queue_path = "/nonexistent/ferry-fuzz/queue.sock";
	sp.control = &control;
	sp.fd = sv[0];
	sp.peer = (struct sockaddr *)&peer;
	sp.listener = "fuzz";
	s = smtp_session_start(&sp);

	while (i < size && !smtp_session_over(s)) {
		uint8_t op = data[i++];
		size_t n;

		switch (op & 7) {
		case 0: case 1: case 2:   /* client bytes: a piece of any size */
			n = (size_t)(op >> 3) * 8 + 1;
			if (n > size - i)
				n = size - i;
			if (client_open && n > 0)
				(void)send(sv[1], data + i, n, MSG_DONTWAIT |
				    MSG_NOSIGNAL);
			i += n;
			break;
		case 3:                   /* a turn */
			turn(s, now_ms() + skew);
			break;
		case 4:                   /* the deadline comes */
			turn(s, smtp_session_deadline(s));
			break;
		case 5:                   /* stress mode, or draining */
			if (op & 8)
				control.stress_ms = (op >> 4) * 1000;
			else if (op & 16) {
				control.drain = 1;
				control.drain_deadline = now_ms() + (op >> 5);
			}
			break;
		case 6:                   /* the client reads its replies */
			drain_client(sv[1]);
			break;
		case 7:                   /* the client goes */
			if (client_open && (op & 8)) {
				shutdown(sv[1], SHUT_WR);
				client_open = 0;
			}
			skew += (op >> 4) * 1000;
			break;
		}
		{
			short ev = smtp_session_events(s);

			FUZZ_CHECK((ev & ~(POLLIN | POLLOUT)) == 0);
		}
	}
	/* the client hangs up: the session must end soon */
	close(sv[1]);
	for (turns = 0; turns < 64 && !smtp_session_over(s); turns++) {
		turn(s, now_ms());
		if (!smtp_session_over(s))
			turn(s, smtp_session_deadline(s));
	}
	FUZZ_CHECK(smtp_session_over(s));
	(void)smtp_session_end(s, NULL);
	return 0;
}

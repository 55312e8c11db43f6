/*
 * log_journald.c - log lines to the systemd journal with native fields
 * (QUEUE_ID=, CLIENT=...), so "journalctl QUEUE_ID=3F2A9C" finds every
 * line about a message.  Only the master links libsystemd: a chrooted
 * worker could not reach the journal's socket, so every child writes its
 * lines as JSON to the log pipe and the master sends them here.
 *
 * Security stance: the lines come from unprivileged children and carry
 * network text.  log_journal_fields parses them with bounds and names
 * the fields from a fixed table; a line that is not a ferry JSON object
 * is sent as a printable MESSAGE alone.
 */
#include "autoconfig.h"

#include <unistd.h>
#include <sys/uio.h>

#ifdef HAVE_SYSTEMD
/* CODE_FILE= would name this file for every line, whoever wrote it */
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>
#endif

#include "log.h"
#include "log_journald.h"

#define MAX_FIELDS 24

static void
to_stderr(const char *line, size_t len)
{
	struct iovec v[2];

	v[0].iov_base = (void *)line;
	v[0].iov_len = len;
	v[1].iov_base = (void *)"\n";
	v[1].iov_len = 1;
	if (writev(STDERR_FILENO, v, 2) < 0) {
		/* nowhere left to report it */
	}
}

void
log_journald_line(const char *line, size_t len)
{
#ifdef HAVE_SYSTEMD
	static char buf[LOG_JSON_LINE_MAX * 5];
	struct iovec iov[MAX_FIELDS];
	size_t n;

	n = log_journal_fields(line, len, "ferryd", buf, sizeof(buf), iov,
	    MAX_FIELDS);
	if (n > 0 && sd_journal_sendv(iov, (int)n) >= 0)
		return;
#endif
	to_stderr(line, len);
}

static void
each_line(const char *line, size_t len, void *arg)
{
	(void)arg;
	if (len > 0)
		log_journald_line(line, len);
}

void
log_journald_feed(struct log_lines *l, const char *data, size_t n)
{
	log_lines_feed(l, data, n, each_line, NULL);
}

/*
 * channel.c - one framed channel to a peer process: read and write
 * buffers, the peer's table of allowed message types, one size cap, and
 * the one path for a peer that lied (see channel.h).
 *
 * Security stance: the peer may be a compromised process (an SMTP worker
 * faces the internet).  Nothing it sends is trusted: a header is checked
 * against the table and the cap as soon as it is there, before the
 * payload is waited for, so a peer cannot make us buffer more than one
 * capped frame; descriptors are accepted only where the table says so
 * and never left open.  Every departure from the protocol ends the
 * channel through channel_violation().
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "channel.h"
#include "log.h"
#include "util.h"

#define READ_CHUNK 65536        /* a stream read asks for this much */
/* A read buffer larger than this is given back once everything in it
 * has been taken, so that an idle channel - one per open SMTP session
 * on the runner's intake socket - holds no 64 KiB block while it waits:
 * memory follows the bytes still pending, not a fixed block each.  The
 * buffers given back wait in a small pool for the next channel that
 * reads (at most SPARE_BUFS of them in a process), so that a busy
 * process does not free and allocate - and fault in - 64 KiB a read. */
#define READ_KEEP 4096
#define SPARE_BUFS 8

static struct {
	uint8_t *buf;
	size_t cap;
} spare[SPARE_BUFS];
static size_t nspare;

/* Gives ch's read buffer back (it holds nothing unread). */
static void
release_rbuf(struct channel *ch)
{
	if (nspare < SPARE_BUFS && ch->rcap <= 4 * READ_CHUNK) {
		spare[nspare].buf = ch->rbuf;
		spare[nspare++].cap = ch->rcap;
	} else {
		free(ch->rbuf);
	}
	ch->rbuf = NULL;
	ch->rcap = 0;
}

void
channel_spares_free(void)
{
	while (nspare > 0)
		free(spare[--nspare].buf);
}

/* An empty channel takes a spare buffer of at least want bytes, if any. */
static void
take_spare(struct channel *ch, size_t want)
{
	size_t i;

	for (i = nspare; i-- > 0;)
		if (spare[i].cap >= want) {
			free(ch->rbuf);
			ch->rbuf = spare[i].buf;
			ch->rcap = spare[i].cap;
			spare[i] = spare[--nspare];
			return;
		}
}

void
channel_init(struct channel *ch, int fd, const char *peer,
    const struct channel_rule *allowed, size_t cap, unsigned flags)
{
	memset(ch, 0, sizeof(*ch));
	ch->fd = fd;
	ferry_strlcpy(ch->peer, peer, sizeof(ch->peer));
	ch->allowed = allowed;
	ch->cap = cap > IPC_MAX_PAYLOAD ? IPC_MAX_PAYLOAD : cap;
	ch->wmax = (size_t)-1;
	ch->flags = flags;
	ch->out_fd = -1;
	ch->in_fd = -1;
}

static void
drop_in_fd(struct channel *ch)
{
	if (ch->in_fd >= 0)
		close(ch->in_fd);
	ch->in_fd = -1;
}

void
channel_close(struct channel *ch)
{
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
	drop_in_fd(ch);
	ch->rlen = ch->roff = 0;
	ch->wbuf.len = ch->woff = 0;
	if (ch->out_fd >= 0)
		close(ch->out_fd);
	ch->out_fd = -1;
}

void
channel_reopen(struct channel *ch, int fd)
{
	channel_close(ch);
	ch->fd = fd;
	ch->flags &= ~(unsigned)CHANNEL_IS_PIPE;
	ch->eof = 0;
	ch->error[0] = '\0';
}

void
channel_free(struct channel *ch)
{
	channel_close(ch);
	free(ch->rbuf);
	ch->rbuf = NULL;
	ch->rcap = 0;
	ipc_out_free(&ch->wbuf);
}

int
channel_violation(struct channel *ch, const char *why)
{
	if (ch->flags & CHANNEL_FATAL)
		log_fatal("%s broke the protocol: %s", ch->peer, why);
	log_error("%s broke the protocol: %s; dropping it", ch->peer, why);
	snprintf(ch->error, sizeof(ch->error), "%s broke the protocol: %s",
	    ch->peer, why);
	channel_close(ch);
	return -1;
}

static const struct channel_rule *
rule_for(const struct channel *ch, int type)
{
	const struct channel_rule *r;

	for (r = ch->allowed; r != NULL && r->type != 0; r++)
		if (r->type == type)
			return r;
	return NULL;
}

/* Room for at least want more bytes after rlen, the unread part moved to
 * the front first. */
static void
make_room(struct channel *ch, size_t want)
{
	if (ch->roff > 0) {
		memmove(ch->rbuf, ch->rbuf + ch->roff, ch->rlen - ch->roff);
		ch->rlen -= ch->roff;
		ch->roff = 0;
	}
	if (ch->rlen == 0 && ch->rcap < want)
		take_spare(ch, want);
	if (ch->rcap - ch->rlen < want) {
		ch->rcap = ch->rcap * 2 > ch->rlen + want ? ch->rcap * 2 :
		    ch->rlen + want;
		ch->rbuf = xrealloc(ch->rbuf, ch->rcap);
	}
}

int
channel_fill(struct channel *ch)
{
	ssize_t n;

	if (ch->fd < 0)
		return -1;
	if (ch->flags & CHANNEL_RECORDS) {
		int fd, truncated;

		if (ch->in_fd >= 0)
			return channel_violation(ch, "a descriptor no "
			    "frame asked for");
		if (ch->roff < ch->rlen)
			return channel_violation(ch, "a record ends inside "
			    "a frame");
		ch->rlen = ch->roff = 0;
		/* one byte more than the largest record, to see a longer
		 * one as truncated */
		make_room(ch, IPC_HEADER_SIZE + ch->cap + 1);
		n = ipc_recv_fd(ch->fd, ch->rbuf, ch->rcap, &fd, &truncated,
		    MSG_DONTWAIT);
		if (n > 0 && fd >= 0)
			ch->in_fd = fd;
		else if (fd >= 0)
			close(fd);
		if (n > 0 && truncated)
			return channel_violation(ch, "oversized record");
	} else {
		size_t want = READ_CHUNK;

		/* never more than one capped frame and a read's worth */
		if (ch->rlen - ch->roff > IPC_HEADER_SIZE + ch->cap)
			return channel_violation(ch, "frame over the cap");
		make_room(ch, want);
		n = read(ch->fd, ch->rbuf + ch->rlen, ch->rcap - ch->rlen);
	}
	if (n > 0) {
		ch->rlen += (size_t)n;
		return (int)(n > 0x7fffffff ? 0x7fffffff : n);
	}
	if (n == 0) {
		ch->eof = 1;
		return -1;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	return -1;
}

int
channel_has_frame(const struct channel *ch)
{
	size_t avail = ch->rlen - ch->roff, plen;
	int type;

	if (ch->fd < 0 || avail == 0)
		return 0;
	return ipc_header(ch->rbuf + ch->roff, avail, &type, &plen) > 0 &&
	    avail >= IPC_HEADER_SIZE + plen;
}

int
channel_next(struct channel *ch, struct ipc_in *in)
{
	const struct channel_rule *rule;
	size_t plen, avail;
	char why[128];
	int type, rc;

	if (ch->fd < 0)
		return -1;
	avail = ch->rlen - ch->roff;
	if (avail == 0) {
		/* the caller is done with the last frame it took */
		ch->rlen = ch->roff = 0;
		if (ch->rcap > READ_KEEP)
			release_rbuf(ch);
		return 0;
	}
	rc = ipc_header(ch->rbuf + ch->roff, avail, &type, &plen);
	if (rc < 0)
		return channel_violation(ch, "bad frame header");
	if (rc == 0) {
		if (avail > 0 && (ch->flags & CHANNEL_RECORDS))
			return channel_violation(ch, "a record ends inside "
			    "a frame header");
		return 0;
	}
	rule = rule_for(ch, type);
	if (rule == NULL) {
		snprintf(why, sizeof(why), "%s is not a message it may send",
		    ipc_type_name(type));
		return channel_violation(ch, why);
	}
	if (plen > ch->cap) {
		snprintf(why, sizeof(why), "%s of %zu bytes is over the cap "
		    "of %zu", ipc_type_name(type), plen, ch->cap);
		return channel_violation(ch, why);
	}
	if (avail < IPC_HEADER_SIZE + plen) {
		if (ch->flags & CHANNEL_RECORDS)
			return channel_violation(ch, "a record ends inside "
			    "a frame");
		return 0;
	}
	if ((rule->flags & CHANNEL_RULE_FD) && ch->in_fd < 0) {
		snprintf(why, sizeof(why), "%s without its descriptor",
		    ipc_type_name(type));
		return channel_violation(ch, why);
	}
	in->type = type;
	in->p = ch->rbuf + ch->roff + IPC_HEADER_SIZE;
	in->left = plen;
	ch->roff += IPC_HEADER_SIZE + plen;
	if (!(rule->flags & CHANNEL_RULE_FD) && ch->in_fd >= 0 &&
	    ch->roff == ch->rlen) {
		/* the record is over and nothing asked for its descriptor */
		return channel_violation(ch, "a descriptor no frame asked "
		    "for");
	}
	return 1;
}

int
channel_take_fd(struct channel *ch)
{
	int fd = ch->in_fd;

	ch->in_fd = -1;
	return fd;
}

/* Waits for events on the channel until deadline: 0, or -1 (error set). */
static int
wait_for(struct channel *ch, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { ch->fd, events, 0 };
		int64_t left = deadline - now_ms();
		int rc;

		if (left <= 0) {
			snprintf(ch->error, sizeof(ch->error), "timeout "
			    "waiting for %s", ch->peer);
			return -1;
		}
		log_flush();    /* nothing held waits while we do */
		rc = poll(&pfd, 1, left > 0x7fffffff ? 0x7fffffff : (int)left);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR) {
			snprintf(ch->error, sizeof(ch->error), "poll: %s",
			    strerror(errno));
			return -1;
		}
	}
}

int
channel_read_wait(struct channel *ch, struct ipc_in *in, int64_t deadline)
{
	for (;;) {
		int rc;

		if (ch->fd < 0) {
			if (ch->error[0] == '\0')
				snprintf(ch->error, sizeof(ch->error),
				    "not connected to %s", ch->peer);
			return -1;
		}
		rc = channel_next(ch, in);
		if (rc != 0)
			return rc;   /* a violation set ch->error */
		if (wait_for(ch, POLLIN, deadline) < 0)
			return -1;
		rc = channel_fill(ch);
		if (rc < 0 && ch->fd >= 0) {
			snprintf(ch->error, sizeof(ch->error), "%s %s",
			    ch->peer, ch->eof ? "closed the connection" :
			    strerror(errno));
			return -1;
		}
	}
}

struct ipc_out *
channel_begin(struct channel *ch, int type)
{
	if (ch->woff > 0 && ch->woff == ch->wbuf.len) {
		ch->wbuf.len = ch->woff = 0;
	} else if (ch->woff > 65536 && ch->woff * 2 > ch->wbuf.len) {
		memmove(ch->wbuf.buf, ch->wbuf.buf + ch->woff,
		    ch->wbuf.len - ch->woff);
		ch->wbuf.len -= ch->woff;
		if (ch->out_fd >= 0)
			ch->out_fd_at -= ch->woff;
		ch->woff = 0;
	}
	ipc_out_begin(&ch->wbuf, type);
	return &ch->wbuf;
}

int
channel_end(struct channel *ch)
{
	(void)ipc_out_end(&ch->wbuf);
	return channel_pending(ch) > ch->wmax ? -1 : 0;
}

int
channel_end_fd(struct channel *ch, int fd)
{
	if (!(ch->flags & CHANNEL_RECORDS))
		log_panic("channel to %s: a descriptor on a stream",
		    ch->peer);
	if (ch->out_fd >= 0) {
		/* take the frame back: one descriptor waits at a time */
		ch->wbuf.len = ch->wbuf.start;
		return -1;
	}
	ch->out_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (ch->out_fd < 0) {
		ch->wbuf.len = ch->wbuf.start;
		return -1;
	}
	ch->out_fd_at = ch->wbuf.start;
	return channel_end(ch);
}

size_t
channel_pending(const struct channel *ch)
{
	return ch->wbuf.len - ch->woff;
}

/* The size of the frame at off in the write buffer (ours: valid). */
static size_t
frame_size_at(const struct channel *ch, size_t off)
{
	uint32_t plen;

	memcpy(&plen, ch->wbuf.buf + off, 4);
	return IPC_HEADER_SIZE + ntohl(plen);
}

int
channel_flush(struct channel *ch)
{
	while (ch->woff < ch->wbuf.len) {
		size_t len = ch->wbuf.len - ch->woff;
		int fd = -1;
		long n;

		if (ch->fd < 0)
			return -1;
		if (ch->flags & CHANNEL_RECORDS) {
			len = frame_size_at(ch, ch->woff);   /* one a record */
			if (ch->out_fd >= 0 && ch->out_fd_at == ch->woff)
				fd = ch->out_fd;
			n = ipc_send_fd(ch->fd, ch->wbuf.buf + ch->woff, len,
			    fd, MSG_DONTWAIT);
		} else if (ch->flags & CHANNEL_IS_PIPE) {
			n = write(ch->fd, ch->wbuf.buf + ch->woff, len);
		} else {
			n = send(ch->fd, ch->wbuf.buf + ch->woff, len,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && errno == ENOTSOCK) {   /* a pipe */
				ch->flags |= CHANNEL_IS_PIPE;
				n = write(ch->fd, ch->wbuf.buf + ch->woff,
				    len);
			}
		}
		if (n > 0) {
			ch->woff += (size_t)n;
			if (fd >= 0) {
				close(ch->out_fd);   /* the peer has it */
				ch->out_fd = -1;
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		snprintf(ch->error, sizeof(ch->error), "write to %s: %s",
		    ch->peer, n == 0 ? "closed" : strerror(errno));
		return -1;
	}
	ch->wbuf.len = ch->woff = 0;
	return 0;
}

int
channel_flush_wait(struct channel *ch, int64_t deadline)
{
	for (;;) {
		if (channel_flush(ch) < 0)
			return -1;
		if (channel_pending(ch) == 0)
			return 0;
		if (wait_for(ch, POLLOUT, deadline) < 0)
			return -1;
	}
}

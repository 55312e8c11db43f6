/*
 * channel.h - one framed channel to a peer process (OpenSMTPD mproc and
 * OpenSSH monitor table style).
 *
 * A channel owns a descriptor, a read buffer and a write buffer of ipc.h
 * frames.  Frames are built in place in the write buffer:
 *
 *	struct ipc_out *m = channel_begin(ch, IMSG_TX_BEGUN);
 *	ipc_add_str(m, qid);
 *	channel_end(ch);            (then channel_flush or _flush_wait)
 *
 * and read one at a time with channel_next() (non-blocking users, after
 * channel_fill() when poll says the descriptor is readable) or
 * channel_read_wait() (blocking round trips with a deadline).
 *
 * Each channel carries the table of message types its peer may send and
 * one cap on a frame's payload.  A frame of another type, a longer one,
 * a bad header, a descriptor where none is expected (or none where one
 * is), or a caller's own decoding failure are the same event: the peer
 * lied.  channel_violation() logs "<peer> broke the protocol: <why>" and
 * closes the channel; on a channel marked fatal (notes from the master)
 * it ends the process instead.
 *
 * Descriptors ride only on record channels (SOCK_SEQPACKET): there one
 * read is one record, a record holds whole frames, and a descriptor
 * belongs to the one frame of its record that the table says carries one.
 */
#ifndef FERRY_CHANNEL_H
#define FERRY_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include "ipc.h"

#define CHANNEL_RULE_FD 1      /* the frame carries one descriptor */

/* One message type the peer may send; a table ends with type 0. */
struct channel_rule {
	int type;
	unsigned flags;
};

#define CHANNEL_RECORDS 1      /* SOCK_SEQPACKET: whole frames per read */
#define CHANNEL_FATAL 2        /* a violation ends this process */
#define CHANNEL_IS_PIPE 4      /* set by channel_flush on ENOTSOCK: write() */

struct channel {
	int fd;                    /* -1 once closed */
	char peer[96];             /* who is at the other end, for logs */
	const struct channel_rule *allowed;
	size_t cap;                /* largest payload the peer may send */
	size_t wmax;               /* most unsent bytes we keep for it */
	unsigned flags;
	uint8_t *rbuf;
	size_t rlen, roff, rcap;
	struct ipc_out wbuf;       /* frames not yet written, from woff */
	size_t woff;
	int out_fd;                /* ours: to send with the frame at */
	size_t out_fd_at;          /* offset of that frame in wbuf */
	int in_fd;                 /* descriptor received, not yet taken */
	int eof;                   /* the peer closed its end */
	char error[160];           /* why the last blocking call failed */
};

void channel_init(struct channel *ch, int fd, const char *peer,
    const struct channel_rule *allowed, size_t cap, unsigned flags);
/* Closes the descriptor (and one received but not taken) and frees the
 * buffers. */
void channel_free(struct channel *ch);
/* Closes the descriptor only; buffers are kept for a later reconnect
 * (channel_reopen). */
void channel_close(struct channel *ch);
void channel_reopen(struct channel *ch, int fd);

/* Logs "<peer> broke the protocol: <why>" and closes the channel (or,
 * on a CHANNEL_FATAL channel, ends the process).  Returns -1. */
int channel_violation(struct channel *ch, const char *why);

/* One read of what the descriptor has.  >0: bytes read; 0: nothing now;
 * -1: end of file or error (ch->eof is set on end of file), or a
 * violation (the channel is closed). */
int channel_fill(struct channel *ch);
/* The next whole frame in the read buffer: 1 and *in (valid until the
 * next call on ch), 0 when none is complete, -1 on a violation (logged,
 * channel closed). */
int channel_next(struct channel *ch, struct ipc_in *in);
/* Nonzero when a whole frame waits in the read buffer (channel_next
 * would return it without reading). */
int channel_has_frame(const struct channel *ch);
/* Frees the read buffers idle channels gave back for the next reads
 * (up to 8 of up to 256 KiB in a process): for a process at rest. */
void channel_spares_free(void);
/* The descriptor that came with the frame channel_next just returned
 * (a CHANNEL_RULE_FD type); the caller owns it.  -1 when none. */
int channel_take_fd(struct channel *ch);
/* Blocking: waits until deadline (now_ms() clock) for the next frame.
 * 1 with *in, or -1 with ch->error saying why (timeout, closed, or a
 * violation). */
int channel_read_wait(struct channel *ch, struct ipc_in *in,
    int64_t deadline);

/* Starts a frame of type at the end of the write buffer; ipc_add_*
 * append its fields in place. */
struct ipc_out *channel_begin(struct channel *ch, int type);
/* Ends the frame.  0, or -1 when more than wmax bytes wait unsent (a
 * peer that does not read: the caller drops it). */
int channel_end(struct channel *ch);
/* Ends the frame and attaches a duplicate of fd to it (record channels
 * only; the caller keeps fd).  -1 as channel_end, or when a descriptor
 * is already waiting to be sent (the frame is then taken back). */
int channel_end_fd(struct channel *ch, int fd);
/* Writes what the descriptor takes now.  0 (maybe with bytes still
 * pending), -1 when the peer cannot be written to. */
int channel_flush(struct channel *ch);
/* Blocking: writes everything before deadline.  0, or -1 (ch->error). */
int channel_flush_wait(struct channel *ch, int64_t deadline);
/* Bytes waiting to be written. */
size_t channel_pending(const struct channel *ch);

#endif

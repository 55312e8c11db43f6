/*
 * ipc.h - typed, strictly checked messages between ferry's processes
 * (OpenSMTPD mproc style).
 *
 * A frame is a 8-byte header - payload length (u32, network order),
 * type (u16), protocol version (u16) - then the payload built from typed
 * fields.  Readers take fields with ipc_get_*, and ipc_end() fails when
 * bytes are left over.  A frame that does not decode is a peer process
 * lying to us: the receiver drops that peer.
 */
#ifndef FERRY_IPC_H
#define FERRY_IPC_H

#include <stddef.h>
#include <stdint.h>

#define IPC_VERSION 1
#define IPC_HEADER_SIZE 8
#define IPC_MAX_PAYLOAD (1024 * 1024)

/* New types go at the end: the numbers are part of the protocol (and of
 * the tests that speak it byte by byte). */
enum ipc_type {
	/* worker -> queue runner */
	IMSG_TX_BEGIN = 1,   /* envelope; runner answers TX_BEGUN or TX_FAIL */
	IMSG_TX_DATA,        /* a chunk of the message, in order */
	IMSG_TX_COMMIT,      /* end of message; runner answers TX_COMMITTED/FAIL */
	IMSG_TX_ABORT,       /* forget the transaction; no answer */
	/* queue runner -> worker */
	IMSG_TX_BEGUN,       /* queue id */
	IMSG_TX_COMMITTED,   /* queue id: the message is durable */
	IMSG_TX_FAIL,        /* reason text */
	/* delivery agent <-> queue runner (deliver_proto.h) */
	IMSG_AGENT_HELLO,    /* agent -> runner: pid */
	IMSG_JOB,            /* runner -> agent: one message to one next hop */
	IMSG_JOB_DATA,       /* runner -> agent: a chunk of the message */
	IMSG_JOB_END,        /* runner -> agent: no more chunks */
	IMSG_RCPT_RESULT,    /* agent -> runner: one recipient's outcome */
	IMSG_JOB_DONE,       /* agent -> runner: job finished, agent free */
	/* SMTP worker <-> ferry-anvil (anvil_client.h); every request
	 * starts with a u32 sequence number the answer repeats */
	IMSG_ANVIL_CONNECT,      /* worker: seq, addr; answered */
	IMSG_ANVIL_DISCONNECT,   /* worker: seq, addr; no answer */
	IMSG_ANVIL_MESSAGE,      /* worker: seq, addr, u32 messages
	                          * wanted (a lease); answered */
	IMSG_ANVIL_AUTH_CHECK,   /* worker: seq, addr, user; answered */
	IMSG_ANVIL_AUTH_FAILED,  /* worker: seq, addr, user; no answer */
	IMSG_ANVIL_ANSWER,       /* anvil: seq, result (ANVIL_OK...), u32
	                          * messages granted (MESSAGE; else 0) */
	/* SMTP worker -> master over the status pipe (procfd.h) */
	IMSG_WORKER_STATUS,      /* pid, generation, WORKER_IDLE/BUSY */
	/* master -> queue runner over FD_POOL */
	IMSG_NOTE_POOL,          /* workers, busy */
	IMSG_NOTE_RELOAD,        /* no fields; the new configuration's
	                          * sealed memfd rides along (SCM_RIGHTS) */
	/* master -> ferry-anvil over FD_ANVIL_NOTES */
	IMSG_NOTE_ANVIL_LIMITS,  /* nine i32: the reloaded limits */
	/* delivery agent -> queue runner */
	IMSG_AGENT_LEAVING,  /* agent -> runner: told to stop; no fields */
	/* ferry-anvil -> SMTP worker, pushed, never answered: when stress
	 * mode begins or ends, and to a worker that connects in stress */
	IMSG_ANVIL_STRESS,       /* u8 on, u32 stress timeout (seconds) */
	/* queue runner -> worker, on the intake connection, unasked: when
	 * it is accepted and whenever the state changes */
	IMSG_QUEUE_STATE,        /* u8 QUEUE_STATE_* (0 ok, 1 below
	                          * min_free, 2 store failing), u64 bytes
	                          * free above min_free */
	/* ferryctl <-> queue runner over the control socket (control.h) */
	IMSG_CTL_REQUEST,        /* ferryctl: u32 count, then the words */
	IMSG_CTL_ANSWER,         /* runner: data, a piece of the JSON */
	IMSG_CTL_ANSWER_END,     /* runner: no fields; the answer is whole */
	/* master <-> queue runner over FD_POOL: the liveness check behind
	 * the systemd watchdog, and the configuration generation running */
	IMSG_NOTE_PING,          /* master: u32 seq; the runner answers */
	IMSG_NOTE_PONG,          /* runner: u32 seq, repeated */
	IMSG_NOTE_GENERATION,    /* master: u32 configuration generation */
	/* queue runner -> master over FD_POOL, when it changes */
	IMSG_NOTE_AGENTS,        /* u32: delivery agents the runner has
	                          * work for (busy, and due mail waiting) */
	/* SMTP worker -> master over the status pipe (worker_counters.h) */
	IMSG_WORKER_COUNTERS,    /* pid, then the deltas counted since the
	                          * last one */
	/* ferry-anvil -> master over FD_ANVIL_NOTES, when stress mode
	 * begins or ends (for the metrics) */
	IMSG_NOTE_ANVIL_STRESS,  /* u8 on */
	/* queue runner -> master over FD_POOL: ferryctl drain / undrain */
	IMSG_NOTE_DRAIN,         /* u8 on: what the operator asked */
	/* master -> queue runner over FD_POOL (for ferryctl status) and
	 * master -> SMTP worker over FD_WORKER_NOTES (procfd.h): the
	 * master's drain state, when it changes and to a new peer */
	IMSG_NOTE_DRAINING,      /* u8 on */
	/* SMTP worker <-> ferry-resolve (resolve_client.h) */
	IMSG_RESOLVE_QUERY,      /* worker: u32 seq, addr */
	IMSG_RESOLVE_ANSWER,     /* resolve: u32 seq, name ("" = unknown),
	                            u32 ms the worker may reuse it */
	/* master -> queue runner over FD_POOL, just before NOTE_RELOAD
	 * when the new configuration has DKIM keys */
	IMSG_NOTE_DKIM_KEYS,     /* no fields; a memfd with the keys' PEM,
	                          * in configuration order, rides along */
	/* ferry-anvil -> master over FD_ANVIL_NOTES, then master -> queue
	 * runner over FD_POOL: anvil's figures for "ferryctl status"
	 * (anvil_figures.h) */
	IMSG_NOTE_ANVIL_COUNTS,  /* u32 connections, u32 clients */
	IMSG_NOTE_ANVIL,         /* struct anvil_figures */
	/* master -> SMTP worker over FD_WORKER_NOTES, when it changes and
	 * to a new worker: the pool is packed (master.c), so a worker with
	 * sessions takes new ones at once instead of leaving them to an
	 * idle sibling */
	IMSG_NOTE_POOL_PACKED,   /* u8 on */
	/* ferry-token <-> queue runner over the token socket, and
	 * ferry-token -> master over FD_TOKEN_NOTES (token_proto.h) */
	IMSG_TOKEN_STATE,        /* token: a route's OAuth2 token and state */
	IMSG_TOKEN_REFRESH,      /* runner: str route; its token was refused */
	IMSG_TOKEN_ROTATED,      /* token: str route, str new refresh token */
	/* queue runner -> delivery agent: an active probe of a pool host
	 * (struct deliver_probe, deliver_proto.h); answered by JOB_DONE */
	IMSG_PROBE,
	/* queue runner -> worker, on the intake connection, unasked, after
	 * QUEUE_STATE when it is accepted (when any route is known) and
	 * whenever a route's upstream capabilities change (route_caps.h) */
	IMSG_ROUTE_CAPS,         /* u32 count, then per route: name, u32
	                          * RCAP_* flags, u64 SIZE limit */
	/* SMTP worker -> ferry-anvil: messages of a lease left unused */
	IMSG_ANVIL_MESSAGES_BACK,  /* seq, addr, u32 count; no answer */
	/* SMTP worker <-> ferry-anvil: connections with a lease
	 * (anvil_client.h) */
	IMSG_ANVIL_CONNECTS,     /* worker: seq, addr, u32 rate events
	                          * wanted (0: lent already), u8 on a slot
	                          * the worker holds; answered */
	IMSG_ANVIL_CONNECTS_ANSWER,  /* anvil: seq, result, u32 rate events
	                              * granted, u8 1: the slot may be kept,
	                              * 2: refused, ask again */
	IMSG_ANVIL_CONNECTS_BACK,  /* worker: seq, addr, u32 rate events,
	                            * u32 slots; no answer */
	IMSG_ANVIL_RECALL,       /* anvil: no fields; give kept slots back;
	                          * worker: the same, once they went */
	IMSG_TYPE_MAX
};

const char *ipc_type_name(int type);

/* A growable buffer of outgoing frames: ipc_out_init() starts it over
 * with one frame, ipc_out_begin() appends a frame after those already in
 * it (a channel's write buffer, channel.h), and the ipc_add_* calls
 * append fields to the frame begun last, in place. */
struct ipc_out {
	uint8_t *buf;
	size_t len, cap;
	size_t start;        /* offset of the frame being built */
};

void ipc_out_init(struct ipc_out *m, int type);
void ipc_out_begin(struct ipc_out *m, int type);
/* Patches the length of the frame begun last; returns its size. */
size_t ipc_out_end(struct ipc_out *m);
void ipc_out_free(struct ipc_out *m);
void ipc_add_i32(struct ipc_out *m, int32_t v);
void ipc_add_u8(struct ipc_out *m, uint8_t v);
void ipc_add_u32(struct ipc_out *m, uint32_t v);
void ipc_add_u64(struct ipc_out *m, uint64_t v);
void ipc_add_i64(struct ipc_out *m, int64_t v);
/* A string: u32 length then bytes; NUL is not allowed inside. NULL is
 * sent as the empty string. */
void ipc_add_str(struct ipc_out *m, const char *s);
/* Raw bytes: u32 length then bytes. */
void ipc_add_data(struct ipc_out *m, const void *p, size_t len);
/* Ends the frame begun last; returns the whole buffer and its size. */
const uint8_t *ipc_out_finish(struct ipc_out *m, size_t *lenp);

/* An incoming frame being read. */
struct ipc_in {
	int type;
	const uint8_t *p;
	size_t left;
};

/* Looks at buf: returns 0 when a whole frame is not there yet, -1 when the
 * header is invalid (bad version, too long, unknown type), or the frame's
 * total size and fills *in with its payload. */
long ipc_frame(const uint8_t *buf, size_t len, struct ipc_in *in);
/* The header alone: 0 when fewer than IPC_HEADER_SIZE bytes are there,
 * -1 when invalid as for ipc_frame(), 1 with *type and *plen filled. */
int ipc_header(const uint8_t *buf, size_t len, int *type, size_t *plen);

int ipc_get_u8(struct ipc_in *in, uint8_t *v);
int ipc_get_u32(struct ipc_in *in, uint32_t *v);
int ipc_get_i32(struct ipc_in *in, int32_t *v);
int ipc_get_u64(struct ipc_in *in, uint64_t *v);
int ipc_get_i64(struct ipc_in *in, int64_t *v);
/* Returns a malloc'd NUL-terminated copy; fails on embedded NUL or when
 * longer than maxlen. */
int ipc_get_str(struct ipc_in *in, char **s, size_t maxlen);
/* Points into the frame (no copy). */
int ipc_get_data(struct ipc_in *in, const uint8_t **p, size_t *len);
/* 0 when every byte of the payload was consumed, -1 otherwise. */
int ipc_end(const struct ipc_in *in);

/* Passing descriptors (SCM_RIGHTS), written once for every user.
 * ipc_send_fd sends len bytes with fd attached (fd < 0: none);
 * ipc_recv_fd receives up to len bytes and stores a descriptor that came
 * with them in *fd (-1 when none; received close-on-exec; any extra
 * descriptors are closed).  Both return what send/recvmsg return;
 * ipc_recv_fd sets *truncated when a record did not fit. */
long ipc_send_fd(int sock, const void *buf, size_t len, int fd, int flags);
long ipc_recv_fd(int sock, void *buf, size_t len, int *fd, int *truncated,
    int flags);

#endif

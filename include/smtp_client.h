/*
 * smtp_client.h - the delivery agent's SMTP client session (RFC 5321)
 * with one next hop: connect, greeting, EHLO or HELO, STARTTLS, AUTH,
 * one command and its reply, RSET and QUIT (smtp_client.c).  A mail
 * transaction on an open session is smtp_client_tx.h.
 */
#ifndef FERRY_SMTP_CLIENT_H
#define FERRY_SMTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

#include "smtp_client_reply.h"
#include "util.h"

#define RBUF_CAP (SCR_MAX_LINES * SCR_LINE_MAX + 4096)
#define KEY_MAX 1100

struct ferry_config;
struct job_ctx;

/* One SMTP connection to a next hop. */
struct smtp_conn {
	int fd;                   /* -1 when closed */
	SSL *ssl;
	char *rbuf;
	size_t rlen;
	char host[256];           /* the name we connected to (or address) */
	char relay[320];          /* "host[addr]:port" */
	char tls[128];            /* "TLSv1.3 cipher" or "" */
	struct ehlo_caps caps;
	char key[KEY_MAX];        /* deliver_hop_key of the jobs it serves */
	int64_t idle_since;
	int transactions;         /* MAIL commands on this connection */
	int secret;               /* what is sent now must not be logged */
	int poll_first;           /* a reply is usually not there yet when
	                             we look: wait for it before reading */
	unsigned reads_waited;    /* replies waited for since read_first
	                             was last tried */
};

static inline int64_t
deadline_s(int seconds)
{
	return now_ms() + (int64_t)seconds * 1000;
}

/* Connect, greeting, EHLO, STARTTLS, AUTH: a session ready for MAIL.
 * 0, or -1 with x->last set and the connection closed. */
int client_open(struct job_ctx *x, struct smtp_conn *c, const char *host,
    const struct sockaddr *sa, socklen_t salen);
/* Reads one reply.  0, or -1 with x->last set (the connection is then
 * useless).  caps: also read the EHLO keywords. */
int client_reply(struct job_ctx *x, struct smtp_conn *c,
    struct smtp_client_reply *r, int64_t deadline, struct ehlo_caps *caps,
    const char *stage);
/* Sends buf (one or more commands with their CRLF) in one write.  0, or
 * -1 with x->last set. */
int client_send(struct job_ctx *x, struct smtp_conn *c, const char *buf,
    size_t len, int64_t deadline, const char *stage);
/* One command line (without CRLF) and its reply. */
int client_command(struct job_ctx *x, struct smtp_conn *c, const char *line,
    struct smtp_client_reply *r, struct ehlo_caps *caps, const char *stage);
/* QUIT, a short wait for its answer, then close. */
void client_quit(const struct ferry_config *cfg, struct smtp_conn *c);
/* Closes at once (no QUIT): after an error, or when the server left. */
void client_close(struct smtp_conn *c);

#endif

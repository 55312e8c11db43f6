/*
 * smtp_client_tx.h - one mail transaction on an open SMTP client
 * session: MAIL, RCPT and DATA (pipelined when the server offers
 * PIPELINING), the dot-stuffed body, and a result per recipient
 * (smtp_client_tx.c).
 */
#ifndef FERRY_SMTP_CLIENT_TX_H
#define FERRY_SMTP_CLIENT_TX_H

struct job_ctx;
struct smtp_conn;

/* MAIL, RCPTs, DATA, the body and the final reply on an open session.
 * 0: the connection may be kept; -1: it must be closed (x->last says
 * why; recipients still pending may try another host). */
int client_transaction(struct job_ctx *x, struct smtp_conn *c);
/* The same on a session kept from an earlier job: RSET first (in the
 * same write as MAIL when the server offers PIPELINING, so reuse costs
 * no round trip of its own).  CLIENT_TX_STALE when the RSET failed or
 * was refused (the server closed an idle session, say): nothing was
 * done, x->last says why, and the caller opens another session. */
#define CLIENT_TX_STALE (-2)
int client_transaction_kept(struct job_ctx *x, struct smtp_conn *c);

#endif

/*
 * smtp_trouble.h - what went wrong with a next hop, and what it means
 * for the job's recipients (smtp_trouble.c).
 */
#ifndef FERRY_SMTP_TROUBLE_H
#define FERRY_SMTP_TROUBLE_H

struct job_ctx;
struct smtp_conn;

/* Records a next-hop failure as x->last (always a deferral: another
 * host, or a later try, may do better).  c may be NULL. */
void hop_fail(struct job_ctx *x, const struct smtp_conn *c, const char *dsn,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif

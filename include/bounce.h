/*
 * bounce.h - delivery status notifications (RFC 3464).
 *
 * bounce_report() is pure: from the original message's data, the
 * recipients to report and the clock, it returns the bytes of a
 * multipart/report message (from the null sender to the original
 * sender).  Reading the original from the store and queueing the report
 * in the transaction that records the failure stay with the caller
 * (bounce_queue.c).
 */
#ifndef FERRY_BOUNCE_H
#define FERRY_BOUNCE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define BOUNCE_RETURN_FULL_MAX (1024 * 1024)  /* larger: headers only */
#define BOUNCE_HEADERS_MAX (64 * 1024)        /* header block returned */

struct bounce_rcpt {
	const char *addr;
	const char *orcpt;        /* "addr-type;xtext" or "" */
	const char *status;       /* enhanced status code "5.1.1" */
	const char *remote_mta;   /* host name or "" */
	const char *diagnostic;   /* the remote reply or local reason */
	const char *detail;       /* the same with context, for people */
	double last_attempt;      /* 0: now */
};

struct bounce_input {
	int delayed;              /* a delay warning, not a failure report */
	const char *hostname;     /* ours: Reporting-MTA, From, Received */
	const char *report_qid;   /* the report's own queue id */
	const char *qid;          /* the original's queue id */
	const char *sender;       /* the original's sender: the report's To */
	const char *envid;        /* ENVID as received, "" when none */
	double received_at;       /* the original's arrival */
	double retry_until;       /* the end of its lifetime (delay warning) */
	int headers_only;         /* return only the original's header block */
	const uint8_t *original;  /* the original message (or at least its */
	size_t original_len;      /* first BOUNCE_HEADERS_MAX bytes) */
	time_t now;
	uint8_t random[8];        /* for the MIME boundary and Message-ID */
};

/* The report's bytes (CRLF lines), malloc'd into *out and *outlen. */
void bounce_report(const struct bounce_input *in,
    const struct bounce_rcpt *r, size_t n, uint8_t **out, size_t *outlen);
/* Whether a report is owed at all: never for the null sender or for one
 * of ferry's own notifications (no loops), a delay warning once. */
int bounce_owed(const char *sender, int is_dsn, int delayed, int warned);

#endif

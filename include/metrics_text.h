/*
 * metrics_text.h - building blocks of the Prometheus text exposition
 * format (version 0.0.4) that the queue runner answers ferry-metrics
 * with: a growing text buffer, label values escaped as the format wants,
 * and fixed-bucket histograms kept in memory (metrics_text.c).  Pure: no
 * I/O, so the output is unit-tested.
 */
#ifndef FERRY_METRICS_TEXT_H
#define FERRY_METRICS_TEXT_H

#include <stddef.h>
#include <stdint.h>

struct mtext {
	char *buf;
	size_t len, cap;
};

void mtext_init(struct mtext *t);
void mtext_free(struct mtext *t);
void mtext_printf(struct mtext *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* s as the inside of a quoted label value: \, " and newline escaped,
 * other control characters and bytes past 0x7e dropped. */
void mtext_label(struct mtext *t, const char *s);
/* "# HELP name help\n# TYPE name type\n" */
void mtext_family(struct mtext *t, const char *name, const char *type,
    const char *help);

/* TLS protocol versions as counted in and out: the slot of OpenSSL's
 * name ("TLSv1.3", or a string that starts with it and a space), and
 * the label of each slot. */
enum tls_version_slot { TLSV_1_0, TLSV_1_1, TLSV_1_2, TLSV_1_3, TLSV_OTHER,
	TLSV_COUNT };
int tls_version_slot(const char *s);
extern const char *const tls_version_names[TLSV_COUNT];

#define HIST_MAX_BOUNDS 16

/* Counts of observations at most each upper bound (cumulative when
 * written), their sum and number. */
struct histogram {
	size_t nbounds;
	double bounds[HIST_MAX_BOUNDS];      /* ascending */
	uint64_t buckets[HIST_MAX_BOUNDS];   /* not cumulative */
	uint64_t count;
	double sum;
};

/* n bounds (at most HIST_MAX_BOUNDS, ascending). */
void histogram_init(struct histogram *h, const double *bounds, size_t n);
void histogram_observe(struct histogram *h, double v);
/* The _bucket (cumulative, le="+Inf" last), _sum and _count lines of a
 * histogram whose family header was written. */
void mtext_histogram(struct mtext *t, const char *name,
    const struct histogram *h);

#endif

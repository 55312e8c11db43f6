/*
 * metrics_text.c - Prometheus text exposition pieces (see
 * metrics_text.h).
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "metrics_text.h"
#include "util.h"

void
mtext_init(struct mtext *t)
{
	t->cap = 4096;
	t->len = 0;
	t->buf = xmalloc(t->cap);
	t->buf[0] = '\0';
}

void
mtext_free(struct mtext *t)
{
	free(t->buf);
	t->buf = NULL;
	t->len = t->cap = 0;
}

static void
reserve(struct mtext *t, size_t more)
{
	while (t->len + more + 1 > t->cap) {
		t->cap *= 2;
		t->buf = xrealloc(t->buf, t->cap);
	}
}

void
mtext_printf(struct mtext *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= t->cap - t->len) {
		reserve(t, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
	}
	t->len += (size_t)n;
}

void
mtext_label(struct mtext *t, const char *s)
{
	reserve(t, 2 * strlen(s));
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\\' || c == '"') {
			t->buf[t->len++] = '\\';
			t->buf[t->len++] = (char)c;
		} else if (c == '\n') {
			t->buf[t->len++] = '\\';
			t->buf[t->len++] = 'n';
		} else if (c >= 0x20 && c < 0x7f) {
			t->buf[t->len++] = (char)c;
		}
	}
	t->buf[t->len] = '\0';
}

void
mtext_family(struct mtext *t, const char *name, const char *type,
    const char *help)
{
	mtext_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

void
histogram_init(struct histogram *h, const double *bounds, size_t n)
{
	memset(h, 0, sizeof(*h));
	if (n > HIST_MAX_BOUNDS)
		n = HIST_MAX_BOUNDS;
	memcpy(h->bounds, bounds, n * sizeof(*bounds));
	h->nbounds = n;
}

void
histogram_observe(struct histogram *h, double v)
{
	size_t i;

	for (i = 0; i < h->nbounds; i++)
		if (v <= h->bounds[i]) {
			h->buckets[i]++;
			break;
		}
	h->count++;
	h->sum += v;
}

void
mtext_histogram(struct mtext *t, const char *name,
    const struct histogram *h)
{
	uint64_t below = 0;
	size_t i;

	for (i = 0; i < h->nbounds; i++) {
		below += h->buckets[i];
		mtext_printf(t, "%s_bucket{le=\"%g\"} %llu\n", name,
		    h->bounds[i], (unsigned long long)below);
	}
	mtext_printf(t, "%s_bucket{le=\"+Inf\"} %llu\n", name,
	    (unsigned long long)h->count);
	mtext_printf(t, "%s_sum %.6f\n", name, h->sum);
	mtext_printf(t, "%s_count %llu\n", name,
	    (unsigned long long)h->count);
}

const char *const tls_version_names[TLSV_COUNT] = { "TLSv1", "TLSv1.1",
    "TLSv1.2", "TLSv1.3", "other" };

int
tls_version_slot(const char *s)
{
	size_t n = strcspn(s, " ");
	int i;

	for (i = 0; i < TLSV_OTHER; i++)
		if (strlen(tls_version_names[i]) == n &&
		    strncmp(s, tls_version_names[i], n) == 0)
			return i;
	return TLSV_OTHER;
}

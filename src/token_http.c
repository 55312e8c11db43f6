/*
 * token_http.c - one refresh-token grant over HTTPS (token_http.h).
 *
 * Security stance: HTTPS only (CURLOPT_PROTOCOLS_STR, no redirects), the
 * server's certificate and name verified (against the credential's own
 * CA when given, loaded as root before the privilege drop, else the
 * system store), connect and whole-exchange timeouts, an answer bounded
 * at RESPONSE_MAX bytes and parsed strictly (token_response.c).  The
 * request body holds the refresh token and client secret: it is wiped
 * after the call, and nothing here logs it.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "credentials.h"
#include "token_http.h"
#include "token_response.h"
#include "util.h"

#define RESPONSE_MAX (64 * 1024)

struct body {
	char buf[RESPONSE_MAX];
	size_t len;
	int too_long;
};

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	size_t len = size * n;

	if (len > sizeof(b->buf) - b->len) {
		b->too_long = 1;
		return 0;           /* aborts the transfer */
	}
	memcpy(b->buf + b->len, p, len);
	b->len += len;
	return len;
}

void
token_http_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		abort();
}

/* Appends "&key=escaped(value)" (no '&' first) to the form. */
static void
form_add(CURL *h, char **form, size_t *len, const char *key,
    const char *value)
{
	char *esc = curl_easy_escape(h, value, 0);
	size_t need;

	if (esc == NULL)
		abort();
	need = *len + strlen(key) + strlen(esc) + 3;
	*form = xrealloc(*form, need);
	*len += (size_t)snprintf(*form + *len, need - *len, "%s%s=%s",
	    *len ? "&" : "", key, esc);
	explicit_bzero(esc, strlen(esc));
	curl_free(esc);
}

int
token_http_grant(const struct credential *cr, const char *refresh_token,
    const char *ca_pem, size_t ca_len, struct token_grant *g, char *err,
    size_t errlen)
{
	CURL *h = curl_easy_init();
	struct body *b = xcalloc(1, sizeof(*b));
	struct curl_blob blob;
	char *form = NULL, cerr[CURL_ERROR_SIZE];
	size_t flen = 0;
	long status = 0;
	CURLcode rc;
	int ret = -1;

	memset(g, 0, sizeof(*g));
	if (h == NULL) {
		snprintf(err, errlen, "libcurl could not start a transfer");
		free(b);
		return -1;
	}
	form_add(h, &form, &flen, "grant_type", "refresh_token");
	form_add(h, &form, &flen, "refresh_token", refresh_token);
	form_add(h, &form, &flen, "client_id", cr->client_id);
	if (cr->client_secret != NULL)
		form_add(h, &form, &flen, "client_secret", cr->client_secret);
	if (cr->scope != NULL)
		form_add(h, &form, &flen, "scope", cr->scope);
	cerr[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, cr->token_url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (ca_pem != NULL) {
		blob.data = (void *)ca_pem;
		blob.len = ca_len;
		blob.flags = CURL_BLOB_NOCOPY;
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
	}
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT,
	    (long)TOKEN_HTTP_CONNECT_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)TOKEN_HTTP_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)flen);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "ferry/" PACKAGE_VERSION);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		if (b->too_long)
			snprintf(err, errlen, "the token endpoint's answer "
			    "is over %d bytes", RESPONSE_MAX);
		else
			snprintf(err, errlen, "token endpoint: %s",
			    cerr[0] ? cerr : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	ret = token_response_parse(status, b->buf, b->len, g, err, errlen);
out:
	explicit_bzero(form, flen);
	free(form);
	explicit_bzero(b, sizeof(*b));
	free(b);
	curl_easy_cleanup(h);
	return ret;
}

/*
 * config.c - ferry.conf: the option table, its validation, and the
 * parsed struct ferry_config.
 *
 * Each option is one row of options[] below: its section, name, type,
 * default, range, where its value goes in the struct and an optional
 * validator.  The rows produce both libconfuse's option tables and the
 * copy into struct ferry_config, so config_load is a loop over them.
 * Values are checked while the file is read, so an error names the file
 * and line.  Checks that tie options together run after the parse and
 * name the file.
 */
#include "autoconfig.h"

#include <confuse.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "address_pattern.h"
#include "config.h"
#include "dkim.h"
#include "smtp_parse.h"
#include "util.h"

/* Indexed by enum tls_policy. */
static const char *const tls_policy_names[] = { "none", "may", "encrypt",
    "verify", NULL };

/* The index of s in the NULL-terminated names, or -1. */
static int
pick(const char *s, const char *const *names)
{
	int i;

	for (i = 0; s != NULL && names[i] != NULL; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

const char *
tls_policy_name(enum tls_policy p)
{
	return (unsigned)p < 4 ? tls_policy_names[p] : "?";
}

static int
validate_tls(cfg_t *cfg, cfg_opt_t *opt)
{
	if (pick(cfg_opt_getnstr(opt, 0), tls_policy_names) < 0) {
		cfg_error(cfg, "tls must be none, may, encrypt or verify");
		return -1;
	}
	return 0;
}

static int
parse_tls_version(const char *s)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "TLSv1.2") == 0)
		return 0x0303;
	if (strcmp(s, "TLSv1.3") == 0)
		return 0x0304;
	return -1;
}

static int
validate_tls_version(cfg_t *cfg, cfg_opt_t *opt)
{
	if (parse_tls_version(cfg_opt_getnstr(opt, 0)) < 0) {
		cfg_error(cfg, "tls_min_version must be TLSv1.2 or TLSv1.3");
		return -1;
	}
	return 0;
}

/* "host:port", "[address]:port", or a bare host (port 25); a name is
 * letters, digits, '-' and '.'. */
static int
valid_host_spec(const char *s)
{
	struct hostport hp;
	const char *q;

	if (netaddr_parse_hostport(s, 25, 0, &hp, NULL, 0) < 0)
		return 0;
	if (hp.bracketed)
		return 1;
	for (q = hp.host; *q; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
		    (*q >= '0' && *q <= '9') || *q == '-' || *q == '.'))
			return 0;
	return 1;
}

#define HOST_PRIORITY_MAX 65535
#define HOST_WEIGHT_MAX 1000

/* One "hosts" entry: "host:port" then optional "priority=N" and
 * "weight=N" (a smarthost pool, host_pool.h).  Fills *prio and *weight
 * (-1 and 1 when not given) and the length of the host part; on a
 * mistake, the reason in why. */
static int
parse_pool_host(const char *entry, size_t *hostlen, int *prio, int *weight,
    char *why, size_t whylen)
{
	const char *p = entry;
	char host[400];
	size_t n = strcspn(entry, " \t");

	*prio = -1;
	*weight = 1;
	*hostlen = n;
	if (n == 0 || n >= sizeof(host)) {
		snprintf(why, whylen, "is not host:port or [address]:port");
		return -1;
	}
	memcpy(host, entry, n);
	host[n] = '\0';
	if (!valid_host_spec(host)) {
		snprintf(why, whylen, "is not host:port or [address]:port");
		return -1;
	}
	p += n;
	for (;;) {
		const char *key, *eq;
		char *end;
		long v;
		size_t klen;
		int *slot;
		long lo, hi;

		p += strspn(p, " \t");
		if (*p == '\0')
			return 0;
		key = p;
		klen = strcspn(p, " \t");
		p += klen;
		eq = memchr(key, '=', klen);
		if (eq != NULL && (size_t)(eq - key) == 8 &&
		    strncmp(key, "priority", 8) == 0) {
			slot = prio;
			lo = 0;
			hi = HOST_PRIORITY_MAX;
		} else if (eq != NULL && (size_t)(eq - key) == 6 &&
		    strncmp(key, "weight", 6) == 0) {
			slot = weight;
			lo = 1;
			hi = HOST_WEIGHT_MAX;
		} else {
			snprintf(why, whylen, "has \"%.*s\": only priority=N "
			    "and weight=N may follow the host", (int)klen, key);
			return -1;
		}
		errno = 0;
		v = strtol(eq + 1, &end, 10);
		if (end == eq + 1 || end != key + klen || errno != 0 ||
		    v < lo || v > hi) {
			snprintf(why, whylen, "has \"%.*s\": %.*s must be a "
			    "number from %ld to %ld", (int)klen, key,
			    (int)(eq - key), key, lo, hi);
			return -1;
		}
		if ((slot == prio && *prio != -1) ||
		    (slot == weight && strstr(entry, "weight=") != key)) {
			snprintf(why, whylen, "gives %.*s twice",
			    (int)(eq - key), key);
			return -1;
		}
		*slot = (int)v;
	}
}

static int
validate_hosts(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned i;
	char why[200];

	if (cfg_opt_size(opt) > CONFIG_MAX_POOL_HOSTS) {
		cfg_error(cfg, "hosts: at most %d hosts",
		    CONFIG_MAX_POOL_HOSTS);
		return -1;
	}
	for (i = 0; i < cfg_opt_size(opt); i++) {
		size_t hl;
		int prio, weight;

		if (parse_pool_host(cfg_opt_getnstr(opt, i), &hl, &prio,
		    &weight, why, sizeof(why)) < 0) {
			cfg_error(cfg, "hosts: \"%s\" %s",
			    cfg_opt_getnstr(opt, i), why);
			return -1;
		}
	}
	return 0;
}

/* The "priority=N weight=N" of a route's hosts go to their arrays and
 * each entry keeps its host part alone (validate_hosts checked them). */
static void
split_pool_hosts(struct route_config *r)
{
	size_t i, hl;
	char why[200];

	if (r->nhosts == 0)
		return;
	r->host_priority = xcalloc(r->nhosts, sizeof(int));
	r->host_weight = xcalloc(r->nhosts, sizeof(int));
	for (i = 0; i < r->nhosts; i++) {
		int prio, weight;

		if (parse_pool_host(r->hosts[i], &hl, &prio, &weight, why,
		    sizeof(why)) < 0) {
			prio = (int)i;
			weight = 1;
			hl = strlen(r->hosts[i]);
		}
		r->hosts[i][hl] = '\0';
		/* no priority: its place in the list, as failover */
		r->host_priority[i] = prio >= 0 ? prio : (int)i;
		r->host_weight[i] = weight;
	}
}

static int
validate_domains(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned i;

	for (i = 0; i < cfg_opt_size(opt); i++) {
		const char *d = cfg_opt_getnstr(opt, i);
		size_t k;

		if (strcmp(d, "*") == 0)
			continue;
		for (k = 0; d[k]; k++)
			if (!((d[k] >= 'a' && d[k] <= 'z') ||
			    (d[k] >= 'A' && d[k] <= 'Z') ||
			    (d[k] >= '0' && d[k] <= '9') || d[k] == '-' ||
			    d[k] == '.'))
				break;
		if (k == 0 || d[k] != '\0' || strstr(d, "..") ||
		    (d[0] == '.' && d[1] == '\0')) {
			cfg_error(cfg, "domains: \"%s\" is not a domain, "
			    "\".domain\" or \"*\"", d);
			return -1;
		}
	}
	return 0;
}

/* A domain name's characters, at least one, no empty label. */
static int
is_domain_name(const char *d)
{
	size_t k;

	for (k = 0; d[k]; k++)
		if (!((d[k] >= 'a' && d[k] <= 'z') ||
		    (d[k] >= 'A' && d[k] <= 'Z') ||
		    (d[k] >= '0' && d[k] <= '9') || d[k] == '-' ||
		    d[k] == '.'))
			return 0;
	return k > 0 && d[0] != '.' && d[k - 1] != '.' &&
	    strstr(d, "..") == NULL;
}

/* local@domain: a local part of printable characters other than space,
 * "<", ">", "@", "," and quotes; a domain name. */
static int
is_plain_address(const char *a)
{
	const char *at = strrchr(a, '@');
	const char *p;

	if (at == NULL || at == a)
		return 0;
	for (p = a; p < at; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f ||
		    strchr("<>@,\"\\()[]:;", *p) != NULL)
			return 0;
	return is_domain_name(at + 1);
}

/* senders and allowed_from: "a@example.com", "@example.com",
 * ".example.com". */
static int
validate_senders(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned i;

	for (i = 0; i < cfg_opt_size(opt); i++) {
		const char *s = cfg_opt_getnstr(opt, i);

		if ((s[0] == '@' || s[0] == '.') ? is_domain_name(s + 1) :
		    is_plain_address(s))
			continue;
		cfg_error(cfg, "%s: \"%s\" is not an address, \"@domain\" or "
		    "\".domain\"", opt->name, s);
		return -1;
	}
	return 0;
}

/* rewrite_sender, rewrite_from: "" or local@domain. */
static int
validate_rewrite_address(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);

	if (s == NULL || s[0] == '\0' || is_plain_address(s))
		return 0;
	cfg_error(cfg, "%s: \"%s\" is not an address (local@domain)",
	    opt->name, s);
	return -1;
}

static int
validate_resolver(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);
	struct hostport hp;
	unsigned char buf[16];

	if (s == NULL || *s == '\0')
		return 0;
	/* "addr:port" for IPv4, "[addr]:port" or "addr" for IPv6 */
	if (netaddr_parse_hostport(s, 53, HOSTPORT_BARE_IPV6, &hp, NULL,
	    0) < 0 || (inet_pton(AF_INET, hp.host, buf) != 1 &&
	    inet_pton(AF_INET6, hp.host, buf) != 1)) {
		cfg_error(cfg, "resolver \"%s\" is not address, address:port "
		    "or [address]:port", s);
		return -1;
	}
	return 0;
}

static int
validate_user(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *name = cfg_opt_getnstr(opt, 0);

	if (name == NULL || *name == '\0') {
		cfg_error(cfg, "%s must name a user", opt->name);
		return -1;
	}
	if (getpwnam(name) == NULL) {
		cfg_error(cfg, "%s = \"%s\": no such user", opt->name, name);
		return -1;
	}
	return 0;
}

static int
validate_hostname(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);
	size_t i, n = s ? strlen(s) : 0;

	if (n == 0 || n > 253) {
		cfg_error(cfg, "hostname must be 1 to 253 characters");
		return -1;
	}
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.')) {
			cfg_error(cfg, "hostname \"%s\": character '%c' is not "
			    "allowed in a host name", s, c);
			return -1;
		}
	}
	return 0;
}

static int
validate_address(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);
	unsigned char buf[16];

	if (s == NULL || (inet_pton(AF_INET, s, buf) != 1 &&
	    inet_pton(AF_INET6, s, buf) != 1)) {
		cfg_error(cfg, "address \"%s\" is not a numeric IPv4 or IPv6 "
		    "address", s ? s : "");
		return -1;
	}
	return 0;
}

static int
validate_networks(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned i;

	for (i = 0; i < cfg_opt_size(opt); i++) {
		struct cidr c;
		char err[128];
		const char *s = cfg_opt_getnstr(opt, i);

		if (cidr_parse(s, &c, err, sizeof(err)) < 0) {
			cfg_error(cfg, "networks: \"%s\": %s", s, err);
			return -1;
		}
	}
	return 0;
}


static const char *const listen_tls_names[] = { "none", "starttls",
    "implicit", NULL };
static const char *const client_cert_names[] = { "none", "optional",
    "require", NULL };
static const char *const listen_proxy_names[] = { "none", "v1", "v2",
    NULL };

static int
validate_listen_proxy(cfg_t *cfg, cfg_opt_t *opt)
{
	if (pick(cfg_opt_getnstr(opt, 0), listen_proxy_names) < 0) {
		cfg_error(cfg, "proxy_protocol must be none, v1 or v2");
		return -1;
	}
	return 0;
}

static int
validate_listen_tls(cfg_t *cfg, cfg_opt_t *opt)
{
	if (pick(cfg_opt_getnstr(opt, 0), listen_tls_names) < 0) {
		cfg_error(cfg, "tls must be none, starttls or implicit");
		return -1;
	}
	return 0;
}

static int
validate_client_cert(cfg_t *cfg, cfg_opt_t *opt)
{
	if (pick(cfg_opt_getnstr(opt, 0), client_cert_names) < 0) {
		cfg_error(cfg, "client_cert must be none, optional or require");
		return -1;
	}
	return 0;
}

/* Where libconfuse's messages go while one file is parsed, and how that
 * parse was asked to check (set for the length of cfg_parse_buf, as the
 * validators have no argument of their own). */
struct parse_state {
	const char *path;
	char *buf;
	size_t len;
	int seen;
	unsigned flags;            /* CONFIG_NO_FILE_CHECKS */
};

static struct parse_state *current_parse;

/* A file named here must exist and be readable now (by the master, which
 * runs as root: children read it before they drop privileges), unless
 * the caller said the master has checked it. */
static int
validate_readable(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);

	if (s == NULL || *s == '\0')
		return 0;
	if (s[0] != '/') {
		cfg_error(cfg, "%s \"%s\" must be an absolute path",
		    opt->name, s);
		return -1;
	}
	if (!(current_parse != NULL &&
	    (current_parse->flags & CONFIG_NO_FILE_CHECKS)) &&
	    access(s, R_OK) != 0) {
		cfg_error(cfg, "%s \"%s\": %s", opt->name, s,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static int
validate_target(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);

	if (s == NULL || (strcmp(s, "syslog") != 0 &&
	    strcmp(s, "stderr") != 0 && strcmp(s, "journald") != 0)) {
		cfg_error(cfg, "target must be \"syslog\", \"stderr\" or "
		    "\"journald\"");
		return -1;
	}
#ifndef HAVE_SYSTEMD
	if (strcmp(s, "journald") == 0) {
		cfg_error(cfg, "target \"journald\": this ferry was built "
		    "without libsystemd");
		return -1;
	}
#endif
	return 0;
}

static int
validate_log_format(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);

	if (s == NULL || (strcmp(s, "text") != 0 && strcmp(s, "json") != 0)) {
		cfg_error(cfg, "format must be \"text\" or \"json\"");
		return -1;
	}
	return 0;
}

int
config_parse_min_free(const char *s, int64_t *bytes, int *percent)
{
	unsigned long long v = 0, mult = 1;
	const char *p = s;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned long long)(*p - '0');
		if (v > (1ULL << 50))
			return -1;
	}
	if (*p == '%') {
		if (p[1] != '\0' || v > 99)
			return -1;
		*bytes = 0;
		*percent = (int)v;
		return 0;
	}
	if (*p == 'K' || *p == 'k')
		mult = 1024;
	else if (*p == 'M' || *p == 'm')
		mult = 1024 * 1024;
	else if (*p == 'G' || *p == 'g')
		mult = 1024 * 1024 * 1024;
	else if (*p != '\0')
		return -1;
	if (*p != '\0' && p[1] != '\0')
		return -1;
	if (v > (1ULL << 50) / mult)
		return -1;
	*bytes = (int64_t)(v * mult);
	*percent = -1;
	return 0;
}

int
config_parse_duration(const char *s, int64_t *secs)
{
	unsigned long long v = 0, mult = 1;
	const char *p = s;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned long long)(*p - '0');
		if (v > (1ULL << 40))
			return -1;
	}
	switch (*p) {
	case '\0': case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	case 'w': mult = 7 * 86400; break;
	default: return -1;
	}
	if (*p != '\0' && p[1] != '\0')
		return -1;
	if (v * mult > CONFIG_DURATION_MAX)
		return -1;
	*secs = (int64_t)(v * mult);
	return 0;
}

static int
validate_duration(cfg_t *cfg, cfg_opt_t *opt)
{
	int64_t secs;

	if (config_parse_duration(cfg_opt_getnstr(opt, 0), &secs) < 0) {
		cfg_error(cfg, "%s must be a whole number with an optional s, "
		    "m, h, d or w (\"7d\"), at most 3650 days", opt->name);
		return -1;
	}
	return 0;
}

/* queue { notify }: "" or one mailbox "local@domain". */
static int
validate_notify(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *a = cfg_opt_getnstr(opt, 0);

	if (a == NULL || a[0] == '\0' || (strchr(a, '@') != NULL &&
	    smtp_check_mailbox(a, strlen(a), 1) == PARSE_OK))
		return 0;
	cfg_error(cfg, "notify must be \"\" or a mailbox \"local@domain\", "
	    "not \"%s\"", a);
	return -1;
}

static int
validate_min_free(cfg_t *cfg, cfg_opt_t *opt)
{
	int64_t bytes;
	int percent;

	if (config_parse_min_free(cfg_opt_getnstr(opt, 0), &bytes,
	    &percent) < 0) {
		cfg_error(cfg, "min_free must be bytes with an optional K, M "
		    "or G (\"100M\") or a percentage of the filesystem "
		    "below 100 (\"5%%\")");
		return -1;
	}
	return 0;
}

static int
validate_nonempty(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);

	if (s == NULL || *s == '\0') {
		cfg_error(cfg, "%s must not be empty", opt->name);
		return -1;
	}
	return 0;
}

static int
validate_dkim_clients(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);

	if (s == NULL || (strcmp(s, "trusted") != 0 &&
	    strcmp(s, "all") != 0)) {
		cfg_error(cfg, "clients must be \"trusted\" or \"all\"");
		return -1;
	}
	return 0;
}

/* A header name (RFC 5322 ftext), or a prefix ending in "*". */
static int
validate_dkim_headers(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned i, n = cfg_opt_size(opt);

	for (i = 0; i < n; i++) {
		const char *s = cfg_opt_getnstr(opt, i), *p;

		for (p = s; *p != '\0'; p++)
			if (*p <= ' ' || *p >= 127 || *p == ':' ||
			    (*p == '*' && p[1] != '\0'))
				break;
		if (*s == '\0' || *s == '*' || *p != '\0') {
			cfg_error(cfg, "headers: \"%s\" is not a header "
			    "name (or a prefix ending in *)", s);
			return -1;
		}
	}
	return 0;
}

/* A domain or a selector: dot-separated labels of letters, digits, '-'
 * and '_' (a DNS name under _domainkey). */
static int
validate_dkim_name(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0), *p;
	size_t label = 0;

	for (p = s; p != NULL && *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0)
				break;
			label = 0;
		} else if ((*p >= 'a' && *p <= 'z') ||
		    (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_') {
			if (++label > 63)
				break;
		} else {
			break;
		}
	}
	if (s == NULL || *s == '\0' || *p != '\0' || label == 0 ||
	    strlen(s) > 253) {
		cfg_error(cfg, "%s \"%s\" is not a DNS name", opt->name,
		    s == NULL ? "" : s);
		return -1;
	}
	return 0;
}

int (*config_dkim_key_check)(const char *, char *, size_t);

/* A signing key must load now: RSA of 2048 bits or more, or Ed25519
 * (read by the master as root; the queue runner reads it again before it
 * drops privileges).  Through config_dkim_key_check, where it is set. */
static int
validate_dkim_key(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);
	char why[256];

	if (s == NULL || *s == '\0')
		return 0;   /* missing: check_combinations says so */
	if (s[0] != '/') {
		cfg_error(cfg, "%s \"%s\" must be an absolute path",
		    opt->name, s);
		return -1;
	}
	if (current_parse != NULL &&
	    (current_parse->flags & CONFIG_NO_FILE_CHECKS))
		return 0;
	if (config_dkim_key_check != NULL &&
	    config_dkim_key_check(s, why, sizeof(why)) < 0) {
		cfg_error(cfg, "%s \"%s\": %s", opt->name, s, why);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------ the option table */

/* How a value is copied into the struct. */
enum store {
	ST_STR,          /* char *; NULL when an option without default is
	                    not set */
	ST_PATH,         /* char *, resolved against the file's directory
	                    when relative and not empty */
	ST_INT,          /* int, checked against min..max */
	ST_INT64,        /* int64_t, checked against min..max */
	ST_BOOL,         /* int, 0 or 1 */
	ST_WORD,         /* int: the index of the value in names[] */
	ST_TLS_VERSION,  /* int: 0x0303 or 0x0304 */
	ST_STR_LIST,     /* char ** (NULL-terminated) and size_t count */
	ST_INT_LIST,     /* int * and size_t count, each checked */
	ST_CIDR_LIST,    /* struct cidr * and size_t count; an option without
	                    default that is not set gets count (size_t)-1 */
	ST_MIN_FREE,     /* int64_t bytes at offset, int percent at
	                    count_offset (-1: the value is in bytes) */
	ST_DURATION,     /* int64_t seconds from "7d" (config_parse_duration) */
};

/* Which struct the value goes into. */
enum base {
	B_CONFIG,        /* struct ferry_config */
	B_INSTANCE,      /* the section instance's struct (listen: struct
	                    listener_config, route: struct route_config) */
	B_MX_ROUTE,      /* struct route_config: cfg->mx_route */
	B_SMARTHOST,     /* struct route_config: the smarthost's route */
};

struct option_row {
	const char *section;        /* NULL: top level */
	cfg_opt_t opt;              /* name, type, default, flags */
	enum store store;
	enum base base;
	size_t offset;              /* of the value in the base struct */
	size_t count_offset;        /* lists: of the count */
	long min, max;              /* ST_INT, ST_INT64, ST_INT_LIST */
	const char *const *names;   /* ST_WORD, NULL-terminated */
	cfg_validate_callback_t validate;   /* NULL: none (or the range) */
};

/* ST_WORD stores an enum through an int pointer. */
_Static_assert(sizeof(enum listener_tls) == sizeof(int) &&
    sizeof(enum listener_proxy) == sizeof(int) &&
    sizeof(enum client_cert_mode) == sizeof(int) &&
    sizeof(enum tls_policy) == sizeof(int), "enums are ints");

#define CF(field) offsetof(struct ferry_config, field)
#define LF(field) offsetof(struct listener_config, field)
#define RF(field) offsetof(struct route_config, field)

/* One option: section, libconfuse row, store, base, where, range. */
#define STR(sec, name, def, base, off, vf) \
	{ sec, CFG_STR(name, def, CFGF_NONE), ST_STR, base, off, 0, 0, 0, \
	    NULL, vf }
#define STR_NODEF(sec, name, base, off, vf) \
	{ sec, CFG_STR(name, NULL, CFGF_NODEFAULT), ST_STR, base, off, 0, \
	    0, 0, NULL, vf }
#define PATH(sec, name, def, off, vf) \
	{ sec, CFG_STR(name, def, CFGF_NONE), ST_PATH, B_CONFIG, off, 0, 0, \
	    0, NULL, vf }
#define INT(sec, name, def, base, off, lo, hi) \
	{ sec, CFG_INT(name, def, CFGF_NONE), ST_INT, base, off, 0, lo, hi, \
	    NULL, NULL }
#define BOOL(sec, name, def, base, off) \
	{ sec, CFG_BOOL(name, def, CFGF_NONE), ST_BOOL, base, off, 0, 0, 0, \
	    NULL, NULL }
#define WORD(sec, name, def, base, off, names, vf) \
	{ sec, CFG_STR(name, def, CFGF_NONE), ST_WORD, base, off, 0, 0, 0, \
	    names, vf }
#define TLSVER(sec, name, base, off) \
	{ sec, CFG_STR(name, "TLSv1.2", CFGF_NONE), ST_TLS_VERSION, base, \
	    off, 0, 0, 0, NULL, validate_tls_version }
#define LIST(sec, name, def, flags, store, base, off, noff, vf) \
	{ sec, CFG_STR_LIST(name, def, flags), store, base, off, noff, 0, \
	    0, NULL, vf }

/* The policy of a next hop, in smarthost { }, route "x" { } and mx { }. */
#define ROUTE_POLICY(sec, base) \
	WORD(sec, "tls", "may", base, RF(tls), tls_policy_names, \
	    validate_tls), \
	STR(sec, "ca_file", "", base, RF(ca_file), NULL), \
	TLSVER(sec, "tls_min_version", base, RF(tls_min_version)), \
	BOOL(sec, "auth", cfg_false, base, RF(auth)), \
	BOOL(sec, "auth_plaintext", cfg_false, base, RF(auth_plaintext))

/* Rewriting for the next hop's account, in smarthost { } and route "x" { }. */
#define ROUTE_REWRITE(sec, base) \
	STR(sec, "rewrite_sender", "", base, RF(rewrite_sender), \
	    validate_rewrite_address), \
	STR(sec, "rewrite_from", "", base, RF(rewrite_from), \
	    validate_rewrite_address), \
	LIST(sec, "allowed_from", "{}", CFGF_NONE, ST_STR_LIST, base, \
	    RF(allowed_from), RF(nallowed_from), validate_senders)

/* A pool's circuit breakers and active probe (host_pool.h), in
 * smarthost { } and route "x" { }. */
#define ROUTE_POOL(sec, base) \
	INT(sec, "host_failures", 3, base, RF(host_failures), 1, 1000), \
	INT(sec, "host_cooldown", 30, base, RF(host_cooldown), 1, 86400), \
	INT(sec, "probe_interval", 0, base, RF(probe_interval), 0, 86400)
/* Rate shaping of the next hop, in smarthost { } and route "x" { }
 * (route_shaper.h); 0 = off. */
#define ROUTE_SHAPING(sec, base) \
	INT(sec, "rate_per_second", 0, base, RF(rate_per_second), 0, \
	    100000), \
	INT(sec, "rate_per_minute", 0, base, RF(rate_per_minute), 0, \
	    10000000), \
	INT(sec, "rate_per_hour", 0, base, RF(rate_per_hour), 0, \
	    100000000), \
	INT(sec, "rate_per_day", 0, base, RF(rate_per_day), 0, \
	    1000000000), \
	INT(sec, "max_connections", 0, base, RF(max_connections), 0, 1024), \
	INT(sec, "messages_per_connection", 0, base, \
	    RF(messages_per_connection), 0, 1000000), \
	INT(sec, "recipients_per_message", 0, base, \
	    RF(recipients_per_message), 0, 100000)

static const char *const log_target_names[] = { "syslog", "stderr",
    "journald", NULL };
static const char *const log_format_names[] = { "text", "json", NULL };
static const char *const dkim_clients_names[] = { "trusted", "all", NULL };

#define KF(field) offsetof(struct dkim_key_config, field)
#define DKIM_DEFAULT_HEADERS "{\"From\", \"To\", \"Cc\", \"Subject\", " \
	"\"Date\", \"Message-ID\", \"Reply-To\", \"In-Reply-To\", " \
	"\"References\", \"MIME-Version\", \"Content-Type\", " \
	"\"Content-Transfer-Encoding\", \"List-*\"}"

static const struct option_row options[] = {
	STR_NODEF(NULL, "hostname", B_CONFIG, CF(hostname),
	    validate_hostname),
	STR(NULL, "user", "ferry", B_CONFIG, CF(user), validate_user),
	STR(NULL, "smtpd_user", "ferry-smtpd", B_CONFIG, CF(smtpd_user),
	    validate_user),
	STR(NULL, "deliver_user", "ferry-deliver", B_CONFIG,
	    CF(deliver_user), validate_user),
	/* looked up only when a route uses oauth2 (master_token.c): a
	 * relay without OAuth2 needs no such account */
	STR(NULL, "token_user", "ferry-token", B_CONFIG, CF(token_user),
	    validate_nonempty),
	STR(NULL, "admin_group", "", B_CONFIG, CF(admin_group), NULL),
	PATH(NULL, "spool_dir", LOCALSTATEDIR "/spool/ferry", CF(spool_dir),
	    validate_nonempty),
	INT(NULL, "shutdown_timeout", 30, B_CONFIG, CF(shutdown_timeout), 0,
	    3600),

	STR("listen", "address", "127.0.0.1", B_INSTANCE, LF(address),
	    validate_address),
	INT("listen", "port", 25, B_INSTANCE, LF(port), 1, 65535),
	WORD("listen", "tls", "none", B_INSTANCE, LF(tls), listen_tls_names,
	    validate_listen_tls),
	BOOL("listen", "tls_required", cfg_false, B_INSTANCE,
	    LF(tls_required)),
	STR("listen", "cert_file", "", B_INSTANCE, LF(cert_file),
	    validate_readable),
	STR("listen", "key_file", "", B_INSTANCE, LF(key_file),
	    validate_readable),
	WORD("listen", "client_cert", "none", B_INSTANCE, LF(client_cert),
	    client_cert_names, validate_client_cert),
	BOOL("listen", "auth", cfg_false, B_INSTANCE, LF(auth)),
	LIST("listen", "auth_plaintext_networks", "{}", CFGF_NONE,
	    ST_CIDR_LIST, B_INSTANCE, LF(auth_plaintext),
	    LF(nauth_plaintext), validate_networks),
	LIST("listen", "relay_networks", NULL, CFGF_NODEFAULT, ST_CIDR_LIST,
	    B_INSTANCE, LF(relay_networks), LF(nrelay_networks),
	    validate_networks),
	LIST("listen", "relay_client_certs", "{}", CFGF_NONE, ST_STR_LIST,
	    B_INSTANCE, LF(relay_cert_subjects), LF(nrelay_cert_subjects),
	    NULL),
	WORD("listen", "proxy_protocol", "none", B_INSTANCE, LF(proxy),
	    listen_proxy_names, validate_listen_proxy),
	LIST("listen", "proxy_networks", "{}", CFGF_NONE, ST_CIDR_LIST,
	    B_INSTANCE, LF(proxy_networks), LF(nproxy_networks),
	    validate_networks),
	INT("listen", "proxy_timeout", 5, B_INSTANCE, LF(proxy_timeout), 1,
	    300),
	BOOL("listen", "dkim", cfg_true, B_INSTANCE, LF(dkim)),

	INT("workers", "min_idle", 1, B_CONFIG, CF(workers_min_idle), 0,
	    1024),
	INT("workers", "max_idle", 8, B_CONFIG, CF(workers_max_idle), 1,
	    1024),
	INT("workers", "spare_idle", 60, B_CONFIG, CF(workers_spare_idle), 0,
	    86400),
	INT("workers", "helper_idle", 100, B_CONFIG, CF(helper_idle), 0,
	    86400),
	INT("workers", "max", 32, B_CONFIG, CF(workers_max), 1, 4096),
	INT("workers", "sessions", 1000, B_CONFIG, CF(worker_sessions), 1,
	    1000000),
	INT("workers", "sessions_per_worker", 64, B_CONFIG,
	    CF(sessions_per_worker), 1, 4096),
	BOOL("workers", "client_names", cfg_true, B_CONFIG, CF(client_names)),
	INT("workers", "client_name_timeout", 2, B_CONFIG,
	    CF(client_name_timeout), 1, 30),

	{ "limits", CFG_INT("message_size", 10485760, CFGF_NONE), ST_INT64,
	    B_CONFIG, CF(message_size_limit), 0, 1024, 2147483647L, NULL,
	    NULL },
	INT("limits", "recipients", 1000, B_CONFIG, CF(max_recipients), 1,
	    100000),
	INT("limits", "line_length", 2048, B_CONFIG, CF(max_line_length),
	    512, 65536),
	INT("limits", "data_line_length", 1000, B_CONFIG,
	    CF(max_data_line_length), 1000, 1048576),
	INT("limits", "errors", 10, B_CONFIG, CF(max_errors), 1, 1000),
	INT("limits", "command_timeout", 300, B_CONFIG, CF(command_timeout),
	    1, 3600),
	INT("limits", "data_timeout", 600, B_CONFIG, CF(data_timeout), 1,
	    86400),
	INT("limits", "max_connections", 2048, B_CONFIG, CF(max_connections),
	    1, 100000),
	INT("limits", "max_connections_per_client", 20, B_CONFIG,
	    CF(max_connections_per_client), 1, 100000),
	INT("limits", "connection_rate", 120, B_CONFIG, CF(connection_rate),
	    1, 1000000),
	INT("limits", "message_rate", 600, B_CONFIG, CF(message_rate), 1,
	    1000000),
	INT("limits", "greet_pause", 0, B_CONFIG, CF(greet_pause), 0, 30000),
	INT("limits", "stress_threshold", 80, B_CONFIG, CF(stress_threshold),
	    1, 100),
	INT("limits", "stress_timeout", 10, B_CONFIG, CF(stress_timeout), 1,
	    3600),
	INT("limits", "stress_memory_available", 10, B_CONFIG,
	    CF(stress_memory_available), 0, 100),
	INT("limits", "junk_commands", 100, B_CONFIG, CF(junk_command_limit),
	    1, 100000),
	INT("limits", "session_lifetime", 1800, B_CONFIG,
	    CF(session_lifetime), 10, 86400),
	INT("limits", "output_buffer", 262144, B_CONFIG, CF(output_buffer),
	    4096, 16777216),

	LIST("relay", "networks", "{127.0.0.0/8, ::1/128}", CFGF_NONE,
	    ST_CIDR_LIST, B_CONFIG, CF(relay_networks), CF(nrelay_networks),
	    validate_networks),
	LIST("relay", "accept_domains", "{}", CFGF_NONE, ST_STR_LIST,
	    B_CONFIG, CF(accept_domains), CF(naccept_domains),
	    validate_domains),

	STR_NODEF("smarthost", "host", B_CONFIG, CF(smarthost_host),
	    validate_nonempty),
	INT("smarthost", "port", 25, B_CONFIG, CF(smarthost_port), 1, 65535),
	ROUTE_POLICY("smarthost", B_SMARTHOST),
	ROUTE_REWRITE("smarthost", B_SMARTHOST),
	LIST("smarthost", "hosts", "{}", CFGF_NONE, ST_STR_LIST, B_SMARTHOST,
	    RF(hosts), RF(nhosts), validate_hosts),
	ROUTE_POOL("smarthost", B_SMARTHOST),
	ROUTE_SHAPING("smarthost", B_SMARTHOST),

	LIST("route", "domains", NULL, CFGF_NODEFAULT, ST_STR_LIST,
	    B_INSTANCE, RF(domains), RF(ndomains), validate_domains),
	LIST("route", "hosts", "{}", CFGF_NONE, ST_STR_LIST, B_INSTANCE,
	    RF(hosts), RF(nhosts), validate_hosts),
	ROUTE_POLICY("route", B_INSTANCE),
	LIST("route", "senders", "{}", CFGF_NONE, ST_STR_LIST, B_INSTANCE,
	    RF(senders), RF(nsenders), validate_senders),
	ROUTE_REWRITE("route", B_INSTANCE),
	ROUTE_POOL("route", B_INSTANCE),
	ROUTE_SHAPING("route", B_INSTANCE),

	INT("mx", "port", 25, B_CONFIG, CF(mx_port), 1, 65535),
	ROUTE_POLICY("mx", B_MX_ROUTE),

	BOOL("delivery", "paused", cfg_false, B_CONFIG, CF(delivery_paused)),
	INT("delivery", "agents", 4, B_CONFIG, CF(delivery_agents), 1, 1024),
	INT("delivery", "per_destination", 2, B_CONFIG, CF(per_destination),
	    1, 1024),
	INT("delivery", "agent_jobs", 1000, B_CONFIG, CF(agent_jobs), 1,
	    1000000),
	INT("delivery", "agent_idle", 60, B_CONFIG, CF(agent_idle), 0,
	    86400),
	{ "delivery", CFG_INT_LIST("retry_schedule",
	    "{60, 300, 900, 1800, 3600}", CFGF_NONE), ST_INT_LIST, B_CONFIG,
	    CF(retry_schedule), CF(nretry_schedule), 1, 86400 * 7, NULL,
	    NULL },
	INT("delivery", "max_lifetime", 432000, B_CONFIG, CF(max_lifetime),
	    60, 86400 * 100),
	INT("delivery", "delay_warning", 0, B_CONFIG, CF(delay_warning), 0,
	    86400 * 100),
	INT("delivery", "connect_timeout", 30, B_CONFIG, CF(connect_timeout),
	    1, 3600),
	INT("delivery", "client_command_timeout", 300, B_CONFIG,
	    CF(client_command_timeout), 1, 3600),
	INT("delivery", "client_data_timeout", 600, B_CONFIG,
	    CF(client_data_timeout), 1, 86400),
	INT("delivery", "connection_idle", 10, B_CONFIG, CF(connection_idle),
	    0, 3600),
	STR("delivery", "resolver", "", B_CONFIG, CF(resolver),
	    validate_resolver),
	PATH("delivery", "credentials_file", "", CF(credentials_file), NULL),

	{ "queue", CFG_STR("min_free", "100M", CFGF_NONE), ST_MIN_FREE,
	    B_CONFIG, CF(min_free_bytes), CF(min_free_percent), 0, 0, NULL,
	    validate_min_free },
	{ "queue", CFG_STR("warn_age", "1d", CFGF_NONE), ST_DURATION,
	    B_CONFIG, CF(warn_age), 0, 0, 0, NULL, validate_duration },
	{ "queue", CFG_STR("warn_stall", "30m", CFGF_NONE), ST_DURATION,
	    B_CONFIG, CF(warn_stall), 0, 0, 0, NULL, validate_duration },
	STR("queue", "notify", "", B_CONFIG, CF(stall_notify),
	    validate_notify),

	{ "history", CFG_STR("retention", "7d", CFGF_NONE), ST_DURATION,
	    B_CONFIG, CF(history_retention), 0, 0, 0, NULL,
	    validate_duration },

	WORD("log", "target", "syslog", B_CONFIG, CF(log_target),
	    log_target_names, validate_target),
	WORD("log", "format", "text", B_CONFIG, CF(log_format),
	    log_format_names, validate_log_format),
	BOOL("log", "debug", cfg_false, B_CONFIG, CF(log_debug)),

	STR("tls", "cert_file", "", B_CONFIG, CF(tls_cert_file),
	    validate_readable),
	STR("tls", "key_file", "", B_CONFIG, CF(tls_key_file),
	    validate_readable),
	TLSVER("tls", "min_version", B_CONFIG, CF(tls_server_min_version)),
	STR("tls", "ciphers", "", B_CONFIG, CF(tls_ciphers), NULL),
	STR("tls", "ciphersuites", "", B_CONFIG, CF(tls_ciphersuites), NULL),
	STR("tls", "groups", "", B_CONFIG, CF(tls_groups), NULL),
	STR("tls", "client_ca_file", "", B_CONFIG, CF(tls_client_ca_file),
	    validate_readable),

	STR("auth", "users_file", "", B_CONFIG, CF(auth_users_file),
	    validate_readable),
	INT("auth", "max_failures", 5, B_CONFIG, CF(auth_max_failures), 1,
	    1000),
	INT("auth", "lockout", 600, B_CONFIG, CF(auth_lockout), 1,
	    86400 * 7),

	BOOL("metrics", "enabled", cfg_false, B_CONFIG, CF(metrics_enabled)),
	STR("metrics", "address", "127.0.0.1", B_CONFIG, CF(metrics_address),
	    validate_address),
	INT("metrics", "port", 9469, B_CONFIG, CF(metrics_port), 1, 65535),

	WORD("dkim", "clients", "trusted", B_CONFIG, CF(dkim_clients),
	    dkim_clients_names, validate_dkim_clients),
	LIST("dkim", "headers", DKIM_DEFAULT_HEADERS, CFGF_NONE, ST_STR_LIST,
	    B_CONFIG, CF(dkim_headers), CF(ndkim_headers),
	    validate_dkim_headers),
	{ "dkim", CFG_STR("expire", "0", CFGF_NONE), ST_DURATION,
	    B_CONFIG, CF(dkim_expire), 0, 0, 0, NULL, validate_duration },

	STR_NODEF("dkim_key", "domain", B_INSTANCE, KF(domain),
	    validate_dkim_name),
	STR_NODEF("dkim_key", "selector", B_INSTANCE, KF(selector),
	    validate_dkim_name),
	STR("dkim_key", "key_file", "", B_INSTANCE, KF(key_file),
	    validate_dkim_key),
	BOOL("dkim_key", "subdomains", cfg_false, B_INSTANCE,
	    KF(subdomains)),
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

/* The sections, in the order libconfuse declares them.  A titled section
 * may appear several times; each instance fills one element of an array
 * in struct ferry_config. */
struct section_row {
	const char *name;
	int multi;                 /* CFGF_MULTI | CFGF_TITLE */
	size_t array_offset;       /* multi: the array's pointer */
	size_t count_offset;       /* multi: its length */
	size_t elem_size;          /* multi: one element */
	size_t title_offset;       /* multi: char *name in the element */
	size_t spare;              /* multi: elements allocated beyond */
};

static const struct section_row sections[] = {
	{ "listen", 1, CF(listeners), CF(nlisteners),
	    sizeof(struct listener_config), LF(name), 0 },
	{ "workers", 0, 0, 0, 0, 0, 0 },
	{ "limits", 0, 0, 0, 0, 0, 0 },
	{ "relay", 0, 0, 0, 0, 0, 0 },
	{ "smarthost", 0, 0, 0, 0, 0, 0 },
	/* one spare element: the smarthost's route */
	{ "route", 1, CF(routes), CF(nroutes), sizeof(struct route_config),
	    RF(name), 1 },
	{ "mx", 0, 0, 0, 0, 0, 0 },
	{ "delivery", 0, 0, 0, 0, 0, 0 },
	{ "queue", 0, 0, 0, 0, 0, 0 },
	{ "history", 0, 0, 0, 0, 0, 0 },
	{ "log", 0, 0, 0, 0, 0, 0 },
	{ "tls", 0, 0, 0, 0, 0, 0 },
	{ "auth", 0, 0, 0, 0, 0, 0 },
	{ "metrics", 0, 0, 0, 0, 0, 0 },
	{ "dkim", 0, 0, 0, 0, 0, 0 },
	{ "dkim_key", 1, CF(dkim_keys), CF(ndkim_keys),
	    sizeof(struct dkim_key_config), KF(name), 0 },
};

#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))

int
config_option_at(size_t i, const char **section, const char **name)
{
	if (i >= NOPTIONS)
		return 0;
	*section = options[i].section;
	*name = options[i].opt.name;
	return 1;
}

static int
same_section(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* The row of the option opt of the section cfg is an instance of. */
static const struct option_row *
find_row(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *sec = cfg->name != NULL && strcmp(cfg->name, "root") != 0 ?
	    cfg->name : NULL;
	size_t i;

	for (i = 0; i < NOPTIONS; i++)
		if (same_section(options[i].section, sec) &&
		    strcmp(options[i].opt.name, opt->name) == 0)
			return &options[i];
	return NULL;
}

static int
validate_range(cfg_t *cfg, cfg_opt_t *opt)
{
	const struct option_row *row = find_row(cfg, opt);
	unsigned k;

	if (row == NULL)
		return 0;
	for (k = 0; k < cfg_opt_size(opt); k++) {
		long v = cfg_opt_getnint(opt, k);

		if (v < row->min || v > row->max) {
			cfg_error(cfg, "%s = %ld is out of range (%ld to %ld)",
			    opt->name, v, row->min, row->max);
			return -1;
		}
	}
	return 0;
}

/* libconfuse's option tables, built from the rows once.  The sections'
 * tables are packed one after the other in subs (each ends with its
 * CFG_END): a table per section sized for every option left a page or
 * more of it touched per section, about 100 KiB in every process. */
static cfg_opt_t *
parser_options(void)
{
	static cfg_opt_t top[NOPTIONS + NSECTIONS + 1];
	static cfg_opt_t subs[NOPTIONS + NSECTIONS];
	static int built;
	size_t i, s, ntop = 0, nsubs = 0;

	if (built)
		return top;
	for (i = 0; i < NOPTIONS; i++)
		if (options[i].section == NULL)
			top[ntop++] = options[i].opt;
	for (s = 0; s < NSECTIONS; s++) {
		cfg_opt_t *sub = &subs[nsubs];
		cfg_opt_t sec = CFG_SEC(sections[s].name, sub,
		    sections[s].multi ? CFGF_MULTI | CFGF_TITLE |
		    CFGF_NO_TITLE_DUPES : CFGF_NONE);

		/* every row is in one section or none: the packed tables
		 * and their ends fit in subs */
		for (i = 0; i < NOPTIONS; i++) {
			if (!same_section(options[i].section,
			    sections[s].name))
				continue;
			/* room for it and for every section's end left */
			if (nsubs + (NSECTIONS - s) >= NOPTIONS + NSECTIONS)
				abort();   /* a section named twice */
			subs[nsubs++] = options[i].opt;
		}
		subs[nsubs++] = (cfg_opt_t)CFG_END();
		top[ntop++] = sec;
	}
	top[ntop] = (cfg_opt_t)CFG_END();
	built = 1;
	return top;
}

static void
set_validators(cfg_t *cfg)
{
	size_t i;

	for (i = 0; i < NOPTIONS; i++) {
		const struct option_row *row = &options[i];
		cfg_validate_callback_t vf = row->validate;
		char path[128];

		if (vf == NULL && (row->store == ST_INT ||
		    row->store == ST_INT64 || row->store == ST_INT_LIST))
			vf = validate_range;
		if (vf == NULL)
			continue;
		if (row->section != NULL)
			snprintf(path, sizeof(path), "%s|%s", row->section,
			    row->opt.name);
		else
			snprintf(path, sizeof(path), "%s", row->opt.name);
		cfg_set_validate_func(cfg, path, vf);
	}
}

static void
collect_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	char msg[512];

	if (current_parse == NULL || current_parse->seen)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (cfg != NULL && cfg->line > 0)
		snprintf(current_parse->buf, current_parse->len, "%s:%d: %s",
		    current_parse->path, cfg->line, msg);
	else
		snprintf(current_parse->buf, current_parse->len, "%s: %s",
		    current_parse->path, msg);
	current_parse->seen = 1;
}

char *
config_read_file(const char *path, size_t maxlen, size_t *lenp)
{
	FILE *fp;
	char *buf;
	size_t len = 0, cap = maxlen < 4096 ? maxlen : 4096;

	if (maxlen == 0) {
		errno = EINVAL;
		return NULL;
	}
	fp = fopen(path, "re");
	if (fp == NULL)
		return NULL;
	buf = xmalloc(cap);
	for (;;) {
		size_t n;

		if (len + 1 >= cap) {
			if (cap >= maxlen) {
				/* full: fine only when the file ends here */
				if (getc(fp) == EOF)
					break;
				fclose(fp);
				free(buf);
				errno = EFBIG;
				return NULL;
			}
			cap = cap > maxlen / 2 ? maxlen : cap * 2;
			buf = xrealloc(buf, cap);
		}
		n = fread(buf + len, 1, cap - len - 1, fp);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(fp)) {
		int e = errno;

		fclose(fp);
		free(buf);
		errno = e ? e : EIO;
		return NULL;
	}
	fclose(fp);
	buf[len] = '\0';
	if (lenp)
		*lenp = len;
	return buf;
}

/* An absolute form of path, resolved against the configuration file's
 * directory when relative. */
static char *
resolve_path(const char *cfgpath, const char *path)
{
	const char *slash;
	char *out;
	size_t dlen;

	if (path[0] == '/')
		return xstrdup(path);
	slash = strrchr(cfgpath, '/');
	dlen = slash ? (size_t)(slash - cfgpath) : 0;
	out = xmalloc(dlen + strlen(path) + 2);
	memcpy(out, cfgpath, dlen);
	out[dlen] = '/';
	strcpy(out + dlen + 1, path);
	return out;
}

/* ------------------------------------------------------------ copy-out */

/* What one load writes into besides the config itself. */
struct load_state {
	struct ferry_config *c;
	struct route_config smarthost;   /* its policy, before it is a route */
	int smarthost_twice;      /* both host and hosts in smarthost { } */
};

static char *
row_base(const struct option_row *row, struct load_state *st,
    char *instance)
{
	switch (row->base) {
	case B_INSTANCE:
		return instance;
	case B_MX_ROUTE:
		return (char *)&st->c->mx_route;
	case B_SMARTHOST:
		return (char *)&st->smarthost;
	case B_CONFIG:
	default:
		return (char *)st->c;
	}
}

/* Copies the value of row from the section instance sec to base. */
static void
store_value(cfg_t *sec, const struct option_row *row, char *base,
    const char *cfgpath)
{
	const char *name = row->opt.name;
	void *at = base + row->offset;
	size_t n = cfg_size(sec, name), i;

	switch (row->store) {
	case ST_STR:
		*(char **)at = n > 0 && cfg_getstr(sec, name) != NULL ?
		    xstrdup(cfg_getstr(sec, name)) : NULL;
		break;
	case ST_PATH: {
		const char *s = cfg_getstr(sec, name);

		*(char **)at = s[0] != '\0' ? resolve_path(cfgpath, s) :
		    xstrdup(s);
		break;
	}
	case ST_INT:
		*(int *)at = (int)cfg_getint(sec, name);
		break;
	case ST_INT64:
		*(int64_t *)at = cfg_getint(sec, name);
		break;
	case ST_BOOL:
		*(int *)at = cfg_getbool(sec, name) ? 1 : 0;
		break;
	case ST_WORD:
		*(int *)at = pick(cfg_getstr(sec, name), row->names);
		break;
	case ST_TLS_VERSION:
		*(int *)at = parse_tls_version(cfg_getstr(sec, name));
		break;
	case ST_STR_LIST: {
		char **v = xcalloc(n + 1, sizeof(*v));

		for (i = 0; i < n; i++)
			v[i] = xstrdup(cfg_getnstr(sec, name, (unsigned)i));
		*(char ***)at = v;
		*(size_t *)(base + row->count_offset) = n;
		break;
	}
	case ST_INT_LIST: {
		int *v = xcalloc(n ? n : 1, sizeof(*v));

		for (i = 0; i < n; i++)
			v[i] = (int)cfg_getnint(sec, name, (unsigned)i);
		*(int **)at = v;
		*(size_t *)(base + row->count_offset) = n;
		break;
	}
	case ST_CIDR_LIST: {
		struct cidr *v;

		if (n == 0 && (row->opt.flags & CFGF_NODEFAULT)) {
			*(struct cidr **)at = NULL;
			*(size_t *)(base + row->count_offset) = (size_t)-1;
			break;
		}
		v = xcalloc(n ? n : 1, sizeof(*v));
		for (i = 0; i < n; i++) {
			char cerr[128];

			if (cidr_parse(cfg_getnstr(sec, name, (unsigned)i),
			    &v[i], cerr, sizeof(cerr)) < 0)
				abort();   /* validated while parsing */
		}
		*(struct cidr **)at = v;
		*(size_t *)(base + row->count_offset) = n;
		break;
	}
	case ST_MIN_FREE:
		if (config_parse_min_free(cfg_getstr(sec, name), (int64_t *)at,
		    (int *)(base + row->count_offset)) < 0)
			abort();   /* validated while parsing */
		break;
	case ST_DURATION:
		if (config_parse_duration(cfg_getstr(sec, name),
		    (int64_t *)at) < 0)
			abort();   /* validated while parsing */
		break;
	}
}

/* Every option of section (NULL: top level) of sec into base. */
static void
store_section(cfg_t *sec, const char *section, struct load_state *st,
    char *instance)
{
	size_t i;

	for (i = 0; i < NOPTIONS; i++)
		if (same_section(options[i].section, section))
			store_value(sec, &options[i], row_base(&options[i], st,
			    instance), st->c->path);
}

/* Frees what store_value allocated for row at base. */
static void
free_value(const struct option_row *row, char *base)
{
	void *at = base + row->offset;

	switch (row->store) {
	case ST_STR:
	case ST_PATH:
		free(*(char **)at);
		*(char **)at = NULL;
		break;
	case ST_STR_LIST: {
		char **v = *(char ***)at;
		size_t i, n = *(size_t *)(base + row->count_offset);

		for (i = 0; v != NULL && i < n; i++)
			free(v[i]);
		free(v);
		*(char ***)at = NULL;
		break;
	}
	case ST_INT_LIST:
	case ST_CIDR_LIST:
		free(*(void **)at);
		*(void **)at = NULL;
		break;
	default:
		break;
	}
}

static int
domain_eq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

/* How well a route's domains match domain: 0 none, 1 "*", 2 + the length
 * of the best ".suffix", DOMAIN_EXACT for the domain itself. */
#define DOMAIN_EXACT ((size_t)1 << 20)
static size_t
domain_rank(const struct route_config *r, const char *domain)
{
	size_t k, best = 0, dlen = strlen(domain);

	for (k = 0; k < r->ndomains; k++) {
		const char *d = r->domains[k];
		size_t n = strlen(d), rank = 0;

		if (strcmp(d, "*") == 0)
			rank = 1;
		else if (d[0] != '.') {
			if (domain_eq(d, domain))
				rank = DOMAIN_EXACT;
		} else if (dlen > n && domain_eq(domain + dlen - n, d))
			rank = 2 + n;
		if (rank > best)
			best = rank;
	}
	return best;
}

const struct route_config *
config_route_select(const struct ferry_config *c, const char *sender,
    const char *domain)
{
	const struct route_config *best = NULL;
	size_t i, best_tier = 5, best_d = 0, best_s = 0;

	for (i = 0; i < c->nroutes; i++) {
		const struct route_config *r = &c->routes[i];
		size_t d = domain_rank(r, domain), s = 0, tier;

		if (r->nsenders > 0) {
			s = address_pattern_rank(r->senders, r->nsenders,
			    sender);
			if (s == 0)
				continue;
			if (d > 1)
				tier = 1;
			else if (r->ndomains == 0 || d == 1) {
				tier = 3;
				d = 0;   /* "*" is no domain match */
			}
			else
				continue;
		} else if (d > 1)
			tier = 2;
		else if (d == 1)
			tier = 4;
		else
			continue;
		/* strictly better only: the first in the file keeps ties */
		if (tier < best_tier || (tier == best_tier && (d > best_d ||
		    (d == best_d && s > best_s)))) {
			best = r;
			best_tier = tier;
			best_d = d;
			best_s = s;
		}
	}
	return best;
}

const struct route_config *
config_route_for(const struct ferry_config *c, const char *domain)
{
	return config_route_select(c, "", domain);
}

static char *
absolute_config_path(const char *path)
{
	char cwd[PATH_MAX], *out;

	if (path[0] == '/')
		return xstrdup(path);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return xstrdup(path);
	out = xmalloc(strlen(cwd) + strlen(path) + 2);
	sprintf(out, "%s/%s", cwd, path);
	return out;
}

static int
check_combinations(struct ferry_config *c, char *err, size_t errlen)
{
	size_t i, j;

	if (c->nlisteners == 0) {
		snprintf(err, errlen, "%s: no listen section: ferry would "
		    "accept no mail", c->path);
		return -1;
	}
	for (i = 0; i < c->ndkim_keys; i++) {
		const struct dkim_key_config *k = &c->dkim_keys[i];
		const char *missing = k->domain == NULL ? "domain" :
		    k->selector == NULL ? "selector" :
		    k->key_file[0] == '\0' ? "key_file" : NULL;

		if (missing != NULL) {
			snprintf(err, errlen, "%s: dkim_key \"%s\" has no %s",
			    c->path, k->name, missing);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (strcasecmp(k->domain, c->dkim_keys[j].domain) ==
			    0 && strcmp(k->selector,
			    c->dkim_keys[j].selector) == 0) {
				snprintf(err, errlen, "%s: dkim_key \"%s\" and "
				    "\"%s\" both sign as %s._domainkey.%s",
				    c->path, c->dkim_keys[j].name, k->name,
				    k->selector, k->domain);
				return -1;
			}
	}
	for (i = 0; i < c->nlisteners; i++)
		for (j = i + 1; j < c->nlisteners; j++)
			if (c->listeners[i].port == c->listeners[j].port &&
			    strcmp(c->listeners[i].address,
			    c->listeners[j].address) == 0) {
				snprintf(err, errlen, "%s: listen \"%s\" and "
				    "\"%s\" both use %s port %d", c->path,
				    c->listeners[i].name,
				    c->listeners[j].name,
				    c->listeners[i].address,
				    c->listeners[i].port);
				return -1;
			}
	/* the metrics endpoint is never served on a mail listener's port */
	for (i = 0; c->metrics_enabled && i < c->nlisteners; i++)
		if (c->listeners[i].port == c->metrics_port) {
			snprintf(err, errlen, "%s: metrics port %d is the port "
			    "of listen \"%s\"", c->path, c->metrics_port,
			    c->listeners[i].name);
			return -1;
		}
	for (i = 0; i < c->nlisteners; i++) {
		const struct listener_config *l = &c->listeners[i];
		const char *cert = l->cert_file[0] ? l->cert_file :
		    c->tls_cert_file;
		const char *key = l->key_file[0] ? l->key_file :
		    c->tls_key_file;

		if (l->tls != LTLS_NONE && (cert[0] == '\0' ||
		    key[0] == '\0')) {
			snprintf(err, errlen, "%s: listen \"%s\": tls = %s "
			    "needs cert_file and key_file (in the listener or "
			    "the tls section)", c->path, l->name,
			    listen_tls_names[l->tls]);
			return -1;
		}
		if (l->tls == LTLS_NONE && (l->tls_required ||
		    l->client_cert != CCERT_NONE)) {
			snprintf(err, errlen, "%s: listen \"%s\": "
			    "tls_required and client_cert need tls = "
			    "starttls or implicit", c->path, l->name);
			return -1;
		}
		if (l->client_cert != CCERT_NONE &&
		    c->tls_client_ca_file[0] == '\0') {
			snprintf(err, errlen, "%s: listen \"%s\": client_cert "
			    "needs tls { client_ca_file }", c->path, l->name);
			return -1;
		}
		if (l->auth && c->auth_users_file[0] == '\0') {
			snprintf(err, errlen, "%s: listen \"%s\": auth = true "
			    "needs auth { users_file }", c->path, l->name);
			return -1;
		}
		if (l->proxy != LPROXY_NONE && l->nproxy_networks == 0) {
			snprintf(err, errlen, "%s: listen \"%s\": "
			    "proxy_protocol = %s needs proxy_networks (the "
			    "balancers' addresses)", c->path, l->name,
			    listen_proxy_names[l->proxy]);
			return -1;
		}
	}
	for (i = 0; i < c->nroutes; i++)
		if (c->routes[i].ndomains == 0 &&
		    c->routes[i].nsenders == 0) {
			snprintf(err, errlen, "%s: route \"%s\" has no domains "
			    "and no senders",
			    c->path, c->routes[i].name);
			return -1;
		}
	for (i = 0; i < c->nroutes; i++)
		if (c->routes[i].nallowed_from > CONFIG_MAX_ALLOWED_FROM) {
			snprintf(err, errlen, "%s: route \"%s\": more than %d "
			    "allowed_from patterns", c->path,
			    c->routes[i].name, CONFIG_MAX_ALLOWED_FROM);
			return -1;
		}
	if (c->workers_min_idle > c->workers_max_idle) {
		snprintf(err, errlen, "%s: workers: min_idle (%d) is larger "
		    "than max_idle (%d)", c->path, c->workers_min_idle,
		    c->workers_max_idle);
		return -1;
	}
	if (c->workers_max_idle > c->workers_max) {
		snprintf(err, errlen, "%s: workers: max_idle (%d) is larger "
		    "than max (%d)", c->path, c->workers_max_idle,
		    c->workers_max);
		return -1;
	}
	return 0;
}

/*
 * libconfuse 3.3 miscounts lines after comments ("#" lines count three,
 * block comments one extra) and accepts a file that ends inside a
 * section.  So comments are blanked here before parsing (newlines kept,
 * so line numbers stay true) and braces are counted.  Returns a new
 * buffer, or NULL with the reason in err.
 */
static char *
prepare_text(const char *path, const char *text, char *err, size_t errlen)
{
	size_t n = strlen(text), i;
	char *out = xstrndup(text, n);
	int line = 1, depth = 0, open_line[64];
	char quote = 0;

	for (i = 0; i < n; i++) {
		char c = out[i];

		if (c == '\n')
			line++;
		if (quote) {
			if (c == '\\' && i + 1 < n) {
				if (out[i + 1] == '\n')
					line++;
				i++;
			} else if (c == quote) {
				quote = 0;
			}
			continue;
		}
		if (c == '"' || c == '\'') {
			quote = c;
		} else if (c == '#' || (c == '/' && i + 1 < n &&
		    out[i + 1] == '/')) {
			while (i < n && out[i] != '\n')
				out[i++] = ' ';
			i--;
		} else if (c == '/' && i + 1 < n && out[i + 1] == '*') {
			out[i] = out[i + 1] = ' ';
			for (i += 2; i < n; i++) {
				if (out[i] == '*' && i + 1 < n &&
				    out[i + 1] == '/') {
					out[i] = out[i + 1] = ' ';
					i++;
					break;
				}
				if (out[i] == '\n')
					line++;
				else
					out[i] = ' ';
			}
		} else if (c == '{') {
			if (depth < 64)
				open_line[depth] = line;
			depth++;
		} else if (c == '}') {
			if (depth == 0) {
				snprintf(err, errlen, "%s:%d: '}' without a "
				    "section to close", path, line);
				free(out);
				return NULL;
			}
			depth--;
		}
	}
	if (depth > 0) {
		snprintf(err, errlen, "%s:%d: '{' is never closed", path,
		    open_line[depth <= 64 ? depth - 1 : 63]);
		free(out);
		return NULL;
	}
	return out;
}

/* The instances of the titled sections into their arrays. */
static void
store_multi_sections(cfg_t *cfg, struct load_state *st)
{
	size_t s, k;

	for (s = 0; s < NSECTIONS; s++) {
		const struct section_row *sr = &sections[s];
		size_t n;
		char *array;

		if (!sr->multi)
			continue;
		n = cfg_size(cfg, sr->name);
		array = xcalloc((n + sr->spare) ? n + sr->spare : 1,
		    sr->elem_size);
		*(char **)((char *)st->c + sr->array_offset) = array;
		*(size_t *)((char *)st->c + sr->count_offset) = n;
		for (k = 0; k < n; k++) {
			cfg_t *sec = cfg_getnsec(cfg, sr->name, (unsigned)k);
			char *elem = array + k * sr->elem_size;

			*(char **)(elem + sr->title_offset) =
			    xstrdup(cfg_title(sec));
			store_section(sec, sr->name, st, elem);
		}
	}
}

/* Values that follow from others: defaults that depend on the host,
 * listeners that inherit relay { networks }, the smarthost as the last
 * route, the MX route. */
static void
derive_values(struct load_state *st)
{
	struct ferry_config *c = st->c;
	size_t i;

	if (c->hostname == NULL) {
		char host[256];

		if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
			ferry_strlcpy(host, "localhost", sizeof(host));
		host[sizeof(host) - 1] = '\0';
		c->hostname = xstrdup(host);
	}
	/* stress shortens the idle limit, never lengthens it: a short
	 * command_timeout is not refused for the default stress_timeout */
	if (c->stress_timeout > c->command_timeout)
		c->stress_timeout = c->command_timeout;
	for (i = 0; i < c->nlisteners; i++) {
		struct listener_config *l = &c->listeners[i];

		if (l->nrelay_networks == (size_t)-1) {
			l->nrelay_networks = c->nrelay_networks;
			l->relay_networks = xcalloc(l->nrelay_networks ?
			    l->nrelay_networks : 1, sizeof(struct cidr));
			memcpy(l->relay_networks, c->relay_networks,
			    l->nrelay_networks * sizeof(struct cidr));
		}
	}
	for (i = 0; i < c->nroutes; i++)
		split_pool_hosts(&c->routes[i]);
	st->smarthost_twice = c->smarthost_host != NULL &&
	    st->smarthost.nhosts > 0;
	if (c->smarthost_host == NULL && st->smarthost.nhosts > 0) {
		/* smarthost { hosts = {...} }: a pool */
		struct route_config *r = &c->routes[c->nroutes++];

		*r = st->smarthost;
		r->name = xstrdup("smarthost");
		r->ndomains = 1;
		r->domains = xcalloc(2, sizeof(char *));
		r->domains[0] = xstrdup("*");
		split_pool_hosts(r);
	} else if (c->smarthost_host != NULL) {
		struct route_config *r = &c->routes[c->nroutes++];
		int v6 = strchr(c->smarthost_host, ':') != NULL;
		char hp[400];
		size_t k;

		*r = st->smarthost;
		r->name = xstrdup("smarthost");
		r->ndomains = 1;
		r->domains = xcalloc(2, sizeof(char *));
		r->domains[0] = xstrdup("*");
		for (k = 0; k < r->nhosts; k++)
			free(r->hosts[k]);
		free(r->hosts);
		r->nhosts = 1;
		r->hosts = xcalloc(2, sizeof(char *));
		snprintf(hp, sizeof(hp), "%s%s%s:%d", v6 ? "[" : "",
		    c->smarthost_host, v6 ? "]" : "", c->smarthost_port);
		r->hosts[0] = xstrdup(hp);
	} else {
		size_t k;

		/* no smarthost: its policy and rewriting values go */
		for (k = 0; k < NOPTIONS; k++)
			if (options[k].base == B_SMARTHOST)
				free_value(&options[k],
				    (char *)&st->smarthost);
	}
	c->mx_route.name = xstrdup("mx");
	c->mx_route.domains = xcalloc(1, sizeof(char *));
	c->mx_route.hosts = xcalloc(1, sizeof(char *));
	if (c->nretry_schedule == 0) {
		c->retry_schedule[0] = 3600;
		c->nretry_schedule = 1;
	}
}

struct ferry_config *
config_load(const char *path, const char *text, char *err, size_t errlen)
{
	return config_load_flags(path, text, 0, err, errlen);
}

struct ferry_config *
config_load_flags(const char *path, const char *text, unsigned flags,
    char *err, size_t errlen)
{
	struct parse_state ps;
	struct load_state st;
	cfg_t *cfg;
	char *prepared;
	int rc;

	err[0] = '\0';
	if (text == NULL) {
		char *owned = config_read_file(path, 1 << 20, NULL);

		if (owned == NULL) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return NULL;
		}
		prepared = prepare_text(path, owned, err, errlen);
		free(owned);
	} else {
		prepared = prepare_text(path, text, err, errlen);
	}
	if (prepared == NULL)
		return NULL;
	cfg = cfg_init(parser_options(), CFGF_NONE);
	if (cfg == NULL) {
		snprintf(err, errlen, "%s: cannot initialise parser", path);
		free(prepared);
		return NULL;
	}
	ps.path = path;
	ps.buf = err;
	ps.len = errlen;
	ps.seen = 0;
	ps.flags = flags;
	cfg_set_error_function(cfg, collect_error);
	set_validators(cfg);
	current_parse = &ps;
	rc = cfg_parse_buf(cfg, prepared);
	current_parse = NULL;
	free(prepared);
	if (rc != CFG_SUCCESS) {
		if (!ps.seen)
			snprintf(err, errlen, "%s: parse error", path);
		cfg_free(cfg);
		return NULL;
	}

	memset(&st, 0, sizeof(st));
	st.c = xcalloc(1, sizeof(*st.c));
	st.c->path = absolute_config_path(path);
	store_section(cfg, NULL, &st, NULL);
	for (size_t s = 0; s < NSECTIONS; s++)
		if (!sections[s].multi)
			store_section(cfg_getsec(cfg, sections[s].name),
			    sections[s].name, &st, NULL);
	store_multi_sections(cfg, &st);
	cfg_free(cfg);
	derive_values(&st);
	if (st.smarthost_twice) {
		snprintf(err, errlen, "%s: smarthost: host and hosts are "
		    "both set; give one of them", path);
		config_free(st.c);
		return NULL;
	}
	if (check_combinations(st.c, err, errlen) < 0) {
		config_free(st.c);
		return NULL;
	}
	return st.c;
}

/* What the route rows and derive_values allocated for r. */
static void
route_free(struct route_config *r)
{
	size_t i;

	free(r->name);
	for (i = 0; i < NOPTIONS; i++)
		if (same_section(options[i].section, "route"))
			free_value(&options[i], (char *)r);
	free(r->host_priority);
	free(r->host_weight);
}

void
config_free(struct ferry_config *c)
{
	size_t i, k;

	if (c == NULL)
		return;
	for (i = 0; i < c->nlisteners; i++) {
		free(c->listeners[i].name);
		for (k = 0; k < NOPTIONS; k++)
			if (options[k].base == B_INSTANCE &&
			    same_section(options[k].section, "listen"))
				free_value(&options[k],
				    (char *)&c->listeners[i]);
	}
	for (i = 0; i < c->ndkim_keys; i++) {
		free(c->dkim_keys[i].name);
		for (k = 0; k < NOPTIONS; k++)
			if (same_section(options[k].section, "dkim_key"))
				free_value(&options[k],
				    (char *)&c->dkim_keys[i]);
	}
	free(c->dkim_keys);
	for (i = 0; i < c->nroutes; i++)
		route_free(&c->routes[i]);
	route_free(&c->mx_route);
	for (k = 0; k < NOPTIONS; k++)
		if (options[k].base == B_CONFIG)
			free_value(&options[k], (char *)c);
	free(c->listeners);
	free(c->routes);
	free(c->path);
	free(c);
}

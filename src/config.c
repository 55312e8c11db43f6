/*
 * config.c - ferry.conf: the option table, its validation, and the
 * parsed struct ferry_config.
 *
 * Each option's name, default and range is declared once, in the tables
 * below (libconfuse cfg_opt_t plus a range row); values are checked while
 * the file is read, so an error names the file and line.  Checks that tie
 * options together run after the parse and name the file.
 */
#include "autoconfig.h"

#include <confuse.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "config.h"
#include "util.h"

/* Integer options and their allowed ranges (one row per option name;
 * names are unique across sections). */
struct int_range {
	const char *name;
	long min, max;
};

static const struct int_range int_ranges[] = {
	{ "port", 1, 65535 },
	{ "shutdown_timeout", 0, 3600 },
	{ "min_idle", 0, 1024 },
	{ "max_idle", 1, 1024 },
	{ "max", 1, 4096 },
	{ "sessions", 1, 1000000 },
	{ "message_size", 1024, 2147483647L },
	{ "recipients", 1, 100000 },
	{ "line_length", 512, 65536 },
	{ "data_line_length", 1000, 1048576 },
	{ "errors", 1, 1000 },
	{ "command_timeout", 1, 3600 },
	{ "data_timeout", 1, 86400 },
	{ "agents", 1, 1024 },
	{ "per_destination", 1, 1024 },
	{ "agent_jobs", 1, 1000000 },
	{ "retry_schedule", 1, 86400 * 7 },
	{ "max_lifetime", 60, 86400 * 100 },
	{ "delay_warning", 0, 86400 * 100 },
	{ "connect_timeout", 1, 3600 },
	{ "client_command_timeout", 1, 3600 },
	{ "client_data_timeout", 1, 86400 },
	{ "connection_idle", 0, 3600 },
	{ "max_failures", 1, 1000 },
	{ "lockout", 1, 86400 * 7 },
	{ "max_connections", 1, 100000 },
	{ "max_connections_per_client", 1, 100000 },
	{ "connection_rate", 1, 1000000 },
	{ "message_rate", 1, 1000000 },
	{ "greet_pause", 0, 30000 },
};

static int
validate_int(cfg_t *cfg, cfg_opt_t *opt)
{
	size_t i;
	unsigned k;

	for (i = 0; i < sizeof(int_ranges) / sizeof(int_ranges[0]); i++) {
		if (strcmp(int_ranges[i].name, opt->name) != 0)
			continue;
		for (k = 0; k < cfg_opt_size(opt); k++) {
			long v = cfg_opt_getnint(opt, k);

			if (v < int_ranges[i].min || v > int_ranges[i].max) {
				cfg_error(cfg, "%s = %ld is out of range (%ld "
				    "to %ld)", opt->name, v,
				    int_ranges[i].min, int_ranges[i].max);
				return -1;
			}
		}
		return 0;
	}
	return 0;
}

static int
pick(const char *s, const char *const *names, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (s != NULL && strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

/* Indexed by enum tls_policy. */
static const char *const tls_policy_names[] = { "none", "may", "encrypt",
    "verify" };

static int
parse_tls_policy(const char *s)
{
	return pick(s, tls_policy_names, 4);
}

const char *
tls_policy_name(enum tls_policy p)
{
	return (unsigned)p < 4 ? tls_policy_names[p] : "?";
}

static int
validate_tls(cfg_t *cfg, cfg_opt_t *opt)
{
	if (parse_tls_policy(cfg_opt_getnstr(opt, 0)) < 0) {
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

static int
validate_hosts(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned i;

	for (i = 0; i < cfg_opt_size(opt); i++)
		if (!valid_host_spec(cfg_opt_getnstr(opt, i))) {
			cfg_error(cfg, "hosts: \"%s\" is not host:port or "
			    "[address]:port", cfg_opt_getnstr(opt, i));
			return -1;
		}
	return 0;
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
    "implicit" };
static const char *const client_cert_names[] = { "none", "optional",
    "require" };

static int
validate_listen_tls(cfg_t *cfg, cfg_opt_t *opt)
{
	if (pick(cfg_opt_getnstr(opt, 0), listen_tls_names, 3) < 0) {
		cfg_error(cfg, "tls must be none, starttls or implicit");
		return -1;
	}
	return 0;
}

static int
validate_client_cert(cfg_t *cfg, cfg_opt_t *opt)
{
	if (pick(cfg_opt_getnstr(opt, 0), client_cert_names, 3) < 0) {
		cfg_error(cfg, "client_cert must be none, optional or require");
		return -1;
	}
	return 0;
}

/* A file named here must exist and be readable now (by the master, which
 * runs as root: children read it before they drop privileges). */
static int skip_file_checks;

void
config_skip_file_checks(int skip)
{
	skip_file_checks = skip;
}

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
	if (!skip_file_checks && access(s, R_OK) != 0) {
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
	    strcmp(s, "stderr") != 0)) {
		cfg_error(cfg, "target must be \"syslog\" or \"stderr\"");
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

static cfg_opt_t listen_opts[] = {
	CFG_STR("address", "127.0.0.1", CFGF_NONE),
	CFG_INT("port", 25, CFGF_NONE),
	CFG_STR("tls", "none", CFGF_NONE),
	CFG_BOOL("tls_required", cfg_false, CFGF_NONE),
	CFG_STR("cert_file", "", CFGF_NONE),
	CFG_STR("key_file", "", CFGF_NONE),
	CFG_STR("client_cert", "none", CFGF_NONE),
	CFG_BOOL("auth", cfg_false, CFGF_NONE),
	CFG_STR_LIST("auth_plaintext_networks", "{}", CFGF_NONE),
	CFG_STR_LIST("relay_networks", NULL, CFGF_NODEFAULT),
	CFG_STR_LIST("relay_client_certs", "{}", CFGF_NONE),
	CFG_END()
};

static cfg_opt_t tls_opts[] = {
	CFG_STR("cert_file", "", CFGF_NONE),
	CFG_STR("key_file", "", CFGF_NONE),
	CFG_STR("min_version", "TLSv1.2", CFGF_NONE),
	CFG_STR("ciphers", "", CFGF_NONE),
	CFG_STR("ciphersuites", "", CFGF_NONE),
	CFG_STR("groups", "", CFGF_NONE),
	CFG_STR("client_ca_file", "", CFGF_NONE),
	CFG_END()
};

static cfg_opt_t auth_opts[] = {
	CFG_STR("users_file", "", CFGF_NONE),
	CFG_INT("max_failures", 5, CFGF_NONE),
	CFG_INT("lockout", 600, CFGF_NONE),
	CFG_END()
};

static cfg_opt_t workers_opts[] = {
	CFG_INT("min_idle", 2, CFGF_NONE),
	CFG_INT("max_idle", 8, CFGF_NONE),
	CFG_INT("max", 32, CFGF_NONE),
	CFG_INT("sessions", 100, CFGF_NONE),
	CFG_END()
};

static cfg_opt_t limits_opts[] = {
	CFG_INT("message_size", 10485760, CFGF_NONE),
	CFG_INT("recipients", 1000, CFGF_NONE),
	CFG_INT("line_length", 2048, CFGF_NONE),
	CFG_INT("data_line_length", 1000, CFGF_NONE),
	CFG_INT("errors", 10, CFGF_NONE),
	CFG_INT("command_timeout", 300, CFGF_NONE),
	CFG_INT("data_timeout", 600, CFGF_NONE),
	CFG_INT("max_connections", 256, CFGF_NONE),
	CFG_INT("max_connections_per_client", 20, CFGF_NONE),
	CFG_INT("connection_rate", 120, CFGF_NONE),
	CFG_INT("message_rate", 600, CFGF_NONE),
	CFG_INT("greet_pause", 0, CFGF_NONE),
	CFG_END()
};

static cfg_opt_t relay_opts[] = {
	CFG_STR_LIST("networks", "{127.0.0.0/8, ::1/128}", CFGF_NONE),
	CFG_STR_LIST("accept_domains", "{}", CFGF_NONE),
	CFG_END()
};

#define ROUTE_POLICY_OPTS \
	CFG_STR("tls", "may", CFGF_NONE), \
	CFG_STR("ca_file", "", CFGF_NONE), \
	CFG_STR("tls_min_version", "TLSv1.2", CFGF_NONE), \
	CFG_BOOL("auth", cfg_false, CFGF_NONE), \
	CFG_BOOL("auth_plaintext", cfg_false, CFGF_NONE)

static cfg_opt_t smarthost_opts[] = {
	CFG_STR("host", NULL, CFGF_NODEFAULT),
	CFG_INT("port", 25, CFGF_NONE),
	ROUTE_POLICY_OPTS,
	CFG_END()
};

static cfg_opt_t route_opts[] = {
	CFG_STR_LIST("domains", NULL, CFGF_NODEFAULT),
	CFG_STR_LIST("hosts", "{}", CFGF_NONE),
	ROUTE_POLICY_OPTS,
	CFG_END()
};

static cfg_opt_t mx_opts[] = {
	CFG_INT("port", 25, CFGF_NONE),
	ROUTE_POLICY_OPTS,
	CFG_END()
};

static cfg_opt_t delivery_opts[] = {
	CFG_BOOL("paused", cfg_false, CFGF_NONE),
	CFG_INT("agents", 4, CFGF_NONE),
	CFG_INT("per_destination", 2, CFGF_NONE),
	CFG_INT("agent_jobs", 100, CFGF_NONE),
	CFG_INT_LIST("retry_schedule", "{60, 300, 900, 1800, 3600}",
	    CFGF_NONE),
	CFG_INT("max_lifetime", 432000, CFGF_NONE),
	CFG_INT("delay_warning", 0, CFGF_NONE),
	CFG_INT("connect_timeout", 30, CFGF_NONE),
	CFG_INT("client_command_timeout", 300, CFGF_NONE),
	CFG_INT("client_data_timeout", 600, CFGF_NONE),
	CFG_INT("connection_idle", 10, CFGF_NONE),
	CFG_STR("resolver", "", CFGF_NONE),
	CFG_STR("credentials_file", "", CFGF_NONE),
	CFG_END()
};

static cfg_opt_t log_opts[] = {
	CFG_STR("target", "syslog", CFGF_NONE),
	CFG_BOOL("debug", cfg_false, CFGF_NONE),
	CFG_END()
};

static cfg_opt_t top_opts[] = {
	CFG_STR("hostname", NULL, CFGF_NODEFAULT),
	CFG_STR("user", "ferry", CFGF_NONE),
	CFG_STR("smtpd_user", "ferry-smtpd", CFGF_NONE),
	CFG_STR("deliver_user", "ferry-deliver", CFGF_NONE),
	CFG_STR("admin_group", "", CFGF_NONE),
	CFG_STR("spool_dir", LOCALSTATEDIR "/spool/ferry", CFGF_NONE),
	CFG_INT("shutdown_timeout", 30, CFGF_NONE),
	CFG_SEC("listen", listen_opts, CFGF_MULTI | CFGF_TITLE |
	    CFGF_NO_TITLE_DUPES),
	CFG_SEC("workers", workers_opts, CFGF_NONE),
	CFG_SEC("limits", limits_opts, CFGF_NONE),
	CFG_SEC("relay", relay_opts, CFGF_NONE),
	CFG_SEC("smarthost", smarthost_opts, CFGF_NONE),
	CFG_SEC("route", route_opts, CFGF_MULTI | CFGF_TITLE |
	    CFGF_NO_TITLE_DUPES),
	CFG_SEC("mx", mx_opts, CFGF_NONE),
	CFG_SEC("delivery", delivery_opts, CFGF_NONE),
	CFG_SEC("log", log_opts, CFGF_NONE),
	CFG_SEC("tls", tls_opts, CFGF_NONE),
	CFG_SEC("auth", auth_opts, CFGF_NONE),
	CFG_END()
};

/* Where libconfuse's messages go while one file is parsed. */
struct parse_errors {
	const char *path;
	char *buf;
	size_t len;
	int seen;
};

static struct parse_errors *current_errors;

static void
collect_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	char msg[512];

	if (current_errors == NULL || current_errors->seen)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (cfg != NULL && cfg->line > 0)
		snprintf(current_errors->buf, current_errors->len, "%s:%d: %s",
		    current_errors->path, cfg->line, msg);
	else
		snprintf(current_errors->buf, current_errors->len, "%s: %s",
		    current_errors->path, msg);
	current_errors->seen = 1;
}

static void
set_validators(cfg_t *cfg)
{
	static const char *const ints[] = { "shutdown_timeout",
	    "listen|port", "workers|min_idle", "workers|max_idle",
	    "workers|max", "workers|sessions", "limits|message_size",
	    "limits|recipients", "limits|line_length",
	    "limits|data_line_length", "limits|errors",
	    "limits|command_timeout", "limits|data_timeout",
	    "smarthost|port", "mx|port", "delivery|agents", "delivery|per_destination",
	    "delivery|agent_jobs", "delivery|retry_schedule",
	    "delivery|max_lifetime", "delivery|delay_warning",
	    "delivery|connect_timeout", "delivery|client_command_timeout",
	    "delivery|client_data_timeout", "delivery|connection_idle",
	    "auth|max_failures", "auth|lockout", "limits|max_connections",
	    "limits|max_connections_per_client", "limits|connection_rate",
	    "limits|message_rate", "limits|greet_pause" };
	static const char *const policy_secs[] = { "smarthost", "route",
	    "mx" };
	size_t i;

	for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		cfg_set_validate_func(cfg, ints[i], validate_int);
	cfg_set_validate_func(cfg, "hostname", validate_hostname);
	cfg_set_validate_func(cfg, "user", validate_user);
	cfg_set_validate_func(cfg, "smtpd_user", validate_user);
	cfg_set_validate_func(cfg, "deliver_user", validate_user);
	for (i = 0; i < 3; i++) {
		char name[64];

		snprintf(name, sizeof(name), "%s|tls", policy_secs[i]);
		cfg_set_validate_func(cfg, name, validate_tls);
		snprintf(name, sizeof(name), "%s|tls_min_version",
		    policy_secs[i]);
		cfg_set_validate_func(cfg, name, validate_tls_version);
	}
	cfg_set_validate_func(cfg, "route|hosts", validate_hosts);
	cfg_set_validate_func(cfg, "route|domains", validate_domains);
	cfg_set_validate_func(cfg, "delivery|resolver", validate_resolver);
	cfg_set_validate_func(cfg, "spool_dir", validate_nonempty);
	cfg_set_validate_func(cfg, "listen|address", validate_address);
	cfg_set_validate_func(cfg, "relay|networks", validate_networks);
	cfg_set_validate_func(cfg, "relay|accept_domains", validate_domains);
	cfg_set_validate_func(cfg, "listen|relay_networks",
	    validate_networks);
	cfg_set_validate_func(cfg, "listen|auth_plaintext_networks",
	    validate_networks);
	cfg_set_validate_func(cfg, "listen|tls", validate_listen_tls);
	cfg_set_validate_func(cfg, "listen|client_cert", validate_client_cert);
	cfg_set_validate_func(cfg, "listen|cert_file", validate_readable);
	cfg_set_validate_func(cfg, "listen|key_file", validate_readable);
	cfg_set_validate_func(cfg, "tls|cert_file", validate_readable);
	cfg_set_validate_func(cfg, "tls|key_file", validate_readable);
	cfg_set_validate_func(cfg, "tls|client_ca_file", validate_readable);
	cfg_set_validate_func(cfg, "tls|min_version", validate_tls_version);
	cfg_set_validate_func(cfg, "auth|users_file", validate_readable);
	cfg_set_validate_func(cfg, "smarthost|host", validate_nonempty);
	cfg_set_validate_func(cfg, "log|target", validate_target);
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

static struct cidr *
cidr_list(cfg_t *sec, const char *name, size_t *n)
{
	struct cidr *v;
	unsigned i;

	*n = cfg_size(sec, name);
	v = xcalloc(*n ? *n : 1, sizeof(*v));
	for (i = 0; i < *n; i++) {
		char err[128];

		if (cidr_parse(cfg_getnstr(sec, name, i), &v[i], err,
		    sizeof(err)) < 0)
			abort();   /* validated while parsing */
	}
	return v;
}

static char **
str_list(cfg_t *sec, const char *name, size_t *n)
{
	char **v;
	unsigned i;

	*n = cfg_size(sec, name);
	v = xcalloc(*n + 1, sizeof(*v));
	for (i = 0; i < *n; i++)
		v[i] = xstrdup(cfg_getnstr(sec, name, i));
	return v;
}

static void
parse_listener_policy(cfg_t *sec, struct listener_config *l)
{
	l->tls = (enum listener_tls)pick(cfg_getstr(sec, "tls"),
	    listen_tls_names, 3);
	l->tls_required = cfg_getbool(sec, "tls_required") ? 1 : 0;
	l->cert_file = xstrdup(cfg_getstr(sec, "cert_file"));
	l->key_file = xstrdup(cfg_getstr(sec, "key_file"));
	l->client_cert = (enum client_cert_mode)pick(cfg_getstr(sec,
	    "client_cert"), client_cert_names, 3);
	l->auth = cfg_getbool(sec, "auth") ? 1 : 0;
	l->auth_plaintext = cidr_list(sec, "auth_plaintext_networks",
	    &l->nauth_plaintext);
	if (cfg_size(sec, "relay_networks") > 0)
		l->relay_networks = cidr_list(sec, "relay_networks",
		    &l->nrelay_networks);
	else
		l->nrelay_networks = (size_t)-1;   /* filled from relay{} */
	l->relay_cert_subjects = str_list(sec, "relay_client_certs",
	    &l->nrelay_cert_subjects);
}

static void
route_policy(cfg_t *sec, struct route_config *r)
{
	r->tls = (enum tls_policy)parse_tls_policy(cfg_getstr(sec, "tls"));
	r->ca_file = xstrdup(cfg_getstr(sec, "ca_file"));
	r->tls_min_version = parse_tls_version(cfg_getstr(sec,
	    "tls_min_version"));
	r->auth = cfg_getbool(sec, "auth") ? 1 : 0;
	r->auth_plaintext = cfg_getbool(sec, "auth_plaintext") ? 1 : 0;
}

static int
domain_eq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

const struct route_config *
config_route_for(const struct ferry_config *c, const char *domain)
{
	const struct route_config *best = NULL, *star = NULL;
	size_t best_len = 0, i, k, dlen = strlen(domain);

	for (i = 0; i < c->nroutes; i++) {
		const struct route_config *r = &c->routes[i];

		for (k = 0; k < r->ndomains; k++) {
			const char *d = r->domains[k];
			size_t n = strlen(d);

			if (strcmp(d, "*") == 0) {
				if (star == NULL)
					star = r;
			} else if (d[0] != '.') {
				if (domain_eq(d, domain))
					return r;
			} else if (dlen > n && n > best_len &&
			    domain_eq(domain + dlen - n, d)) {
				best = r;
				best_len = n;
			}
		}
	}
	return best ? best : star;
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
	}
	for (i = 0; i < c->nroutes; i++)
		if (c->routes[i].ndomains == 0) {
			snprintf(err, errlen, "%s: route \"%s\" has no domains",
			    c->path, c->routes[i].name);
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

struct ferry_config *
config_load(const char *path, const char *text, char *err, size_t errlen)
{
	struct parse_errors pe;
	struct ferry_config *c;
	cfg_t *cfg, *sec;
	char *owned = NULL;
	unsigned i;
	int rc;

	if (text == NULL) {
		owned = config_read_file(path, 1 << 20, NULL);
		if (owned == NULL) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return NULL;
		}
		text = owned;
	}
	pe.path = path;
	pe.buf = err;
	pe.len = errlen;
	pe.seen = 0;
	err[0] = '\0';

	{
		char *prepared = prepare_text(path, text, err, errlen);

		free(owned);
		if (prepared == NULL)
			return NULL;
		owned = prepared;
		text = prepared;
	}
	cfg = cfg_init(top_opts, CFGF_NONE);
	if (cfg == NULL) {
		snprintf(err, errlen, "%s: cannot initialise parser", path);
		free(owned);
		return NULL;
	}
	cfg_set_error_function(cfg, collect_error);
	set_validators(cfg);
	current_errors = &pe;
	rc = cfg_parse_buf(cfg, text);
	current_errors = NULL;
	free(owned);
	if (rc != CFG_SUCCESS) {
		if (!pe.seen)
			snprintf(err, errlen, "%s: parse error", path);
		cfg_free(cfg);
		return NULL;
	}

	c = xcalloc(1, sizeof(*c));
	c->path = absolute_config_path(path);
	if (cfg_size(cfg, "hostname") > 0 && cfg_getstr(cfg, "hostname")) {
		c->hostname = xstrdup(cfg_getstr(cfg, "hostname"));
	} else {
		char host[256];

		if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
			ferry_strlcpy(host, "localhost", sizeof(host));
		host[sizeof(host) - 1] = '\0';
		c->hostname = xstrdup(host);
	}
	c->user = xstrdup(cfg_getstr(cfg, "user"));
	c->smtpd_user = xstrdup(cfg_getstr(cfg, "smtpd_user"));
	c->spool_dir = resolve_path(c->path, cfg_getstr(cfg, "spool_dir"));
	c->shutdown_timeout = (int)cfg_getint(cfg, "shutdown_timeout");

	c->nlisteners = cfg_size(cfg, "listen");
	c->listeners = xcalloc(c->nlisteners ? c->nlisteners : 1,
	    sizeof(*c->listeners));
	for (i = 0; i < c->nlisteners; i++) {
		sec = cfg_getnsec(cfg, "listen", i);
		c->listeners[i].name = xstrdup(cfg_title(sec));
		c->listeners[i].address = xstrdup(cfg_getstr(sec, "address"));
		c->listeners[i].port = (int)cfg_getint(sec, "port");
		parse_listener_policy(sec, &c->listeners[i]);
	}

	sec = cfg_getsec(cfg, "workers");
	c->workers_min_idle = (int)cfg_getint(sec, "min_idle");
	c->workers_max_idle = (int)cfg_getint(sec, "max_idle");
	c->workers_max = (int)cfg_getint(sec, "max");
	c->worker_sessions = (int)cfg_getint(sec, "sessions");

	sec = cfg_getsec(cfg, "limits");
	c->message_size_limit = cfg_getint(sec, "message_size");
	c->max_recipients = (int)cfg_getint(sec, "recipients");
	c->max_line_length = (int)cfg_getint(sec, "line_length");
	c->max_data_line_length = (int)cfg_getint(sec, "data_line_length");
	c->max_errors = (int)cfg_getint(sec, "errors");
	c->command_timeout = (int)cfg_getint(sec, "command_timeout");
	c->data_timeout = (int)cfg_getint(sec, "data_timeout");

	sec = cfg_getsec(cfg, "relay");
	c->nrelay_networks = cfg_size(sec, "networks");
	c->relay_networks = xcalloc(c->nrelay_networks ?
	    c->nrelay_networks : 1, sizeof(*c->relay_networks));
	for (i = 0; i < c->nrelay_networks; i++) {
		char cerr[128];

		if (cidr_parse(cfg_getnstr(sec, "networks", i),
		    &c->relay_networks[i], cerr, sizeof(cerr)) < 0)
			/* validated while parsing; cannot happen */
			abort();
	}

	c->accept_domains = str_list(cfg_getsec(cfg, "relay"),
	    "accept_domains", &c->naccept_domains);
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
	sec = cfg_getsec(cfg, "tls");
	c->tls_cert_file = xstrdup(cfg_getstr(sec, "cert_file"));
	c->tls_key_file = xstrdup(cfg_getstr(sec, "key_file"));
	c->tls_server_min_version = parse_tls_version(cfg_getstr(sec,
	    "min_version"));
	c->tls_ciphers = xstrdup(cfg_getstr(sec, "ciphers"));
	c->tls_ciphersuites = xstrdup(cfg_getstr(sec, "ciphersuites"));
	c->tls_groups = xstrdup(cfg_getstr(sec, "groups"));
	c->tls_client_ca_file = xstrdup(cfg_getstr(sec, "client_ca_file"));
	sec = cfg_getsec(cfg, "auth");
	c->auth_users_file = xstrdup(cfg_getstr(sec, "users_file"));
	c->auth_max_failures = (int)cfg_getint(sec, "max_failures");
	c->auth_lockout = (int)cfg_getint(sec, "lockout");
	sec = cfg_getsec(cfg, "limits");
	c->max_connections = (int)cfg_getint(sec, "max_connections");
	c->max_connections_per_client = (int)cfg_getint(sec,
	    "max_connections_per_client");
	c->connection_rate = (int)cfg_getint(sec, "connection_rate");
	c->message_rate = (int)cfg_getint(sec, "message_rate");
	c->greet_pause = (int)cfg_getint(sec, "greet_pause");

	sec = cfg_getsec(cfg, "smarthost");
	if (cfg_size(sec, "host") > 0 && cfg_getstr(sec, "host"))
		c->smarthost_host = xstrdup(cfg_getstr(sec, "host"));
	c->smarthost_port = (int)cfg_getint(sec, "port");
	c->deliver_user = xstrdup(cfg_getstr(cfg, "deliver_user"));
	c->admin_group = xstrdup(cfg_getstr(cfg, "admin_group"));
	{
		size_t nr = cfg_size(cfg, "route"), k;

		c->routes = xcalloc(nr + 1, sizeof(*c->routes));
		for (k = 0; k < nr; k++) {
			cfg_t *rs = cfg_getnsec(cfg, "route", (unsigned)k);
			struct route_config *r = &c->routes[c->nroutes++];

			r->name = xstrdup(cfg_title(rs));
			r->ndomains = cfg_size(rs, "domains");
			r->domains = xcalloc(r->ndomains + 1, sizeof(char *));
			for (i = 0; i < r->ndomains; i++)
				r->domains[i] = xstrdup(cfg_getnstr(rs,
				    "domains", i));
			r->nhosts = cfg_size(rs, "hosts");
			r->hosts = xcalloc(r->nhosts + 1, sizeof(char *));
			for (i = 0; i < r->nhosts; i++)
				r->hosts[i] = xstrdup(cfg_getnstr(rs, "hosts",
				    i));
			route_policy(rs, r);
		}
		if (c->smarthost_host != NULL) {
			struct route_config *r = &c->routes[c->nroutes++];
			char hp[400];

			r->name = xstrdup("smarthost");
			r->ndomains = 1;
			r->domains = xcalloc(2, sizeof(char *));
			r->domains[0] = xstrdup("*");
			r->nhosts = 1;
			r->hosts = xcalloc(2, sizeof(char *));
			snprintf(hp, sizeof(hp), "%s%s%s:%d",
			    strchr(c->smarthost_host, ':') ? "[" : "",
			    c->smarthost_host,
			    strchr(c->smarthost_host, ':') ? "]" : "",
			    c->smarthost_port);
			r->hosts[0] = xstrdup(hp);
			route_policy(sec, r);
		}
		c->mx_route.name = xstrdup("mx");
		c->mx_route.domains = xcalloc(1, sizeof(char *));
		c->mx_route.hosts = xcalloc(1, sizeof(char *));
		route_policy(cfg_getsec(cfg, "mx"), &c->mx_route);
		c->mx_port = (int)cfg_getint(cfg_getsec(cfg, "mx"), "port");
	}
	sec = cfg_getsec(cfg, "delivery");
	c->delivery_paused = cfg_getbool(sec, "paused") ? 1 : 0;
	c->delivery_agents = (int)cfg_getint(sec, "agents");
	c->per_destination = (int)cfg_getint(sec, "per_destination");
	c->agent_jobs = (int)cfg_getint(sec, "agent_jobs");
	c->nretry_schedule = cfg_size(sec, "retry_schedule");
	if (c->nretry_schedule == 0) {
		c->retry_schedule = xcalloc(1, sizeof(int));
		c->retry_schedule[0] = 3600;
		c->nretry_schedule = 1;
	} else {
		c->retry_schedule = xcalloc(c->nretry_schedule, sizeof(int));
		for (i = 0; i < c->nretry_schedule; i++)
			c->retry_schedule[i] = (int)cfg_getnint(sec,
			    "retry_schedule", i);
	}
	c->max_lifetime = (int)cfg_getint(sec, "max_lifetime");
	c->delay_warning = (int)cfg_getint(sec, "delay_warning");
	c->connect_timeout = (int)cfg_getint(sec, "connect_timeout");
	c->client_command_timeout = (int)cfg_getint(sec,
	    "client_command_timeout");
	c->client_data_timeout = (int)cfg_getint(sec, "client_data_timeout");
	c->connection_idle = (int)cfg_getint(sec, "connection_idle");
	c->resolver = xstrdup(cfg_getstr(sec, "resolver"));
	c->credentials_file = xstrdup(cfg_getstr(sec, "credentials_file"));
	if (c->credentials_file[0] != '\0' && c->credentials_file[0] != '/') {
		char *abs = resolve_path(c->path, c->credentials_file);

		free(c->credentials_file);
		c->credentials_file = abs;
	}

	sec = cfg_getsec(cfg, "log");
	c->log_to_stderr = strcmp(cfg_getstr(sec, "target"), "stderr") == 0;
	c->log_debug = cfg_getbool(sec, "debug") ? 1 : 0;

	cfg_free(cfg);
	if (check_combinations(c, err, errlen) < 0) {
		config_free(c);
		return NULL;
	}
	return c;
}

static void
route_free(struct route_config *r)
{
	size_t i;

	free(r->name);
	for (i = 0; i < r->ndomains; i++)
		free(r->domains[i]);
	free(r->domains);
	for (i = 0; i < r->nhosts; i++)
		free(r->hosts[i]);
	free(r->hosts);
	free(r->ca_file);
}

void
config_free(struct ferry_config *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->path);
	free(c->hostname);
	free(c->user);
	free(c->smtpd_user);
	free(c->spool_dir);
	for (i = 0; i < c->nlisteners; i++) {
		struct listener_config *l = &c->listeners[i];
		size_t k;

		free(l->name);
		free(l->address);
		free(l->cert_file);
		free(l->key_file);
		free(l->auth_plaintext);
		free(l->relay_networks);
		for (k = 0; k < l->nrelay_cert_subjects; k++)
			free(l->relay_cert_subjects[k]);
		free(l->relay_cert_subjects);
	}
	for (i = 0; i < c->naccept_domains; i++)
		free(c->accept_domains[i]);
	free(c->accept_domains);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	free(c->tls_ciphers);
	free(c->tls_ciphersuites);
	free(c->tls_groups);
	free(c->tls_client_ca_file);
	free(c->auth_users_file);
	free(c->listeners);
	free(c->relay_networks);
	free(c->smarthost_host);
	free(c->deliver_user);
	free(c->admin_group);
	for (i = 0; i < c->nroutes; i++)
		route_free(&c->routes[i]);
	free(c->routes);
	route_free(&c->mx_route);
	free(c->retry_schedule);
	free(c->resolver);
	free(c->credentials_file);
	free(c);
}

/*
 * config.h - ferry.conf: the option table (libconfuse), validation where
 * each option is declared, and the parsed values every process reads.
 *
 * The master parses the file, keeps the text it validated, and hands the
 * same text to its children (see procfd.h), so every process works from
 * one checked configuration.  Relative paths are resolved against the
 * directory of the configuration file.
 */
#ifndef FERRY_CONFIG_H
#define FERRY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include "netaddr.h"

#define CONFIG_DEFAULT_PATH SYSCONFDIR "/ferry/ferry.conf"

enum listener_tls { LTLS_NONE = 0, LTLS_STARTTLS, LTLS_IMPLICIT };
enum client_cert_mode { CCERT_NONE = 0, CCERT_OPTIONAL, CCERT_REQUIRE };
/* The PROXY protocol header a listener requires (proxy_header.h). */
enum listener_proxy { LPROXY_NONE = 0, LPROXY_V1, LPROXY_V2 };

struct listener_config {
	char *name;        /* the section title, shown in logs */
	char *address;     /* numeric address */
	int port;
	enum listener_tls tls;       /* none, starttls (RFC 3207), implicit
	                                (RFC 8314) */
	int tls_required;            /* MAIL/AUTH only after STARTTLS */
	char *cert_file, *key_file;  /* "" = the tls section's */
	enum client_cert_mode client_cert;
	int auth;                    /* offer AUTH (only under TLS, unless
	                                the client is in auth_plaintext) */
	struct cidr *auth_plaintext; /* legacy networks: AUTH without TLS */
	size_t nauth_plaintext;
	struct cidr *relay_networks; /* may relay; default relay.networks */
	size_t nrelay_networks;
	char **relay_cert_subjects;  /* verified client certificates that may
	                                relay: "CN=name" or a SHA-256
	                                fingerprint "sha256:hex" */
	size_t nrelay_cert_subjects;
	enum listener_proxy proxy;   /* a PROXY header before SMTP (and
	                                before the TLS handshake) */
	struct cidr *proxy_networks; /* the balancers it is taken from; any
	                                other client is closed */
	size_t nproxy_networks;
	int proxy_timeout;           /* seconds for the whole header */
	int dkim;                    /* mail taken here may be DKIM-signed */
};

enum tls_policy { TLS_NONE = 0, TLS_MAY, TLS_ENCRYPT, TLS_VERIFY };

/* At most this many allowed_from patterns in a route. */
#define CONFIG_MAX_ALLOWED_FROM 256
#define CONFIG_MAX_POOL_HOSTS 32     /* hosts of a route */

/* dkim { clients }: whose mail is signed. */
enum dkim_clients { DKIM_CLIENTS_TRUSTED = 0, DKIM_CLIENTS_ALL };

/* One DKIM signing key: dkim_key "name" { }. */
struct dkim_key_config {
	char *name;                /* the section title, shown in logs */
	char *domain;              /* d=, lower case */
	char *selector;            /* s= */
	char *key_file;            /* PEM private key, RSA >= 2048 or
	                              Ed25519 */
	int subdomains;            /* also signs mail From a subdomain */
};

/* Where mail for some domains goes.  With no hosts, the domain's MX hosts
 * (RFC 5321 section 5) are used. */
struct route_config {
	char *name;
	char **domains;            /* "example.com", ".example.com", "*" */
	size_t ndomains;
	char **hosts;              /* "host:port" or "[address]:port", in
	                              order of preference (failover) */
	size_t nhosts;
	enum tls_policy tls;
	char *ca_file;             /* "" = the system's store */
	int tls_min_version;       /* OpenSSL's TLS1_2_VERSION etc. */
	int auth;                  /* AUTH with the route's credentials */
	int auth_plaintext;        /* AUTH allowed without TLS */
	/* route "x" only: envelope senders it is for ("a@example.com",
	 * "@example.com", ".example.com"); none = any sender */
	char **senders;
	size_t nsenders;
	/* route "x" and smarthost: rewriting for the next hop's account */
	char *rewrite_sender;      /* MAIL FROM (never <>); "" = as queued */
	char *rewrite_from;        /* header From not allowed -> this; "" */
	char **allowed_from;       /* From addresses left alone, as senders */
	size_t nallowed_from;
	/* route "x" and smarthost: a pool when it has two hosts or more
	 * (host_pool.h).  hosts[i] is then "host:port" alone; its
	 * "priority=N weight=N" are here (NULL: list order, weight 1). */
	int *host_priority;
	int *host_weight;
	int host_failures;         /* failures in a row open a circuit */
	int host_cooldown;         /* seconds an open host is skipped */
	int probe_interval;        /* active probe, seconds; 0 = off */
	/* route "x" and smarthost: rate shaping (route_shaper.h); 0 = off */
	int rate_per_second;       /* messages (transactions) per second */
	int rate_per_minute;
	int rate_per_hour;         /* the hour and day counts are kept in */
	int rate_per_day;          /* the store across restarts */
	int max_connections;       /* at once; 0 = delivery.per_destination */
	int messages_per_connection;   /* then the agent reconnects */
	int recipients_per_message;    /* more go in further transactions */
};

struct ferry_config {
	char *path;                /* absolute path of the file */
	char *hostname;
	char *user;                /* queue runner, owner of the spool */
	char *smtpd_user;          /* SMTP workers */
	char *spool_dir;           /* absolute */

	struct listener_config *listeners;
	size_t nlisteners;

	/* worker pool */
	int workers_min_idle;
	int workers_max_idle;
	int workers_spare_idle;    /* seconds an idle worker beyond min_idle
	                              is kept; 0: kept (max_idle bounds) */
	int helper_idle;           /* seconds ferry-anvil and ferry-resolve
	                              stay without a worker; 0: they stay */
	int workers_max;
	int worker_sessions;       /* sessions before a worker is recycled */
	int sessions_per_worker;   /* concurrent sessions one worker holds */
	int client_names;          /* forward-confirmed reverse lookup of
	                              clients (ferry-resolve) */
	int client_name_timeout;   /* seconds one such lookup may take */
	int shutdown_timeout;      /* seconds sessions get to finish */

	/* limits */
	int64_t message_size_limit;
	int max_recipients;
	int max_line_length;       /* command lines, with CRLF */
	int max_data_line_length;  /* message lines, with CRLF */
	int max_errors;
	int command_timeout;       /* seconds, a deadline per command */
	int data_timeout;          /* seconds, a deadline for a whole message */

	/* relay */
	struct cidr *relay_networks;
	size_t nrelay_networks;
	char **accept_domains;     /* anyone may send to these ("example.com",
	                              ".example.com") */
	size_t naccept_domains;

	/* inbound TLS (defaults for listeners) */
	char *tls_cert_file, *tls_key_file;
	int tls_server_min_version;   /* 0x0303 / 0x0304 */
	char *tls_ciphers;            /* TLS 1.2 cipher list; "" = default */
	char *tls_ciphersuites;       /* TLS 1.3 suites; "" = default */
	char *tls_groups;             /* "" = default */
	char *tls_client_ca_file;     /* for client certificates */

	/* authentication */
	char *auth_users_file;        /* "user:crypt-hash[:senders]" */
	int auth_max_failures;        /* per address or user, then lockout */
	int auth_lockout;             /* seconds */

	/* the metrics and health endpoint (ferry-metrics), off by default */
	int metrics_enabled;
	char *metrics_address;        /* numeric address to listen on */
	int metrics_port;

	/* abuse limits, enforced across all workers */
	int max_connections;          /* in all */
	int max_connections_per_client;
	int connection_rate;          /* per client address per minute */
	int message_rate;             /* per client address per minute */
	int junk_command_limit;       /* NOOP, RSET, VRFY, EXPN, HELP between
	                                 two messages */
	int session_lifetime;         /* seconds a session may live without
	                                 a completed transaction */
	int output_buffer;            /* bytes of replies a client may leave
	                                 unread before it is dropped */
	int greet_pause;              /* ms to wait for a client that talks
	                                 before the greeting; 0 = only look */
	int stress_threshold;         /* percent of max_connections that
	                                 puts the relay in stress */
	int stress_memory_available;  /* percent of the machine's memory
	                                 under which the relay is in stress;
	                                 0 = memory does not count */
	int stress_timeout;           /* seconds: the idle limit of every
	                                 session while in stress */

	/* smarthost: the default route (also in routes[], named
	 * "smarthost", after every route section) */
	char *smarthost_host;
	int smarthost_port;

	/* delivery */
	char *deliver_user;        /* the delivery agents */
	char *token_user;          /* ferry-token (OAuth2 refresh tokens) */
	struct route_config *routes;
	size_t nroutes;
	struct route_config mx_route;  /* no route matched: MX delivery */
	int mx_port;               /* port of MX hosts (25) */
	char *admin_group;         /* may use ferryctl besides root; "" */
	int delivery_paused;       /* accept and queue, attempt nothing */
	/* queue { min_free }: below it intake is refused */
	int64_t min_free_bytes;
	int min_free_percent;      /* of the filesystem; -1: use the bytes */
	/* queue { warn_age, warn_stall, notify }: the stall warning
	 * (stall.h); seconds, 0 = off; notify "" = log and metric only */
	int64_t warn_age;
	int64_t warn_stall;
	char *stall_notify;
	/* history { retention }: seconds a message that left the queue is
	 * kept in the delivery history; 0 = keep none */
	int64_t history_retention;
	int delivery_agents;       /* agents (outgoing connections) at most;
	                              started when there is mail to send */
	int per_destination;       /* connections per next hop */
	int agent_jobs;            /* messages before an agent is replaced */
	int agent_idle;            /* seconds an idle agent is kept; 0: kept */
	int *retry_schedule;       /* seconds; the last value repeats */
	size_t nretry_schedule;
	int max_lifetime;          /* seconds in the queue before bouncing */
	int delay_warning;         /* seconds; 0 = no delay warning */
	int connect_timeout;
	int client_command_timeout;
	int client_data_timeout;
	int connection_idle;       /* seconds a connection is kept for reuse */
	char *resolver;            /* "" = system; "addr" or "addr:port" */
	char *credentials_file;    /* "" = none */

	/* DKIM signing (dkim { } and dkim_key "name" { }) */
	enum dkim_clients dkim_clients;
	char **dkim_headers;       /* header names to sign; "List-*" */
	size_t ndkim_headers;
	int64_t dkim_expire;       /* x= seconds after t=; 0 = no x= */
	struct dkim_key_config *dkim_keys;
	size_t ndkim_keys;

	/* logging */
	int log_target;      /* enum log_target: syslog, stderr, journald */
	int log_format;      /* enum log_format: text, json */
	int log_debug;
};

/* Parses path (or, when text is non-NULL, text as if it were read from
 * path).  Returns a config, or NULL with "file:line: reason" in err. */
struct ferry_config *config_load(const char *path, const char *text,
    char *err, size_t errlen);
/* For a process without privileges reading a file the master has
 * already checked, or a user's tool: keys and password files need not be
 * readable here (their paths must still be absolute). */
#define CONFIG_NO_FILE_CHECKS 0x1
/* config_load with flags (CONFIG_NO_FILE_CHECKS). */
struct ferry_config *config_load_flags(const char *path, const char *text,
    unsigned flags, char *err, size_t errlen);
void config_free(struct ferry_config *cfg);
/* How a dkim_key file is checked at load; NULL: not checked.  Set by
 * config_check_dkim_keys() (config_dkim.c) in the programs that vouch
 * for a file (ferryd, ferryctl) or sign (ferry-queue).  The other
 * children read the text the master has checked already, and config.c
 * alone does not link OpenSSL into them (its relocated data is about
 * 0.4 MiB of private memory in every process that maps libcrypto). */
extern int (*config_dkim_key_check)(const char *path, char *why,
    size_t whylen);
void config_check_dkim_keys(void);
/* queue { min_free }: "100M" (bytes, optional K/M/G, powers of 1024)
 * sets *bytes and *percent = -1; "5%" sets *percent (0..99) and
 * *bytes = 0.  0, or -1 when s is neither. */
int config_parse_min_free(const char *s, int64_t *bytes, int *percent);
/* history { retention }: "7d" - a whole number with an optional unit s,
 * m, h, d or w (none: seconds), at most CONFIG_DURATION_MAX seconds.
 * 0, or -1 when s is not one. */
#define CONFIG_DURATION_MAX (3650LL * 86400)
int config_parse_duration(const char *s, int64_t *secs);

/* The i-th option of the table: its section (NULL at the top level) and
 * name.  Returns 0 past the last one.  For documentation checks. */
int config_option_at(size_t i, const char **section, const char **name);

/* The route for a recipient domain: an exact domain, then the longest
 * ".suffix", then "*", then the smarthost; NULL means MX delivery with
 * cfg->mx_route's policy.  Routes with senders are not considered (as
 * config_route_select() with the null sender). */
const struct route_config *config_route_for(const struct ferry_config *cfg,
    const char *domain);
/* The route for a message from sender ("" = null sender) to a recipient
 * in domain.  First tier that has a candidate wins:
 *   1. senders and domains both match;
 *   2. domains match (exact or ".suffix"), the route has no senders;
 *   3. senders match, the route has no domains (or only "*");
 *   4. "*" matches (catch-all routes, then the smarthost, which is last);
 *   5. none: NULL, MX delivery.
 * Within a tier: the most specific domain (exact, then the longest
 * ".suffix"), then the most specific sender (an address, then "@domain",
 * then the longest ".domain"), then the first in the file. */
const struct route_config *config_route_select(const struct ferry_config *cfg,
    const char *sender, const char *domain);
const char *tls_policy_name(enum tls_policy p);

/* Reads a whole file into a NUL-terminated buffer (at most maxlen bytes);
 * NULL with errno set on failure. */
char *config_read_file(const char *path, size_t maxlen, size_t *lenp);

#endif

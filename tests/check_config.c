/*
 * check_config.c - unit tests for src/config.c: the shipped ferry.conf
 * (with users that exist here), every default, relative paths, several
 * listeners, and bad files refused with the exact "file:line: reason"
 * text; also config_read_file.
 */
#include "autoconfig.h"

#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "netaddr.h"

/* The name bad texts are "read from"; it is never opened. */
#define P "/cfgtest/ferry.conf"

/* The smallest acceptable file: one listener, everything else default. */
#define LISTEN "listen \"smtp\" {\n}\n"

/* --- helpers --------------------------------------------------------- */

static struct ferry_config *load_ok(const char *text)
{
	char err[512] = "";
	struct ferry_config *c = config_load(P, text, err, sizeof err);

	ck_assert_msg(c != NULL, "refused: %s\n--- text ---\n%.2000s", err,
	    text);
	return c;
}

/* Loads text expecting failure with exactly the message want. */
static void load_bad(const char *text, const char *want)
{
	char err[512] = "untouched";
	struct ferry_config *c = config_load(P, text, err, sizeof err);

	ck_assert_msg(c == NULL, "accepted:\n%s", text);
	ck_assert_str_eq(err, want);
}

static char *xdup(const char *s)
{
	char *p = strdup(s);

	ck_assert_ptr_nonnull(p);
	return p;
}

/* Replaces the single occurrence of from in s (which must occur exactly
 * once) by to; frees s. */
static char *replace_once(char *s, const char *from, const char *to)
{
	char *at = strstr(s, from), *out;
	size_t pre, flen = strlen(from), tlen = strlen(to);

	ck_assert_msg(at != NULL, "'%s' not found", from);
	ck_assert_msg(strstr(at + flen, from) == NULL, "'%s' occurs twice",
	    from);
	pre = (size_t)(at - s);
	out = malloc(strlen(s) - flen + tlen + 1);
	ck_assert_ptr_nonnull(out);
	memcpy(out, s, pre);
	memcpy(out + pre, to, tlen);
	strcpy(out + pre + tlen, at + flen);
	free(s);
	return out;
}

/* The text of a file of the source tree (relpath from its top). */
static char *source_file(const char *relpath)
{
	const char *dirs[3];
	char path[PATH_MAX];
	size_t i, len;
	char *text;

	dirs[0] = getenv("FERRY_SRCDIR");
	dirs[1] = ".";
	dirs[2] = "..";
	for (i = 0; i < 3; i++) {
		if (dirs[i] == NULL)
			continue;
		snprintf(path, sizeof path, "%s/%s", dirs[i], relpath);
		text = config_read_file(path, 1 << 20, &len);
		if (text != NULL) {
			ck_assert_uint_eq(strlen(text), len);
			return text;
		}
	}
	ck_abort_msg("%s not found (set FERRY_SRCDIR)", relpath);
	return NULL;
}

/* The text of the shipped etc/ferry.conf. */
static char *shipped_conf(void)
{
	return source_file("etc/ferry.conf");
}

/* The shipped file with users that exist on any test machine. */
static char *shipped_conf_local_users(void)
{
	char *t = shipped_conf();

	t = replace_once(t, "\nuser = \"ferry\"\n", "\nuser = \"daemon\"\n");
	t = replace_once(t, "\nsmtpd_user = \"ferry-smtpd\"\n",
	    "\nsmtpd_user = \"nobody\"\n");
	t = replace_once(t, "\ndeliver_user = \"ferry-deliver\"\n",
	    "\ndeliver_user = \"mail\"\n");
	return t;
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
	ck_assert_uint_eq(fwrite(text, 1, strlen(text), fp), strlen(text));
	ck_assert_int_eq(fclose(fp), 0);
}

static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/check_config.XXXXXX";
	char *d = mkdtemp(tmpl);

	ck_assert_msg(d != NULL, "mkdtemp: %s", strerror(errno));
	return xdup(d);
}

static void assert_cidr(const struct cidr *net, const char *addr, int want)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof ss);
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, addr, &sin6->sin6_addr),
		    1);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, addr, &sin->sin_addr), 1);
	}
	ck_assert_msg((cidr_match(net, (const struct sockaddr *)&ss) != 0) ==
	    want,
	    "%s: match should be %d", addr, want);
}

/* Every default a file that sets nothing gets, apart from users, paths
 * and listeners. */
static void assert_defaults(const struct ferry_config *c)
{
	ck_assert_int_eq(c->shutdown_timeout, 30);
	ck_assert_int_eq(c->workers_min_idle, 1);
	ck_assert_int_eq(c->workers_max_idle, 8);
	ck_assert_int_eq(c->workers_spare_idle, 60);
	ck_assert_int_eq(c->helper_idle, 100);
	ck_assert_int_eq(c->workers_max, 32);
	ck_assert_int_eq(c->worker_sessions, 1000);
	ck_assert(c->message_size_limit == 10485760);
	ck_assert_int_eq(c->max_recipients, 1000);
	ck_assert_int_eq(c->max_line_length, 2048);
	ck_assert_int_eq(c->max_data_line_length, 1000);
	ck_assert_int_eq(c->max_errors, 10);
	ck_assert_int_eq(c->command_timeout, 300);
	ck_assert_int_eq(c->data_timeout, 600);
	ck_assert_int_eq(c->stress_threshold, 80);
	ck_assert_int_eq(c->stress_timeout, 10);
	ck_assert_int_eq(c->stress_memory_available, 10);
	ck_assert_uint_eq(c->nrelay_networks, 2);
	/* 127.0.0.0/8 then ::1/128 */
	assert_cidr(&c->relay_networks[0], "127.0.0.1", 1);
	assert_cidr(&c->relay_networks[0], "127.255.255.255", 1);
	assert_cidr(&c->relay_networks[0], "128.0.0.1", 0);
	assert_cidr(&c->relay_networks[0], "126.255.255.255", 0);
	assert_cidr(&c->relay_networks[1], "::1", 1);
	assert_cidr(&c->relay_networks[1], "::2", 0);
	ck_assert_ptr_null(c->smarthost_host);
	ck_assert_int_eq(c->smarthost_port, 25);
	ck_assert_int_eq(c->log_target, LOG_TO_SYSLOG);
	ck_assert_int_eq(c->log_format, LOG_FORMAT_TEXT);
	ck_assert_int_eq(c->log_debug, 0);
}

/* --- good files ------------------------------------------------------ */

START_TEST(test_shipped_conf)
{
	char *text = shipped_conf_local_users();
	struct ferry_config *c = load_ok(text);

	ck_assert_str_eq(c->path, P);
	ck_assert_str_eq(c->user, "daemon");
	ck_assert_str_eq(c->smtpd_user, "nobody");
	ck_assert_str_eq(c->spool_dir, "/var/spool/ferry");
	ck_assert_uint_eq(c->nlisteners, 1);
	ck_assert_str_eq(c->listeners[0].name, "smtp");
	ck_assert_str_eq(c->listeners[0].address, "127.0.0.1");
	ck_assert_int_eq(c->listeners[0].port, 25);
	assert_defaults(c);
	config_free(c);
	free(text);
}
END_TEST

/* As shipped, the users are the packaged ones; where they do not exist
 * the file is refused naming the user.  (The line number is not checked
 * here: libconfuse 3.3 counts each '#' comment line as three lines, so
 * the number it reports for this heavily commented file is wrong.) */
START_TEST(test_shipped_conf_users_checked)
{
	static const char tail[] = ": user = \"ferry\": no such user";
	char *text = shipped_conf(), err[512];
	struct ferry_config *c;
	size_t n;

	if (getpwnam("ferry") != NULL) {
		free(text);
		return;     /* a machine with ferry installed */
	}
	c = config_load(P, text, err, sizeof err);
	ck_assert_ptr_null(c);
	n = strlen(err);
	ck_assert_msg(strncmp(err, P ":", sizeof(P ":") - 1) == 0 &&
	    n > sizeof tail && strcmp(err + n - (sizeof tail - 1), tail) == 0,
	    "%s", err);
	free(text);
}
END_TEST

START_TEST(test_minimal_defaults)
{
	struct ferry_config *c = load_ok(LISTEN);
	char host[256];

	assert_defaults(c);
	ck_assert_str_eq(c->user, "ferry");
	ck_assert_str_eq(c->smtpd_user, "ferry-smtpd");
	ck_assert_ptr_nonnull(c->spool_dir);
	ck_assert_msg(c->spool_dir[0] == '/', "spool_dir %s", c->spool_dir);
	ck_assert_msg(strstr(c->spool_dir, "/spool/ferry") != NULL,
	    "spool_dir %s", c->spool_dir);
	ck_assert_uint_eq(c->nlisteners, 1);
	ck_assert_str_eq(c->listeners[0].name, "smtp");
	ck_assert_str_eq(c->listeners[0].address, "127.0.0.1");
	ck_assert_int_eq(c->listeners[0].port, 25);
	/* hostname defaults to the system's */
	ck_assert_int_eq(gethostname(host, sizeof host), 0);
	host[sizeof host - 1] = '\0';
	ck_assert_str_eq(c->hostname, host[0] ? host : "localhost");
	config_free(c);
}
END_TEST

START_TEST(test_every_option_set)
{
	struct ferry_config *c = load_ok(
	    "hostname = \"mx1.example.net\"\n"
	    "user = \"daemon\"\n"
	    "smtpd_user = \"nobody\"\n"
	    "spool_dir = \"/srv/spool\"\n"
	    "shutdown_timeout = 0\n"
	    "listen \"in\" {\n"
	    "  address = \"0.0.0.0\"\n"
	    "  port = 2525\n"
	    "}\n"
	    "workers {\n"
	    "  min_idle = 0\n"
	    "  max_idle = 1\n"
	    "  spare_idle = 0\n"
	    "  helper_idle = 0\n"
	    "  max = 1\n"
	    "  sessions = 1\n"
	    "}\n"
	    "limits {\n"
	    "  message_size = 1024\n"
	    "  recipients = 100000\n"
	    "  line_length = 512\n"
	    "  data_line_length = 1048576\n"
	    "  errors = 1\n"
	    "  command_timeout = 3600\n"
	    "  data_timeout = 86400\n"
	    "}\n"
	    "relay {\n"
	    "  networks = { \"192.0.2.0/24\", \"2001:db8::/32\", "
	    "\"198.51.100.7\" }\n"
	    "}\n"
	    "smarthost {\n"
	    "  host = \"smtp.example.net\"\n"
	    "  port = 587\n"
	    "}\n"
	    "log {\n"
	    "  target = \"stderr\"\n"
	    "  debug = true\n"
	    "}\n");

	ck_assert_str_eq(c->hostname, "mx1.example.net");
	ck_assert_str_eq(c->user, "daemon");
	ck_assert_str_eq(c->smtpd_user, "nobody");
	ck_assert_str_eq(c->spool_dir, "/srv/spool");
	ck_assert_int_eq(c->shutdown_timeout, 0);
	ck_assert_uint_eq(c->nlisteners, 1);
	ck_assert_str_eq(c->listeners[0].name, "in");
	ck_assert_str_eq(c->listeners[0].address, "0.0.0.0");
	ck_assert_int_eq(c->listeners[0].port, 2525);
	ck_assert_int_eq(c->workers_min_idle, 0);
	ck_assert_int_eq(c->workers_max_idle, 1);
	ck_assert_int_eq(c->workers_spare_idle, 0);
	ck_assert_int_eq(c->helper_idle, 0);
	ck_assert_int_eq(c->workers_max, 1);
	ck_assert_int_eq(c->worker_sessions, 1);
	ck_assert(c->message_size_limit == 1024);
	ck_assert_int_eq(c->max_recipients, 100000);
	ck_assert_int_eq(c->max_line_length, 512);
	ck_assert_int_eq(c->max_data_line_length, 1048576);
	ck_assert_int_eq(c->max_errors, 1);
	ck_assert_int_eq(c->command_timeout, 3600);
	ck_assert_int_eq(c->data_timeout, 86400);
	ck_assert_uint_eq(c->nrelay_networks, 3);
	assert_cidr(&c->relay_networks[0], "192.0.2.200", 1);
	assert_cidr(&c->relay_networks[0], "192.0.3.1", 0);
	assert_cidr(&c->relay_networks[1], "2001:db8:ffff::1", 1);
	assert_cidr(&c->relay_networks[1], "2001:db9::1", 0);
	assert_cidr(&c->relay_networks[2], "198.51.100.7", 1);
	assert_cidr(&c->relay_networks[2], "198.51.100.8", 0);
	ck_assert_str_eq(c->smarthost_host, "smtp.example.net");
	ck_assert_int_eq(c->smarthost_port, 587);
	ck_assert_int_eq(c->log_target, LOG_TO_STDERR);
	ck_assert_int_eq(c->log_debug, 1);
	config_free(c);
}
END_TEST

START_TEST(test_largest_message_size)
{
	struct ferry_config *c = load_ok(LISTEN
	    "limits {\n  message_size = 2147483647\n}\n");

	ck_assert(c->message_size_limit == 2147483647LL);
	config_free(c);
	load_bad(LISTEN "limits {\n  message_size = 2147483648\n}\n",
	    P ":4: message_size = 2147483648 is out of range "
	    "(1024 to 2147483647)");
}
END_TEST

START_TEST(test_multiple_listeners)
{
	struct ferry_config *c = load_ok(
	    "listen \"v4\" {\n  address = \"127.0.0.1\"\n  port = 25\n}\n"
	    "listen \"v6\" {\n  address = \"::1\"\n  port = 25\n}\n"
	    "listen \"submission\" {\n  address = \"127.0.0.1\"\n"
	    "  port = 587\n}\n"
	    "listen \"any6\" {\n  address = \"::\"\n  port = 65535\n}\n");

	ck_assert_uint_eq(c->nlisteners, 4);
	ck_assert_str_eq(c->listeners[0].name, "v4");
	ck_assert_str_eq(c->listeners[0].address, "127.0.0.1");
	ck_assert_int_eq(c->listeners[0].port, 25);
	ck_assert_str_eq(c->listeners[1].name, "v6");
	ck_assert_str_eq(c->listeners[1].address, "::1");
	ck_assert_int_eq(c->listeners[1].port, 25);
	ck_assert_str_eq(c->listeners[2].name, "submission");
	ck_assert_str_eq(c->listeners[2].address, "127.0.0.1");
	ck_assert_int_eq(c->listeners[2].port, 587);
	ck_assert_str_eq(c->listeners[3].name, "any6");
	ck_assert_str_eq(c->listeners[3].address, "::");
	ck_assert_int_eq(c->listeners[3].port, 65535);
	config_free(c);
}
END_TEST

START_TEST(test_relative_spool_dir)
{
	struct ferry_config *c;
	char err[512];

	c = config_load("/etc/ferry/ferry.conf",
	    "spool_dir = \"spool\"\n" LISTEN, err, sizeof err);
	ck_assert_msg(c != NULL, "%s", err);
	ck_assert_str_eq(c->spool_dir, "/etc/ferry/spool");
	config_free(c);

	c = config_load("/etc/ferry/ferry.conf",
	    "spool_dir = \"../var/q\"\n" LISTEN, err, sizeof err);
	ck_assert_msg(c != NULL, "%s", err);
	ck_assert_str_eq(c->spool_dir, "/etc/ferry/../var/q");
	config_free(c);

	c = config_load("/etc/ferry/ferry.conf",
	    "spool_dir = \"/abs/spool\"\n" LISTEN, err, sizeof err);
	ck_assert_msg(c != NULL, "%s", err);
	ck_assert_str_eq(c->spool_dir, "/abs/spool");
	config_free(c);
}
END_TEST

/* A relative configuration path is made absolute from the working
 * directory, and spool_dir follows it. */
START_TEST(test_relative_config_path)
{
	char *dir = make_tmpdir(), cwd[PATH_MAX], want[PATH_MAX + 64];
	char path[PATH_MAX + 64], err[512];
	struct ferry_config *c;

	snprintf(path, sizeof path, "%s/f.conf", dir);
	write_file(path, "spool_dir = \"q\"\n" LISTEN);
	ck_assert(getcwd(cwd, sizeof cwd) != NULL);
	ck_assert_int_eq(chdir(dir), 0);

	c = config_load("f.conf", NULL, err, sizeof err);
	ck_assert_int_eq(chdir(cwd), 0);
	ck_assert_msg(c != NULL, "%s", err);
	/* getcwd() may resolve symlinks in /tmp; compare with it */
	ck_assert_msg(c->path[0] == '/', "path %s", c->path);
	ck_assert_msg(strlen(c->path) > 7 &&
	    strcmp(c->path + strlen(c->path) - 7, "/f.conf") == 0,
	    "path %s", c->path);
	snprintf(want, sizeof want, "%.*s/q",
	    (int)(strlen(c->path) - 7), c->path);
	ck_assert_str_eq(c->spool_dir, want);
	config_free(c);

	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
	free(dir);
}
END_TEST

START_TEST(test_load_from_file)
{
	char *dir = make_tmpdir(), path[PATH_MAX + 64], err[512];
	struct ferry_config *c;

	snprintf(path, sizeof path, "%s/ferry.conf", dir);
	write_file(path, "# comment\n"
	    "hostname = \"relay.example.org\"\n"
	    "spool_dir = \"spool\"\n"
	    "listen \"smtp\" {\n  port = 10025\n}\n");
	c = config_load(path, NULL, err, sizeof err);
	ck_assert_msg(c != NULL, "%s", err);
	ck_assert_str_eq(c->path, path);
	ck_assert_str_eq(c->hostname, "relay.example.org");
	ck_assert_int_eq(c->listeners[0].port, 10025);
	{
		char want[PATH_MAX + 64];

		snprintf(want, sizeof want, "%s/spool", dir);
		ck_assert_str_eq(c->spool_dir, want);
	}
	config_free(c);

	/* an error in a file names the file and line */
	write_file(path, LISTEN "\nlimits {\n  errors = 0\n}\n");
	c = config_load(path, NULL, err, sizeof err);
	ck_assert_ptr_null(c);
	{
		char want[PATH_MAX + 128];

		snprintf(want, sizeof want, "%s:5: errors = 0 is out of range "
		    "(1 to 1000)", path);
		ck_assert_str_eq(err, want);
	}

	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
	free(dir);
}
END_TEST

START_TEST(test_nonexistent_file)
{
	char *dir = make_tmpdir(), path[PATH_MAX + 64], err[512];
	char want[PATH_MAX + 128];

	snprintf(path, sizeof path, "%s/missing.conf", dir);
	ck_assert_ptr_null(config_load(path, NULL, err, sizeof err));
	snprintf(want, sizeof want, "%s: %s", path, strerror(ENOENT));
	ck_assert_str_eq(err, want);

	/* a directory is not a file */
	ck_assert_ptr_null(config_load(dir, NULL, err, sizeof err));
	snprintf(want, sizeof want, "%s: %s", dir, strerror(EISDIR));
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(rmdir(dir), 0);
	free(dir);
}
END_TEST

/* Loading leaves no state behind: a good file after a bad one works, and
 * loading the same text twice gives the same result. */
START_TEST(test_reload)
{
	struct ferry_config *a, *b;

	load_bad("bogus = 1\n" LISTEN, P ":1: no such option 'bogus'");
	a = load_ok("hostname = \"a.example\"\n" LISTEN);
	b = load_ok("hostname = \"a.example\"\n" LISTEN);
	ck_assert_str_eq(a->hostname, b->hostname);
	ck_assert_str_eq(a->spool_dir, b->spool_dir);
	ck_assert_int_eq(a->listeners[0].port, b->listeners[0].port);
	config_free(a);
	config_free(b);
	load_bad("bogus = 1\n" LISTEN, P ":1: no such option 'bogus'");
	config_free(NULL);
}
END_TEST

/* --- bad files ------------------------------------------------------- */

START_TEST(test_bad_unknown_option)
{
	load_bad("bogus = 1\n" LISTEN, P ":1: no such option 'bogus'");
	load_bad(LISTEN "\n\nlimits {\n  recipient = 5\n}\n",
	    P ":6: no such option 'recipient'");
	load_bad("listen \"smtp\" {\n  adress = \"::1\"\n}\n",
	    P ":2: no such option 'adress'");
}
END_TEST

START_TEST(test_bad_port)
{
	load_bad("listen \"smtp\" {\n  port = 70000\n}\n",
	    P ":2: port = 70000 is out of range (1 to 65535)");
	load_bad("listen \"smtp\" {\n  address = \"::1\"\n  port = 0\n}\n",
	    P ":3: port = 0 is out of range (1 to 65535)");
	load_bad("listen \"smtp\" {\n  port = -25\n}\n",
	    P ":2: port = -25 is out of range (1 to 65535)");
	load_bad("listen \"smtp\" {\n  port = 65536\n}\n",
	    P ":2: port = 65536 is out of range (1 to 65535)");
	load_bad("listen \"smtp\" {\n  port = smtp\n}\n",
	    P ":2: invalid integer value for option 'port'");
	load_bad(LISTEN "smarthost {\n  port = 0\n}\n",
	    P ":4: port = 0 is out of range (1 to 65535)");
}
END_TEST

START_TEST(test_bad_limits)
{
	load_bad(LISTEN "limits {\n  message_size = 1023\n}\n",
	    P ":4: message_size = 1023 is out of range (1024 to 2147483647)");
	load_bad(LISTEN "limits {\n  line_length = 511\n}\n",
	    P ":4: line_length = 511 is out of range (512 to 65536)");
	load_bad(LISTEN "limits {\n  data_line_length = 999\n}\n",
	    P ":4: data_line_length = 999 is out of range (1000 to 1048576)");
	load_bad(LISTEN "limits {\n  recipients = 0\n}\n",
	    P ":4: recipients = 0 is out of range (1 to 100000)");
	load_bad(LISTEN "limits {\n  command_timeout = 3601\n}\n",
	    P ":4: command_timeout = 3601 is out of range (1 to 3600)");
	load_bad(LISTEN "limits {\n  data_timeout = 0\n}\n",
	    P ":4: data_timeout = 0 is out of range (1 to 86400)");
	load_bad("shutdown_timeout = 3601\n" LISTEN,
	    P ":1: shutdown_timeout = 3601 is out of range (0 to 3600)");
	load_bad(LISTEN "workers {\n  max = 4097\n}\n",
	    P ":4: max = 4097 is out of range (1 to 4096)");
	load_bad(LISTEN "workers {\n  max_idle = 0\n}\n",
	    P ":4: max_idle = 0 is out of range (1 to 1024)");
	load_bad(LISTEN "workers {\n  spare_idle = 86401\n}\n",
	    P ":4: spare_idle = 86401 is out of range (0 to 86400)");
	load_bad(LISTEN "workers {\n  spare_idle = -1\n}\n",
	    P ":4: spare_idle = -1 is out of range (0 to 86400)");
	load_bad(LISTEN "workers {\n  helper_idle = 86401\n}\n",
	    P ":4: helper_idle = 86401 is out of range (0 to 86400)");
	load_bad(LISTEN "workers {\n  helper_idle = -1\n}\n",
	    P ":4: helper_idle = -1 is out of range (0 to 86400)");
	load_bad(LISTEN "workers {\n  sessions = 0\n}\n",
	    P ":4: sessions = 0 is out of range (1 to 1000000)");
}
END_TEST

START_TEST(test_bad_networks)
{
	load_bad(LISTEN "relay {\n  networks = { \"192.0.2.1/33\" }\n}\n",
	    P ":4: networks: \"192.0.2.1/33\": prefix length out of range "
	    "in '192.0.2.1/33' (IPv4: 0-32)");
	load_bad(LISTEN "relay {\n  networks = { \"10.0.0.1/8\" }\n}\n",
	    P ":4: networks: \"10.0.0.1/8\": host bits set beyond the prefix "
	    "in '10.0.0.1/8' (network is 10.0.0.0/8)");
	load_bad(LISTEN "\nrelay {\n  networks = { \"not-an-ip\" }\n}\n",
	    P ":5: networks: \"not-an-ip\": invalid IPv4 address "
	    "'not-an-ip'");
	/* a bad entry after good ones */
	load_bad(LISTEN "relay {\n  networks = { \"127.0.0.0/8\", "
	    "\"::1/129\" }\n}\n",
	    P ":4: networks: \"::1/129\": prefix length out of range in "
	    "'::1/129' (IPv6: 0-128)");
}
END_TEST

/* A list spread over lines is validated as a whole; libconfuse reports
 * a line inside the list. */
START_TEST(test_bad_networks_multiline)
{
	char err[512];
	struct ferry_config *c = config_load(P, LISTEN
	    "relay {\n"                        /* 3 */
	    "  networks = { \"127.0.0.0/8\",\n"  /* 4 */
	    "    \"10.0.0.1/8\",\n"              /* 5 */
	    "    \"::1/128\" }\n"                /* 6 */
	    "}\n", err, sizeof err);

	ck_assert_ptr_null(c);
	ck_assert_msg(strncmp(err, P ":4: ", sizeof(P ":4: ") - 1) == 0 ||
	    strncmp(err, P ":5: ", sizeof(P ":5: ") - 1) == 0 ||
	    strncmp(err, P ":6: ", sizeof(P ":6: ") - 1) == 0, "%s", err);
	ck_assert_msg(strstr(err, ": networks: \"10.0.0.1/8\": host bits set")
	    != NULL, "%s", err);
}
END_TEST

/* listen { proxy_protocol, proxy_networks, proxy_timeout }: off by
 * default; a version needs the balancers' networks. */
START_TEST(test_listen_proxy)
{
	struct ferry_config *c = load_ok(
	    "listen \"plain\" {\n  port = 25\n}\n"
	    "listen \"lb1\" {\n  port = 2525\n  proxy_protocol = \"v1\"\n"
	    "  proxy_networks = { \"10.0.0.0/8\", \"2001:db8::/32\" }\n}\n"
	    "listen \"lb2\" {\n  port = 465\n  proxy_protocol = \"v2\"\n"
	    "  proxy_networks = { \"192.0.2.1\" }\n  proxy_timeout = 30\n"
	    "}\n");

	ck_assert_int_eq(c->listeners[0].proxy, LPROXY_NONE);
	ck_assert_uint_eq(c->listeners[0].nproxy_networks, 0);
	ck_assert_int_eq(c->listeners[0].proxy_timeout, 5);
	ck_assert_int_eq(c->listeners[1].proxy, LPROXY_V1);
	ck_assert_uint_eq(c->listeners[1].nproxy_networks, 2);
	assert_cidr(&c->listeners[1].proxy_networks[0], "10.1.2.3", 1);
	assert_cidr(&c->listeners[1].proxy_networks[0], "11.0.0.1", 0);
	ck_assert_int_eq(c->listeners[2].proxy, LPROXY_V2);
	ck_assert_int_eq(c->listeners[2].proxy_timeout, 30);
	assert_cidr(&c->listeners[2].proxy_networks[0], "192.0.2.1", 1);
	assert_cidr(&c->listeners[2].proxy_networks[0], "192.0.2.2", 0);
	config_free(c);

	load_bad("listen \"lb\" {\n  proxy_protocol = \"v2\"\n}\n",
	    P ": listen \"lb\": proxy_protocol = v2 needs proxy_networks "
	    "(the balancers' addresses)");
	load_bad("listen \"lb\" {\n  proxy_protocol = \"v3\"\n}\n",
	    P ":2: proxy_protocol must be none, v1 or v2");
	load_bad("listen \"lb\" {\n  proxy_networks = { \"10.0.0.1/8\" }\n"
	    "}\n", P ":2: networks: \"10.0.0.1/8\": host bits set beyond "
	    "the prefix in '10.0.0.1/8' (network is 10.0.0.0/8)");
	load_bad("listen \"lb\" {\n  proxy_timeout = 0\n}\n",
	    P ":2: proxy_timeout = 0 is out of range (1 to 300)");
}
END_TEST

START_TEST(test_bad_listen_address)
{
	load_bad("listen \"smtp\" {\n  address = \"localhost\"\n}\n",
	    P ":2: address \"localhost\" is not a numeric IPv4 or IPv6 "
	    "address");
	load_bad("listen \"smtp\" {\n  port = 25\n  address = \"256.0.0.1\"\n"
	    "}\n",
	    P ":3: address \"256.0.0.1\" is not a numeric IPv4 or IPv6 "
	    "address");
	load_bad("listen \"smtp\" {\n  address = \"\"\n}\n",
	    P ":2: address \"\" is not a numeric IPv4 or IPv6 address");
	load_bad("listen \"smtp\" {\n  address = \"127.0.0.0/8\"\n}\n",
	    P ":2: address \"127.0.0.0/8\" is not a numeric IPv4 or IPv6 "
	    "address");
}
END_TEST

START_TEST(test_bad_user)
{
	load_bad("user = \"no-such-user-ferrytest\"\n" LISTEN,
	    P ":1: user = \"no-such-user-ferrytest\": no such user");
	load_bad("\n\nsmtpd_user = \"no-such-user-ferrytest\"\n" LISTEN,
	    P ":3: smtpd_user = \"no-such-user-ferrytest\": no such user");
	load_bad("user = \"\"\n" LISTEN, P ":1: user must name a user");
}
END_TEST

START_TEST(test_bad_log_target)
{
	load_bad(LISTEN "log {\n  target = \"file\"\n}\n",
	    P ":4: target must be \"syslog\", \"stderr\" or \"journald\"");
	load_bad(LISTEN "log {\n  debug = maybe\n}\n",
	    P ":4: invalid boolean value for option 'debug'");
	load_bad(LISTEN "log {\n  format = \"xml\"\n}\n",
	    P ":4: format must be \"text\" or \"json\"");
#ifndef HAVE_SYSTEMD
	load_bad(LISTEN "log {\n  target = \"journald\"\n}\n",
	    P ":4: target \"journald\": this ferry was built without "
	    "libsystemd");
#endif
}
END_TEST

/* log { format, target = "journald" } */
START_TEST(test_log_format_and_journald)
{
	struct ferry_config *c;

	c = load_ok(LISTEN "log {\n  format = \"json\"\n}\n");
	ck_assert_int_eq(c->log_format, LOG_FORMAT_JSON);
	ck_assert_int_eq(c->log_target, LOG_TO_SYSLOG);
	config_free(c);
#ifdef HAVE_SYSTEMD
	c = load_ok(LISTEN "log {\n  target = \"journald\"\n"
	    "  format = \"text\"\n}\n");
	ck_assert_int_eq(c->log_target, LOG_TO_JOURNAL);
	ck_assert_int_eq(c->log_format, LOG_FORMAT_TEXT);
	config_free(c);
#endif
}
END_TEST

START_TEST(test_bad_spool_and_smarthost)
{
	load_bad("spool_dir = \"\"\n" LISTEN,
	    P ":1: spool_dir must not be empty");
	load_bad(LISTEN "smarthost {\n  host = \"\"\n}\n",
	    P ":4: host must not be empty");
}
END_TEST

START_TEST(test_bad_no_listen)
{
	load_bad("", P ": no listen section: ferry would accept no mail");
	load_bad("user = \"daemon\"\nworkers {\n}\n",
	    P ": no listen section: ferry would accept no mail");
}
END_TEST

START_TEST(test_bad_duplicate_listener)
{
	load_bad("listen \"a\" {\n}\nlisten \"b\" {\n"
	    "  address = \"127.0.0.1\"\n  port = 25\n}\n",
	    P ": listen \"a\" and \"b\" both use 127.0.0.1 port 25");
	load_bad("listen \"a\" {\n  address = \"::1\"\n  port = 2525\n}\n"
	    "listen \"b\" {\n  port = 2525\n}\n"
	    "listen \"c\" {\n  address = \"::1\"\n  port = 2525\n}\n",
	    P ": listen \"a\" and \"c\" both use ::1 port 2525");
	/* the same title twice is refused by the parser */
	load_bad("listen \"a\" {\n}\n\nlisten \"a\" {\n  port = 26\n}\n",
	    P ":4: found duplicate title 'a'");
}
END_TEST

START_TEST(test_bad_workers)
{
	load_bad(LISTEN "workers {\n  min_idle = 9\n}\n",
	    P ": workers: min_idle (9) is larger than max_idle (8)");
	load_bad(LISTEN "workers {\n  max = 4\n}\n",
	    P ": workers: max_idle (8) is larger than max (4)");
	load_bad(LISTEN "workers {\n  min_idle = 5\n  max_idle = 6\n"
	    "  max = 5\n}\n",
	    P ": workers: max_idle (6) is larger than max (5)");
}
END_TEST

/* Stress mode: the threshold is a percentage; the stress timeout is at
 * most command_timeout (a longer one, or the default with a shorter
 * command_timeout, is taken as command_timeout, not refused). */
START_TEST(test_bad_stress)
{
	struct ferry_config *c;

	load_bad(LISTEN "limits {\n  stress_threshold = 0\n}\n",
	    P ":4: stress_threshold = 0 is out of range (1 to 100)");
	load_bad(LISTEN "limits {\n  stress_threshold = 101\n}\n",
	    P ":4: stress_threshold = 101 is out of range (1 to 100)");
	load_bad(LISTEN "limits {\n  stress_timeout = 0\n}\n",
	    P ":4: stress_timeout = 0 is out of range (1 to 3600)");
	load_bad(LISTEN "limits {\n  stress_memory_available = 101\n}\n",
	    P ":4: stress_memory_available = 101 is out of range (0 to 100)");
	c = load_ok(LISTEN "limits {\n  command_timeout = 5\n}\n");
	ck_assert_int_eq(c->stress_timeout, 5);
	config_free(c);
	c = load_ok(LISTEN "limits {\n  command_timeout = 30\n"
	    "  stress_timeout = 31\n  stress_threshold = 95\n}\n");
	ck_assert_int_eq(c->stress_timeout, 30);
	ck_assert_int_eq(c->stress_threshold, 95);
	config_free(c);
	c = load_ok(LISTEN "limits {\n  stress_timeout = 20\n}\n");
	ck_assert_int_eq(c->stress_timeout, 20);
	config_free(c);
}
END_TEST


/* Routes: exact domain, then the longest ".suffix", then "*", then the
 * smarthost; nothing matching means MX delivery. */
START_TEST(test_routes)
{
	struct ferry_config *c = load_ok(LISTEN
	    "route \"lan\" {\n  domains = { \"example.com\", \".example.com\" }\n"
	    "  hosts = { \"mail.example.com:25\", \"[192.0.2.1]:2525\" }\n"
	    "  tls = \"verify\"\n  auth = true\n}\n"
	    "route \"deep\" {\n  domains = { \".b.example.com\" }\n}\n"
	    "smarthost {\n  host = \"smtp.example.net\"\n  port = 587\n"
	    "  tls = \"encrypt\"\n}\n"
	    "mx {\n  port = 2525\n  tls = \"none\"\n}\n"
	    "delivery {\n  retry_schedule = { 1, 2, 3 }\n  agents = 7\n"
	    "  resolver = \"127.0.0.1:5353\"\n}\n");
	const struct route_config *r;

	ck_assert_uint_eq(c->nroutes, 3);   /* lan, deep, smarthost */
	r = config_route_for(c, "example.com");
	ck_assert_str_eq(r->name, "lan");
	ck_assert_int_eq(r->tls, TLS_VERIFY);
	ck_assert_int_eq(r->auth, 1);
	ck_assert_uint_eq(r->nhosts, 2);
	ck_assert_str_eq(r->hosts[1], "[192.0.2.1]:2525");
	ck_assert_str_eq(config_route_for(c, "EXAMPLE.com")->name, "lan");
	ck_assert_str_eq(config_route_for(c, "a.example.com")->name, "lan");
	ck_assert_str_eq(config_route_for(c, "x.b.example.com")->name,
	    "deep");
	r = config_route_for(c, "other.org");
	ck_assert_str_eq(r->name, "smarthost");
	ck_assert_str_eq(r->hosts[0], "smtp.example.net:587");
	ck_assert_int_eq(r->tls, TLS_ENCRYPT);
	ck_assert_int_eq(c->mx_port, 2525);
	ck_assert_int_eq(c->mx_route.tls, TLS_NONE);
	ck_assert_uint_eq(c->nretry_schedule, 3);
	ck_assert_int_eq(c->retry_schedule[2], 3);
	ck_assert_int_eq(c->delivery_agents, 7);
	ck_assert_str_eq(c->resolver, "127.0.0.1:5353");
	config_free(c);

	/* no smarthost: unmatched domains go to their MX hosts */
	c = load_ok(LISTEN "route \"lan\" {\n  domains = { \"lan\" }\n}\n");
	ck_assert_ptr_null(config_route_for(c, "example.org"));
	ck_assert_str_eq(config_route_for(c, "lan")->name, "lan");
	ck_assert_int_eq(c->mx_port, 25);
	ck_assert_int_eq(c->mx_route.tls, TLS_MAY);
	config_free(c);
}
END_TEST

/* Sender-dependent routes: a route matching sender and domain, then one
 * matching the domain only, then one matching the sender only, then "*"
 * and the smarthost, then MX; within a tier the most specific domain,
 * then the most specific sender, then the first in the file. */
START_TEST(test_sender_routes)
{
	struct ferry_config *c = load_ok(LISTEN
	    "route \"billing-partner\" {\n"
	    "  senders = { \"@billing.example.com\" }\n"
	    "  domains = { \"partner.example\" }\n}\n"
	    "route \"partner\" {\n  domains = { \"partner.example\" }\n}\n"
	    "route \"billing\" {\n  senders = { \"@billing.example.com\" }\n"
	    "  rewrite_sender = \"bounces@example.com\"\n}\n"
	    "route \"alerts\" {\n  senders = { \"alerts@example.com\" }\n"
	    "  domains = { \"*\" }\n}\n"
	    "route \"sub\" {\n  senders = { \".example.com\" }\n}\n"
	    "route \"sub-deep\" {\n  senders = { \".x.example.com\" }\n}\n"
	    "route \"sub-again\" {\n  senders = { \".x.example.com\" }\n}\n"
	    "route \"addr-vs-domain\" {\n  senders = { \"@ops.example.com\" }\n"
	    "}\n"
	    "route \"addr\" {\n  senders = { \"pager@ops.example.com\" }\n}\n"
	    "smarthost {\n  host = \"smtp.example.net\"\n"
	    "  rewrite_from = \"relay@example.com\"\n"
	    "  allowed_from = { \"@example.com\", \"a@b.example\" }\n}\n");
	const struct route_config *r;

	ck_assert_uint_eq(c->nroutes, 10);
	/* 1. sender and domain beat 2. domain only */
	ck_assert_str_eq(config_route_select(c, "inv@billing.example.com",
	    "partner.example")->name, "billing-partner");
	ck_assert_str_eq(config_route_select(c, "x@other.org",
	    "partner.example")->name, "partner");
	/* 2. domain only beats 3. sender only */
	ck_assert_str_eq(config_route_select(c, "a@x.example.com",
	    "partner.example")->name, "partner");
	/* 3. sender only beats 4. the smarthost; "*" with senders is
	 * sender only; any case */
	r = config_route_select(c, "inv@BILLING.example.com", "other.org");
	ck_assert_str_eq(r->name, "billing");
	ck_assert_str_eq(r->rewrite_sender, "bounces@example.com");
	ck_assert_str_eq(r->rewrite_from, "");
	ck_assert_str_eq(config_route_select(c, "Alerts@Example.com",
	    "other.org")->name, "alerts");
	/* within a tier: the address beats "@domain"; the longest
	 * ".domain" beats a shorter one; then the first in the file */
	ck_assert_str_eq(config_route_select(c, "pager@ops.example.com",
	    "other.org")->name, "addr");
	ck_assert_str_eq(config_route_select(c, "x@ops.example.com",
	    "other.org")->name, "addr-vs-domain");
	ck_assert_str_eq(config_route_select(c, "a@b.x.example.com",
	    "other.org")->name, "sub-deep");
	/* sender only: domains "*" is no better than none */
	ck_assert_str_eq(config_route_select(c, "a@b.x.example.com",
	    "partner.example")->name, "partner");
	ck_assert_str_eq(config_route_select(c, "a@y.example.com",
	    "other.org")->name, "sub");
	/* ".example.com" is subdomains only; "@" domains exactly */
	r = config_route_select(c, "a@example.com", "other.org");
	ck_assert_str_eq(r->name, "smarthost");
	ck_assert_str_eq(r->rewrite_from, "relay@example.com");
	ck_assert_uint_eq(r->nallowed_from, 2);
	ck_assert_str_eq(r->allowed_from[1], "a@b.example");
	ck_assert_str_eq(config_route_select(c, "a@x.billing.example.com",
	    "other.org")->name, "sub");
	/* the null sender matches no senders list */
	ck_assert_str_eq(config_route_select(c, "", "other.org")->name,
	    "smarthost");
	ck_assert_str_eq(config_route_select(c, "", "partner.example")->name,
	    "partner");
	ck_assert_str_eq(config_route_for(c, "partner.example")->name,
	    "partner");
	config_free(c);

	c = load_ok(LISTEN "route \"t1\" {\n  senders = { \"@t.example\" }\n"
	    "}\nroute \"t2\" {\n  senders = { \"@t.example\" }\n"
	    "  domains = { \"*\" }\n}\n");
	ck_assert_str_eq(config_route_select(c, "x@t.example", "o.org")->name,
	    "t1");
	config_free(c);

	/* no smarthost: a sender-only route, else MX */
	c = load_ok(LISTEN "route \"b\" {\n  senders = { \"@b.example\" }\n"
	    "}\n");
	ck_assert_str_eq(config_route_select(c, "x@b.example", "o.org")->name,
	    "b");
	ck_assert_ptr_null(config_route_select(c, "x@c.example", "o.org"));
	/* a route with senders and domains needs both */
	config_free(c);
	c = load_ok(LISTEN "route \"b\" {\n  senders = { \"@b.example\" }\n"
	    "  domains = { \"d.example\" }\n}\n");
	ck_assert_ptr_null(config_route_select(c, "x@b.example", "o.org"));
	ck_assert_ptr_null(config_route_select(c, "x@c.example",
	    "d.example"));
	ck_assert_str_eq(config_route_select(c, "x@b.example",
	    "d.example")->name, "b");
	config_free(c);
}
END_TEST

START_TEST(test_bad_sender_routes)
{
	load_bad(LISTEN "route \"r\" {\n  senders = { \"billing\" }\n}\n",
	    P ":4: senders: \"billing\" is not an address, \"@domain\" or "
	    "\".domain\"");
	load_bad(LISTEN "route \"r\" {\n  senders = { \"@a..b\" }\n}\n",
	    P ":4: senders: \"@a..b\" is not an address, \"@domain\" or "
	    "\".domain\"");
	load_bad(LISTEN "route \"r\" {\n  domains = { \"a.example\" }\n"
	    "  rewrite_sender = \"<a@b.example>\"\n}\n",
	    P ":5: rewrite_sender: \"<a@b.example>\" is not an address "
	    "(local@domain)");
	load_bad(LISTEN "smarthost {\n  host = \"h\"\n"
	    "  rewrite_from = \"relay\"\n}\n",
	    P ":5: rewrite_from: \"relay\" is not an address (local@domain)");
	load_bad(LISTEN "smarthost {\n  host = \"h\"\n"
	    "  allowed_from = { \"a b@c.example\" }\n}\n",
	    P ":5: allowed_from: \"a b@c.example\" is not an address, "
	    "\"@domain\" or \".domain\"");
}
END_TEST

START_TEST(test_bad_routes)
{
	load_bad(LISTEN "route \"r\" {\n  domains = { \"a.example\" }\n"
	    "  tls = \"maybe\"\n}\n",
	    P ":5: tls must be none, may, encrypt or verify");
	load_bad(LISTEN "route \"r\" {\n  domains = { \"a.example\" }\n"
	    "  hosts = { \"host:99999\" }\n}\n",
	    P ":5: hosts: \"host:99999\" is not host:port or [address]:port");
	load_bad(LISTEN "route \"r\" {\n  domains = { \"a..example\" }\n}\n",
	    P ":4: domains: \"a..example\" is not a domain, \".domain\" or "
	    "\"*\"");
	load_bad(LISTEN "route \"r\" {\n  hosts = { \"h:25\" }\n}\n",
	    P ": route \"r\" has no domains and no senders");
	load_bad(LISTEN "delivery {\n  retry_schedule = { 60, 0 }\n}\n",
	    P ":4: retry_schedule = 0 is out of range (1 to 604800)");
	load_bad(LISTEN "delivery {\n  resolver = \"dns.example\"\n}\n",
	    P ":4: resolver \"dns.example\" is not address, address:port or "
	    "[address]:port");
	load_bad(LISTEN "smarthost {\n  host = \"h\"\n"
	    "  tls_min_version = \"SSLv3\"\n}\n",
	    P ":5: tls_min_version must be TLSv1.2 or TLSv1.3");
}
END_TEST

START_TEST(test_bad_syntax)
{
	load_bad(LISTEN "workers {\n  max = 4\n}\n}\n",
	    P ":6: '}' without a section to close");
	load_bad("listen \"smtp\" {\n  port = = 25\n}\n",
	    P ":2: unexpected token '='");
	/* an unclosed section is reported where it opens, even at the end
	 * of the file (libconfuse alone accepts that) */
	load_bad(LISTEN "workers {\n  min_idle = 2\n",
	    P ":3: '{' is never closed");
	load_bad(LISTEN "workers {\n  min_idle = 2\nlimits {\n}\n",
	    P ":3: '{' is never closed");
	/* braces inside strings and comments do not count */
	load_bad(LISTEN "# {\n/* { */\nhostname = \"a{b\"\n",
	    P ":5: hostname \"a{b\": character '{' is not allowed in a "
	    "host name");
}
END_TEST

/* Line numbers stay true after comments of every kind (libconfuse 3.3
 * alone counts a "#" line as three). */
START_TEST(test_line_numbers_after_comments)
{
	load_bad("# one\n# two\n// three\n/* four\n five */\n"
	    "a = 1 # six\nport = 1\n",
	    P ":6: no such option 'a'");
	load_bad("# one\n# two\n# three\n" LISTEN "bogus = 1\n",
	    P ":6: no such option 'bogus'");
}
END_TEST

START_TEST(test_bad_hostname)
{
	load_bad("hostname = \"mx_1.example\"\n" LISTEN,
	    P ":1: hostname \"mx_1.example\": character '_' is not allowed "
	    "in a host name");
	load_bad("\nhostname = \"mx 1\"\n" LISTEN,
	    P ":2: hostname \"mx 1\": character ' ' is not allowed in a "
	    "host name");
	load_bad("hostname = \"\"\n" LISTEN,
	    P ":1: hostname must be 1 to 253 characters");
	{
		char text[600], name[260];

		memset(name, 'a', 254);
		name[254] = '\0';
		snprintf(text, sizeof text, "hostname = \"%s\"\n" LISTEN,
		    name);
		load_bad(text, P ":1: hostname must be 1 to 253 characters");
		name[253] = '\0';
		snprintf(text, sizeof text, "hostname = \"%s\"\n" LISTEN,
		    name);
		{
			struct ferry_config *c = load_ok(text);

			ck_assert_uint_eq(strlen(c->hostname), 253);
			config_free(c);
		}
	}
}
END_TEST

/* Only the first error is reported. */
START_TEST(test_first_error_wins)
{
	load_bad("\nbogus = 1\nother = 2\n" LISTEN,
	    P ":2: no such option 'bogus'");
}
END_TEST

/* A short error buffer gets a cut, terminated message. */
START_TEST(test_small_error_buffer)
{
	char err[16];

	memset(err, 'x', sizeof err);
	ck_assert_ptr_null(config_load(P, "bogus = 1\n" LISTEN, err,
	    sizeof err));
	ck_assert_uint_eq(strlen(err), sizeof err - 1);
	ck_assert_str_eq(err, "/cfgtest/ferry.");

	memset(err, 'x', sizeof err);
	ck_assert_ptr_null(config_load(P, "", err, sizeof err));
	ck_assert_uint_eq(strlen(err), sizeof err - 1);
}
END_TEST

/* --- config_read_file ------------------------------------------------ */

START_TEST(test_read_file)
{
	char *dir = make_tmpdir(), path[PATH_MAX + 64], *buf, *big;
	size_t len = 12345, i;

	snprintf(path, sizeof path, "%s/f", dir);

	write_file(path, "");
	buf = config_read_file(path, 1 << 20, &len);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(buf, "");
	free(buf);

	write_file(path, "a = 1\n");
	buf = config_read_file(path, 1 << 20, NULL);
	ck_assert_ptr_nonnull(buf);
	ck_assert_str_eq(buf, "a = 1\n");
	free(buf);

	/* larger than the first buffer: grows and keeps every byte */
	big = malloc(100001);
	ck_assert_ptr_nonnull(big);
	for (i = 0; i < 100000; i++)
		big[i] = (char)('a' + i % 26);
	big[100000] = '\0';
	write_file(path, big);
	buf = config_read_file(path, 1 << 20, &len);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(len, 100000);
	ck_assert_int_eq(memcmp(buf, big, 100001), 0);
	free(buf);

	/* too large */
	errno = 0;
	ck_assert_ptr_null(config_read_file(path, 4096, &len));
	ck_assert_int_eq(errno, EFBIG);
	free(big);

	ck_assert_int_eq(unlink(path), 0);
	errno = 0;
	ck_assert_ptr_null(config_read_file(path, 1 << 20, &len));
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(rmdir(dir), 0);
	free(dir);
}
END_TEST

/* maxlen bounds the buffer, NUL included: a file of maxlen - 1 bytes is
 * read, one of maxlen bytes is refused - for any maxlen. */
START_TEST(test_read_file_limit)
{
	static const size_t limits[] = { 1, 2, 100, 4095, 4096, 4097, 5000,
	    8192 };
	char *dir = make_tmpdir(), path[PATH_MAX + 64], *text, *buf;
	size_t i, len;

	snprintf(path, sizeof path, "%s/f", dir);
	text = malloc(8193);
	ck_assert_ptr_nonnull(text);
	for (i = 0; i < sizeof limits / sizeof limits[0]; i++) {
		size_t max = limits[i];

		memset(text, 'x', max - 1);
		text[max - 1] = '\0';
		write_file(path, text);
		buf = config_read_file(path, max, &len);
		ck_assert_msg(buf != NULL, "maxlen %zu, file of %zu: %s", max,
		    max - 1, strerror(errno));
		ck_assert_uint_eq(len, max - 1);
		ck_assert_int_eq(memcmp(buf, text, max), 0);
		free(buf);

		memset(text, 'x', max);
		text[max] = '\0';
		write_file(path, text);
		errno = 0;
		buf = config_read_file(path, max, &len);
		ck_assert_msg(buf == NULL, "maxlen %zu: file of %zu read", max,
		    max);
		ck_assert_int_eq(errno, EFBIG);
	}
	free(text);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
	free(dir);
}
END_TEST

/* metrics { }: off by default, the documented defaults, and never on a
 * mail listener's port. */
START_TEST(test_metrics_section)
{
	struct ferry_config *c = load_ok(LISTEN);

	ck_assert_int_eq(c->metrics_enabled, 0);
	ck_assert_str_eq(c->metrics_address, "127.0.0.1");
	ck_assert_int_eq(c->metrics_port, 9469);
	config_free(c);
	c = load_ok(LISTEN "metrics {\n  enabled = true\n"
	    "  address = \"::1\"\n  port = 9100\n}\n");
	ck_assert_int_eq(c->metrics_enabled, 1);
	ck_assert_str_eq(c->metrics_address, "::1");
	ck_assert_int_eq(c->metrics_port, 9100);
	config_free(c);
	load_bad(LISTEN "metrics {\n  enabled = true\n  port = 25\n}\n",
	    P ": metrics port 25 is the port of listen \"smtp\"");
	load_bad(LISTEN "metrics {\n  address = \"localhost\"\n}\n",
	    P ":4: address \"localhost\" is not a numeric IPv4 or IPv6 "
	    "address");
	load_bad(LISTEN "metrics {\n  port = 0\n}\n",
	    P ":4: port = 0 is out of range (1 to 65535)");
}
END_TEST

/* --- documentation: every option of the table in ferry.conf(5) and in
 * etc/ferry.conf ------------------------------------------------------- */

/* Nonzero when word occurs in s[0..n) as a whole option name. */
static int has_word(const char *s, size_t n, const char *word)
{
	size_t wl = strlen(word), i;

	for (i = 0; i + wl <= n; i++) {
		if (memcmp(s + i, word, wl) != 0)
			continue;
		if ((i == 0 || !(islower((unsigned char)s[i - 1]) ||
		    s[i - 1] == '_')) && (i + wl == n ||
		    !(islower((unsigned char)s[i + wl]) || s[i + wl] == '_')))
			return 1;
	}
	return 0;
}

/*
 * Whether the man page text documents option name of section (NULL: top
 * level): under the .SH heading naming the section ("TOP-LEVEL OPTIONS",
 * "LISTEN SECTIONS", "SMARTHOST, ROUTE AND MX SECTIONS"), a .TP whose tag
 * line names the option before its "(default".
 */
static int man_documents(const char *text, const char *section,
    const char *name)
{
	char want[64];
	const char *line = text;
	int in_section = 0, after_tp = 0;
	size_t i;

	snprintf(want, sizeof want, "%s", section ? section : "top-level");
	for (i = 0; want[i]; i++)
		want[i] = (char)toupper((unsigned char)want[i]);
	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);

		if (len >= 4 && strncmp(line, ".SH ", 4) == 0) {
			char head[256];
			size_t k, hl = len < sizeof head ? len : sizeof head - 1;

			memcpy(head, line, hl);
			head[hl] = '\0';
			for (k = 0; head[k]; k++)
				if (head[k] == ',')
					head[k] = ' ';
			in_section = 0;
			for (char *tok = strtok(head + 4, " "); tok != NULL;
			    tok = strtok(NULL, " "))
				if (strcmp(tok, want) == 0)
					in_section = 1;
			after_tp = 0;
		} else if (len >= 3 && strncmp(line, ".TP", 3) == 0) {
			after_tp = 1;
		} else if (after_tp) {
			const char *dflt = strstr(line, "(default");

			if (in_section && line[0] == '.' && has_word(line,
			    dflt != NULL && dflt < line + len ?
			    (size_t)(dflt - line) : len, name))
				return 1;
			after_tp = 0;
		}
		line += len + (end != NULL);
	}
	return 0;
}

/*
 * Whether the annotated configuration text shows option name of section
 * (NULL: top level) as "name = ...", set or commented out with one '#'
 * (at the start of the line or after the indentation), at the top level
 * or inside a "section [\"title\"] {" block.
 */
static int conf_documents(const char *text, const char *section,
    const char *name)
{
	const char *line = text;
	char current[64] = "";
	int in_block = 0;

	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char buf[512], *p, *q;
		size_t bl = len < sizeof buf ? len : sizeof buf - 1;
		int indented;

		memcpy(buf, line, bl);
		buf[bl] = '\0';
		line += len + (end != NULL);
		p = buf;
		if (*p == '#')
			p++;
		indented = *p == ' ' || *p == '\t';
		while (*p == ' ' || *p == '\t')
			p++;
		if (indented && *p == '#')      /* "    #name = value" */
			p++;
		q = p + strlen(p);
		while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
			*--q = '\0';
		if (!indented && !in_block && q > p && q[-1] == '{') {
			size_t wl = strspn(p, "abcdefghijklmnopqrstuvwxyz_");

			if (wl > 0 && wl < sizeof current) {
				memcpy(current, p, wl);
				current[wl] = '\0';
				in_block = 1;
			}
			continue;
		}
		if (in_block && strcmp(p, "}") == 0) {
			in_block = 0;
			continue;
		}
		if ((section == NULL) != !in_block)
			continue;
		if (section != NULL && strcmp(current, section) != 0)
			continue;
		if (section == NULL && indented)
			continue;
		if (strncmp(p, name, strlen(name)) == 0) {
			const char *r = p + strlen(name);

			while (*r == ' ')
				r++;
			if (*r == '=')
				return 1;
		}
	}
	return 0;
}

/* The checkers themselves: they find what is there and miss what is not. */
START_TEST(test_doc_checkers)
{
	static const char man[] =
	    ".SH TOP-LEVEL OPTIONS\n.TP\n.BR user \" (default \" x )\n"
	    "text naming port\n"
	    ".SH LISTEN SECTIONS\n.TP\n.BR cert_file \", \" key_file \" "
	    "(default \" x )\n.TP\n.BR auth \" (default false)\"\n"
	    "Needs\n.BR auth_plaintext_networks .\n"
	    ".SH SMARTHOST, ROUTE AND MX SECTIONS\n.TP\n.B hosts\n";
	static const char conf[] =
	    "user = \"ferry\"\n#hostname = \"x\"\n"
	    "listen \"smtp\" {\n    port = 25\n    #auth = true\n}\n"
	    "#mx {\n#    port = 25\n#}\n"
	    "# a comment: smtpd_user = \"x\"\n";

	ck_assert(man_documents(man, NULL, "user"));
	ck_assert(!man_documents(man, NULL, "port"));
	ck_assert(man_documents(man, "listen", "cert_file"));
	ck_assert(man_documents(man, "listen", "key_file"));
	ck_assert(man_documents(man, "listen", "auth"));
	ck_assert(!man_documents(man, "listen", "auth_plaintext_networks"));
	ck_assert(!man_documents(man, "tls", "cert_file"));
	ck_assert(man_documents(man, "route", "hosts"));
	ck_assert(man_documents(man, "mx", "hosts"));
	ck_assert(!man_documents(man, "listen", "user"));

	ck_assert(conf_documents(conf, NULL, "user"));
	ck_assert(conf_documents(conf, NULL, "hostname"));
	ck_assert(!conf_documents(conf, NULL, "smtpd_user"));
	ck_assert(!conf_documents(conf, NULL, "port"));
	ck_assert(conf_documents(conf, "listen", "port"));
	ck_assert(conf_documents(conf, "listen", "auth"));
	ck_assert(conf_documents(conf, "mx", "port"));
	ck_assert(!conf_documents(conf, "mx", "auth"));
	ck_assert(!conf_documents(conf, "listen", "user"));
}
END_TEST

/* Every option in the table is documented in the man page and the
 * annotated file, in its own section. */
START_TEST(test_every_option_documented)
{
	char *man = source_file("packaging/man/ferry.conf.5");
	char *conf = source_file("etc/ferry.conf");
	const char *section, *name;
	size_t i, missing = 0;
	int saw_top = 0, saw_listen_port = 0;

	for (i = 0; config_option_at(i, &section, &name); i++) {
		if (section == NULL && strcmp(name, "hostname") == 0)
			saw_top = 1;
		if (section != NULL && strcmp(section, "listen") == 0 &&
		    strcmp(name, "port") == 0)
			saw_listen_port = 1;
		if (!man_documents(man, section, name)) {
			fprintf(stderr, "ferry.conf.5: %s%s%s is missing\n",
			    section ? section : "", section ? " { " : "",
			    name);
			missing++;
		}
		if (!conf_documents(conf, section, name)) {
			fprintf(stderr, "etc/ferry.conf: %s%s%s is missing\n",
			    section ? section : "", section ? " { " : "",
			    name);
			missing++;
		}
	}
	/* the walk sees the table: top-level and section rows */
	ck_assert(saw_top);
	ck_assert(saw_listen_port);
	ck_assert_msg(missing == 0, "%zu options undocumented (see stderr)",
	    missing);
	free(man);
	free(conf);
}
END_TEST


/* history { retention }: a duration with a unit, 0 keeps none. */
START_TEST(test_history_retention)
{
	struct ferry_config *c;
	int64_t v;

	c = load_ok(LISTEN);
	ck_assert_int_eq(c->history_retention, 7 * 86400);
	config_free(c);
	c = load_ok(LISTEN "history {\n  retention = 2h\n}\n");
	ck_assert_int_eq(c->history_retention, 7200);
	config_free(c);
	c = load_ok(LISTEN "history {\n  retention = 0\n}\n");
	ck_assert_int_eq(c->history_retention, 0);
	config_free(c);
	ck_assert_int_eq(config_parse_duration("90", &v), 0);
	ck_assert_int_eq(v, 90);
	ck_assert_int_eq(config_parse_duration("2w", &v), 0);
	ck_assert_int_eq(v, 14 * 86400);
	ck_assert_int_eq(config_parse_duration("3650d", &v), 0);
	ck_assert_int_eq(config_parse_duration("3651d", &v), -1);
	ck_assert_int_eq(config_parse_duration("7y", &v), -1);
	ck_assert_int_eq(config_parse_duration("d", &v), -1);
	ck_assert_int_eq(config_parse_duration("7dd", &v), -1);
	ck_assert_int_eq(config_parse_duration("-1d", &v), -1);
	load_bad(LISTEN "history {\n  retention = 7y\n}\n", P ":4: retention "
	    "must be a whole number with an optional s, m, h, d or w "
	    "(\"7d\"), at most 3650 days");
}
END_TEST

/* queue { warn_age, warn_stall, notify }: the stall warning's
 * thresholds are durations (0 turns one off), notify "" or a mailbox. */
START_TEST(test_stall_warning_options)
{
	struct ferry_config *c;

	c = load_ok(LISTEN);
	ck_assert_int_eq(c->warn_age, 86400);
	ck_assert_int_eq(c->warn_stall, 1800);
	ck_assert_str_eq(c->stall_notify, "");
	config_free(c);
	c = load_ok(LISTEN "queue {\n  warn_age = 2h\n  warn_stall = 0\n"
	    "  notify = \"postmaster@example.com\"\n}\n");
	ck_assert_int_eq(c->warn_age, 7200);
	ck_assert_int_eq(c->warn_stall, 0);
	ck_assert_str_eq(c->stall_notify, "postmaster@example.com");
	config_free(c);
	load_bad(LISTEN "queue {\n  warn_stall = 30x\n}\n", P ":4: "
	    "warn_stall must be a whole number with an optional s, m, h, d or "
	    "w (\"7d\"), at most 3650 days");
	load_bad(LISTEN "queue {\n  notify = \"postmaster\"\n}\n", P ":4: "
	    "notify must be \"\" or a mailbox \"local@domain\", not "
	    "\"postmaster\"");
	load_bad(LISTEN "queue {\n  notify = \"a b@example.com\"\n}\n", P
	    ":4: notify must be \"\" or a mailbox \"local@domain\", not "
	    "\"a b@example.com\"");
}
END_TEST

/* A route's hosts as a pool: priority=N and weight=N after the host,
 * list order without them, the breaker options, and clear errors. */
START_TEST(test_pool_hosts)
{
	struct ferry_config *c;
	const struct route_config *r;

	c = load_ok(LISTEN "route \"pool\" {\n  domains = { \"*\" }\n"
	    "  hosts = { \"mx1.internal:25 priority=10 weight=3\",\n"
	    "    \"mx2.internal:25  weight=1 priority=10\",\n"
	    "    \"backup.internal:25 priority=20\" }\n"
	    "  host_failures = 2\n  host_cooldown = 15\n"
	    "  probe_interval = 60\n}\n");
	r = &c->routes[0];
	ck_assert_uint_eq(r->nhosts, 3);
	ck_assert_str_eq(r->hosts[0], "mx1.internal:25");
	ck_assert_str_eq(r->hosts[1], "mx2.internal:25");
	ck_assert_str_eq(r->hosts[2], "backup.internal:25");
	ck_assert_int_eq(r->host_priority[0], 10);
	ck_assert_int_eq(r->host_priority[1], 10);
	ck_assert_int_eq(r->host_priority[2], 20);
	ck_assert_int_eq(r->host_weight[0], 3);
	ck_assert_int_eq(r->host_weight[1], 1);
	ck_assert_int_eq(r->host_weight[2], 1);
	ck_assert_int_eq(r->host_failures, 2);
	ck_assert_int_eq(r->host_cooldown, 15);
	ck_assert_int_eq(r->probe_interval, 60);
	config_free(c);

	/* today's form: list order, weight 1, default breaker */
	c = load_ok(LISTEN "route \"r\" {\n  domains = { \"*\" }\n"
	    "  hosts = { \"a:25\", \"[192.0.2.1]:2525\" }\n}\n");
	r = &c->routes[0];
	ck_assert_str_eq(r->hosts[1], "[192.0.2.1]:2525");
	ck_assert_int_eq(r->host_priority[0], 0);
	ck_assert_int_eq(r->host_priority[1], 1);
	ck_assert_int_eq(r->host_weight[1], 1);
	ck_assert_int_eq(r->host_failures, 3);
	ck_assert_int_eq(r->host_cooldown, 30);
	ck_assert_int_eq(r->probe_interval, 0);
	config_free(c);

	/* smarthost { hosts } is a pool too */
	c = load_ok(LISTEN "smarthost {\n  hosts = { \"a:25 weight=2\", "
	    "\"b:25\" }\n  host_cooldown = 5\n}\n");
	r = &c->routes[c->nroutes - 1];
	ck_assert_str_eq(r->name, "smarthost");
	ck_assert_uint_eq(r->nhosts, 2);
	ck_assert_str_eq(r->hosts[0], "a:25");
	ck_assert_int_eq(r->host_weight[0], 2);
	ck_assert_int_eq(r->host_cooldown, 5);
	config_free(c);

	load_bad(LISTEN "route \"r\" {\n  domains = { \"*\" }\n"
	    "  hosts = { \"a:25 prio=1\" }\n}\n",
	    P ":5: hosts: \"a:25 prio=1\" has \"prio=1\": only priority=N "
	    "and weight=N may follow the host");
	load_bad(LISTEN "route \"r\" {\n  domains = { \"*\" }\n"
	    "  hosts = { \"a:25 weight=0\" }\n}\n",
	    P ":5: hosts: \"a:25 weight=0\" has \"weight=0\": weight must "
	    "be a number from 1 to 1000");
	load_bad(LISTEN "route \"r\" {\n  domains = { \"*\" }\n"
	    "  hosts = { \"a:25 priority=x\" }\n}\n",
	    P ":5: hosts: \"a:25 priority=x\" has \"priority=x\": priority "
	    "must be a number from 0 to 65535");
	load_bad(LISTEN "route \"r\" {\n  domains = { \"*\" }\n"
	    "  hosts = { \"a:25 weight=2 weight=3\" }\n}\n",
	    P ":5: hosts: \"a:25 weight=2 weight=3\" gives weight twice");
	load_bad(LISTEN "smarthost {\n  host = a\n  hosts = { \"b:25\" }\n"
	    "}\n", P ": smarthost: host and hosts are both set; give one of "
	    "them");
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("good");

	tcase_add_test(tc, test_shipped_conf);
	tcase_add_test(tc, test_shipped_conf_users_checked);
	tcase_add_test(tc, test_minimal_defaults);
	tcase_add_test(tc, test_metrics_section);
	tcase_add_test(tc, test_history_retention);
	tcase_add_test(tc, test_stall_warning_options);
	tcase_add_test(tc, test_every_option_set);
	tcase_add_test(tc, test_largest_message_size);
	tcase_add_test(tc, test_multiple_listeners);
	tcase_add_test(tc, test_listen_proxy);
	tcase_add_test(tc, test_relative_spool_dir);
	tcase_add_test(tc, test_relative_config_path);
	tcase_add_test(tc, test_load_from_file);
	tcase_add_test(tc, test_nonexistent_file);
	tcase_add_test(tc, test_reload);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad");
	tcase_add_test(tc, test_bad_unknown_option);
	tcase_add_test(tc, test_bad_port);
	tcase_add_test(tc, test_bad_limits);
	tcase_add_test(tc, test_bad_networks);
	tcase_add_test(tc, test_bad_networks_multiline);
	tcase_add_test(tc, test_bad_listen_address);
	tcase_add_test(tc, test_bad_user);
	tcase_add_test(tc, test_bad_log_target);
	tcase_add_test(tc, test_log_format_and_journald);
	tcase_add_test(tc, test_bad_spool_and_smarthost);
	tcase_add_test(tc, test_bad_no_listen);
	tcase_add_test(tc, test_bad_duplicate_listener);
	tcase_add_test(tc, test_bad_workers);
	tcase_add_test(tc, test_bad_stress);
	tcase_add_test(tc, test_bad_syntax);
	tcase_add_test(tc, test_routes);
	tcase_add_test(tc, test_bad_routes);
	tcase_add_test(tc, test_sender_routes);
	tcase_add_test(tc, test_bad_sender_routes);
	tcase_add_test(tc, test_line_numbers_after_comments);
	tcase_add_test(tc, test_bad_hostname);
	tcase_add_test(tc, test_first_error_wins);
	tcase_add_test(tc, test_small_error_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("read_file");
	tcase_add_test(tc, test_read_file);
	tcase_add_test(tc, test_read_file_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("doc");
	tcase_add_test(tc, test_doc_checkers);
	tcase_add_test(tc, test_every_option_documented);
	tcase_add_test(tc, test_pool_hosts);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * check_netaddr.c - unit tests for src/netaddr.c: CIDR parsing (good and
 * bad, with the error text), matching IPv4, IPv6 and IPv4-mapped peers,
 * prefix boundaries, and printing sockaddrs.
 */
#include <check.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "netaddr.h"

/* --- helpers --------------------------------------------------------- */

static struct sockaddr_storage mk_sa(const char *addr, int port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof ss);
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		ck_assert_int_eq(inet_pton(AF_INET6, addr, &sin6->sin6_addr),
		    1);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		ck_assert_int_eq(inet_pton(AF_INET, addr, &sin->sin_addr), 1);
	}
	return ss;
}

static struct cidr parse_ok(const char *s)
{
	struct cidr c;
	char err[256] = "untouched";

	ck_assert_msg(cidr_parse(s, &c, err, sizeof err) == 0,
	    "'%s' rejected: %s", s, err);
	return c;
}

/* Parses s, expecting failure with an error containing want. */
static void parse_bad(const char *s, const char *want)
{
	struct cidr c, before;
	char err[256] = "";

	memset(&c, 0x5a, sizeof c);
	before = c;
	ck_assert_msg(cidr_parse(s, &c, err, sizeof err) == -1,
	    "'%s' accepted", s ? s : "(null)");
	ck_assert_msg(strstr(err, want) != NULL,
	    "'%s': error '%s' does not contain '%s'", s ? s : "(null)", err,
	    want);
	ck_assert_msg(memcmp(&c, &before, sizeof c) == 0,
	    "'%s': output written on error", s ? s : "(null)");
}

static int match(const char *net, const char *addr)
{
	struct cidr c = parse_ok(net);
	struct sockaddr_storage ss = mk_sa(addr, 25);

	return cidr_match(&c, (const struct sockaddr *)&ss);
}

/* --- parsing ------------------------------------------------------------- */

START_TEST(test_parse_v4)
{
	struct cidr c;
	static const uint8_t net[4] = { 192, 0, 2, 0 };
	static const uint8_t zero[16] = { 0 };

	c = parse_ok("192.0.2.0/24");
	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_uint_eq(c.prefix, 24);
	ck_assert_mem_eq(c.addr, net, 4);
	ck_assert_mem_eq(c.addr + 4, zero, 12);

	c = parse_ok("192.0.2.7");
	ck_assert_uint_eq(c.prefix, 32);
	ck_assert_uint_eq(c.addr[3], 7);

	c = parse_ok("0.0.0.0/0");
	ck_assert_uint_eq(c.prefix, 0);
	c = parse_ok("10.0.0.0/8");
	ck_assert_uint_eq(c.prefix, 8);
	c = parse_ok("192.0.2.6/31");
	ck_assert_uint_eq(c.prefix, 31);
	c = parse_ok("192.0.2.128/25");
	ck_assert_uint_eq(c.addr[3], 128);
	c = parse_ok("255.255.255.255/32");
	ck_assert_uint_eq(c.addr[0], 255);
	/* prefix is plain decimal; a leading zero is still decimal */
	c = parse_ok("10.0.0.0/08");
	ck_assert_uint_eq(c.prefix, 8);
}
END_TEST

START_TEST(test_parse_v6)
{
	struct cidr c;
	static const uint8_t db8[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	static const uint8_t zero[16] = { 0 };

	c = parse_ok("2001:db8::/32");
	ck_assert_int_eq(c.family, AF_INET6);
	ck_assert_uint_eq(c.prefix, 32);
	ck_assert_mem_eq(c.addr, db8, 16);

	c = parse_ok("::/0");
	ck_assert_uint_eq(c.prefix, 0);
	ck_assert_mem_eq(c.addr, zero, 16);

	c = parse_ok("::1");
	ck_assert_uint_eq(c.prefix, 128);
	ck_assert_uint_eq(c.addr[15], 1);

	c = parse_ok("2001:db8::1/128");
	ck_assert_uint_eq(c.prefix, 128);
	c = parse_ok("fe80::/10");
	ck_assert_uint_eq(c.addr[0], 0xfe);
	ck_assert_uint_eq(c.addr[1], 0x80);
	c = parse_ok("2001:db8:0:1::/127");
	ck_assert_uint_eq(c.prefix, 127);
	c = parse_ok("::ffff:192.0.2.0/120");
	ck_assert_int_eq(c.family, AF_INET6);
	ck_assert_uint_eq(c.addr[12], 192);
	c = parse_ok("2001:DB8::/32");
	ck_assert_mem_eq(c.addr, db8, 16);
}
END_TEST

START_TEST(test_parse_bad)
{
	parse_bad(NULL, "empty");
	parse_bad("", "empty");
	parse_bad("/24", "missing address");
	parse_bad("192.0.2.0/", "missing prefix length");
	parse_bad("192.0.2.0/x", "invalid prefix length");
	parse_bad("192.0.2.0/-1", "invalid prefix length");
	parse_bad("192.0.2.0/+8", "invalid prefix length");
	parse_bad("192.0.2.0/ 24", "invalid prefix length");
	parse_bad("192.0.2.0/24x", "trailing garbage 'x'");
	parse_bad("192.0.2.0/24 ", "trailing garbage");
	parse_bad("192.0.2.0/24/8", "trailing garbage '/8'");
	parse_bad("192.0.2.0/33", "out of range");
	parse_bad("192.0.2.0/33", "IPv4: 0-32");
	parse_bad("0.0.0.0/99999999999999999999", "out of range");
	parse_bad("2001:db8::/129", "IPv6: 0-128");
	parse_bad("192.0.2.1/24", "host bits set");
	parse_bad("192.0.2.1/24", "network is 192.0.2.0/24");
	parse_bad("192.0.2.7/31", "network is 192.0.2.6/31");
	parse_bad("10.0.0.1/0", "network is 0.0.0.0/0");
	parse_bad("2001:db8::1/64", "network is 2001:db8::/64");
	parse_bad("2001:db8::1/127", "network is 2001:db8::/127");
	parse_bad("192.0.2", "invalid IPv4 address '192.0.2'");
	parse_bad("192.0.2.256", "invalid IPv4 address");
	parse_bad("192.0.2.1.5/32", "invalid IPv4 address");
	parse_bad("010.0.0.0/8", "invalid IPv4 address");
	parse_bad(" 10.0.0.0/8", "invalid IPv4 address");
	parse_bad("example.org", "invalid IPv4 address");
	parse_bad("2001:db8:::/48", "invalid IPv6 address");
	parse_bad("fe80::1%eth0", "invalid IPv6 address");
	parse_bad("2001:db8::g/48", "invalid IPv6 address");
	parse_bad("1234567890123456789012345678901234567890123456789012/8",
	    "invalid address");
}
END_TEST

START_TEST(test_parse_err_buffer)
{
	struct cidr c;
	char err[8];

	/* err may be NULL, and a short buffer is truncated, terminated */
	ck_assert_int_eq(cidr_parse("nope", &c, NULL, 0), -1);
	ck_assert_int_eq(cidr_parse("nope", &c, err, 0), -1);
	memset(err, 'X', sizeof err);
	ck_assert_int_eq(cidr_parse("192.0.2.1/24", &c, err, sizeof err),
	    -1);
	ck_assert_uint_eq(strlen(err), sizeof err - 1);
	ck_assert_int_eq(cidr_parse("192.0.2.0/24", &c, NULL, 0), 0);
}
END_TEST

/* --- matching -------------------------------------------------------------- */

START_TEST(test_match_v4)
{
	ck_assert(match("192.0.2.0/24", "192.0.2.0"));
	ck_assert(match("192.0.2.0/24", "192.0.2.255"));
	ck_assert(!match("192.0.2.0/24", "192.0.3.0"));
	ck_assert(!match("192.0.2.0/24", "192.0.1.255"));
	ck_assert(match("10.0.0.0/8", "10.255.255.255"));
	ck_assert(!match("10.0.0.0/8", "11.0.0.0"));
	/* /0 matches every IPv4 address, and no IPv6 one */
	ck_assert(match("0.0.0.0/0", "0.0.0.0"));
	ck_assert(match("0.0.0.0/0", "255.255.255.255"));
	ck_assert(!match("0.0.0.0/0", "2001:db8::1"));
	/* /32: exactly one */
	ck_assert(match("192.0.2.7/32", "192.0.2.7"));
	ck_assert(!match("192.0.2.7", "192.0.2.6"));
	ck_assert(!match("192.0.2.7", "192.0.2.8"));
	/* /31: two addresses */
	ck_assert(!match("192.0.2.6/31", "192.0.2.5"));
	ck_assert(match("192.0.2.6/31", "192.0.2.6"));
	ck_assert(match("192.0.2.6/31", "192.0.2.7"));
	ck_assert(!match("192.0.2.6/31", "192.0.2.8"));
	/* prefix not on a byte boundary */
	ck_assert(match("192.0.2.128/25", "192.0.2.200"));
	ck_assert(!match("192.0.2.128/25", "192.0.2.127"));
	ck_assert(match("172.16.0.0/12", "172.31.255.255"));
	ck_assert(!match("172.16.0.0/12", "172.32.0.0"));
	ck_assert(!match("172.16.0.0/12", "172.15.255.255"));
}
END_TEST

START_TEST(test_match_v6)
{
	ck_assert(match("2001:db8::/32", "2001:db8::1"));
	ck_assert(match("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
	ck_assert(!match("2001:db8::/32", "2001:db9::"));
	ck_assert(!match("2001:db8::/32", "192.0.2.1"));
	/* /0 matches every IPv6 address, but not a plain IPv4 peer */
	ck_assert(match("::/0", "::"));
	ck_assert(match("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
	ck_assert(!match("::/0", "192.0.2.1"));
	/* /128 */
	ck_assert(match("::1", "::1"));
	ck_assert(!match("::1/128", "::2"));
	ck_assert(!match("::1/128", "::"));
	/* /127 */
	ck_assert(match("2001:db8::/127", "2001:db8::1"));
	ck_assert(!match("2001:db8::/127", "2001:db8::2"));
	/* odd prefixes */
	ck_assert(match("fe80::/10", "febf::1"));
	ck_assert(!match("fe80::/10", "fec0::1"));
	ck_assert(match("2001:db8:8000::/33", "2001:db8:8000::1"));
	ck_assert(!match("2001:db8:8000::/33", "2001:db8:7fff::1"));
}
END_TEST

START_TEST(test_match_mapped)
{
	/* an IPv4-mapped peer matches IPv4 networks */
	ck_assert(match("192.0.2.0/24", "::ffff:192.0.2.1"));
	ck_assert(!match("192.0.2.0/24", "::ffff:192.0.3.1"));
	ck_assert(match("0.0.0.0/0", "::ffff:10.1.2.3"));
	ck_assert(match("192.0.2.7/32", "::ffff:192.0.2.7"));
	ck_assert(!match("192.0.2.7/32", "::ffff:192.0.2.6"));
	ck_assert(match("192.0.2.6/31", "::ffff:192.0.2.7"));
	/* ...and IPv6 networks that cover it as IPv6 */
	ck_assert(match("::ffff:0:0/96", "::ffff:192.0.2.1"));
	ck_assert(match("::/0", "::ffff:192.0.2.1"));
	/* not mapped: the IPv4-compatible form and others don't count */
	ck_assert(!match("192.0.2.0/24", "::192.0.2.1"));
	ck_assert(!match("192.0.2.0/24", "::fffe:192.0.2.1"));
	ck_assert(!match("192.0.2.0/24", "1::ffff:192.0.2.1"));
	ck_assert(!match("0.0.0.0/0", "2001:db8::1"));
}
END_TEST

START_TEST(test_match_odd)
{
	struct cidr c = parse_ok("0.0.0.0/0");
	struct sockaddr_un sun_;

	memset(&sun_, 0, sizeof sun_);
	sun_.sun_family = AF_UNIX;
	ck_assert(!cidr_match(&c, (const struct sockaddr *)&sun_));
	ck_assert(!cidr_match(&c, NULL));
	ck_assert(!cidr_match(NULL, (const struct sockaddr *)&sun_));
	ck_assert(!cidr_match_any(&c, 1, (const struct sockaddr *)&sun_));
}
END_TEST

START_TEST(test_match_any)
{
	struct cidr nets[3];
	struct sockaddr_storage ss;

	nets[0] = parse_ok("10.0.0.0/8");
	nets[1] = parse_ok("2001:db8::/32");
	nets[2] = parse_ok("192.0.2.1");

	ss = mk_sa("192.0.2.1", 0);
	ck_assert(cidr_match_any(nets, 3, (const struct sockaddr *)&ss));
	ck_assert(!cidr_match_any(nets, 2, (const struct sockaddr *)&ss));
	ss = mk_sa("2001:db8::5", 0);
	ck_assert(cidr_match_any(nets, 3, (const struct sockaddr *)&ss));
	ss = mk_sa("::ffff:10.9.8.7", 0);
	ck_assert(cidr_match_any(nets, 3, (const struct sockaddr *)&ss));
	ss = mk_sa("192.0.2.2", 0);
	ck_assert(!cidr_match_any(nets, 3, (const struct sockaddr *)&ss));
	ck_assert(!cidr_match_any(nets, 0, (const struct sockaddr *)&ss));
	ck_assert(!cidr_match_any(NULL, 0, (const struct sockaddr *)&ss));
}
END_TEST

/* --- printing ---------------------------------------------------------------- */

static void ntop_is(const char *addr, const char *want)
{
	struct sockaddr_storage ss = mk_sa(addr, 0);
	char buf[64];

	memset(buf, 'X', sizeof buf);
	sockaddr_ntop((const struct sockaddr *)&ss, buf, sizeof buf);
	ck_assert_str_eq(buf, want);
}

START_TEST(test_ntop)
{
	struct sockaddr_un sun_;
	struct sockaddr_storage ss;
	char buf[64], small[8];

	ntop_is("192.0.2.1", "192.0.2.1");
	ntop_is("0.0.0.0", "0.0.0.0");
	ntop_is("2001:db8::1", "2001:db8::1");
	ntop_is("2001:0DB8:0:0:0:0:0:1", "2001:db8::1");
	ntop_is("::", "::");
	ntop_is("::1", "::1");
	ntop_is("::ffff:192.0.2.1", "192.0.2.1");
	ntop_is("::ffff:0.0.0.0", "0.0.0.0");

	memset(&sun_, 0, sizeof sun_);
	sun_.sun_family = AF_UNIX;
	sockaddr_ntop((const struct sockaddr *)&sun_, buf, sizeof buf);
	ck_assert_str_eq(buf, "unknown");
	sockaddr_ntop(NULL, buf, sizeof buf);
	ck_assert_str_eq(buf, "unknown");

	/* a short buffer is truncated and terminated; 0 writes nothing */
	ss = mk_sa("2001:db8::1234", 0);
	sockaddr_ntop((const struct sockaddr *)&ss, small, sizeof small);
	ck_assert_str_eq(small, "2001:db");
	small[0] = 'Z';
	sockaddr_ntop((const struct sockaddr *)&ss, small, 0);
	ck_assert_int_eq(small[0], 'Z');
}
END_TEST

START_TEST(test_port)
{
	struct sockaddr_storage ss;
	struct sockaddr_un sun_;

	ss = mk_sa("192.0.2.1", 25);
	ck_assert_int_eq(sockaddr_port((const struct sockaddr *)&ss), 25);
	ss = mk_sa("192.0.2.1", 65535);
	ck_assert_int_eq(sockaddr_port((const struct sockaddr *)&ss), 65535);
	ss = mk_sa("2001:db8::1", 587);
	ck_assert_int_eq(sockaddr_port((const struct sockaddr *)&ss), 587);
	ss = mk_sa("::ffff:192.0.2.1", 0);
	ck_assert_int_eq(sockaddr_port((const struct sockaddr *)&ss), 0);
	memset(&sun_, 0, sizeof sun_);
	sun_.sun_family = AF_UNIX;
	ck_assert_int_eq(sockaddr_port((const struct sockaddr *)&sun_), -1);
	ck_assert_int_eq(sockaddr_port(NULL), -1);
}
END_TEST

static int hp(const char *s, int def, unsigned flags, struct hostport *out)
{
	char err[128];

	err[0] = '\0';
	if (netaddr_parse_hostport(s, def, flags, out, err, sizeof err) < 0) {
		ck_assert_msg(err[0] != '\0', "no reason for '%s'", s ? s : "");
		return -1;
	}
	return 0;
}

START_TEST(test_hostport_forms)
{
	struct hostport h;

	ck_assert_int_eq(hp("mail.example.net", 25, 0, &h), 0);
	ck_assert_str_eq(h.host, "mail.example.net");
	ck_assert_int_eq(h.port, 25);
	ck_assert_int_eq(h.bracketed, 0);

	ck_assert_int_eq(hp("mail.example.net:587", 25, 0, &h), 0);
	ck_assert_str_eq(h.host, "mail.example.net");
	ck_assert_int_eq(h.port, 587);

	ck_assert_int_eq(hp("192.0.2.1:2525", 25, 0, &h), 0);
	ck_assert_str_eq(h.host, "192.0.2.1");
	ck_assert_int_eq(h.port, 2525);

	ck_assert_int_eq(hp("[2001:db8::1]:465", 25, 0, &h), 0);
	ck_assert_str_eq(h.host, "2001:db8::1");
	ck_assert_int_eq(h.port, 465);
	ck_assert_int_eq(h.bracketed, 1);

	ck_assert_int_eq(hp("[192.0.2.1]", 53, 0, &h), 0);
	ck_assert_str_eq(h.host, "192.0.2.1");
	ck_assert_int_eq(h.port, 53);
	ck_assert_int_eq(h.bracketed, 1);

	ck_assert_int_eq(hp("h:1", 25, 0, &h), 0);
	ck_assert_int_eq(h.port, 1);
	ck_assert_int_eq(hp("h:65535", 25, 0, &h), 0);
	ck_assert_int_eq(h.port, 65535);
	ck_assert_int_eq(hp("h:00025", 0, 0, &h), 0);
	ck_assert_int_eq(h.port, 25);
}
END_TEST

START_TEST(test_hostport_bare_ipv6)
{
	struct hostport h;

	/* without the flag a bare IPv6 address is a host with a bad port */
	ck_assert_int_eq(hp("2001:db8::1", 25, 0, &h), -1);
	ck_assert_int_eq(hp("::1", 25, 0, &h), -1);
	ck_assert_int_eq(hp("2001:db8::1", 25, HOSTPORT_BARE_IPV6, &h), 0);
	ck_assert_str_eq(h.host, "2001:db8::1");
	ck_assert_int_eq(h.port, 25);
	ck_assert_int_eq(h.bracketed, 0);
	ck_assert_int_eq(hp("::1", 53, HOSTPORT_BARE_IPV6, &h), 0);
	ck_assert_str_eq(h.host, "::1");
	ck_assert_int_eq(h.port, 53);
	/* one colon is host:port even with the flag */
	ck_assert_int_eq(hp("192.0.2.1:26", 25, HOSTPORT_BARE_IPV6, &h), 0);
	ck_assert_str_eq(h.host, "192.0.2.1");
	ck_assert_int_eq(h.port, 26);
}
END_TEST

START_TEST(test_hostport_bad)
{
	struct hostport h;
	char err[8], longhost[300];

	h.port = 4242;
	ck_assert_int_eq(hp("", 25, 0, &h), -1);
	ck_assert_int_eq(hp(NULL, 25, 0, &h), -1);
	ck_assert_int_eq(hp(":25", 25, 0, &h), -1);            /* empty host */
	ck_assert_int_eq(hp("[]:25", 25, 0, &h), -1);
	ck_assert_int_eq(hp("[]", 25, 0, &h), -1);
	ck_assert_int_eq(hp("h:", 25, 0, &h), -1);             /* empty port */
	ck_assert_int_eq(hp("h:0", 25, 0, &h), -1);            /* port 0 */
	ck_assert_int_eq(hp("h:65536", 25, 0, &h), -1);
	ck_assert_int_eq(hp("h:99999999999999999999", 25, 0, &h), -1);
	ck_assert_int_eq(hp("h:-1", 25, 0, &h), -1);
	ck_assert_int_eq(hp("h:+25", 25, 0, &h), -1);
	ck_assert_int_eq(hp("h:25x", 25, 0, &h), -1);          /* non-digits */
	ck_assert_int_eq(hp("h: 25", 25, 0, &h), -1);
	ck_assert_int_eq(hp("h:2:5", 25, 0, &h), -1);
	ck_assert_int_eq(hp("[2001:db8::1:25", 25, 0, &h), -1); /* no ']' */
	ck_assert_int_eq(hp("[::1]25", 25, 0, &h), -1);
	ck_assert_int_eq(hp("[::1]:", 25, 0, &h), -1);
	ck_assert_int_eq(hp("a b:25", 25, 0, &h), -1);
	ck_assert_int_eq(hp("a\tb", 25, 0, &h), -1);
	ck_assert_int_eq(hp("a]b", 25, 0, &h), -1);
	memset(longhost, 'a', sizeof longhost - 1);
	longhost[sizeof longhost - 1] = '\0';
	ck_assert_int_eq(hp(longhost, 25, 0, &h), -1);
	longhost[255] = '\0';
	ck_assert_int_eq(hp(longhost, 25, 0, &h), 0);
	ck_assert_int_eq(strlen(h.host), 255);
	longhost[256] = '\0';
	memset(longhost, 'a', 256);
	ck_assert_int_eq(hp(longhost, 25, 0, &h), -1);
	/* a failure leaves out alone; a short err buffer is still a string */
	h.port = 4242;
	ck_assert_int_eq(netaddr_parse_hostport("h:0", 25, 0, &h, err,
	    sizeof err), -1);
	ck_assert_int_eq(h.port, 4242);
	ck_assert_int_lt(strlen(err), sizeof err);
	ck_assert_int_eq(netaddr_parse_hostport("h:0", 25, 0, &h, NULL, 0),
	    -1);
}
END_TEST

/* The SMTP worker sets TCP_NODELAY once on each listening socket, not on
 * every connection it accepts: it relies on the kernel giving a new
 * connection the listener's TCP options, as Linux does. */
START_TEST(test_nodelay_inherited)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	int l, c, a, on = 1, got = 0;
	socklen_t glen = sizeof(got);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(l, 0);
	ck_assert_int_eq(setsockopt(l, IPPROTO_TCP, TCP_NODELAY, &on,
	    sizeof(on)), 0);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(l, 1), 0);
	ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sin, &slen), 0);
	c = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
	a = accept(l, NULL, NULL);
	ck_assert_int_ge(a, 0);
	ck_assert_int_eq(getsockopt(a, IPPROTO_TCP, TCP_NODELAY, &got,
	    &glen), 0);
	ck_assert_int_ne(got, 0);
	close(a);
	close(c);
	close(l);
}
END_TEST

static Suite *netaddr_suite(void)
{
	Suite *s = suite_create("netaddr");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_parse_v4);
	tcase_add_test(tc, test_parse_v6);
	tcase_add_test(tc, test_parse_bad);
	tcase_add_test(tc, test_parse_err_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("match");
	tcase_add_test(tc, test_match_v4);
	tcase_add_test(tc, test_match_v6);
	tcase_add_test(tc, test_match_mapped);
	tcase_add_test(tc, test_match_odd);
	tcase_add_test(tc, test_match_any);
	suite_add_tcase(s, tc);

	tc = tcase_create("print");
	tcase_add_test(tc, test_ntop);
	tcase_add_test(tc, test_port);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostport");
	tcase_add_test(tc, test_hostport_forms);
	tcase_add_test(tc, test_hostport_bare_ipv6);
	tcase_add_test(tc, test_hostport_bad);
	suite_add_tcase(s, tc);

	tc = tcase_create("socket");
	tcase_add_test(tc, test_nodelay_inherited);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(netaddr_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

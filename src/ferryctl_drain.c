/*
 * ferryctl_drain.c - "ferryctl drain" and "ferryctl undrain".
 *
 * drain sends "drain" on the control socket; the runner passes it on to
 * the master, which holds the state, tells every SMTP worker (new
 * connections get 421 4.3.2, sessions in progress finish) and notes it
 * back to the runner.  ferryctl then asks "status" every DRAIN_POLL_MS
 * until master.draining says so, for at most DRAIN_CONFIRM_MS: when it
 * returns, no worker takes a new session.  Delivery goes on.
 *
 * --wait then asks "status" every WAIT_POLL_MS until the queue holds no
 * message (exit 0), or --timeout passed (exit 1, saying what is left),
 * or ferryd stopped draining meanwhile (undrained, or restarted: a
 * restart starts undrained) - exit 1 too.  A runner that does not
 * answer for a while (it restarts) is asked again.
 *
 * undrain asks the same way and waits for master.draining to be false.
 *
 * Security stance: nothing here is privileged; the control socket's
 * mode and the runner's peer check decide who may drain (root, or the
 * admin group, as for the queue commands).
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "ferryctl_drain.h"
#include "util.h"

#define DRAIN_CONFIRM_MS 10000
#define DRAIN_POLL_MS 100
#define WAIT_POLL_MS 500

/* What "status" says that drain needs. */
struct drain_view {
	int draining;             /* master.draining */
	long long messages, active, hold, rcpts;
	json_t *queue;            /* the queue object (a reference) */
};

long long
ctl_drain_timeout(const char *s)
{
	char *end;
	long long v, unit = 1000;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || v < 0)
		return -1;
	if (*end == 's')
		end++;
	else if (*end == 'm') {
		unit = 60000;
		end++;
	} else if (*end == 'h') {
		unit = 3600000;
		end++;
	}
	if (*end != '\0' || v > 1000LL * 24 * 3600)
		return -1;
	return v * unit;
}

/* Asks "status" into *v: 0, -1 when the answer lacks what drain needs
 * (said), or ferryctl's exit status of a failed ask. */
static int
ask_view(const char *sock, ctl_ask_fn ask, struct drain_view *v, int quiet)
{
	char w_status[] = "status";
	char *const req[] = { w_status };
	json_t *root, *m, *q, *d;
	char *ans = NULL;
	size_t len = 0;
	int rc;

	if ((rc = ask(sock, 1, req, &ans, &len)) != 0)
		return rc;
	root = json_loadb(ans, len, JSON_ALLOW_NUL, NULL);
	free(ans);
	m = json_object_get(root, "master");
	q = json_object_get(root, "queue");
	d = json_object_get(m, "draining");
	if (!json_is_true(json_object_get(root, "ok")) ||
	    !json_is_boolean(d) || !json_is_object(q)) {
		const char *e = json_string_value(json_object_get(root,
		    "error"));

		if (!quiet)
			fprintf(stderr, "ferryctl: status %s%s\n", e ?
			    "refused: " : "says nothing of a drain (an older "
			    "queue runner?)", e ? e : "");
		json_decref(root);
		return -1;
	}
	v->draining = json_is_true(d);
	v->messages = json_integer_value(json_object_get(q, "messages"));
	v->active = json_integer_value(json_object_get(q, "active"));
	v->hold = json_integer_value(json_object_get(q, "hold"));
	v->rcpts = json_integer_value(json_object_get(q,
	    "recipients_pending"));
	v->queue = json_incref(q);
	json_decref(root);
	return 0;
}

static void
view_free(struct drain_view *v)
{
	json_decref(v->queue);
	v->queue = NULL;
}

static void
say_left(FILE *fp, const char *lead, const struct drain_view *v)
{
	fprintf(fp, "ferryctl: %s%lld message(s) left in the queue (%lld "
	    "active, %lld on hold), %lld recipient(s) pending\n", lead,
	    v->messages, v->active, v->hold, v->rcpts);
}

static void
print_json(int ok, const struct drain_view *v, int waited)
{
	json_t *doc = json_pack("{s:b, s:b, s:O, s:b}", "ok", ok, "draining",
	    v->draining, "queue", v->queue, "waited", waited);
	char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

	if (text != NULL)
		printf("%s\n", text);
	free(text);
	json_decref(doc);
}

/* Waits until the master holds the state on: 0 with *v filled. */
static int
confirm(const char *sock, ctl_ask_fn ask, int on, struct drain_view *v)
{
	int64_t deadline = now_ms() + DRAIN_CONFIRM_MS;
	int rc;

	for (;;) {
		rc = ask_view(sock, ask, v, 0);
		if (rc == 0 && v->draining == on)
			return 0;
		if (rc == 0)
			view_free(v);
		else if (rc == -1)
			return 1;
		if (now_ms() >= deadline) {
			fprintf(stderr, "ferryctl: %s: ferryd did not take it "
			    "within %d s (ferryd's log says why)\n", on ?
			    "drain" : "undrain", DRAIN_CONFIRM_MS / 1000);
			return rc == 0 ? 1 : rc;
		}
		usleep(DRAIN_POLL_MS * 1000);
	}
}

int
ctl_drain(const char *sock, ctl_ask_fn ask, int on, int wait,
    long long timeout_ms, int json_out)
{
	char w_drain[] = "drain", w_undrain[] = "undrain";
	char *const req[] = { on ? w_drain : w_undrain };
	struct drain_view v;
	char *ans = NULL;
	size_t len = 0;
	int64_t deadline;
	json_t *root;
	int rc, ok;

	memset(&v, 0, sizeof(v));
	if ((rc = ask(sock, 1, req, &ans, &len)) != 0)
		return rc;
	root = json_loadb(ans, len, JSON_ALLOW_NUL, NULL);
	free(ans);
	ok = json_is_true(json_object_get(root, "ok"));
	if (!ok) {
		const char *e = json_string_value(json_object_get(root,
		    "error"));

		fprintf(stderr, "ferryctl: %s\n", e != NULL ? e :
		    "malformed answer from the daemon");
		json_decref(root);
		return 1;
	}
	json_decref(root);
	if ((rc = confirm(sock, ask, on, &v)) != 0)
		return rc;
	if (!on) {
		if (json_out)
			print_json(1, &v, 0);
		else
			printf("ferryctl: undrained: taking new SMTP sessions "
			    "again\n");
		view_free(&v);
		return 0;
	}
	if (!json_out) {
		printf("ferryctl: draining: new SMTP sessions get 421 4.3.2, "
		    "sessions in progress finish, delivery goes on\n");
		say_left(stdout, "", &v);
		fflush(stdout);
	}
	if (!wait) {
		if (json_out)
			print_json(1, &v, 0);
		view_free(&v);
		return 0;
	}
	deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : INT64_MAX;
	for (;;) {
		struct drain_view now;

		memset(&now, 0, sizeof(now));
		rc = ask_view(sock, ask, &now, 1);
		if (rc == 0) {
			view_free(&v);
			v = now;
			if (v.messages == 0 || !v.draining)
				break;
		}
		if (now_ms() >= deadline) {
			if (json_out)
				print_json(0, &v, 1);
			say_left(json_out ? stderr : stdout, "timed out: ", &v);
			view_free(&v);
			return 1;
		}
		usleep(WAIT_POLL_MS * 1000);
	}
	ok = v.draining;
	if (json_out)
		print_json(ok, &v, 1);
	else if (ok)
		printf("ferryctl: the queue is empty\n");
	if (!ok)
		fprintf(stderr, "ferryctl: ferryd no longer drains (undrained, "
		    "or restarted); %lld message(s) left\n", v.messages);
	view_free(&v);
	return ok ? 0 : 1;
}

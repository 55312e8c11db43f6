/*
 * hop_health.h - which next hops are down, for the queue runner.
 *
 * After HOP_DOWN_AFTER jobs in a row to one next hop end with a
 * connection-level failure, the hop is down: the scheduler defers its
 * due mail in bulk ("delivery temporarily suspended: REASON") without a
 * connection each, and lets one probe job through per retry step.  The
 * first job that reaches the hop again (a probe or one already in
 * flight) brings it back, and the recipients deferred in bulk meanwhile
 * are handed back to be made due at once.  Pure: no I/O, no clock.
 */
#ifndef FERRY_HOP_HEALTH_H
#define FERRY_HOP_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#define HOP_DOWN_AFTER 3          /* connection failures in a row */
#define HOP_REASON_MAX 600

enum hop_verdict {
	HOP_SEND,                 /* up: dispatch as usual */
	HOP_PROBE,                /* down, a probe is due: dispatch one job */
	HOP_SUSPEND               /* down: defer without a connection */
};

struct hop_health;

struct hop_health *hop_health_new(void);
void hop_health_free(struct hop_health *h);

/* What the scheduler may do with due mail for dest at now; *reason is
 * the failure that put the hop down and *dsn its status code (both valid
 * until the next call). */
enum hop_verdict hop_health_verdict(struct hop_health *h, const char *dest,
    double now, const char **dsn, const char **reason);

/* A probe job was dispatched to dest at now (after HOP_PROBE).  If it
 * fails, the next goes a step after now (or when it failed, if that is
 * later). */
void hop_health_probe_sent(struct hop_health *h, const char *dest,
    double now);

/* A job to dest is over.  hop_failed: every recipient was deferred for
 * want of a connection (reason says why); 0 when the hop answered.
 * steps[0..nsteps) is the retry schedule in seconds (the last repeats),
 * which spaces the probes.  Returns 1 when this result brought a down
 * hop back (take its held recipients), 0 otherwise. */
int hop_health_result(struct hop_health *h, const char *dest, int hop_failed,
    const char *dsn, const char *reason, double now, const int *steps,
    size_t nsteps);

/* Until when mail deferred in bulk for dest now may wait: the time of
 * the hop's next probe (for a probe in flight, a step after it went,
 * when the next one goes if it fails; for one due, a step after now),
 * so that held mail comes due
 * with the probe rather than at every step of its own schedule; 0 when
 * dest is up.  steps as for hop_health_result. */
double hop_health_held_until(const struct hop_health *h, const char *dest,
    double now, const int *steps, size_t nsteps);

/* Marks dest down from outside (a smarthost pool with every host down,
 * upstream_pools.h): its mail is deferred in bulk and held until
 * probe_at, when the pool may probe a host again.  The pool decides
 * when it is back (hop_health_result with hop_failed 0). */
void hop_health_mark_down(struct hop_health *h, const char *dest,
    const char *dsn, const char *reason, double probe_at);

/* The next attempt of a recipient deferred in bulk for dest at now whose
 * own retry schedule says next: the hop's next probe
 * (hop_health_held_until) when that is later, else the first point of
 * the probes' grid (the next probe, then a probe step apart) not before
 * next less a slack (a quarter step, at most 2 s: a probe's own mail,
 * counted from a moment after the probe went, must not fall a whole
 * step behind), so that the hop's held mail comes due together, with a
 * probe, in a few large batches at each step rather than in a trickle
 * all along it.  next itself when dest is up. */
double hop_health_held_next(const struct hop_health *h, const char *dest,
    double now, double next, const int *steps, size_t nsteps);

/* Notes a recipient deferred in bulk for dest while it was down. */
void hop_health_hold(struct hop_health *h, const char *dest, int64_t rcpt_id);

/* Hands over (and forgets) the recipients held for dest: *ids is the
 * caller's to free.  Returns how many.  A recipient held more than once
 * may come more than once, but the list never holds more than about
 * twice the distinct recipients. */
size_t hop_health_take_held(struct hop_health *h, const char *dest,
    int64_t **ids);

/* Whether dest is down, and how many next hops are. */
int hop_health_is_down(const struct hop_health *h, const char *dest);
size_t hop_health_down_count(const struct hop_health *h);
/* The next hops that are down: up to max of their names into dests
 * (valid while h is not changed).  Returns how many are down. */
size_t hop_health_down_list(const struct hop_health *h, const char **dests,
    size_t max);

#endif

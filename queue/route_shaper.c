/*
 * route_shaper.c - token buckets, connections at once and the back-off
 * of one route (see route_shaper.h).  Pure: no I/O, no clock of its own.
 */
#include "autoconfig.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "route_shaper.h"

/* A bucket may hold this much more than it spends at once. */
#define SLACK 0.25
#define EPSILON 1e-9

static const double window_seconds[SHAPE_WINDOWS] = { 1, 60, 3600, 86400 };
static const char *const window_names[SHAPE_WINDOWS] = { "second",
    "minute", "hour", "day" };

const char *
shaper_window_name(enum shaper_window w)
{
	return (unsigned)w < SHAPE_WINDOWS ? window_names[w] : "?";
}

int
route_shaper_active(const struct shaper_limits *lim)
{
	int w;

	for (w = 0; w < SHAPE_WINDOWS; w++)
		if (lim->rate[w] > 0)
			return 1;
	return lim->max_connections > 0;
}

/* Tokens a second bucket w earns at the current level. */
static double
refill_rate(const struct route_shaper *sh, int w)
{
	return (double)sh->lim.rate[w] / window_seconds[w] /
	    (double)(1 << sh->level);
}

/* The tokens bucket w may spend at once at the current level. */
static double
capacity(const struct route_shaper *sh, int w)
{
	double cap = w == SHAPE_SECOND ? (double)(sh->lim.rate[w] / 5) :
	    (double)sh->lim.rate[w];

	cap /= (double)(1 << sh->level);
	return cap < 1 ? 1 : cap;
}

/* Brings bucket w up to now at the current level. */
static void
refill(struct route_shaper *sh, int w, double now)
{
	struct token_bucket *b = &sh->bucket[w];
	double top = capacity(sh, w) + SLACK;

	if (now > b->stamp) {
		b->tokens += (now - b->stamp) * refill_rate(sh, w);
		b->stamp = now;
	} else if (now < b->stamp)
		b->stamp = now;   /* the clock went back: count from now */
	if (b->tokens > top)
		b->tokens = top;
}

static void
refill_all(struct route_shaper *sh, double now)
{
	int w;

	for (w = 0; w < SHAPE_WINDOWS; w++)
		if (sh->lim.rate[w] > 0)
			refill(sh, w, now);
}

void
route_shaper_init(struct route_shaper *sh, const struct shaper_limits *lim,
    double now)
{
	int w;

	memset(sh, 0, sizeof(*sh));
	sh->lim = *lim;
	for (w = 0; w < SHAPE_WINDOWS; w++) {
		sh->bucket[w].stamp = now;
		sh->bucket[w].tokens = lim->rate[w] > 0 ? capacity(sh, w) : 0;
	}
}

void
route_shaper_set_limits(struct route_shaper *sh,
    const struct shaper_limits *lim, double now)
{
	int w;

	refill_all(sh, now);
	for (w = 0; w < SHAPE_WINDOWS; w++) {
		int was = sh->lim.rate[w];

		sh->lim.rate[w] = lim->rate[w];
		if (lim->rate[w] > 0 && was == 0) {
			sh->bucket[w].tokens = capacity(sh, w);
			sh->bucket[w].stamp = now;
		} else if (lim->rate[w] > 0)
			refill(sh, w, now);   /* clamps to the new size */
	}
	sh->lim.max_connections = lim->max_connections;
}

int
route_shaper_connections(const struct route_shaper *sh,
    int base_connections)
{
	int n = sh->lim.max_connections > 0 ? sh->lim.max_connections :
	    base_connections;

	n >>= sh->level;
	return n < 1 ? 1 : n;
}

enum shaper_wait
route_shaper_may_send(struct route_shaper *sh, double now, int busy,
    int base_connections, double *at)
{
	double later = 0;
	int w;

	*at = 0;
	if (now < sh->pause_until) {
		*at = sh->pause_until;
		return SHAPER_WAIT_PAUSE;
	}
	if (busy >= route_shaper_connections(sh, base_connections))
		return SHAPER_WAIT_CONNECTIONS;
	for (w = 0; w < SHAPE_WINDOWS; w++) {
		double need;

		if (sh->lim.rate[w] <= 0)
			continue;
		refill(sh, w, now);
		if (sh->bucket[w].tokens >= 1 - EPSILON)
			continue;
		need = now + (1 - sh->bucket[w].tokens) / refill_rate(sh, w);
		if (need > later)
			later = need;
	}
	if (later > 0) {
		*at = later;
		return SHAPER_WAIT_RATE;
	}
	return SHAPER_GO;
}

double
route_shaper_hold_until(const struct route_shaper *sh, double now, size_t n)
{
	double start = now < sh->pause_until ? sh->pause_until : now;
	double turn = start;   /* when the n-th may go, by every bucket */
	int w;

	for (w = 0; w < SHAPE_WINDOWS; w++) {
		double tokens, at;

		if (sh->lim.rate[w] <= 0)
			continue;
		tokens = route_shaper_tokens(sh, (enum shaper_window)w, start);
		at = start + ((double)n + 1 - tokens) / refill_rate(sh, w);
		if (at > turn)
			turn = at;
	}
	if (turn < now + SHAPER_HOLD)
		return 0;   /* its turn is near: it stays due */
	turn -= SHAPER_HOLD;
	if (turn < now + SHAPER_HOLD)
		turn = now + SHAPER_HOLD;
	return turn > now + SHAPER_HOLD_MAX ? now + SHAPER_HOLD_MAX : turn;
}

void
route_shaper_take(struct route_shaper *sh, double now)
{
	int w;

	for (w = 0; w < SHAPE_WINDOWS; w++)
		if (sh->lim.rate[w] > 0) {
			refill(sh, w, now);
			sh->bucket[w].tokens -= 1;
		}
}

double
route_shaper_tokens(const struct route_shaper *sh, enum shaper_window w,
    double now)
{
	struct route_shaper copy = *sh;

	if ((unsigned)w >= SHAPE_WINDOWS || sh->lim.rate[w] <= 0)
		return -1;
	refill(&copy, w, now);
	return copy.bucket[w].tokens < 0 ? 0 : copy.bucket[w].tokens;
}

double
route_shaper_rate(const struct route_shaper *sh)
{
	double best = 0;
	int w;

	for (w = 0; w < SHAPE_WINDOWS; w++) {
		double r;

		if (sh->lim.rate[w] <= 0)
			continue;
		r = refill_rate(sh, w);
		if (best == 0 || r < best)
			best = r;
	}
	return best;
}

int
route_shaper_throttled(struct route_shaper *sh, double now)
{
	double pause;

	sh->throttles++;
	sh->last_throttle = now;
	if (sh->level > 0 && now - sh->last_raise < SHAPER_SETTLE)
		return 0;   /* the same burst of replies: counted once */
	refill_all(sh, now);   /* what was earned, at the old rate */
	if (sh->level < SHAPER_MAX_LEVEL)
		sh->level++;
	else {
		sh->pause_until = now + SHAPER_PAUSE_MAX;
		sh->last_raise = sh->last_step = now;
		return 0;
	}
	sh->last_raise = sh->last_step = now;
	pause = (double)(1 << (sh->level - 1));
	if (pause > SHAPER_PAUSE_MAX)
		pause = SHAPER_PAUSE_MAX;
	sh->pause_until = now + pause;
	refill_all(sh, now);   /* clamps to the smaller buckets */
	return 1;
}

double
route_shaper_next_tick(const struct route_shaper *sh)
{
	double from;

	if (sh->level == 0)
		return 0;
	from = sh->last_throttle > sh->last_step ? sh->last_throttle :
	    sh->last_step;
	return from + SHAPER_QUIET;
}

int
route_shaper_tick(struct route_shaper *sh, double now)
{
	if (sh->level == 0 || now < route_shaper_next_tick(sh))
		return 0;
	refill_all(sh, now);
	sh->level--;
	sh->last_step = now;
	return 1;
}

void
route_shaper_saved(const struct route_shaper *sh, enum shaper_window w,
    double now, double *tokens, double *stamp)
{
	double t = route_shaper_tokens(sh, w, now);

	*tokens = t < 0 ? 0 : t;
	*stamp = now;
}

void
route_shaper_restore(struct route_shaper *sh, enum shaper_window w,
    double tokens, double stamp, double now)
{
	struct token_bucket *b;

	if ((unsigned)w >= SHAPE_WINDOWS || sh->lim.rate[w] <= 0)
		return;
	b = &sh->bucket[w];
	if (!(tokens == tokens) || tokens < 0)   /* NaN or spent */
		tokens = 0;
	b->tokens = tokens;
	b->stamp = stamp > now || !(stamp == stamp) ? now : stamp;
	refill(sh, w, now);
}

/* Whether text holds word, in any case. */
static int
has_words(const char *text, const char *word)
{
	size_t n = strlen(word);

	for (; *text != '\0'; text++)
		if (strncasecmp(text, word, n) == 0)
			return 1;
	return 0;
}

enum shaper_reply
route_shaper_classify(int code, const char *dsn, const char *text)
{
	if (dsn == NULL)
		dsn = "";
	if (text == NULL)
		text = "";
	if (code == 452 && (strcmp(dsn, "4.5.3") == 0 ||
	    has_words(text, "too many recipients")))
		return SHAPER_REPLY_TOO_MANY_RCPTS;
	if (code / 100 != 4)
		return SHAPER_REPLY_OTHER;   /* only the server's 4xx */
	if ((code == 421 || code == 451) && (strncmp(dsn, "4.7.", 4) == 0 ||
	    (dsn[0] == '\0' && has_words(text, " 4.7."))))
		return SHAPER_REPLY_THROTTLE;
	if (has_words(text, "rate limit") || has_words(text, "too many") ||
	    has_words(text, "throttl"))
		return SHAPER_REPLY_THROTTLE;
	return SHAPER_REPLY_OTHER;
}

/* A reply code at p: three digits, then a space, a dash or the end. */
static int
code_at(const char *p)
{
	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
	    !isdigit((unsigned char)p[2]) ||
	    (p[3] != '\0' && p[3] != ' ' && p[3] != '-'))
		return 0;
	return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

int
route_shaper_reply_code(const char *reply)
{
	const char *p;
	int code;

	if (reply == NULL)
		return 0;
	if ((code = code_at(reply)) != 0)
		return code;
	/* "host H said: 421 ...", "host H refused to talk to me: 421 ..." */
	for (p = strstr(reply, ": "); p != NULL; p = strstr(p + 2, ": "))
		if ((code = code_at(p + 2)) != 0)
			return code;
	return 0;
}

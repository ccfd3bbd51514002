/*
 * request_budget.c
 *		How fast the worker sends API requests: as fast as the server
 *		accepts, found the way TCP finds a path's capacity; a fixed ceiling
 *		only where the operator sets one.
 *
 * The token is usually shared with other clients (CI plugins, other
 * teams), and servers publish no limit, so no rate can be configured that
 * is right: the worker learns it.  The rule is TCP's congestion control
 * (AIMD: additive increase, multiplicative decrease, RFC 5681), applied to
 * a rate instead of a window, with the decrease factor and the recovery
 * towards the rate of the last cut of CUBIC (RFC 8312):
 *
 *  - Unlimited until the server pushes back: requests go out as soon as
 *    they are due (max_concurrent_requests bounds them).
 *  - A 429 is the signal.  The first 429 of a window cuts the rate: to
 *    BETA times the rate in use (the rate that applied, or, with none yet,
 *    what was really sent over the last two seconds), but never below what
 *    the server accepted over those two seconds.  That floor is what
 *    tells a limit from bad luck: against a server's limit the accepted
 *    rate is the limit, so the rate settles under it; when a token others
 *    share draws 429s at random, whatever the rate, the accepted rate
 *    follows the rate sent and the cuts do not drive it down.  429s that
 *    answer requests sent before the cut were already in flight when it
 *    came: they are the same signal.  A window lasts at least WINDOW_US,
 *    so a burst of 429s, or a steady share of them, cuts once per window,
 *    not once per answer.
 *  - Between cuts the rate grows additively (at least MIN_STEP a second),
 *    fast enough to be back at the rate in use before the cut one window
 *    later, and on beyond it, probing; it grows only while requests are
 *    waiting for it (a rate nobody uses proves nothing).  A minute without
 *    a 429 lifts the limit.
 *  - The server's own delay is obeyed exactly and separately: Retry-After
 *    (seconds or a date) or a delay in the error body pauses every request
 *    for that long (retry_policy.c); only a 429 with no delay at all grows
 *    a pause of its own.
 *  - Rate-limit headers, when a server sends them (X-RateLimit-Remaining
 *    and -Reset, RateLimit-Remaining and -Reset, or RateLimit), cap the
 *    rate at what the server's window has left, remaining / seconds to its
 *    reset, until the reset; none left means no request until then.
 *  - invicti_scan.max_requests_per_minute > 0 is a ceiling on all of it.
 *    invicti_scan.adaptive_rate_limit = off turns the learning off (only
 *    the ceiling and the server's headers and delays apply).
 *
 * The allowed rate is spent through a token bucket holding two seconds'
 * worth (at least one token): requests go out evenly, and after a pause the
 * server asked for, what the pause held back goes out at once, as it would
 * with no limit (a pause is as long as the server asked, not longer).
 * Launches and aborts, which a user waits for, may take any token; polls,
 * list pages, imports and reconciliations leave a reserve of two, so a
 * launch goes out within a second even when polling wants more.
 *
 * The worker is the only user.  Nothing here does I/O or touches the
 * database; the arithmetic is in milli-tokens, so that no rate is too slow
 * to accrue.
 */
#include "postgres.h"

#include <math.h>

#include "utils/timestamp.h"

#include "request_budget.h"
#include "settings.h"

#define MILLI 1000
/* CUBIC's multiplicative decrease (RFC 8312, section 4.5). */
#define BETA 0.7
/* A cut lasts at least this long; the rate is back at its peak by then. */
#define WINDOW_US (5 * USECS_PER_SEC)
/* This long without a 429 lifts the learnt limit. */
#define LIFT_AFTER_US (60 * USECS_PER_SEC)
/* The rates sent and accepted are measured over this span (at least 1 s). */
#define RATE_SPAN_US (2 * USECS_PER_SEC)
/*
 * The additive increase: this share of the rate after the cut, each window
 * (at least MIN_STEP requests a second, per second).  Below 1 / BETA - 1, so
 * that repeated cuts against a server's limit bring the rate down to it;
 * above what a steady share of random 429s costs (p / (1 - p): 18% at 15%).
 */
#define GROWTH 0.3
#define MIN_STEP 0.1
/* The rate grows only if a request waited for a token this recently. */
#define DEMAND_US (2 * USECS_PER_SEC)
/* The bucket holds this long's worth of tokens (after a pause: a burst). */
#define BURST_US (2 * USECS_PER_SEC)
/* Non-urgent requests leave this many tokens for urgent ones. */
#define URGENT_RESERVE 2
/* Never slower than a request a minute (requests per second). */
#define MIN_RATE (1.0 / 60)
/* Sends are counted per tenth of a second over the last minute. */
#define SLOT_US (USECS_PER_SEC / 10)
#define SLOTS 600

/* Events per tenth of a second over the last minute. */
typedef struct Ring
{
	int			n[SLOTS];
	int64		slot;			/* the slot n[] ends at */
} Ring;

static struct
{
	int			ceiling;		/* max_requests_per_minute applied; -1: not
								 * yet */
	bool		adaptive;		/* adaptive_rate_limit applied */
	bool		learnt;			/* a 429 set `rate`, and it is not lifted */
	double		rate;			/* learnt rate, requests per second */
	double		peak;			/* the rate in use at the last cut */
	double		step;			/* additive increase, requests/s per second */
	TimestampTz cut_at;			/* the last cut (0: none) */
	int64		cut_seq;		/* requests sent before the last cut */
	TimestampTz last_429_at;
	TimestampTz wanted_at;		/* a request last waited for a token */
	int64		pause_cap;		/* milli-tokens a server's pause may leave */
	TimestampTz pause_cap_until;
	double		server_rate;	/* from rate-limit headers, until server_until */
	TimestampTz server_until;
	int64		tokens;			/* milli-tokens */
	TimestampTz refilled_at;
	int64		seq;			/* requests sent so far */
	int64		waits;
	int64		cuts;
	TimestampTz first_sent_at;
	Ring		sent;			/* requests sent */
	Ring		accepted;		/* answers that were not 429 */
}			b = {.ceiling = -1};

/* The learnt rate under the ceiling, requests per second; 0: neither. */
static double
own_rate(void)
{
	if (b.learnt && b.ceiling > 0)
		return Min(b.rate, b.ceiling / 60.0);
	if (b.learnt)
		return b.rate;
	return b.ceiling > 0 ? b.ceiling / 60.0 : 0;
}

static bool
limited(TimestampTz now)
{
	return b.learnt || b.ceiling > 0 || b.server_until > now;
}

/*
 * The rate that applies now, requests per second: own_rate() under what
 * the server's headers leave.  0 when nothing limits (see limited()), or
 * when the server's window has nothing left.
 */
static double
allowed_rate(TimestampTz now)
{
	double		r = own_rate();

	if (b.server_until > now)
		r = (r > 0) ? Min(r, b.server_rate) : b.server_rate;
	return r;
}

static int64
capacity(double rate)
{
	return (int64) Max(floor(rate * BURST_US / USECS_PER_SEC), 1.0) * MILLI;
}

static int64
reserve(bool urgent, double rate)
{
	int64		cap = capacity(rate);

	if (urgent || cap <= URGENT_RESERVE * MILLI)
		return 0;
	return URGENT_RESERVE * MILLI;
}

void
budget_configure(void)
{
	if (invicti_max_requests_per_minute == b.ceiling &&
		invicti_adaptive_rate_limit == b.adaptive)
		return;
	b.ceiling = invicti_max_requests_per_minute;
	b.adaptive = invicti_adaptive_rate_limit;
	b.learnt = false;
	b.cut_at = 0;
	b.refilled_at = GetCurrentTimestamp();
	b.tokens = capacity(allowed_rate(b.refilled_at));
}

/* Events of the ring in the last `span` microseconds (at most a minute). */
static int
ring_count(const Ring *ring, TimestampTz now, int64 span)
{
	int64		cur = now / SLOT_US;
	int64		n_slots = Min((span + SLOT_US - 1) / SLOT_US, SLOTS);
	int			count = 0;
	int64		s;

	for (s = cur - n_slots + 1; s <= cur; s++)
		if (s <= ring->slot && ring->slot - s < SLOTS)
			count += ring->n[s % SLOTS];
	return count;
}

static void
ring_add(Ring *ring, TimestampTz now)
{
	int64		cur = now / SLOT_US;

	if (cur - ring->slot >= SLOTS)
		memset(ring->n, 0, sizeof(ring->n));
	else
		while (ring->slot < cur)
			ring->n[++ring->slot % SLOTS] = 0;
	ring->slot = Max(ring->slot, cur);
	ring->n[cur % SLOTS]++;
}

static void
count_sent(TimestampTz now)
{
	ring_add(&b.sent, now);
	if (b.first_sent_at == 0)
		b.first_sent_at = now;
	b.seq++;
}

/* Bring the learnt rate and the tokens up to now. */
static void
refill(TimestampTz now)
{
	int64		elapsed = now - b.refilled_at;
	double		rate;

	if (b.ceiling < 0)
		budget_configure();
	if (elapsed <= 0)
		return;
	if (b.learnt)
	{
		if (now - b.last_429_at >= LIFT_AFTER_US)
		{
			b.learnt = false;
			ereport(LOG,
					(errmsg("invicti_scan: no HTTP 429 from Invicti for %d s; sending as fast as requests are due again",
							(int) (LIFT_AFTER_US / USECS_PER_SEC))));
		}
		else if (now - b.wanted_at < DEMAND_US)
			b.rate += b.step * elapsed / USECS_PER_SEC;
	}
	rate = allowed_rate(now);
	if (rate > 0)
	{
		b.tokens += (int64) (rate * MILLI * elapsed / USECS_PER_SEC);
		b.tokens = Min(b.tokens, capacity(rate));
	}
	else
		b.tokens = 0;			/* no limit: the bucket is not used */
	if (now <= b.pause_cap_until)
		b.tokens = Min(b.tokens, b.pause_cap);
	b.refilled_at = now;
}

int64
budget_take(bool urgent)
{
	TimestampTz now = GetCurrentTimestamp();

	refill(now);
	if (limited(now))
	{
		double		rate = allowed_rate(now);

		if (rate <= 0 || b.tokens - reserve(urgent, rate) < MILLI)
		{
			b.wanted_at = now;
			return 0;
		}
		b.tokens -= MILLI;
	}
	count_sent(now);
	return b.seq;
}

int
budget_available(bool urgent, int want)
{
	TimestampTz now = GetCurrentTimestamp();
	double		rate;
	int			n;

	refill(now);
	if (!limited(now))
		return want;
	rate = allowed_rate(now);
	n = rate <= 0 ? 0 :
		(int) Min((int64) want, Max(b.tokens - reserve(urgent, rate), 0) / MILLI);
	if (n < want)
		b.wanted_at = now;
	return n;
}

TimestampTz
budget_next_at(bool urgent)
{
	TimestampTz now = GetCurrentTimestamp();
	double		rate;
	int64		missing;

	refill(now);
	if (!limited(now))
		return 0;
	rate = allowed_rate(now);
	if (rate <= 0)
		return b.server_until;	/* the server's window has nothing left */
	missing = MILLI + reserve(urgent, rate) - b.tokens;
	if (missing <= 0)
		return 0;
	/* microseconds until `missing` milli-tokens accrue, rounded up */
	return now + (int64) ceil((double) missing * USECS_PER_SEC / (rate * MILLI));
}

void
budget_note_wait(void)
{
	b.waits++;
}

void
budget_server_pause(int64 ms)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		span = Max(Min((int64) RATE_SPAN_US, now - b.first_sent_at), (int64) USECS_PER_SEC);
	double		accepted_rate = (double) ring_count(&b.accepted, now, span) * USECS_PER_SEC / span;

	/*
	 * What the pause holds back goes out when it ends, but no more of it than
	 * the server accepted in as long a time lately: a pause of a server's
	 * limit refills it by about that much, no more.
	 */
	b.pause_cap = (int64) Max(accepted_rate * ms / 1000.0, 1.0) * MILLI;
	b.pause_cap_until = Max(b.pause_cap_until, TimestampTzPlusMilliseconds(now, ms + 100));
}

void
budget_accepted(void)
{
	ring_add(&b.accepted, GetCurrentTimestamp());
}

void
budget_rate_limited(int64 seq)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		span;
	double		sent_rate;
	double		accepted_rate;
	double		in_use;
	bool		starting = !b.learnt;

	refill(now);
	b.last_429_at = now;
	if (!b.adaptive)
		return;
	/* the same signal: in flight at the last cut, or within its window */
	if (b.cut_at != 0 && (seq <= b.cut_seq || now - b.cut_at < WINDOW_US))
		return;

	span = Max(Min((int64) RATE_SPAN_US, now - b.first_sent_at), (int64) USECS_PER_SEC);
	sent_rate = (double) ring_count(&b.sent, now, span) * USECS_PER_SEC / span;
	accepted_rate = (double) ring_count(&b.accepted, now, span) * USECS_PER_SEC / span;

	/*
	 * The rate in use: the rate that applied (what was sent may be less for
	 * want of work, which says nothing of the server), or, with none, what
	 * was sent.
	 */
	in_use = b.learnt ? Max(b.rate, sent_rate) : sent_rate;
	if (b.ceiling > 0)
		in_use = b.learnt ? Min(in_use, b.ceiling / 60.0) : b.ceiling / 60.0;
	in_use = Max(in_use, MIN_RATE);

	b.peak = in_use;
	b.rate = Max(Max(BETA * in_use, Min(accepted_rate, in_use)), MIN_RATE);
	b.step = Max(GROWTH * b.rate * USECS_PER_SEC / WINDOW_US, MIN_STEP);
	b.learnt = true;
	b.cut_at = now;
	b.cut_seq = b.seq;
	b.cuts++;
	b.tokens = Min(b.tokens, capacity(allowed_rate(now)));
	ereport(starting ? LOG : DEBUG1,
			(errmsg("invicti_scan: Invicti answered HTTP 429; sending at most %.1f requests a minute for now",
					allowed_rate(now) * 60),
			 errdetail("%.1f a minute were sent and %.1f accepted over the last %.1f s; the rate grows by %.1f a minute each second while no 429 comes.",
					   sent_rate * 60, accepted_rate * 60, (double) span / USECS_PER_SEC, b.step * 60)));
}

void
budget_server_window(double remaining, double reset_s)
{
	TimestampTz now = GetCurrentTimestamp();

	if (remaining < 0 || reset_s < 0)
		return;
	refill(now);
	reset_s = Min(reset_s, 3600.0);
	b.server_until = now + (int64) (Max(reset_s, 0.001) * USECS_PER_SEC);
	b.server_rate = remaining / Max(reset_s, 1.0);
	b.tokens = Min(b.tokens, remaining >= 1 ? capacity(b.server_rate) : 0);
}

void
budget_stats(int *ceiling, double *effective, int *last_minute,
			 int64 *waits, int64 *cuts)
{
	TimestampTz now = GetCurrentTimestamp();

	refill(now);
	*ceiling = b.ceiling;
	*effective = limited(now) ? allowed_rate(now) * 60 : -1;
	*last_minute = ring_count(&b.sent, now, 60 * USECS_PER_SEC);
	*waits = b.waits;
	*cuts = b.cuts;
}

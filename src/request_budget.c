/*
 * request_budget.c
 *		The request budget: at most invicti_scan.max_requests_per_minute API
 *		requests a minute, spread evenly, urgent ones first.
 *
 * A token bucket.  Tokens accrue continuously at the effective rate and the
 * bucket holds a twelfth of a minute's worth (five seconds; at least one
 * token), so requests go out evenly rather than in bursts.  Launches and
 * aborts, which a user waits for, may take any token; polls, list pages,
 * imports and reconciliations leave a reserve of two for them, so under a
 * budget too small for the polling a launch still goes out within seconds.
 *
 * A 429 halves the effective rate (down to one request a minute) on top of
 * the whole-API pause retry_policy.c applies; each minute without a 429
 * gives back a tenth of the configured rate.  The server's own Retry-After
 * says when to resume, the lower rate says how fast.
 *
 * The worker is the only user.  Nothing here does I/O or touches the
 * database; the arithmetic is in milli-tokens so that no rate is too slow
 * to accrue.
 */
#include "postgres.h"

#include <math.h>

#include "utils/timestamp.h"

#include "request_budget.h"
#include "settings.h"

#define MILLI 1000
/* The bucket: five seconds of requests. */
#define BURST_DIVISOR 12
/* Non-urgent requests leave this many tokens for urgent ones. */
#define URGENT_RESERVE 2
/* After a 429: down to this fraction, each quiet minute back by a tenth. */
#define RECOVERY_STEPS 10
#define MIN_RATE 1.0

static int	configured = -1;
static double effective = 0;	/* requests per minute */
static int64 tokens = 0;		/* milli-tokens */
static TimestampTz refilled_at = 0;
static TimestampTz recovered_at = 0;	/* the last cut or step back up */
static int64 waits = 0;

/* Requests sent in each of the last 60 seconds (ring by second). */
static int	per_second[60];
static int64 ring_second = 0;

static int64
capacity(void)
{
	return (int64) Max((int) (effective / BURST_DIVISOR), 1) * MILLI;
}

static int64
reserve(bool urgent)
{
	int64		cap = capacity();

	if (urgent || cap <= URGENT_RESERVE * MILLI)
		return 0;
	return URGENT_RESERVE * MILLI;
}

void
budget_configure(void)
{
	if (invicti_max_requests_per_minute == configured)
		return;
	configured = invicti_max_requests_per_minute;
	effective = configured;
	refilled_at = GetCurrentTimestamp();
	tokens = configured > 0 ? capacity() : 0;
	recovered_at = 0;
}

/* Accrue tokens up to now, and give back rate after quiet minutes. */
static void
refill(TimestampTz now)
{
	int64		elapsed_us = now - refilled_at;

	if (configured <= 0)
		return;
	/* only a 429 lowers the rate, so a lower rate means one came */
	while (effective < configured && now - recovered_at >= USECS_PER_MINUTE)
	{
		effective = Min(effective + (double) configured / RECOVERY_STEPS, configured);
		recovered_at += USECS_PER_MINUTE;
	}
	if (elapsed_us <= 0)
		return;
	tokens += (int64) (effective * MILLI * elapsed_us / USECS_PER_MINUTE);
	tokens = Min(tokens, capacity());
	refilled_at = now;
}

static void
count_sent(TimestampTz now)
{
	int64		second = now / USECS_PER_SEC;

	if (second - ring_second >= 60)
		memset(per_second, 0, sizeof(per_second));
	else
		while (ring_second < second)
			per_second[++ring_second % 60] = 0;
	ring_second = second;
	per_second[second % 60]++;
}

bool
budget_take(bool urgent)
{
	TimestampTz now = GetCurrentTimestamp();

	if (configured < 0)
		budget_configure();
	if (configured > 0)
	{
		refill(now);
		if (tokens - reserve(urgent) < MILLI)
			return false;
		tokens -= MILLI;
	}
	count_sent(now);
	return true;
}

int
budget_available(bool urgent, int want)
{
	if (configured < 0)
		budget_configure();
	if (configured == 0)
		return want;
	refill(GetCurrentTimestamp());
	return (int) Min((int64) want, Max(tokens - reserve(urgent), 0) / MILLI);
}

TimestampTz
budget_next_at(bool urgent)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		missing;

	if (configured <= 0)
		return 0;
	refill(now);
	missing = MILLI + reserve(urgent) - tokens;
	if (missing <= 0)
		return 0;
	/* microseconds until `missing` milli-tokens accrue, rounded up */
	return now + (int64) ceil((double) missing * USECS_PER_MINUTE / (effective * MILLI));
}

void
budget_note_wait(void)
{
	waits++;
}

void
budget_rate_limited(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (configured <= 0)
		return;
	refill(now);
	effective = Max(effective / 2, MIN_RATE);
	tokens = Min(tokens, capacity());
	recovered_at = now;
}

void
budget_stats(int *configured_out, double *effective_out, int *last_minute,
			 int64 *waits_out)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		second = now / USECS_PER_SEC;
	int			i;

	if (configured < 0)
		budget_configure();
	refill(now);
	*configured_out = configured;
	*effective_out = configured > 0 ? effective : 0;
	*last_minute = 0;
	for (i = 0; i < 60; i++)
	{
		int64		s = second - i;

		if (s > ring_second)
			continue;
		if (ring_second - s >= 60)
			break;
		*last_minute += per_second[s % 60];
	}
	*waits_out = waits;
}

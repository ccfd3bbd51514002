/*
 * retry_policy.c
 *		Backoff arithmetic and the whole-API pause.
 *
 * A 429 or a refused token says something about the API or the
 * configuration, not about one row, so they pause every request rather than
 * each row backing off on its own (which would keep hammering a rate-limited
 * API with the rows' first retries).  Other failures back off per request.
 *
 * The worker logs its own state changes here at LOG (a pause starting or
 * ending) and a refused token as one WARNING per episode, never one per
 * request.  Nothing here touches the database.
 */
#include "postgres.h"


#include "common/pg_prng.h"
#include "utils/timestamp.h"

#include "retry_policy.h"
#include "settings.h"

/* Retry-After values beyond this are not believed. */
#define MAX_RETRY_AFTER_S 3600

static TimestampTz paused_until = 0;
static int	rate_limit_streak = 0;
static int	auth_streak = 0;
static bool rate_limit_logged = false;
static bool auth_warned = false;

int64
retry_policy_delay_ms(int attempt)
{
	int64		cap = (int64) invicti_retry_max_delay_s * 1000;
	int64		delay = 1000;
	int			i;

	for (i = 1; i < attempt && delay < cap; i++)
		delay *= 2;
	delay = Min(delay, cap);
	return delay / 2 + (int64) (pg_prng_double(&pg_global_prng_state) * (delay / 2));
}

static void
pause_for(int64 ms)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	if (until > paused_until)
		paused_until = until;
}

void
api_pause_rate_limited(int64 secs, const char *source)
{
	int64		ms;

	/* Answers to requests sent before the pause began don't deepen it. */
	if (api_paused_until() == 0 || rate_limit_streak == 0)
		rate_limit_streak++;
	if (secs >= 0)
		ms = Min(secs, MAX_RETRY_AFTER_S) * 1000;
	else
		ms = retry_policy_delay_ms(rate_limit_streak);
	pause_for(ms);
	ereport(rate_limit_logged ? DEBUG1 : LOG,
			(errmsg("invicti_scan: Invicti API rate limit reached (HTTP 429); pausing all requests for %.1f s",
					ms / 1000.0),
			 secs >= 0 ? errdetail("The server asked for %lld s (%s).", (long long) secs, source)
			 : errdetail("The server sent no usable Retry-After; backing off exponentially.")));
	rate_limit_logged = true;
}

void
api_pause_auth_failed(const char *message)
{
	int64		ms;

	if (api_paused_until() == 0 || auth_streak == 0)
		auth_streak++;
	ms = retry_policy_delay_ms(auth_streak);
	pause_for(ms);
	if (!auth_warned)
		ereport(WARNING,
				(errmsg("invicti_scan: Invicti refused the API token"),
				 errdetail("%s. No scan is lost: pending scans stay pending and running scans stay tracked; requests are retried with backoff.",
						   message),
				 errhint("Check invicti_scan.api_token or invicti_scan.api_token_file and the token's permissions, then reload the configuration.")));
	else
		ereport(DEBUG1,
				(errmsg("invicti_scan: API token still refused; next try in %.1f s", ms / 1000.0)));
	auth_warned = true;
}

void
api_pause_success(void)
{
	if (auth_warned)
		ereport(LOG,
				(errmsg("invicti_scan: Invicti accepts the API token again")));
	if (rate_limit_logged)
		ereport(LOG,
				(errmsg("invicti_scan: Invicti API rate limit lifted")));
	auth_streak = rate_limit_streak = 0;
	auth_warned = rate_limit_logged = false;
}

void
api_pause_reset(void)
{
	/* the episode goes on (no second WARNING) until a request succeeds */
	paused_until = 0;
	auth_streak = rate_limit_streak = 0;
}

TimestampTz
api_paused_until(void)
{
	if (paused_until != 0 && paused_until <= GetCurrentTimestamp())
		paused_until = 0;
	return paused_until;
}

/*
 * log_limit.c
 *		At most a few messages of one kind a minute, and the count of the
 *		others in the next one: a persistent failure stays in a default log
 *		(it is never demoted to DEBUG) without a line per retry.
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "log_limit.h"

bool
log_limit_allow(LogLimit *limit, int *suppressed)
{
	TimestampTz now = GetCurrentTimestamp();

	if (limit->window_start == 0 ||
		TimestampDifferenceExceeds(limit->window_start, now, LOG_LIMIT_WINDOW_MS))
	{
		limit->window_start = now;
		limit->in_window = 0;
	}
	if (limit->in_window >= LOG_LIMIT_BURST)
	{
		limit->suppressed++;
		return false;
	}
	limit->in_window++;
	*suppressed = limit->suppressed;
	limit->suppressed = 0;
	return true;
}

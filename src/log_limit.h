/*
 * log_limit.h
 *		Keeping a repeated WARNING visible without flooding the log.
 */
#ifndef INVICTI_LOG_LIMIT_H
#define INVICTI_LOG_LIMIT_H

#include "datatype/timestamp.h"

/* One kind of message: at most LOG_LIMIT_BURST per LOG_LIMIT_WINDOW_MS. */
typedef struct LogLimit
{
	TimestampTz window_start;
	int			in_window;
	int			suppressed;		/* since the last one logged */
} LogLimit;

#define LOG_LIMIT_BURST 3
#define LOG_LIMIT_WINDOW_MS 60000

/*
 * Whether the next message of this kind may be logged now.  When it may,
 * *suppressed is how many were held back since the last one logged (say so
 * in the message), and the count starts again.
 */
extern bool log_limit_allow(LogLimit *limit, int *suppressed);

#endif

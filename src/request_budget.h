/*
 * request_budget.h
 *		invicti_scan.max_requests_per_minute: the token bucket every API
 *		request draws from.
 */
#ifndef INVICTI_REQUEST_BUDGET_H
#define INVICTI_REQUEST_BUDGET_H

#include "datatype/timestamp.h"

/* The setting changed (and at start): take the configured rate. */
extern void budget_configure(void);

/*
 * Take a token for one request; false when none may be spent now.  Urgent
 * requests (launches, aborts: api_call_urgent) may take the last tokens;
 * the others leave a reserve for them.
 */
extern bool budget_take(bool urgent);

/* Tokens that could be taken now (capped at `want`), without taking them. */
extern int	budget_available(bool urgent, int want);

/* When a token will be there for such a request; 0 when there is one now. */
extern TimestampTz budget_next_at(bool urgent);

/* Due work waited for lack of a token (a request held, a refresh put off). */
extern void budget_note_wait(void);

/* The API answered 429: spend less for a while. */
extern void budget_rate_limited(void);

/* For invicti_scan_stats: configured and effective requests per minute
 * (0: no limit), requests sent in the last 60 s, requests held so far. */
extern void budget_stats(int *configured, double *effective, int *last_minute,
						 int64 *waits);

#endif

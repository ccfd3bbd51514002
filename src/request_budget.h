/*
 * request_budget.h
 *		The adaptive request rate (and the operator's ceiling,
 *		invicti_scan.max_requests_per_minute) every API request draws from.
 */
#ifndef INVICTI_REQUEST_BUDGET_H
#define INVICTI_REQUEST_BUDGET_H

#include "datatype/timestamp.h"

/* The settings changed (and at start): take them. */
extern void budget_configure(void);

/*
 * Take a token for one request about to be sent: its sequence number
 * (> 0), or 0 when none may be spent now.  Urgent requests (launches,
 * aborts: api_call_urgent) may take the last tokens; the others leave a
 * reserve for them.
 */
extern int64 budget_take(bool urgent);

/* Tokens that could be taken now (capped at `want`), without taking them. */
extern int	budget_available(bool urgent, int want);

/* When a token will be there for such a request; 0 when there is one now. */
extern TimestampTz budget_next_at(bool urgent);

/* Due work waited for lack of a token (a request held, a refresh put off). */
extern void budget_note_wait(void);

/* The request sent as `seq` was answered 429: maybe slow down. */
extern void budget_rate_limited(int64 seq);

/* The server asked for a pause of `ms` (Retry-After, or a delay in its body). */
extern void budget_server_pause(int64 ms);

/* An answer (with an HTTP status) that was not a 429. */
extern void budget_accepted(void);

/*
 * The server's rate-limit headers on any answer: `remaining` requests
 * until its window resets in `reset_s` seconds (negative: not given).
 */
extern void budget_server_window(double remaining, double reset_s);

/* For invicti_scan_stats: the ceiling (0: none), the rate that applies
 * now in requests a minute (-1: no limit), requests sent in the last 60 s,
 * requests held so far, and cuts of the rate after a 429. */
extern void budget_stats(int *ceiling, double *effective, int *last_minute,
						 int64 *waits, int64 *cuts);

#endif

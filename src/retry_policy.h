/*
 * retry_policy.h
 *		How long to wait before trying again: per-request exponential backoff
 *		and the pause that applies to the whole API (429, refused token).
 */
#ifndef INVICTI_RETRY_POLICY_H
#define INVICTI_RETRY_POLICY_H

#include "datatype/timestamp.h"

/*
 * Delay before retry number `attempt` (1 = first retry): one second doubling
 * each time up to invicti_scan.retry_max_delay, with random jitter between
 * half and all of that so that many rows never retry in lockstep.
 */
extern int64 retry_policy_delay_ms(int attempt);

/*
 * A 429 (or a 503 that says when to come back): pause every request for
 * `secs` seconds as the server asked (source says where it said so), or,
 * with secs < 0, back off.
 */
extern void api_pause_rate_limited(int64 secs, const char *source);

/* A 401/403: pause every request with backoff; one WARNING per episode. */
extern void api_pause_auth_failed(const char *message);

/* Any successful exchange ends a rate-limit or auth episode. */
extern void api_pause_success(void);

/* Settings changed (reload): forget pauses so a fixed token applies now. */
extern void api_pause_reset(void);

/* When requests may start again; 0 when not paused. */
extern TimestampTz api_paused_until(void);

#endif

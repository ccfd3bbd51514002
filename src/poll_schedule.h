/*
 * poll_schedule.h
 *		The in-memory timetable of running scans: when each is next
 *		refreshed, and whether by a list round or by its own request.
 */
#ifndef INVICTI_POLL_SCHEDULE_H
#define INVICTI_POLL_SCHEDULE_H

#include "datatype/timestamp.h"
#include "utils/uuid.h"

extern void poll_schedule_reset(void);

/*
 * Add a scan to be refreshed at `due`, unless it is already scheduled.
 * `single`: by a request of its own first (a scan just launched or
 * aborted: one request, not a list round); else by the next list round
 * when list rounds are on.
 */
extern void poll_schedule_add(int64 id, const pg_uuid_t *scan_id, TimestampTz due,
							  bool single);

/*
 * Bring the timetable in line with the table: between sync_begin and
 * sync_end, add every scan the table says is running; sync_end forgets the
 * others and returns how many.  Scans already scheduled keep their time.
 */
extern void poll_schedule_sync_begin(void);
extern int	poll_schedule_sync_end(void);

/* Forget a scan (finished, aborted, deleted). */
extern void poll_schedule_remove(int64 id);

/*
 * List rounds on or off (invicti_scan.poll_method and its fallback).  Off,
 * every scan is refreshed by its own request.
 */
extern void poll_schedule_set_list_rounds(bool on);

/*
 * Take the earliest scan due by `now` that is refreshed by its own request,
 * marking it in flight; *failures is how many refreshes of it failed in a
 * row.
 */
extern bool poll_schedule_take_due(TimestampTz now, int64 *id,
								   pg_uuid_t *scan_id, int *failures);

/*
 * List rounds.  A round is due when the earliest scan it refreshes is due
 * (round_due; 0 when none is scheduled).  round_begin starts one, meant to
 * show every scan then on the round heap; round_saw takes a scan the list
 * showed (false when the scan is not tracked, or is in flight already),
 * marking it in flight: the caller finishes it with poll_schedule_done.
 * round_end, after the last page, hands every scan the round was meant to
 * show and did not (it left the running set, or moved between pages) to a
 * request of its own: none is lost.  Returns how many.
 */
extern TimestampTz poll_schedule_round_due(void);
extern void poll_schedule_round_begin(void);
extern bool poll_schedule_knows(const pg_uuid_t *scan_id);
extern bool poll_schedule_round_saw(const pg_uuid_t *scan_id, int64 *id);
extern int	poll_schedule_round_end(TimestampTz now);

/* Scans the current round is meant to show and has not shown yet. */
extern int	poll_schedule_round_unseen(void);

typedef enum PollOutcome
{
	POLL_OK,					/* next refresh after poll_interval */
	POLL_FAILED,				/* back off: retry_policy_delay_ms(), at most
								 * poll_interval, by its own request */
	POLL_DEFERRED				/* due again now; a whole-API pause holds it */
} PollOutcome;

/* A refresh finished: schedule the next one.  No-op if the scan was removed. */
extern void poll_schedule_done(int64 id, PollOutcome outcome, TimestampTz now);

/*
 * invicti_refresh_scan(): refresh the scan by a request of its own sent
 * after the call: now, or, when a refresh was sent less than five seconds
 * ago, five seconds after it (every call until then is answered by that
 * one request).  False when the scan is not tracked.
 */
extern bool poll_schedule_refresh(int64 id, TimestampTz now);

/* Everything due now (the refresh queue overflowed). */
extern void poll_schedule_all_due(TimestampTz now);

/* Nothing due later than `latest` (poll_interval was shortened). */
extern void poll_schedule_clamp(TimestampTz latest);

/*
 * A hash of the last answer recorded in the scan's row (0 when unknown, or
 * the scan is not scheduled), and setting it once the answer is recorded.
 */
extern uint64 poll_schedule_recorded_answer(int64 id);
extern void poll_schedule_set_recorded_answer(int64 id, uint64 answer);

/* Earliest due time of a scan refreshed by its own request; 0 when none. */
extern TimestampTz poll_schedule_next_due(void);

extern int	poll_schedule_count(void);

#endif

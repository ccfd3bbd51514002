/*
 * poll_schedule.h
 *		The in-memory timetable of running scans: when each is next polled.
 */
#ifndef INVICTI_POLL_SCHEDULE_H
#define INVICTI_POLL_SCHEDULE_H

#include "datatype/timestamp.h"
#include "utils/uuid.h"

extern void poll_schedule_reset(void);

/* Add a scan to be polled at `due`, unless it is already scheduled. */
extern void poll_schedule_add(int64 id, const pg_uuid_t *scan_id, TimestampTz due);

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
 * Take the earliest scan due by `now`, marking it in flight; *failures is
 * how many polls of it failed in a row.
 */
extern bool poll_schedule_take_due(TimestampTz now, int64 *id,
								   pg_uuid_t *scan_id, int *failures);

typedef enum PollOutcome
{
	POLL_OK,					/* next poll after poll_interval */
	POLL_FAILED,				/* back off: retry_policy_delay_ms(), at most
								 * poll_interval */
	POLL_DEFERRED				/* due again now; a whole-API pause holds it */
} PollOutcome;

/* A poll finished: schedule the next one.  No-op if the scan was removed. */
extern void poll_schedule_done(int64 id, PollOutcome outcome, TimestampTz now);

/*
 * A hash of the last answer recorded in the scan's row (0 when unknown, or
 * the scan is not scheduled), and setting it once the answer is recorded.
 */
extern uint64 poll_schedule_recorded_answer(int64 id);
extern void poll_schedule_set_recorded_answer(int64 id, uint64 answer);

/* Earliest due time of a scan not in flight; 0 when there is none. */
extern TimestampTz poll_schedule_next_due(void);

extern int	poll_schedule_count(void);

#endif

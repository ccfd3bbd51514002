/*
 * scan_jobs.h
 *		The life of one API request made for one row: build it, send it,
 *		judge the answer, record the verdict.
 */
#ifndef INVICTI_SCAN_JOBS_H
#define INVICTI_SCAN_JOBS_H

#include "scan_store.h"

extern void jobs_init(void);

/* Requests in flight, and row ids of every job not yet recorded. */
extern int	jobs_in_flight(void);
extern int	jobs_busy_ids(int64 **ids);

extern void jobs_start_launch(const LaunchClaim *claim);
extern void jobs_start_table_work(const TableClaim *claim);
extern void jobs_start_poll(int64 id, const pg_uuid_t *scan_id);

/*
 * Take finished transfers and judge them (outside any transaction).  A
 * multi-page job sends its next request here.
 */
extern void jobs_collect(void);

/* Verdicts waiting to be recorded; whether any of them must be durable. */
extern int	jobs_waiting(void);
extern bool jobs_waiting_need_durability(void);

/*
 * Record up to `max` verdicts (0 = all), oldest first, in the caller's
 * transaction.  After the commit call jobs_recorded(), which says whether
 * work the table schedules was added or moved; if the transaction failed
 * instead, call jobs_record_failed(), which moves those verdicts to the back
 * of the queue and gives up on one after three failures.
 */
extern void jobs_record(int max);
extern bool jobs_recorded(void);
extern void jobs_record_failed(void);

/* The extension went away: drop unrecorded verdicts. */
extern void jobs_discard_waiting(void);

/* Per-row failure counts for table-scheduled work (reconciliation). */
extern void jobs_forget_failures(void);

#endif

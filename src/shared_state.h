/*
 * shared_state.h
 *		The small block of shared memory between the worker and backends:
 *		how to wake the worker, and the worker's health counters.
 */
#ifndef INVICTI_SHARED_STATE_H
#define INVICTI_SHARED_STATE_H

#include "datatype/timestamp.h"

#include "api_call.h"

/* A consistent copy of the worker's counters and health. */
typedef struct InvictiStats
{
	int			worker_pid;		/* 0 when no worker runs */
	TimestampTz worker_started_at;
	TimestampTz last_success_at;
	TimestampTz last_error_at;
	char		last_error[256];
	TimestampTz paused_until;	/* whole-API pause (429, auth), 0 if none */
	int			in_flight;
	uint64		retries;
	uint64		requests[NUM_CALL_KINDS][NUM_OUTCOMES];
	char		poll_method[256];	/* "list", "scan", "scan (fallback: ...)" */
	int			budget_per_minute;	/* configured; 0: no limit */
	double		budget_effective;	/* requests a minute now; -1: no limit */
	int			requests_last_minute;
	int64		budget_waits;	/* requests held for the budget */
	int64		rate_cuts;		/* the rate cut after a 429 */
	uint64		refresh_requests;	/* invicti_refresh_scan() calls queued */
} InvictiStats;

/* How many invicti_refresh_scan() requests wait for the worker at most. */
#define INVICTI_REFRESH_QUEUE 256

extern void invicti_shmem_request(void);
extern void invicti_shmem_startup(void);
extern bool invicti_shmem_available(void);

/* Backends: ask the worker to look at the table now (e.g. after a launch). */
extern void invicti_wake_worker(void);

/*
 * Backends, after a commit that changed the table behind the worker's back:
 * ask it to reload what it polls.  The worker takes the request (true once).
 */
extern void invicti_request_resync(void);
extern bool invicti_take_resync_request(void);

/*
 * After a commit that changed rows of invicti_scans (the worker's, or a
 * session's seen by commit_wake.c): wake every invicti_wait_scan().  The
 * waiters sleep until then, or timeout_ms at most (true when woken; false
 * at the timeout or without shared memory), and stop waiting when done.
 */
extern void invicti_announce_scan_changes(void);
extern bool invicti_wait_for_scan_changes(long timeout_ms, uint32 wait_event_info);
extern void invicti_stop_waiting_for_scan_changes(void);

/* Worker: announce or withdraw itself. */
extern void invicti_worker_attach(void);
extern void invicti_worker_detach(void);

/* The database check's answer (see database_wait.c), passed through shared memory. */
extern void invicti_set_database_exists(bool exists);
extern bool invicti_database_exists(void);

/* Worker: record what happened. */
extern void invicti_stats_count(ApiCallKind kind, ApiOutcome outcome,
								bool is_retry, const char *error);
extern void invicti_stats_set_activity(int in_flight, TimestampTz paused_until,
									   const char *poll_method, int budget_per_minute,
									   double budget_effective, int requests_last_minute,
									   int64 budget_waits, int64 rate_cuts);

/*
 * Backends: ask the worker to refresh the scan of row `id` now (idempotent
 * while queued).  When the queue is full the worker refreshes everything
 * instead: no request is lost.
 */
extern void invicti_request_refresh(int64 id);

/* Worker: take the queued requests (at most INVICTI_REFRESH_QUEUE). */
extern int	invicti_take_refresh_requests(int64 *ids, bool *overflow);

/* Anyone: a snapshot; returns false when the library is not preloaded. */
extern bool invicti_stats_read(InvictiStats *out);

#endif

/*
 * scan_state.h
 *		The state machine of one invicti_scans row: the worker's states, their
 *		names in the worker_state column, the moves between them, and the
 *		statuses the extension itself writes into the status column.
 *
 * This header and scan_state.c are the only place these are defined.  SQL
 * elsewhere names a state as {name}, which scan_store.c checks against this
 * table when it prepares the statement; the table's CHECK constraint is
 * compared with it by a regression test (sql/state_machine.sql).
 */
#ifndef INVICTI_SCAN_STATE_H
#define INVICTI_SCAN_STATE_H

typedef enum WorkerState
{
	WS_LAUNCH,					/* queued: the launch is sent at
								 * next_attempt_at */
	WS_SENDING,					/* the launch request may be on its way */
	WS_RECONCILE,				/* the launch's outcome is unknown: list scans */
	WS_POLL,					/* the scan runs; polled every poll_interval */
	WS_ABORT,					/* an abort request is to be sent */
	WS_IMPORT,					/* the scan ended: its end date and findings
								 * are fetched */
	WS_DONE,					/* nothing left to do */
	NUM_WORKER_STATES
} WorkerState;

/* The worker_state column's text for each state. */
extern const char *const worker_state_names[NUM_WORKER_STATES];

/* The state of a name, or -1 when it names none. */
extern int	worker_state_from_name(const char *name);

/* Whether the worker or the SQL API ever moves a row from one to the other. */
extern bool worker_state_move_allowed(WorkerState from, WorkerState to);

/* States whose rows the worker schedules through next_attempt_at. */
extern bool worker_state_table_scheduled(WorkerState state);

/*
 * What invicti_abort_scan() does to a row in a given state: refuse (it has
 * finished), nothing (an abort was asked for already), cancel it here (it
 * was never sent), have the worker send an abort, or have the worker abort
 * the scan as soon as its launch returns an id.
 */
typedef enum AbortAction
{
	ABORT_REFUSE_FINISHED,
	ABORT_ALREADY_REQUESTED,
	ABORT_CANCEL_UNSENT,
	ABORT_SEND_NOW,
	ABORT_AFTER_LAUNCH
} AbortAction;

extern AbortAction worker_state_abort_action(WorkerState state);

/* Whether an API status (current_session.status) ends the scan. */
extern bool scan_status_is_terminal(const char *status);

/*
 * The values the spec's scan_status filter of GET /scans takes, as the
 * filter takes them (comma-separated): those of a scan still running, and
 * those of one that ended; and whether a status is in such a list.
 */
extern const char *const scan_filter_running;
extern const char *const scan_filter_ended;
extern bool scan_status_in(const char *list, const char *status);

/*
 * The row's state after a poll answered `status` (NULL: the session has not
 * started): WS_POLL while the scan runs, WS_IMPORT once it ended (the store
 * makes that WS_DONE when there is nothing left to fetch).
 */
extern WorkerState worker_state_after_poll(const char *status);

/*
 * Statuses the extension writes itself; every other status is the API's
 * current_session.status, verbatim.
 */
#define SCAN_STATUS_PENDING	"pending"	/* not acknowledged by the API yet */
#define SCAN_STATUS_LAUNCHED "launched" /* acknowledged, not polled yet */
#define SCAN_STATUS_ERROR	"error" /* the launch failed for good */
#define SCAN_STATUS_ABORTING "aborting" /* also an API status */
#define SCAN_STATUS_ABORTED	"aborted"	/* also an API status */

#endif

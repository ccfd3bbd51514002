/*
 * scan_store.h
 *		Every statement that reads or writes a row of the extension's tables,
 *		for the worker and for the SQL API.
 */
#ifndef INVICTI_SCAN_STORE_H
#define INVICTI_SCAN_STORE_H

#include "datatype/timestamp.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "api_call.h"
#include "api_response.h"
#include "scan_state.h"

/*
 * Which tables the statements name: the worker's are set by
 * store_transaction.c, a backend's from the table its SQL function found.
 * Changing them forgets the prepared plans.
 */
extern void scan_store_set_tables(const char *scans, const char *findings);
extern void scan_store_set_tables_of(Oid scans_relid);
extern void scan_store_forget_plans(void);

/*
 * The owner of invicti_scans in schema nsp (the role the worker and the
 * SQL API act as), and the table itself; an error when the table is
 * missing or its owner may not use the schema.
 */
extern Oid	scan_store_tables_owner(Oid nsp, Oid *relid);

/* ---- for the worker (inside store_run) ---- */

/* Work items handed to the worker. */
typedef struct LaunchClaim
{
	int64		id;
	pg_uuid_t	target_id;
	pg_uuid_t	profile_id;
	int32		attempts;
	Jsonb	   *options;		/* launch_options, or NULL */
} LaunchClaim;

/* Work the table schedules: reconciliation, abort, import of findings. */
typedef struct TableClaim
{
	int64		id;
	WorkerState state;			/* WS_RECONCILE, WS_ABORT or WS_IMPORT */
	pg_uuid_t	target_id;
	pg_uuid_t	profile_id;
	bool		has_scan_id;
	pg_uuid_t	scan_id;
	bool		has_session_id;
	pg_uuid_t	session_id;
	TimestampTz last_attempt_at;	/* when the launch was last sent */
	int32		attempts;
	char	   *cursor;			/* import: next page, or NULL */
	bool		has_end_date;	/* import: the row knows when the session
								 * ended */
} TableClaim;

/*
 * Of the rows `ids`, lock those nobody else has locked (for this
 * transaction) and say which of the others still exist: those are locked
 * by another session.  locked[i], busy[i] are set per id.
 */
extern void scan_store_lock_rows(const int64 *ids, int n, bool *locked, bool *busy);

/* Rows left in 'sending' by a previous worker (not in `busy`): reconcile them. */
extern int	scan_store_origin_reconcile(const char *note);
extern int	scan_store_sweep_sending(const int64 *busy, int nbusy, TimestampTz reconcile_at);

/* Mark up to `limit` due launches 'sending' and return them. */
extern int	scan_store_claim_launches(int limit, LaunchClaim **out);

/* Due table-scheduled work not in `busy`; imports only when `imports`. */
extern int	scan_store_claim_table_work(const int64 *busy, int nbusy, int limit,
										bool imports, TableClaim **out);

/* Earliest next_attempt_at of table-scheduled work not in `busy`; 0 if none. */
extern TimestampTz scan_store_next_due(const int64 *busy, int nbusy, bool imports);

extern void scan_store_load_polls(void (*add) (int64 id, const pg_uuid_t *scan_id));

/* Recording a scan id for a row. */
typedef enum AdoptResult
{
	ADOPTED,					/* now polled */
	ADOPTED_TO_ABORT,			/* an abort was asked for meanwhile: abort it */
	ROW_MOVED_ON,				/* the row is no longer waiting for an id */
	SCAN_ID_TAKEN				/* another row (*holder) already tracks it */
} AdoptResult;

/* Launch outcomes. */
extern AdoptResult scan_store_launch_ok(int64 id, const pg_uuid_t *scan_id, int64 *holder);
extern void scan_store_launch_retry(int64 id, TimestampTz when, const char *error);
extern void scan_store_launch_unknown(int64 id, TimestampTz when, const char *error);
extern void scan_store_launch_failed(int64 id, const char *error);

/*
 * Poll outcomes.  next_state is the row's worker_state after this answer:
 * WS_POLL while the scan runs, WS_IMPORT once it ended (WS_DONE instead
 * when there is no session, or nothing to fetch: an end date known and
 * import_findings off).  Returns false when the row is no longer polled.
 */
extern bool scan_store_poll_update(int64 id, const ApiScanState *st, Jsonb *response,
								   WorkerState next_state, bool import_findings);

/*
 * scan_store_poll_update for n rows in one statement: states[i] and
 * responses[i] are the answer for row ids[i], next[i] its next state;
 * still_polled[i] says whether row ids[i] is still polled afterwards.
 */
extern void scan_store_poll_update_many(const int64 *ids, ApiScanState *const *states,
										Jsonb *const *responses, const WorkerState *next,
										int n, bool import_findings, bool *still_polled);
extern void scan_store_poll_gone(int64 id, const char *error);
extern void scan_store_poll_error(int64 id, const char *error);

/* Reconciliation. */
extern bool scan_store_scan_id_known(const pg_uuid_t *scan_id);
extern AdoptResult scan_store_reconcile_adopt(int64 id, const pg_uuid_t *scan_id,
											  int64 *holder);
extern void scan_store_reconcile_resend(int64 id, const char *note);

/* Try table-scheduled work (in worker_state `state`) again at `when`. */
extern void scan_store_work_retry(int64 id, WorkerState state, TimestampTz when,
								  const char *error);

/* Abort outcomes: sent (poll again; note may explain a refusal), or gone. */
extern void scan_store_abort_sent(int64 id, const char *note);
extern void scan_store_abort_gone(int64 id, const char *error);

/*
 * Finishing an ended scan: its end date (from the results list), then its
 * findings, one page at a time, then done (or failed for good).
 */
extern void scan_store_set_end_date(int64 id, TimestampTz end_date);
extern bool scan_store_insert_finding(int64 id, const pg_uuid_t *session_id,
									  const Finding *finding);
extern void scan_store_import_page(int64 id, const char *next_cursor, const char *note);
extern void scan_store_import_done(int64 id, const char *note, bool findings_imported);
extern void scan_store_import_failed(int64 id, const char *error);

/* Retention: delete up to `limit` finished scans older than `days`. */
extern int	scan_store_delete_old_scans(int days, int limit);

/* ---- for the SQL API (in the caller's transaction, as the owner) ---- */

/* Insert a pending launch (options checked, or NULL); returns its id. */
extern int64 scan_store_insert_launch(const pg_uuid_t *target, const pg_uuid_t *profile,
									  Oid launched_by, Jsonb *options);

/*
 * Lock a row for invicti_abort_scan(); false when it does not exist.  On
 * success *state, *status (palloc'd) and *launched_by describe it.
 */
extern bool scan_store_lock_for_abort(int64 id, WorkerState *state, char **status,
									  Oid *launched_by);

/*
 * The row invicti_refresh_scan() names, by row id or (scan_id not NULL) by
 * scan id; false when there is none.
 */
extern bool scan_store_find_for_refresh(int64 id, const pg_uuid_t *scan_id, int64 *found_id,
										WorkerState *state, Oid *launched_by);

/* Carry out an AbortAction (other than refusing) on a locked row. */
extern void scan_store_abort(int64 id, AbortAction action, const char *aborted_by);

#endif

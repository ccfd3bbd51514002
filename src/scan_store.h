/*
 * scan_store.h
 *		Everything the worker reads from or writes to the invicti_scans table.
 */
#ifndef INVICTI_SCAN_STORE_H
#define INVICTI_SCAN_STORE_H

#include "datatype/timestamp.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "api_response.h"
#include "shared_state.h"

typedef enum StoreStatus
{
	STORE_READY,				/* a transaction is open; use the store_* calls */
	STORE_NO_EXTENSION,			/* not installed in this database (yet) */
	STORE_WRONG_VERSION			/* installed, but not the library's version */
} StoreStatus;

/*
 * Open one transaction + SPI + snapshot bracket, checking the extension.
 * `durable` forces synchronous_commit on for this transaction (launch
 * bookkeeping must survive a crash); otherwise it is off (a lost poll
 * result is simply polled again).  Unless STORE_READY is returned, no
 * transaction is left open.
 */
extern StoreStatus store_begin(const char *activity, bool durable);
extern void store_commit(void);

/*
 * Flush pending table statistics (force: even if flushed less than a
 * second ago); store_stats_flush_due() says when the rest is due, 0 if none.
 */
extern void store_flush_stats(bool force);
extern TimestampTz store_stats_flush_due(void);

/* The installed version, valid after store_begin() returned WRONG_VERSION. */
extern const char *store_installed_version(void);

/* True once after the extension appeared or was re-created. */
extern bool store_extension_changed(void);

/* Forget prepared plans, e.g. after an error. */
extern void store_forget_plans(void);

/* Work items handed to the worker. */
typedef struct LaunchClaim
{
	int64		id;
	pg_uuid_t	target_id;
	pg_uuid_t	profile_id;
	int32		attempts;
} LaunchClaim;

/* Work the table schedules: reconciliation, abort, import of findings. */
typedef struct TableClaim
{
	int64		id;
	InvictiCallKind kind;		/* CALL_RECONCILE, CALL_ABORT or CALL_RESULTS */
	pg_uuid_t	target_id;
	pg_uuid_t	profile_id;
	bool		has_scan_id;
	pg_uuid_t	scan_id;
	bool		has_session_id;
	pg_uuid_t	session_id;
	TimestampTz last_attempt_at;	/* when the launch was last sent */
	int32		attempts;
	char	   *cursor;			/* import: next page, or NULL */
} TableClaim;

/* Rows left in 'sending' by a previous worker (not in `busy`): reconcile them. */
extern int	store_sweep_sending(const int64 *busy, int nbusy, TimestampTz reconcile_at);

/* Mark up to `limit` due launches 'sending' and return them. */
extern int	store_claim_launches(int limit, LaunchClaim **out);

/* Due table-scheduled work not in `busy`; imports only when `imports`. */
extern int	store_claim_table_work(const int64 *busy, int nbusy, int limit,
								   bool imports, TableClaim **out);

/* Earliest next_attempt_at of table-scheduled work not in `busy`; 0 if none. */
extern TimestampTz store_next_due(const int64 *busy, int nbusy, bool imports);

extern void store_load_polls(void (*add) (int64 id, const pg_uuid_t *scan_id));

/* Recording a scan id for a row. */
typedef enum AdoptResult
{
	ADOPTED,					/* now polled */
	ADOPTED_TO_ABORT,			/* an abort was asked for meanwhile: abort it */
	ROW_MOVED_ON,				/* the row is no longer waiting for an id */
	SCAN_ID_TAKEN				/* another row (*holder) already tracks it */
} AdoptResult;

/* Launch outcomes. */
extern AdoptResult store_launch_ok(int64 id, const pg_uuid_t *scan_id, int64 *holder);
extern void store_launch_retry(int64 id, TimestampTz when, const char *error);
extern void store_launch_unknown(int64 id, TimestampTz when, const char *error);
extern void store_launch_failed(int64 id, const char *error);

/*
 * Poll outcomes.  next_state is the row's worker_state after this answer
 * ('done', 'import'), or NULL while the scan runs.  store_poll_update
 * returns false when the row is no longer polled.
 */
extern bool store_poll_update(int64 id, const ApiScanState *st, Jsonb *response,
							  const char *next_state);
extern void store_poll_gone(int64 id, const char *error);
extern void store_poll_error(int64 id, const char *error);

/* Reconciliation. */
extern bool store_scan_id_known(const pg_uuid_t *scan_id);
extern AdoptResult store_reconcile_adopt(int64 id, const pg_uuid_t *scan_id,
										 int64 *holder);
extern void store_reconcile_resend(int64 id, const char *note);

/* Try table-scheduled work (in worker_state `state`) again at `when`. */
extern void store_work_retry(int64 id, const char *state, TimestampTz when,
							 const char *error);

/* Abort outcomes: sent (poll again; note may explain a refusal), or gone. */
extern void store_abort_sent(int64 id, const char *note);
extern void store_abort_gone(int64 id, const char *error);

/* Import of findings: one page, then done (or failed for good). */
extern bool store_insert_finding(int64 id, const pg_uuid_t *session_id,
								 const Finding *finding);
extern void store_import_page(int64 id, const char *next_cursor);
extern void store_import_done(int64 id);
extern void store_import_failed(int64 id, const char *error);

/* Retention: delete up to `limit` finished scans older than `days`. */
extern int	store_delete_old_scans(int days, int limit);

#endif

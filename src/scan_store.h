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

typedef struct ReconcileClaim
{
	int64		id;
	pg_uuid_t	target_id;
	pg_uuid_t	profile_id;
	TimestampTz last_attempt_at;
	int32		attempts;
} ReconcileClaim;

/* Rows left in 'sending' by a previous worker (not in `busy`): reconcile them. */
extern int	store_sweep_sending(const int64 *busy, int nbusy, TimestampTz reconcile_at);

/* Mark up to `limit` due launches 'sending' and return them. */
extern int	store_claim_launches(int limit, LaunchClaim **out);

extern int	store_claim_reconciles(const int64 *busy, int nbusy, int limit,
								   ReconcileClaim **out);

/* Earliest next_attempt_at of table-scheduled work not in `busy`; 0 if none. */
extern TimestampTz store_next_due(const int64 *busy, int nbusy);

extern void store_load_polls(void (*add) (int64 id, const pg_uuid_t *scan_id));

/* Recording a scan id for a row. */
typedef enum AdoptResult
{
	ADOPTED,
	ROW_MOVED_ON,				/* the row is no longer waiting for an id */
	SCAN_ID_TAKEN				/* another row (*holder) already tracks it */
} AdoptResult;

/* Launch outcomes. */
extern AdoptResult store_launch_ok(int64 id, const pg_uuid_t *scan_id, int64 *holder);
extern void store_launch_retry(int64 id, TimestampTz when, const char *error);
extern void store_launch_unknown(int64 id, TimestampTz when, const char *error);
extern void store_launch_failed(int64 id, const char *error);

/* Poll outcomes.  store_poll_update returns false when the row is no longer polled. */
extern bool store_poll_update(int64 id, const ApiScanState *st, Jsonb *response,
							  bool terminal);
extern void store_poll_gone(int64 id, const char *error);
extern void store_poll_error(int64 id, const char *error);

/* Reconciliation. */
extern bool store_scan_id_known(const pg_uuid_t *scan_id);
extern AdoptResult store_reconcile_adopt(int64 id, const pg_uuid_t *scan_id,
										 int64 *holder);
extern void store_reconcile_resend(int64 id, const char *note);
extern void store_reconcile_retry(int64 id, TimestampTz when, const char *error);

#endif

/*
 * catalog_store.h
 *		Every statement on the catalogs (invicti_targets,
 *		invicti_scanning_profiles, invicti_report_templates,
 *		invicti_sync_status) and on invicti_target_requests.
 */
#ifndef INVICTI_CATALOG_STORE_H
#define INVICTI_CATALOG_STORE_H

#include "datatype/timestamp.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/* What the API lists and the worker copies. */
typedef enum Catalog
{
	CATALOG_SCANNING_PROFILES,
	CATALOG_REPORT_TEMPLATES,
	CATALOG_TARGETS,
	NUM_CATALOGS
} Catalog;

/* Its name in invicti_sync_status.catalog, and the list's key in the API's answer. */
extern const char *const catalog_names[NUM_CATALOGS];
extern const char *const catalog_list_keys[NUM_CATALOGS];

/*
 * The extension's schema, quoted, that every statement names: the worker's
 * is set by store_transaction.c, a backend's by the SQL function.
 */
extern void catalog_store_set_schema(const char *quoted_schema);

/*
 * Run a statement (SPI) in which every "@S" stands for that schema; returns
 * the rows processed, SPI_tuptable holds any result.  report_store.c uses it.
 */
extern uint64 catalog_store_exec(const char *sql, int nargs, Oid *types, Datum *values,
								 const char *nulls);

/* Parameters: a bigint[] of ids; a text that may be NULL (*null says so). */
extern Datum catalog_store_id_array(const int64 *ids, int n);
extern Datum catalog_store_text_or_null(const char *s, char *null);

/* ---- for the worker (inside store_run) ---- */

/*
 * Store the items of one page (the API's whole answer `body`, the list
 * under the catalog's key) as seen by the sync round that started at
 * `round`.  Items the table cannot take (no valid id, a field beyond the
 * spec's limits) are skipped: counted in *skipped, the first reason in
 * *problem (palloc'd, or NULL).  Returns the items stored.
 */
extern int	catalog_store_page(Catalog c, Jsonb *body, TimestampTz round,
							   int *skipped, char **problem);

/*
 * A complete round ended: mark what it did not see as vanished and record
 * the round in invicti_sync_status.  Returns the rows newly vanished.
 */
extern int	catalog_store_round_done(Catalog c, TimestampTz round, int items, int skipped,
									 const char *note);

/* A round of the catalog failed: record why (nothing is marked vanished). */
extern void catalog_store_round_failed(Catalog c, TimestampTz round, const char *error);

/* When invicti_sync() last asked for a sync; 0: never. */
extern TimestampTz catalog_store_sync_requested_at(void);

/* A claimed target request. */
typedef struct TargetClaim
{
	int64		id;
	char	   *address;
	char	   *description;
	int32		criticality;
	int32		attempts;
	bool		reconcile;		/* its outcome is unknown: look it up */
} TargetClaim;

/*
 * Requests left 'sending' (not in `busy`): reconcile them at `when`; then
 * claim up to `limit` due requests (pending ones are marked 'sending',
 * durably, before they are returned), and say when the next is due.
 */
extern int	catalog_store_origin_reconcile_targets(const char *note);
extern int	catalog_store_sweep_targets(const int64 *busy, int nbusy, TimestampTz when);
extern int	catalog_store_claim_targets(const int64 *busy, int nbusy, int limit,
										TargetClaim **out);
extern TimestampTz catalog_store_targets_next_due(const int64 *busy, int nbusy);

/*
 * Outcomes of a target request.  created: the API gave the target id (and
 * the target as it answered, or NULL), the target is stored in
 * invicti_targets too.  retry: not created, send again at `when`.
 * unknown: maybe created, look it up at `when`.  failed: refused for good.
 * resend: looked up and not found, send again now.
 */
extern void catalog_store_target_created(int64 id, const pg_uuid_t *target_id, Jsonb *item);
extern void catalog_store_target_retry(int64 id, TimestampTz when, const char *error);
extern void catalog_store_target_unknown(int64 id, TimestampTz when, const char *error);
extern void catalog_store_target_failed(int64 id, const char *error);
extern void catalog_store_target_resend(int64 id, const char *note);

/* ---- for the SQL API (in the caller's transaction, as the owner) ---- */

/* Queue a target request; returns its id. */
extern int64 catalog_store_insert_target_request(const char *address, const char *description,
												 int32 criticality, Oid requested_by);

/* A listed target with this address (*target_id), or an open request (*request_id). */
extern bool catalog_store_target_exists(const char *address, pg_uuid_t *target_id);
extern bool catalog_store_target_request_open(const char *address, int64 *request_id);

/*
 * The scanning profiles or report templates (not vanished) named `name`:
 * exactly as written when any is, else ignoring case.  Returns how many;
 * the first few ids go to ids[] (at most max_ids).
 */
extern int	catalog_store_named(Catalog c, const char *name, pg_uuid_t *ids, int max_ids);

/* How many items of a catalog are listed (not vanished). */
extern int64 catalog_store_count(Catalog c);

/* Ask the worker for a sync (invicti_sync_status.requested_at = now()). */
extern void catalog_store_request_sync(void);

#endif

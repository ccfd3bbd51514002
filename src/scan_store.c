/*
 * scan_store.c
 *		The worker's reads and writes of the invicti_scans table, through SPI
 *		with prepared plans.
 *
 * Each worker step is one transaction + SPI + snapshot bracket
 * (store_begin / store_commit), opened only around database work and never
 * while waiting on the network.  The extension may be created, dropped,
 * re-created or updated while the worker runs: store_begin() looks it up
 * each time and reports when it is absent or of another version, so the
 * worker can wait quietly instead of failing.
 *
 * How writes stay small: a poll that changes nothing updates nothing (the
 * UPDATE compares the new response with the stored one); a poll that does
 * change something touches only unindexed columns, so the update is HOT.
 * Every write is guarded by the row's worker_state, so a row that moved on
 * (deleted, finished, re-queued) is never overwritten by a stale answer.
 *
 * Rules: nothing here talks to the network; every statement names the
 * table with its schema; no SQL is built from API data (all values are
 * parameters).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "invicti_scan.h"
#include "scan_store.h"

typedef enum PlanId
{
	P_SWEEP_SENDING,
	P_CLAIM_LAUNCHES,
	P_CLAIM_TABLE_WORK,
	P_NEXT_DUE,
	P_LOAD_POLLS,
	P_LAUNCH_OK,
	P_LAUNCH_RETRY,
	P_LAUNCH_UNKNOWN,
	P_LAUNCH_FAILED,
	P_POLL_UPDATE,
	P_POLL_GONE,
	P_POLL_ERROR,
	P_SCAN_ID_KNOWN,
	P_RECONCILE_ADOPT,
	P_RECONCILE_RESEND,
	P_WORK_RETRY,
	P_ABORT_SENT,
	P_ABORT_GONE,
	P_FINDING_INSERT,
	P_IMPORT_PAGE,
	P_IMPORT_DONE,
	P_IMPORT_FAILED,
	P_RETENTION,
	NUM_PLANS
} PlanId;

#define MAX_ARGS 16

typedef struct PlanDef
{
	const char *sql;			/* "@T"/"@V": the qualified scans/findings table */
	int			nargs;
	Oid			types[MAX_ARGS];
} PlanDef;

/*
 * What a row becomes once it has a scan id: polled, or aborted first when
 * invicti_abort_scan() was called while its launch was under way.
 */
#define STATE_WITH_SCAN \
	"worker_state = CASE WHEN abort_requested_at IS NULL THEN 'poll' ELSE 'abort' END, " \
	"status = CASE WHEN abort_requested_at IS NULL THEN 'launched' ELSE 'aborting' END, " \
	"next_attempt_at = now(), launched_at = now(), last_error = NULL, updated_at = now() "

/* A launch that will be sent again, unless an abort was asked for meanwhile. */
#define STATE_RELAUNCH \
	"worker_state = CASE WHEN abort_requested_at IS NULL THEN 'launch' ELSE 'done' END, " \
	"status = CASE WHEN abort_requested_at IS NULL THEN status ELSE 'aborted' END, "

/*
 * Record a scan id unless another row already tracks it (a server that
 * repeats an id must not make the worker fail on the unique index).  The
 * result: the row holding the id, if any, and this row's new state.
 */
#define ADOPT_SQL(from_state) \
	"WITH taken AS (SELECT id FROM @T WHERE scan_id = $2 LIMIT 1), " \
	"upd AS (UPDATE @T SET scan_id = $2, " STATE_WITH_SCAN \
	"  WHERE id = $1 AND worker_state = '" from_state "' " \
	"    AND NOT EXISTS (SELECT 1 FROM taken) RETURNING worker_state) " \
	"SELECT (SELECT id FROM taken), (SELECT worker_state FROM upd)"

static const PlanDef plan_defs[NUM_PLANS] = {
	[P_SWEEP_SENDING] = {
		"UPDATE @T SET worker_state = 'reconcile', next_attempt_at = $2, updated_at = now() "
		"WHERE worker_state = 'sending' AND id <> ALL ($1)",
		2, {INT8ARRAYOID, TIMESTAMPTZOID}
	},
	[P_CLAIM_LAUNCHES] = {
		"UPDATE @T t SET worker_state = 'sending', attempts = t.attempts + 1, "
		"  last_attempt_at = now(), updated_at = now() "
		"FROM (SELECT id FROM @T WHERE worker_state = 'launch' AND next_attempt_at <= now() "
		"      ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED) c "
		"WHERE t.id = c.id RETURNING t.id, t.target_id, t.profile_id, t.attempts",
		1, {INT4OID}
	},
	/* aborts first: they stop work; imports only while enabled */
	[P_CLAIM_TABLE_WORK] = {
		"SELECT id, worker_state, target_id, profile_id, scan_id, scan_session_id, "
		"  coalesce(last_attempt_at, created_at), attempts, import_cursor "
		"FROM @T WHERE worker_state IN ('reconcile', 'abort', 'import') "
		"  AND next_attempt_at <= now() AND id <> ALL ($1) "
		"  AND (worker_state <> 'import' OR $3) "
		"ORDER BY worker_state <> 'abort', next_attempt_at, id LIMIT $2",
		3, {INT8ARRAYOID, INT4OID, BOOLOID}
	},
	[P_NEXT_DUE] = {
		"SELECT min(next_attempt_at) FROM @T "
		"WHERE worker_state IN ('launch', 'reconcile', 'abort', 'import') "
		"  AND (worker_state <> 'import' OR $2) AND id <> ALL ($1)",
		2, {INT8ARRAYOID, BOOLOID}
	},
	[P_LOAD_POLLS] = {
		"SELECT id, scan_id FROM @T WHERE worker_state = 'poll' AND scan_id IS NOT NULL",
		0, {}
	},
	[P_LAUNCH_OK] = {
		ADOPT_SQL("sending"),
		2, {INT8OID, UUIDOID}
	},
	[P_LAUNCH_RETRY] = {
		"UPDATE @T SET " STATE_RELAUNCH "next_attempt_at = $2, last_error = $3, "
		"  updated_at = now() WHERE id = $1 AND worker_state = 'sending'",
		3, {INT8OID, TIMESTAMPTZOID, TEXTOID}
	},
	[P_LAUNCH_UNKNOWN] = {
		"UPDATE @T SET worker_state = 'reconcile', next_attempt_at = $2, last_error = $3, "
		"  updated_at = now() WHERE id = $1 AND worker_state = 'sending'",
		3, {INT8OID, TIMESTAMPTZOID, TEXTOID}
	},
	[P_LAUNCH_FAILED] = {
		"UPDATE @T SET status = 'error', worker_state = 'done', next_attempt_at = NULL, "
		"  last_error = $2, updated_at = now() WHERE id = $1 AND worker_state = 'sending'",
		2, {INT8OID, TEXTOID}
	},

	/*
	 * Only write when the answer differs from the stored one (or an error
	 * is to be cleared, or the scan ended: $9 is the next worker_state,
	 * NULL to keep it), and then only unindexed columns unless the scan
	 * ended.  Reports the row's state as it was before, so the caller
	 * learns whether the row is still being polled.
	 */
	[P_POLL_UPDATE] = {
		"WITH cur AS (SELECT worker_state FROM @T WHERE id = $1), "
		"upd AS (UPDATE @T SET status = $2, "
		"    progress = coalesce($3, progress), "
		"    scan_session_id = coalesce($4, scan_session_id), "
		"    severity_counts = coalesce($5, severity_counts), "
		"    start_date = coalesce($6, start_date), "
		"    end_date = coalesce($7, end_date), "
		"    last_response = $8, last_error = NULL, updated_at = now(), "
		"    worker_state = CASE WHEN $9::text IS NULL THEN worker_state "
		"      WHEN $9 = 'import' AND coalesce($4, scan_session_id) IS NULL THEN 'done' "
		"      ELSE $9 END, "
		"    next_attempt_at = CASE WHEN $9 = 'import' THEN now() ELSE next_attempt_at END "
		"  WHERE id = $1 AND worker_state = 'poll' "
		"    AND (last_response IS DISTINCT FROM $8 OR last_error IS NOT NULL "
		"         OR status IS DISTINCT FROM $2 OR $9::text IS NOT NULL) "
		"  RETURNING 1) "
		"SELECT (SELECT worker_state FROM cur), (SELECT count(*) FROM upd)",
		9, {INT8OID, TEXTOID, INT4OID, UUIDOID, JSONBOID, TIMESTAMPTZOID,
		TIMESTAMPTZOID, JSONBOID, TEXTOID}
	},
	[P_POLL_GONE] = {
		"UPDATE @T SET worker_state = 'done', last_error = $2, updated_at = now() "
		"WHERE id = $1 AND worker_state = 'poll'",
		2, {INT8OID, TEXTOID}
	},
	[P_POLL_ERROR] = {
		"UPDATE @T SET last_error = $2, updated_at = now() "
		"WHERE id = $1 AND worker_state = 'poll' AND last_error IS DISTINCT FROM $2",
		2, {INT8OID, TEXTOID}
	},
	[P_SCAN_ID_KNOWN] = {
		"SELECT 1 FROM @T WHERE scan_id = $1",
		1, {UUIDOID}
	},
	[P_RECONCILE_ADOPT] = {
		ADOPT_SQL("reconcile"),
		2, {INT8OID, UUIDOID}
	},
	[P_RECONCILE_RESEND] = {
		"UPDATE @T SET " STATE_RELAUNCH "next_attempt_at = now(), last_error = $2, "
		"  updated_at = now() WHERE id = $1 AND worker_state = 'reconcile'",
		2, {INT8OID, TEXTOID}
	},
	[P_WORK_RETRY] = {
		"UPDATE @T SET next_attempt_at = $2, last_error = $3, updated_at = now() "
		"WHERE id = $1 AND worker_state = $4",
		4, {INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTOID}
	},
	/* the abort was accepted (or refused, $2 says why): poll at once */
	[P_ABORT_SENT] = {
		"UPDATE @T SET worker_state = 'poll', last_error = $2, updated_at = now() "
		"WHERE id = $1 AND worker_state = 'abort'",
		2, {INT8OID, TEXTOID}
	},
	[P_ABORT_GONE] = {
		"UPDATE @T SET worker_state = 'done', last_error = $2, updated_at = now() "
		"WHERE id = $1 AND worker_state = 'abort'",
		2, {INT8OID, TEXTOID}
	},
	[P_FINDING_INSERT] = {
		"INSERT INTO @V (scan_session_id, vuln_id, scan_row_id, target_id, vt_id, vt_name, "
		"  severity, confidence, criticality, affects_url, affects_detail, status, "
		"  first_seen, last_seen, raw) "
		"SELECT $1, $2, $3, coalesce($4, s.target_id), $5, $6, $7, $8, $9, $10, $11, $12, "
		"  $13, $14, $15 FROM @T s WHERE s.id = $3 "
		"ON CONFLICT (scan_session_id, vuln_id) DO NOTHING",
		15, {UUIDOID, TEXTOID, INT8OID, UUIDOID, TEXTOID, TEXTOID, INT4OID, INT4OID,
		INT4OID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, JSONBOID}
	},
	[P_IMPORT_PAGE] = {
		"UPDATE @T SET import_cursor = $2, next_attempt_at = now(), last_error = NULL, "
		"  updated_at = now() WHERE id = $1 AND worker_state = 'import'",
		2, {INT8OID, TEXTOID}
	},
	[P_IMPORT_DONE] = {
		"UPDATE @T SET worker_state = 'done', import_cursor = NULL, next_attempt_at = NULL, "
		"  findings_imported_at = now(), last_error = NULL, updated_at = now() "
		"WHERE id = $1 AND worker_state = 'import'",
		1, {INT8OID}
	},
	[P_IMPORT_FAILED] = {
		"UPDATE @T SET worker_state = 'done', import_cursor = NULL, next_attempt_at = NULL, "
		"  last_error = $2, updated_at = now() WHERE id = $1 AND worker_state = 'import'",
		2, {INT8OID, TEXTOID}
	},
	[P_RETENTION] = {
		"DELETE FROM @T WHERE id IN (SELECT id FROM @T WHERE worker_state = 'done' "
		"  AND created_at < now() - make_interval(days => $1) LIMIT $2)",
		2, {INT4OID, INT4OID}
	},
};

static SPIPlanPtr plans[NUM_PLANS];

/* The extension as last seen. */
static Oid	ext_oid = InvalidOid;
static char *ext_table = NULL;	/* quoted schema.invicti_scans, TopMemoryContext */
static char *ext_findings = NULL;	/* quoted schema.invicti_vulnerabilities */
static char ext_version[NAMEDATALEN];
static bool ext_changed = false;

static MemoryContext caller_cxt = NULL;

void
store_forget_plans(void)
{
	int			i;

	for (i = 0; i < NUM_PLANS; i++)
	{
		if (plans[i])
			SPI_freeplan(plans[i]);
		plans[i] = NULL;
	}
}

/* Read the extension's schema and version straight from pg_extension. */
static bool
lookup_extension(Oid *oid, Oid *nsp, char *version)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	bool		found = false;

	*oid = get_extension_oid(INVICTI_EXTENSION_NAME, true);
	if (!OidIsValid(*oid))
		return false;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(*oid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		v = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		*nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
		strlcpy(version, isnull ? "" : TextDatumGetCString(v), NAMEDATALEN);
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

StoreStatus
store_begin(const char *activity, bool durable)
{
	Oid			oid;
	Oid			nsp;
	char		version[NAMEDATALEN];

	/*
	 * SPI is connected from the caller's context, so results handed back
	 * (allocated with SPI_palloc) outlive the transaction.
	 */
	caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	MemoryContextSwitchTo(caller_cxt);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);

	if (!lookup_extension(&oid, &nsp, version))
	{
		if (OidIsValid(ext_oid))
		{
			store_forget_plans();
			ext_oid = InvalidOid;
		}
		store_commit();
		return STORE_NO_EXTENSION;
	}
	strlcpy(ext_version, version, sizeof(ext_version));
	if (strcmp(version, INVICTI_SCAN_VERSION) != 0)
	{
		store_commit();
		return STORE_WRONG_VERSION;
	}
	if (oid != ext_oid)
	{
		const char *schema = quote_identifier(get_namespace_name(nsp));

		store_forget_plans();
		if (ext_table)
			pfree(ext_table);
		if (ext_findings)
			pfree(ext_findings);
		ext_table = MemoryContextStrdup(TopMemoryContext,
										psprintf("%s.invicti_scans", schema));
		ext_findings = MemoryContextStrdup(TopMemoryContext,
										   psprintf("%s.invicti_vulnerabilities", schema));
		ext_oid = oid;
		ext_changed = true;
	}

	(void) set_config_option("synchronous_commit", durable ? "on" : "off",
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
							 true, 0, false);
	return STORE_READY;
}

void
store_commit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller_cxt);
	store_flush_stats(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Table statistics (pg_stat_user_tables) are flushed at most once a second
 * after a commit; what is left is flushed, forced, a second later, even if the worker has nothing else to do then (as a backend does
 * when it goes idle), so the counters never lag behind an idle worker.
 * Outside a transaction only a forced flush works: the unforced one judges
 * "too soon" by the last transaction's end.
 */
static TimestampTz stats_flush_due = 0;

void
store_flush_stats(bool force)
{
	long		wait_ms = pgstat_report_stat(force);

	/* PostgreSQL suggests 10 s; a second keeps pg_stat_user_tables current */
	stats_flush_due = wait_ms > 0 ?
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), Min(wait_ms, 1000)) : 0;
}

TimestampTz
store_stats_flush_due(void)
{
	return stats_flush_due;
}

const char *
store_installed_version(void)
{
	return ext_version;
}

bool
store_extension_changed(void)
{
	bool		was = ext_changed;

	ext_changed = false;
	return was;
}

static SPIPlanPtr
get_plan(PlanId id)
{
	if (plans[id] == NULL)
	{
		const PlanDef *d = &plan_defs[id];
		StringInfoData sql;
		const char *p;
		SPIPlanPtr	plan;

		initStringInfo(&sql);
		for (p = d->sql; *p; p++)
		{
			if (p[0] == '@' && (p[1] == 'T' || p[1] == 'V'))
			{
				appendStringInfoString(&sql, p[1] == 'T' ? ext_table : ext_findings);
				p++;
			}
			else
				appendStringInfoChar(&sql, *p);
		}
		plan = SPI_prepare(sql.data, d->nargs, (Oid *) d->types);
		if (plan == NULL)
			elog(ERROR, "invicti_scan: could not prepare \"%s\": %s",
				 sql.data, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "invicti_scan: SPI_keepplan failed");
		plans[id] = plan;
		pfree(sql.data);
	}
	return plans[id];
}

/* Execute a plan; nulls is a string of ' '/'n' per argument, or NULL. */
static uint64
run(PlanId id, Datum *values, const char *nulls)
{
	int			rc = SPI_execute_plan(get_plan(id), values, nulls, false, 0);

	if (rc < 0)
		elog(ERROR, "invicti_scan: statement %d failed: %s",
			 (int) id, SPI_result_code_string(rc));
	return SPI_processed;
}

static Datum
busy_array(const int64 *busy, int nbusy)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(nbusy, 1));
	int			i;

	for (i = 0; i < nbusy; i++)
		elems[i] = Int64GetDatum(busy[i]);
	return PointerGetDatum(construct_array(elems, nbusy, INT8OID, 8,
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

static Datum
col(int row, int colno, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, colno, isnull);
}

static void
copy_uuid(pg_uuid_t *dst, Datum d)
{
	memcpy(dst, DatumGetUUIDP(d), sizeof(pg_uuid_t));
}

int
store_sweep_sending(const int64 *busy, int nbusy, TimestampTz reconcile_at)
{
	Datum		v[2] = {busy_array(busy, nbusy), TimestampTzGetDatum(reconcile_at)};

	return (int) run(P_SWEEP_SENDING, v, NULL);
}

int
store_claim_launches(int limit, LaunchClaim **out)
{
	Datum		v[1] = {Int32GetDatum(limit)};
	uint64		n = run(P_CLAIM_LAUNCHES, v, NULL);
	uint64		i;
	bool		isnull;

	*out = SPI_palloc(sizeof(LaunchClaim) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		(*out)[i].id = DatumGetInt64(col(i, 1, &isnull));
		copy_uuid(&(*out)[i].target_id, col(i, 2, &isnull));
		copy_uuid(&(*out)[i].profile_id, col(i, 3, &isnull));
		(*out)[i].attempts = DatumGetInt32(col(i, 4, &isnull));
	}
	return (int) n;
}

int
store_claim_table_work(const int64 *busy, int nbusy, int limit, bool imports,
					   TableClaim **out)
{
	Datum		v[3] = {busy_array(busy, nbusy), Int32GetDatum(limit), BoolGetDatum(imports)};
	uint64		n = run(P_CLAIM_TABLE_WORK, v, NULL);
	uint64		i;
	bool		isnull;

	*out = SPI_palloc(sizeof(TableClaim) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		TableClaim *c = &(*out)[i];
		char	   *state = TextDatumGetCString(col(i, 2, &isnull));
		Datum		d;

		memset(c, 0, sizeof(TableClaim));
		c->id = DatumGetInt64(col(i, 1, &isnull));
		c->kind = strcmp(state, "abort") == 0 ? CALL_ABORT :
			strcmp(state, "import") == 0 ? CALL_RESULTS : CALL_RECONCILE;
		copy_uuid(&c->target_id, col(i, 3, &isnull));
		copy_uuid(&c->profile_id, col(i, 4, &isnull));
		d = col(i, 5, &isnull);
		if ((c->has_scan_id = !isnull))
			copy_uuid(&c->scan_id, d);
		d = col(i, 6, &isnull);
		if ((c->has_session_id = !isnull))
			copy_uuid(&c->session_id, d);
		c->last_attempt_at = DatumGetTimestampTz(col(i, 7, &isnull));
		c->attempts = DatumGetInt32(col(i, 8, &isnull));
		d = col(i, 9, &isnull);
		if (!isnull)
		{
			char	   *cursor = TextDatumGetCString(d);

			c->cursor = SPI_palloc(strlen(cursor) + 1);
			strcpy(c->cursor, cursor);
		}
	}
	return (int) n;
}

TimestampTz
store_next_due(const int64 *busy, int nbusy, bool imports)
{
	Datum		v[2] = {busy_array(busy, nbusy), BoolGetDatum(imports)};
	bool		isnull;
	Datum		d;

	run(P_NEXT_DUE, v, NULL);
	d = col(0, 1, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

void
store_load_polls(void (*add) (int64 id, const pg_uuid_t *scan_id))
{
	uint64		n = run(P_LOAD_POLLS, NULL, NULL);
	uint64		i;
	bool		isnull;

	for (i = 0; i < n; i++)
	{
		pg_uuid_t	scan_id;

		copy_uuid(&scan_id, col(i, 2, &isnull));
		add(DatumGetInt64(col(i, 1, &isnull)), &scan_id);
	}
}

static AdoptResult
adopt(PlanId plan, int64 id, const pg_uuid_t *scan_id, int64 *holder)
{
	Datum		v[2] = {Int64GetDatum(id), UUIDPGetDatum(scan_id)};
	bool		isnull;
	Datum		d;

	run(plan, v, NULL);
	d = col(0, 1, &isnull);
	if (!isnull)
	{
		*holder = DatumGetInt64(d);
		return SCAN_ID_TAKEN;
	}
	d = col(0, 2, &isnull);
	if (isnull)
		return ROW_MOVED_ON;
	return strcmp(TextDatumGetCString(d), "poll") == 0 ? ADOPTED : ADOPTED_TO_ABORT;
}

AdoptResult
store_launch_ok(int64 id, const pg_uuid_t *scan_id, int64 *holder)
{
	return adopt(P_LAUNCH_OK, id, scan_id, holder);
}

static void
run_id_time_text(PlanId plan, int64 id, TimestampTz when, const char *text)
{
	Datum		v[3] = {Int64GetDatum(id), TimestampTzGetDatum(when),
	CStringGetTextDatum(text)};

	run(plan, v, NULL);
}

static void
run_id_text(PlanId plan, int64 id, const char *text)
{
	Datum		v[2] = {Int64GetDatum(id), CStringGetTextDatum(text)};

	run(plan, v, NULL);
}

void
store_launch_retry(int64 id, TimestampTz when, const char *error)
{
	run_id_time_text(P_LAUNCH_RETRY, id, when, error);
}

void
store_launch_unknown(int64 id, TimestampTz when, const char *error)
{
	run_id_time_text(P_LAUNCH_UNKNOWN, id, when, error);
}

void
store_launch_failed(int64 id, const char *error)
{
	run_id_text(P_LAUNCH_FAILED, id, error);
}

bool
store_poll_update(int64 id, const ApiScanState *st, Jsonb *response,
				  const char *next_state)
{
	Datum		v[9];
	char		nulls[10] = "         ";
	bool		isnull;
	Datum		state;

	v[0] = Int64GetDatum(id);
	v[1] = CStringGetTextDatum(st->status);
	v[2] = Int32GetDatum(st->progress);
	nulls[2] = st->has_progress ? ' ' : 'n';
	v[3] = UUIDPGetDatum(&st->session_id);
	nulls[3] = st->has_session_id ? ' ' : 'n';
	v[4] = JsonbPGetDatum(st->severity_counts);
	nulls[4] = st->severity_counts ? ' ' : 'n';
	v[5] = TimestampTzGetDatum(st->start_date);
	nulls[5] = st->has_start_date ? ' ' : 'n';
	v[6] = TimestampTzGetDatum(st->end_date);
	nulls[6] = st->has_end_date ? ' ' : 'n';
	v[7] = JsonbPGetDatum(response);
	v[8] = next_state ? CStringGetTextDatum(next_state) : (Datum) 0;
	nulls[8] = next_state ? ' ' : 'n';

	run(P_POLL_UPDATE, v, nulls);
	state = col(0, 1, &isnull);
	if (isnull)
		return false;			/* the row is gone */
	if (strcmp(TextDatumGetCString(state), "poll") != 0)
		return false;			/* someone moved it on */
	return next_state == NULL;
}

void
store_poll_gone(int64 id, const char *error)
{
	run_id_text(P_POLL_GONE, id, error);
}

void
store_poll_error(int64 id, const char *error)
{
	run_id_text(P_POLL_ERROR, id, error);
}

bool
store_scan_id_known(const pg_uuid_t *scan_id)
{
	Datum		v[1] = {UUIDPGetDatum(scan_id)};

	return run(P_SCAN_ID_KNOWN, v, NULL) > 0;
}

AdoptResult
store_reconcile_adopt(int64 id, const pg_uuid_t *scan_id, int64 *holder)
{
	return adopt(P_RECONCILE_ADOPT, id, scan_id, holder);
}

void
store_reconcile_resend(int64 id, const char *note)
{
	run_id_text(P_RECONCILE_RESEND, id, note);
}

void
store_work_retry(int64 id, const char *state, TimestampTz when, const char *error)
{
	Datum		v[4] = {Int64GetDatum(id), TimestampTzGetDatum(when),
	CStringGetTextDatum(error), CStringGetTextDatum(state)};

	run(P_WORK_RETRY, v, NULL);
}

void
store_abort_sent(int64 id, const char *note)
{
	Datum		v[2] = {Int64GetDatum(id), note ? CStringGetTextDatum(note) : (Datum) 0};

	run(P_ABORT_SENT, v, note ? NULL : " n");
}

void
store_abort_gone(int64 id, const char *error)
{
	run_id_text(P_ABORT_GONE, id, error);
}

#define OPT_TEXT(s, i) \
	do { v[i] = (s) ? CStringGetTextDatum(s) : (Datum) 0; nulls[i] = (s) ? ' ' : 'n'; } while (0)
#define OPT(flag, datum, i) \
	do { v[i] = (flag) ? (datum) : (Datum) 0; nulls[i] = (flag) ? ' ' : 'n'; } while (0)

bool
store_insert_finding(int64 id, const pg_uuid_t *session_id, const Finding *f)
{
	Datum		v[15];
	char		nulls[16] = "               ";

	v[0] = UUIDPGetDatum(session_id);
	v[1] = CStringGetTextDatum(f->vuln_id);
	v[2] = Int64GetDatum(id);
	OPT(f->has_target_id, UUIDPGetDatum(&f->target_id), 3);
	OPT_TEXT(f->vt_id, 4);
	OPT_TEXT(f->vt_name, 5);
	OPT(f->has_severity, Int32GetDatum(f->severity), 6);
	OPT(f->has_confidence, Int32GetDatum(f->confidence), 7);
	OPT(f->has_criticality, Int32GetDatum(f->criticality), 8);
	OPT_TEXT(f->affects_url, 9);
	OPT_TEXT(f->affects_detail, 10);
	OPT_TEXT(f->status, 11);
	OPT(f->has_first_seen, TimestampTzGetDatum(f->first_seen), 12);
	OPT(f->has_last_seen, TimestampTzGetDatum(f->last_seen), 13);
	v[14] = JsonbPGetDatum(f->raw);
	return run(P_FINDING_INSERT, v, nulls) == 1;
}

void
store_import_page(int64 id, const char *next_cursor)
{
	run_id_text(P_IMPORT_PAGE, id, next_cursor);
}

void
store_import_done(int64 id)
{
	Datum		v[1] = {Int64GetDatum(id)};

	run(P_IMPORT_DONE, v, NULL);
}

void
store_import_failed(int64 id, const char *error)
{
	run_id_text(P_IMPORT_FAILED, id, error);
}

int
store_delete_old_scans(int days, int limit)
{
	Datum		v[2] = {Int32GetDatum(days), Int32GetDatum(limit)};

	return (int) run(P_RETENTION, v, NULL);
}

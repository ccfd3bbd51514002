/*
 * scan_store.c
 *		Every statement that reads or writes a row of invicti_scans or
 *		invicti_vulnerabilities, through SPI with prepared plans: the
 *		worker's (inside store_run) and the SQL API's (inside the caller's
 *		transaction, as the table's owner).
 *
 * How states are written.  A statement names a worker state as {name}; when
 * it is prepared, each {name} must be a state of scan_state.c and each move
 * the statement declares must be one scan_state.c allows, or preparing it
 * fails.  So no state name and no transition is spelled anywhere but there.
 *
 * How writes stay small: a poll that changes nothing updates nothing (the
 * UPDATE compares the new response with the stored one); a poll that does
 * change something touches only unindexed columns, so the update is HOT.
 * Every write is guarded by the row's worker_state, so a row that moved on
 * (deleted, finished, re-queued) is never overwritten by a stale answer.
 *
 * How the worker never waits on a user: a row another session has locked
 * (invicti_abort_scan() in a transaction left open) is skipped, never waited
 * for (SKIP LOCKED); its work waits for a later turn and no other row's does.
 *
 * Rules: nothing here talks to the network; every statement names its
 * tables with their schema and every function with pg_catalog (operators
 * resolve under the search_path pinned to pg_catalog, pg_temp); no SQL is
 * built from API or user data (all values are parameters).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "pg_compat.h"
#include "scan_store.h"

typedef enum PlanId
{
	P_LOCK_ROWS,
	P_ROWS_EXIST,
	P_SWEEP_SENDING,
	P_ORIGIN_RECONCILE,
	P_CLAIM_LAUNCHES,
	P_CLAIM_TABLE_WORK,
	P_NEXT_DUE,
	P_LOAD_POLLS,
	P_LAUNCH_OK,
	P_LAUNCH_RETRY,
	P_LAUNCH_UNKNOWN,
	P_LAUNCH_FAILED,
	P_POLL_UPDATE,
	P_POLL_UPDATE_MANY,
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
	P_SET_END_DATE,
	P_IMPORT_DONE,
	P_IMPORT_FAILED,
	P_RETENTION,
	P_INSERT_LAUNCH,
	P_INSERT_LAUNCH_BEFORE_1_3,
	P_LOCK_FOR_ABORT,
	P_LOCK_FOR_ABORT_BEFORE_1_3,
	P_ABORT_CANCEL,
	P_ABORT_SEND,
	P_ABORT_AFTER_LAUNCH,
	P_FIND_FOR_REFRESH,
	P_FIND_FOR_REFRESH_BY_SCAN_ID,
	NUM_PLANS
} PlanId;

#define MAX_ARGS 16

typedef struct PlanDef
{
	const char *sql;			/* @T/@V: the scans/findings table; {state} */
	const char *moves;			/* "from>to ..." the statement may make */
	int			nargs;
	Oid			types[MAX_ARGS];
} PlanDef;

/*
 * What a row becomes once it has a scan id: polled, or aborted first when
 * invicti_abort_scan() was called while its launch was under way.
 */
/* last_error was written by the import: it starts with a prefix in p (text[]) */
#define IMPORT_ERROR(p) \
	"EXISTS (SELECT FROM pg_catalog.unnest(" p "::pg_catalog.text[]) AS prefix " \
	"        WHERE pg_catalog.starts_with(last_error, prefix)) "

#define STATE_WITH_SCAN \
	"worker_state = CASE WHEN abort_requested_at IS NULL THEN {poll} ELSE {abort} END, " \
	"status = CASE WHEN abort_requested_at IS NULL THEN '" SCAN_STATUS_LAUNCHED "' ELSE '" SCAN_STATUS_ABORTING "' END, " \
	"next_attempt_at = pg_catalog.now(), launched_at = pg_catalog.now(), last_error = NULL, " \
	"updated_at = pg_catalog.now() "

/* A launch that will be sent again, unless an abort was asked for meanwhile. */
#define STATE_RELAUNCH \
	"worker_state = CASE WHEN abort_requested_at IS NULL THEN {launch} ELSE {done} END, " \
	"status = CASE WHEN abort_requested_at IS NULL THEN status ELSE '" SCAN_STATUS_ABORTED "' END, "

/*
 * Record a scan id unless another row already tracks it (a server that
 * repeats an id must not make the worker fail on the unique index).  The
 * result: the row holding the id, if any, and this row's new state.
 */
#define ADOPT_SQL(from_state) \
	"WITH taken AS (SELECT id FROM @T WHERE scan_id = $2 LIMIT 1), " \
	"upd AS (UPDATE @T SET scan_id = $2, " STATE_WITH_SCAN \
	"  WHERE id = $1 AND worker_state = " from_state \
	"    AND NOT EXISTS (SELECT 1 FROM taken) RETURNING worker_state) " \
	"SELECT (SELECT id FROM taken), (SELECT worker_state FROM upd)"

static const PlanDef plan_defs[NUM_PLANS] = {
	[P_LOCK_ROWS] = {
		"SELECT id FROM @T WHERE id = ANY ($1) FOR NO KEY UPDATE SKIP LOCKED",
		"", 1, {INT8ARRAYOID}
	},
	[P_ROWS_EXIST] = {
		"SELECT id FROM @T WHERE id = ANY ($1)",
		"", 1, {INT8ARRAYOID}
	},
	[P_SWEEP_SENDING] = {
		"UPDATE @T SET worker_state = {reconcile}, next_attempt_at = $2, "
		"  updated_at = pg_catalog.now() "
		"WHERE id IN (SELECT id FROM @T WHERE worker_state = {sending} AND id <> ALL ($1) "
		"             FOR NO KEY UPDATE SKIP LOCKED)",
		"sending>reconcile", 2, {INT8ARRAYOID, TIMESTAMPTZOID}
	},

	/*
	 * This server may lack the last commits of the one that sent launches
	 * (server_origin.c): a launch not known to be unsent is checked first.
	 */
	[P_ORIGIN_RECONCILE] = {
		"UPDATE @T SET worker_state = {reconcile}, next_attempt_at = pg_catalog.now(), "
		"  last_error = $1, updated_at = pg_catalog.now() WHERE worker_state = {launch}",
		"launch>reconcile", 1, {TEXTOID}
	},
	[P_CLAIM_LAUNCHES] = {
		"UPDATE @T t SET worker_state = {sending}, attempts = t.attempts + 1, "
		"  last_attempt_at = pg_catalog.now(), updated_at = pg_catalog.now() "
		"FROM (SELECT id FROM @T WHERE worker_state = {launch} "
		"        AND next_attempt_at <= pg_catalog.now() "
		"      ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED) c "
		"WHERE t.id = c.id "
		"RETURNING t.id, t.target_id, t.profile_id, t.attempts, t.launch_options",
		"launch>sending", 1, {INT4OID}
	},
	/* aborts first: they stop work; imports only while enabled */
	[P_CLAIM_TABLE_WORK] = {
		"SELECT id, worker_state, target_id, profile_id, scan_id, scan_session_id, "
		"  coalesce(last_attempt_at, created_at), attempts, import_cursor, "
		"  end_date IS NOT NULL "
		"FROM @T WHERE worker_state IN ({reconcile}, {abort}, {import}) "
		"  AND next_attempt_at <= pg_catalog.now() AND id <> ALL ($1) "
		"  AND (worker_state <> {import} OR $3 OR end_date IS NULL) "
		"ORDER BY worker_state <> {abort}, next_attempt_at, id LIMIT $2",
		"", 3, {INT8ARRAYOID, INT4OID, BOOLOID}
	},
	[P_NEXT_DUE] = {
		"SELECT pg_catalog.min(next_attempt_at) FROM @T "
		"WHERE worker_state IN ({launch}, {reconcile}, {abort}, {import}) "
		"  AND (worker_state <> {import} OR $2 OR end_date IS NULL) AND id <> ALL ($1)",
		"", 2, {INT8ARRAYOID, BOOLOID}
	},
	[P_LOAD_POLLS] = {
		"SELECT id, scan_id FROM @T WHERE worker_state = {poll} AND scan_id IS NOT NULL",
		"", 0, {}
	},
	[P_LAUNCH_OK] = {
		ADOPT_SQL("{sending}"),
		"sending>poll sending>abort", 2, {INT8OID, UUIDOID}
	},
	[P_LAUNCH_RETRY] = {
		"UPDATE @T SET " STATE_RELAUNCH "next_attempt_at = $2, last_error = $3, "
		"  updated_at = pg_catalog.now() WHERE id = $1 AND worker_state = {sending}",
		"sending>launch sending>done", 3, {INT8OID, TIMESTAMPTZOID, TEXTOID}
	},
	[P_LAUNCH_UNKNOWN] = {
		"UPDATE @T SET worker_state = {reconcile}, next_attempt_at = $2, last_error = $3, "
		"  updated_at = pg_catalog.now() WHERE id = $1 AND worker_state = {sending}",
		"sending>reconcile", 3, {INT8OID, TIMESTAMPTZOID, TEXTOID}
	},
	[P_LAUNCH_FAILED] = {
		"UPDATE @T SET status = '" SCAN_STATUS_ERROR "', worker_state = {done}, next_attempt_at = NULL, "
		"  last_error = $2, updated_at = pg_catalog.now() "
		"WHERE id = $1 AND worker_state = {sending}",
		"sending>done", 2, {INT8OID, TEXTOID}
	},

	/*
	 * Only write when the answer differs from the stored one (or the row's
	 * last_error is to change, or the scan ended: $9 is the next
	 * worker_state), and then only unindexed columns unless the scan ended.
	 * $2 is NULL while the session has not started (the status stays); $10 is
	 * what was wrong with the answer (its counts), or NULL: then the stored
	 * counts are cleared, never left from an earlier answer.  An ended scan
	 * goes to 'import' to fetch its end date and ($11) its findings, or to
	 * 'done' when there is nothing to fetch; next_attempt_at changes only
	 * then (it is indexed: writing it on every poll would make every poll a
	 * non-HOT update).  Reports the row's state as it was before, so the
	 * caller learns whether the row is still polled.
	 */
	[P_POLL_UPDATE] = {
		"WITH cur AS (SELECT worker_state FROM @T WHERE id = $1), "
		"upd AS (UPDATE @T SET status = coalesce($2, status), "
		"    progress = coalesce($3, progress), "
		"    scan_session_id = coalesce($4, scan_session_id), "
		"    severity_counts = CASE WHEN $10 IS NULL THEN coalesce($5, severity_counts) END, "
		"    start_date = coalesce($6, start_date), "
		"    end_date = coalesce($7, end_date), "
		"    last_response = $8, last_error = $10, updated_at = pg_catalog.now(), "
		"    worker_state = CASE WHEN $9 <> {import} THEN $9 "
		"      WHEN coalesce($4, scan_session_id) IS NULL THEN {done} "
		"      WHEN NOT $11 AND coalesce($7, end_date) IS NOT NULL THEN {done} "
		"      ELSE {import} END, "
		"    next_attempt_at = CASE WHEN $9 = {import} "
		"      AND coalesce($4, scan_session_id) IS NOT NULL "
		"      AND ($11 OR coalesce($7, end_date) IS NULL) "
		"      THEN pg_catalog.now() ELSE next_attempt_at END "
		"  WHERE id = $1 AND worker_state = {poll} "
		"    AND (last_response IS DISTINCT FROM $8 OR last_error IS DISTINCT FROM $10 "
		"         OR status IS DISTINCT FROM coalesce($2, status) OR $9 <> {poll}) "
		"  RETURNING 1) "
		"SELECT (SELECT worker_state FROM cur), (SELECT pg_catalog.count(*) FROM upd)",
		"poll>import poll>done", 11,
		{INT8OID, TEXTOID, INT4OID, UUIDOID, JSONBOID, TIMESTAMPTZOID,
		TIMESTAMPTZOID, JSONBOID, TEXTOID, TEXTOID, BOOLOID}
	},

	/*
	 * P_POLL_UPDATE for many rows in one statement (the verdicts of a turn):
	 * row i of the arrays is the answer for row $1[i].  Reports, by position,
	 * each row's state as it was before (NULL: gone).
	 */
	[P_POLL_UPDATE_MANY] = {
		"WITH u AS (SELECT * FROM pg_catalog.unnest($1::pg_catalog.int8[], $2::pg_catalog.text[], "
		"    $3::pg_catalog.int4[], $4::pg_catalog.uuid[], $5::pg_catalog.jsonb[], "
		"    $6::pg_catalog.timestamptz[], $7::pg_catalog.timestamptz[], $8::pg_catalog.jsonb[], "
		"    $9::pg_catalog.text[], $10::pg_catalog.text[]) WITH ORDINALITY "
		"    AS u(id, status, progress, session, counts, start_date, end_date, response, next, "
		"         problem, ord)), "
		"cur AS (SELECT t.id, t.worker_state FROM @T t WHERE t.id = ANY ($1)), "
		"upd AS (UPDATE @T t SET status = coalesce(u.status, t.status), "
		"    progress = coalesce(u.progress, t.progress), "
		"    scan_session_id = coalesce(u.session, t.scan_session_id), "
		"    severity_counts = CASE WHEN u.problem IS NULL THEN coalesce(u.counts, t.severity_counts) END, "
		"    start_date = coalesce(u.start_date, t.start_date), "
		"    end_date = coalesce(u.end_date, t.end_date), "
		"    last_response = u.response, last_error = u.problem, updated_at = pg_catalog.now(), "
		"    worker_state = CASE WHEN u.next <> {import} THEN u.next "
		"      WHEN coalesce(u.session, t.scan_session_id) IS NULL THEN {done} "
		"      WHEN NOT $11 AND coalesce(u.end_date, t.end_date) IS NOT NULL THEN {done} "
		"      ELSE {import} END, "
		"    next_attempt_at = CASE WHEN u.next = {import} "
		"      AND coalesce(u.session, t.scan_session_id) IS NOT NULL "
		"      AND ($11 OR coalesce(u.end_date, t.end_date) IS NULL) "
		"      THEN pg_catalog.now() ELSE t.next_attempt_at END "
		"  FROM u WHERE t.id = u.id AND t.worker_state = {poll} "
		"    AND (t.last_response IS DISTINCT FROM u.response OR t.last_error IS DISTINCT FROM u.problem "
		"         OR t.status IS DISTINCT FROM coalesce(u.status, t.status) OR u.next <> {poll}) "
		"  RETURNING 1) "
		"SELECT u.ord, cur.worker_state, (SELECT pg_catalog.count(*) FROM upd) "
		"FROM u LEFT JOIN cur ON cur.id = u.id",
		"poll>import poll>done", 11,
		{INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, UUIDARRAYOID, JSONBARRAYOID,
			TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, JSONBARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		BOOLOID}
	},
	[P_POLL_GONE] = {
		"UPDATE @T SET worker_state = {done}, last_error = $2, updated_at = pg_catalog.now() "
		"WHERE id = $1 AND worker_state = {poll}",
		"poll>done", 2, {INT8OID, TEXTOID}
	},
	[P_POLL_ERROR] = {
		"UPDATE @T SET last_error = $2, updated_at = pg_catalog.now() "
		"WHERE id = $1 AND worker_state = {poll} AND last_error IS DISTINCT FROM $2",
		"", 2, {INT8OID, TEXTOID}
	},
	[P_SCAN_ID_KNOWN] = {
		"SELECT 1 FROM @T WHERE scan_id = $1",
		"", 1, {UUIDOID}
	},
	[P_RECONCILE_ADOPT] = {
		ADOPT_SQL("{reconcile}"),
		"reconcile>poll reconcile>abort", 2, {INT8OID, UUIDOID}
	},
	[P_RECONCILE_RESEND] = {
		"UPDATE @T SET " STATE_RELAUNCH "next_attempt_at = pg_catalog.now(), last_error = $2, "
		"  updated_at = pg_catalog.now() WHERE id = $1 AND worker_state = {reconcile}",
		"reconcile>launch reconcile>done", 2, {INT8OID, TEXTOID}
	},
	[P_WORK_RETRY] = {
		"UPDATE @T SET next_attempt_at = $2, last_error = $3, updated_at = pg_catalog.now() "
		"WHERE id = $1 AND worker_state = $4",
		"", 4, {INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTOID}
	},
	/* the abort was accepted (or refused, $2 says why): poll at once */
	[P_ABORT_SENT] = {
		"UPDATE @T SET worker_state = {poll}, last_error = $2, updated_at = pg_catalog.now() "
		"WHERE id = $1 AND worker_state = {abort}",
		"abort>poll", 2, {INT8OID, TEXTOID}
	},
	[P_ABORT_GONE] = {
		"UPDATE @T SET worker_state = {done}, last_error = $2, updated_at = pg_catalog.now() "
		"WHERE id = $1 AND worker_state = {abort}",
		"abort>done", 2, {INT8OID, TEXTOID}
	},
	[P_FINDING_INSERT] = {
		"INSERT INTO @V (scan_session_id, vuln_id, scan_row_id, target_id, vt_id, vt_name, "
		"  severity, confidence, criticality, affects_url, affects_detail, status, "
		"  first_seen, last_seen, raw) "
		"SELECT $1, $2, $3, coalesce($4, s.target_id), $5, $6, $7, $8, $9, $10, $11, $12, "
		"  $13, $14, $15 FROM @T s WHERE s.id = $3 "
		"ON CONFLICT (scan_session_id, vuln_id) DO NOTHING",
		"", 15,
		{UUIDOID, TEXTOID, INT8OID, UUIDOID, TEXTOID, TEXTOID, INT4OID, INT4OID,
		INT4OID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, JSONBOID}
	},

	/*
	 * A page or the end of an import: $3 is its note (findings skipped) or
	 * NULL.  It replaces only what the import itself wrote in last_error
	 * (text starting with one of $4, the nouns of its requests); a note about
	 * the scan's answer (counts that could not be stored) stays.
	 */
	[P_IMPORT_PAGE] = {
		"UPDATE @T SET import_cursor = $2, next_attempt_at = pg_catalog.now(), "
		"  last_error = CASE WHEN last_error IS NULL OR " IMPORT_ERROR("$4")
		"                    THEN $3 ELSE last_error END, "
		"  updated_at = pg_catalog.now() WHERE id = $1 AND worker_state = {import}",
		"", 4, {INT8OID, TEXTOID, TEXTOID, TEXTARRAYOID}
	},
	[P_SET_END_DATE] = {
		"UPDATE @T SET end_date = $2, updated_at = pg_catalog.now() "
		"WHERE id = $1 AND worker_state = {import}",
		"", 2, {INT8OID, TIMESTAMPTZOID}
	},
	[P_IMPORT_DONE] = {
		"UPDATE @T SET worker_state = {done}, import_cursor = NULL, next_attempt_at = NULL, "
		"  findings_imported_at = CASE WHEN $4 THEN pg_catalog.now() "
		"                              ELSE findings_imported_at END, "
		"  last_error = CASE WHEN last_error IS NULL OR " IMPORT_ERROR("$3")
		"                    THEN $2 ELSE last_error END, "
		"  updated_at = pg_catalog.now() WHERE id = $1 AND worker_state = {import}",
		"import>done", 4, {INT8OID, TEXTOID, TEXTARRAYOID, BOOLOID}
	},
	[P_IMPORT_FAILED] = {
		"UPDATE @T SET worker_state = {done}, import_cursor = NULL, next_attempt_at = NULL, "
		"  last_error = $2, updated_at = pg_catalog.now() "
		"WHERE id = $1 AND worker_state = {import}",
		"import>done", 2, {INT8OID, TEXTOID}
	},
	[P_RETENTION] = {
		"DELETE FROM @T WHERE id IN (SELECT id FROM @T WHERE worker_state = {done} "
		"  AND created_at < pg_catalog.now() - pg_catalog.make_interval(days => $1) "
		"  LIMIT $2 FOR UPDATE SKIP LOCKED)",
		"", 2, {INT4OID, INT4OID}
	},
	[P_INSERT_LAUNCH] = {
		"INSERT INTO @T (target_id, profile_id, launched_by, launched_by_oid, launch_options) "
		"VALUES ($1, $2, pg_catalog.pg_get_userbyid($3), $3, $4) RETURNING id",
		"", 4, {UUIDOID, UUIDOID, OIDOID, JSONBOID}
	},
	[P_LOCK_FOR_ABORT] = {
		"SELECT worker_state, status, launched_by_oid FROM @T WHERE id = $1 FOR UPDATE",
		"", 1, {INT8OID}
	},

	/*
	 * Between a library update and ALTER EXTENSION UPDATE the table may still
	 * be older than 1.3 (no launched_by_oid): launches keep queueing, and the
	 * update fills the OIDs in from the names.
	 */
	[P_INSERT_LAUNCH_BEFORE_1_3] = {
		"INSERT INTO @T (target_id, profile_id, launched_by) "
		"VALUES ($1, $2, pg_catalog.pg_get_userbyid($3)) RETURNING id",
		"", 3, {UUIDOID, UUIDOID, OIDOID}
	},
	[P_LOCK_FOR_ABORT_BEFORE_1_3] = {
		"SELECT worker_state, status, "
		"  (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = launched_by) "
		"FROM @T WHERE id = $1 FOR UPDATE",
		"", 1, {INT8OID}
	},
	/* invicti_refresh_scan(): reads only, locks nothing */
	[P_FIND_FOR_REFRESH] = {
		"SELECT id, worker_state, launched_by_oid FROM @T WHERE id = $1",
		"", 1, {INT8OID}
	},
	[P_FIND_FOR_REFRESH_BY_SCAN_ID] = {
		"SELECT id, worker_state, launched_by_oid FROM @T WHERE scan_id = $1",
		"", 1, {UUIDOID}
	},
	/* never sent: cancelled here, no request needed */
	[P_ABORT_CANCEL] = {
		"UPDATE @T SET status = '" SCAN_STATUS_ABORTED "', worker_state = {done}, next_attempt_at = NULL, "
		"  abort_requested_at = pg_catalog.now(), aborted_by = $2, "
		"  updated_at = pg_catalog.now() WHERE id = $1 AND worker_state = {launch}",
		"launch>done", 2, {INT8OID, NAMEOID}
	},
	[P_ABORT_SEND] = {
		"UPDATE @T SET status = '" SCAN_STATUS_ABORTING "', worker_state = {abort}, "
		"  next_attempt_at = pg_catalog.now(), abort_requested_at = pg_catalog.now(), "
		"  aborted_by = $2, updated_at = pg_catalog.now() "
		"WHERE id = $1 AND worker_state = {poll}",
		"poll>abort", 2, {INT8OID, NAMEOID}
	},
	/* a launch is under way: the worker aborts the scan once it has its id */
	[P_ABORT_AFTER_LAUNCH] = {
		"UPDATE @T SET status = '" SCAN_STATUS_ABORTING "', abort_requested_at = pg_catalog.now(), "
		"  aborted_by = $2, updated_at = pg_catalog.now() "
		"WHERE id = $1 AND worker_state IN ({sending}, {reconcile})",
		"", 2, {INT8OID, NAMEOID}
	},
};

static SPIPlanPtr plans[NUM_PLANS];
static char *scans_table = NULL;	/* TopMemoryContext */
static char *findings_table = NULL;
static bool owner_by_oid = true;	/* the table has launched_by_oid (1.3+) */

void
scan_store_forget_plans(void)
{
	int			i;

	for (i = 0; i < NUM_PLANS; i++)
	{
		if (plans[i])
			SPI_freeplan(plans[i]);
		plans[i] = NULL;
	}
}

void
scan_store_set_tables(const char *scans, const char *findings)
{
	if (scans_table && strcmp(scans_table, scans) == 0 &&
		strcmp(findings_table, findings) == 0)
		return;
	scan_store_forget_plans();
	if (scans_table)
		pfree(scans_table);
	if (findings_table)
		pfree(findings_table);
	scans_table = MemoryContextStrdup(TopMemoryContext, scans);
	findings_table = MemoryContextStrdup(TopMemoryContext, findings);
}

void
scan_store_set_tables_of(Oid scans_relid)
{
	const char *schema = quote_identifier(get_namespace_name(get_rel_namespace(scans_relid)));

	owner_by_oid = get_attnum(scans_relid, "launched_by_oid") != InvalidAttrNumber;
	scan_store_set_tables(psprintf("%s.invicti_scans", schema),
						  psprintf("%s.invicti_vulnerabilities", schema));
}

Oid
scan_store_tables_owner(Oid nsp, Oid *relid)
{
	HeapTuple	tup;
	Oid			owner;

	*relid = get_relname_relid("invicti_scans", nsp);
	if (!OidIsValid(*relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table \"%s.invicti_scans\" does not exist", get_namespace_name(nsp)),
				 errhint("Reinstall the extension: DROP EXTENSION invicti_scan; CREATE EXTENSION invicti_scan;")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(*relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", *relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	if (!compat_schema_privilege(nsp, owner, ACL_USAGE))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\", which owns the tables of invicti_scan, may not use schema \"%s\"",
						GetUserNameFromId(owner, false), get_namespace_name(nsp)),
				 errdetail("The worker and the extension's functions act as the tables' owner."),
				 errhint("GRANT USAGE ON SCHEMA %s TO %s;",
						 quote_identifier(get_namespace_name(nsp)),
						 quote_identifier(GetUserNameFromId(owner, false)))));
	return owner;
}

/* Check a statement's declared moves against scan_state.c. */
static void
check_moves(PlanId id)
{
	const char *p = plan_defs[id].moves;

	while (*p)
	{
		char		from[32];
		char		to[32];
		int			n;
		int			f;
		int			t;

		if (sscanf(p, "%31[a-z]>%31[a-z]%n", from, to, &n) != 2)
			elog(ERROR, "invicti_scan: statement %d declares a malformed move", (int) id);
		f = worker_state_from_name(from);
		t = worker_state_from_name(to);
		if (f < 0 || t < 0 || !worker_state_move_allowed(f, t))
			elog(ERROR, "invicti_scan: statement %d moves rows from \"%s\" to \"%s\", which scan_state.c does not allow",
				 (int) id, from, to);
		p += n;
		while (*p == ' ')
			p++;
	}
}

/* The statement's text: tables and state names filled in, each checked. */
static char *
statement_text(PlanId id)
{
	StringInfoData sql;
	const char *p;

	initStringInfo(&sql);
	for (p = plan_defs[id].sql; *p; p++)
	{
		if (p[0] == '@' && (p[1] == 'T' || p[1] == 'V'))
		{
			appendStringInfoString(&sql, p[1] == 'T' ? scans_table : findings_table);
			p++;
		}
		else if (p[0] == '{')
		{
			const char *end = strchr(p, '}');
			char	   *name;

			if (end == NULL)
				elog(ERROR, "invicti_scan: statement %d has an unterminated state name", (int) id);
			name = pnstrdup(p + 1, end - p - 1);
			if (worker_state_from_name(name) < 0)
				elog(ERROR, "invicti_scan: statement %d names \"%s\", which is no worker state",
					 (int) id, name);
			appendStringInfo(&sql, "'%s'::text", name);
			p = end;
		}
		else
			appendStringInfoChar(&sql, *p);
	}
	return sql.data;
}

static SPIPlanPtr
get_plan(PlanId id)
{
	if (plans[id] == NULL)
	{
		const PlanDef *d = &plan_defs[id];
		char	   *sql;
		SPIPlanPtr	plan;

		if (scans_table == NULL)
			elog(ERROR, "invicti_scan: no table set for statement %d", (int) id);
		check_moves(id);
		sql = statement_text(id);
		plan = SPI_prepare(sql, d->nargs, (Oid *) d->types);
		if (plan == NULL)
			elog(ERROR, "invicti_scan: could not prepare \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "invicti_scan: SPI_keepplan failed");
		plans[id] = plan;
		pfree(sql);
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
id_array(const int64 *ids, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		elems[i] = Int64GetDatum(ids[i]);
	return PointerGetDatum(construct_array(elems, n, INT8OID, 8,
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

/* A jsonb result copied out of SPI's memory (into the caller's). */
static Jsonb *
copy_jsonb_out(Datum d)
{
	Jsonb	   *j = DatumGetJsonbP(d);
	Jsonb	   *copy = SPI_palloc(VARSIZE(j));

	memcpy(copy, j, VARSIZE(j));
	return copy;
}

static Datum
text_or_null(const char *s, char *null)
{
	*null = s ? ' ' : 'n';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/* Mark ids[i] in flags[] for each id the last statement returned. */
static void
mark_returned(const int64 *ids, int n, bool *flags)
{
	uint64		r;
	int			i;
	bool		isnull;

	for (r = 0; r < SPI_processed; r++)
	{
		int64		got = DatumGetInt64(col(r, 1, &isnull));

		for (i = 0; i < n; i++)
			if (ids[i] == got)
				flags[i] = true;
	}
}

void
scan_store_lock_rows(const int64 *ids, int n, bool *locked, bool *busy)
{
	Datum		v[1];
	int64	   *missing = palloc(sizeof(int64) * Max(n, 1));
	int			nmissing = 0;
	int			i;

	memset(locked, 0, sizeof(bool) * n);
	memset(busy, 0, sizeof(bool) * n);
	v[0] = id_array(ids, n);
	run(P_LOCK_ROWS, v, NULL);
	mark_returned(ids, n, locked);
	for (i = 0; i < n; i++)
		if (!locked[i])
			missing[nmissing++] = ids[i];
	if (nmissing > 0)
	{
		/* not locked by us: either gone, or locked by someone else */
		v[0] = id_array(missing, nmissing);
		run(P_ROWS_EXIST, v, NULL);
		mark_returned(ids, n, busy);
		for (i = 0; i < n; i++)
			if (locked[i])
				busy[i] = false;
	}
	pfree(missing);
}

int
scan_store_origin_reconcile(const char *note)
{
	Datum		v[1] = {CStringGetTextDatum(note)};

	return (int) run(P_ORIGIN_RECONCILE, v, NULL);
}

int
scan_store_sweep_sending(const int64 *busy, int nbusy, TimestampTz reconcile_at)
{
	Datum		v[2] = {id_array(busy, nbusy), TimestampTzGetDatum(reconcile_at)};

	return (int) run(P_SWEEP_SENDING, v, NULL);
}

int
scan_store_claim_launches(int limit, LaunchClaim **out)
{
	Datum		v[1] = {Int32GetDatum(limit)};
	uint64		n = run(P_CLAIM_LAUNCHES, v, NULL);
	uint64		i;
	bool		isnull;
	Datum		d;

	*out = SPI_palloc(sizeof(LaunchClaim) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		(*out)[i].id = DatumGetInt64(col(i, 1, &isnull));
		copy_uuid(&(*out)[i].target_id, col(i, 2, &isnull));
		copy_uuid(&(*out)[i].profile_id, col(i, 3, &isnull));
		(*out)[i].attempts = DatumGetInt32(col(i, 4, &isnull));
		d = col(i, 5, &isnull);
		(*out)[i].options = isnull ? NULL : copy_jsonb_out(d);
	}
	return (int) n;
}

int
scan_store_claim_table_work(const int64 *busy, int nbusy, int limit, bool imports,
							TableClaim **out)
{
	Datum		v[3] = {id_array(busy, nbusy), Int32GetDatum(limit), BoolGetDatum(imports)};
	uint64		n = run(P_CLAIM_TABLE_WORK, v, NULL);
	uint64		i;
	bool		isnull;

	*out = SPI_palloc(sizeof(TableClaim) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		TableClaim *c = &(*out)[i];
		Datum		d;

		memset(c, 0, sizeof(TableClaim));
		c->id = DatumGetInt64(col(i, 1, &isnull));
		c->state = worker_state_from_name(TextDatumGetCString(col(i, 2, &isnull)));
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
		c->has_end_date = DatumGetBool(col(i, 10, &isnull));
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
scan_store_next_due(const int64 *busy, int nbusy, bool imports)
{
	Datum		v[2] = {id_array(busy, nbusy), BoolGetDatum(imports)};
	bool		isnull;
	Datum		d;

	run(P_NEXT_DUE, v, NULL);
	d = col(0, 1, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

void
scan_store_load_polls(void (*add) (int64 id, const pg_uuid_t *scan_id))
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
	return worker_state_from_name(TextDatumGetCString(d)) == WS_POLL ?
		ADOPTED : ADOPTED_TO_ABORT;
}

AdoptResult
scan_store_launch_ok(int64 id, const pg_uuid_t *scan_id, int64 *holder)
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

/* ($1 id, $2 text or NULL) */
static void
run_id_text(PlanId plan, int64 id, const char *text)
{
	char		nulls[3] = "  ";
	Datum		v[2];

	v[0] = Int64GetDatum(id);
	v[1] = text_or_null(text, &nulls[1]);
	run(plan, v, nulls);
}

void
scan_store_launch_retry(int64 id, TimestampTz when, const char *error)
{
	run_id_time_text(P_LAUNCH_RETRY, id, when, error);
}

void
scan_store_launch_unknown(int64 id, TimestampTz when, const char *error)
{
	run_id_time_text(P_LAUNCH_UNKNOWN, id, when, error);
}

void
scan_store_launch_failed(int64 id, const char *error)
{
	run_id_text(P_LAUNCH_FAILED, id, error);
}

bool
scan_store_poll_update(int64 id, const ApiScanState *st, Jsonb *response,
					   WorkerState next_state, bool import_findings)
{
	Datum		v[11];
	char		nulls[12] = "           ";
	bool		isnull;
	Datum		state;

	v[0] = Int64GetDatum(id);
	v[1] = text_or_null(st->status, &nulls[1]);
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
	v[8] = CStringGetTextDatum(worker_state_names[next_state]);
	v[9] = text_or_null(st->problem, &nulls[9]);
	v[10] = BoolGetDatum(import_findings);

	run(P_POLL_UPDATE, v, nulls);
	state = col(0, 1, &isnull);
	if (isnull)
		return false;			/* the row is gone */
	if (worker_state_from_name(TextDatumGetCString(state)) != WS_POLL)
		return false;			/* someone moved it on */
	return next_state == WS_POLL;
}

/* A one-dimensional array of n elements of `type`; nulls[i] marks NULLs. */
static Datum
array_of(Datum *elems, bool *nulls, int n, Oid type)
{
	int16		len;
	bool		byval;
	char		align;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(type, &len, &byval, &align);
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, type, len, byval, align));
}

void
scan_store_poll_update_many(const int64 *ids, ApiScanState *const *states,
							Jsonb *const *responses, const WorkerState *next, int n,
							bool import_findings, bool *still_polled)
{
	Datum	   *e = palloc(sizeof(Datum) * n);
	bool	   *isnull = palloc(sizeof(bool) * n);
	Datum		v[11];
	int			col_no;
	int			i;
	uint64		r;

	for (col_no = 0; col_no < 10; col_no++)
	{
		static const Oid types[10] = {INT8OID, TEXTOID, INT4OID, UUIDOID, JSONBOID,
		TIMESTAMPTZOID, TIMESTAMPTZOID, JSONBOID, TEXTOID, TEXTOID};

		for (i = 0; i < n; i++)
		{
			const ApiScanState *st = states[i];

			isnull[i] = false;
			switch (col_no)
			{
				case 0:
					e[i] = Int64GetDatum(ids[i]);
					break;
				case 1:
					isnull[i] = st->status == NULL;
					e[i] = isnull[i] ? (Datum) 0 : CStringGetTextDatum(st->status);
					break;
				case 2:
					isnull[i] = !st->has_progress;
					e[i] = Int32GetDatum(st->progress);
					break;
				case 3:
					isnull[i] = !st->has_session_id;
					e[i] = UUIDPGetDatum(&st->session_id);
					break;
				case 4:
					isnull[i] = st->severity_counts == NULL;
					e[i] = JsonbPGetDatum(st->severity_counts);
					break;
				case 5:
					isnull[i] = !st->has_start_date;
					e[i] = TimestampTzGetDatum(st->start_date);
					break;
				case 6:
					isnull[i] = !st->has_end_date;
					e[i] = TimestampTzGetDatum(st->end_date);
					break;
				case 7:
					e[i] = JsonbPGetDatum(responses[i]);
					break;
				case 8:
					e[i] = CStringGetTextDatum(worker_state_names[next[i]]);
					break;
				case 9:
					isnull[i] = st->problem == NULL;
					e[i] = isnull[i] ? (Datum) 0 : CStringGetTextDatum(st->problem);
					break;
			}
		}
		v[col_no] = array_of(e, isnull, n, types[col_no]);
	}
	v[10] = BoolGetDatum(import_findings);

	run(P_POLL_UPDATE_MANY, v, NULL);
	for (i = 0; i < n; i++)
		still_polled[i] = false;
	for (r = 0; r < SPI_processed; r++)
	{
		bool		null_ord;
		bool		null_state;
		int64		ord = DatumGetInt64(col((int) r, 1, &null_ord));
		Datum		state = col((int) r, 2, &null_state);

		if (null_ord || ord < 1 || ord > n || null_state)
			continue;			/* the row is gone */
		still_polled[ord - 1] =
			worker_state_from_name(TextDatumGetCString(state)) == WS_POLL &&
			next[ord - 1] == WS_POLL;
	}
}

void
scan_store_poll_gone(int64 id, const char *error)
{
	run_id_text(P_POLL_GONE, id, error);
}

void
scan_store_poll_error(int64 id, const char *error)
{
	run_id_text(P_POLL_ERROR, id, error);
}

bool
scan_store_scan_id_known(const pg_uuid_t *scan_id)
{
	Datum		v[1] = {UUIDPGetDatum(scan_id)};

	return run(P_SCAN_ID_KNOWN, v, NULL) > 0;
}

AdoptResult
scan_store_reconcile_adopt(int64 id, const pg_uuid_t *scan_id, int64 *holder)
{
	return adopt(P_RECONCILE_ADOPT, id, scan_id, holder);
}

void
scan_store_reconcile_resend(int64 id, const char *note)
{
	run_id_text(P_RECONCILE_RESEND, id, note);
}

void
scan_store_work_retry(int64 id, WorkerState state, TimestampTz when, const char *error)
{
	Datum		v[4] = {Int64GetDatum(id), TimestampTzGetDatum(when),
	CStringGetTextDatum(error), CStringGetTextDatum(worker_state_names[state])};

	run(P_WORK_RETRY, v, NULL);
}

void
scan_store_abort_sent(int64 id, const char *note)
{
	run_id_text(P_ABORT_SENT, id, note);
}

void
scan_store_abort_gone(int64 id, const char *error)
{
	run_id_text(P_ABORT_GONE, id, error);
}

#define OPT_TEXT(s, i) \
	do { v[i] = (s) ? CStringGetTextDatum(s) : (Datum) 0; nulls[i] = (s) ? ' ' : 'n'; } while (0)
#define OPT(flag, datum, i) \
	do { v[i] = (flag) ? (datum) : (Datum) 0; nulls[i] = (flag) ? ' ' : 'n'; } while (0)

bool
scan_store_insert_finding(int64 id, const pg_uuid_t *session_id, const Finding *f)
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

/*
 * What every last_error the import writes starts with: the noun of one of
 * its requests (the results list for the end date, then the findings).
 */
static Datum
import_error_prefixes(void)
{
	Datum		prefixes[2];

	prefixes[0] = CStringGetTextDatum(psprintf("%s:", api_call_nouns[CALL_SESSIONS]));
	prefixes[1] = CStringGetTextDatum(psprintf("%s:", api_call_nouns[CALL_RESULTS]));
	return PointerGetDatum(construct_array(prefixes, 2, TEXTOID, -1, false, TYPALIGN_INT));
}

void
scan_store_import_page(int64 id, const char *next_cursor, const char *note)
{
	char		nulls[5] = "    ";
	Datum		v[4];

	v[0] = Int64GetDatum(id);
	v[1] = CStringGetTextDatum(next_cursor);
	v[2] = text_or_null(note, &nulls[2]);
	v[3] = import_error_prefixes();
	run(P_IMPORT_PAGE, v, nulls);
}

void
scan_store_set_end_date(int64 id, TimestampTz end_date)
{
	Datum		v[2] = {Int64GetDatum(id), TimestampTzGetDatum(end_date)};

	run(P_SET_END_DATE, v, NULL);
}

void
scan_store_import_done(int64 id, const char *note, bool findings_imported)
{
	char		nulls[5] = "    ";
	Datum		v[4];

	v[0] = Int64GetDatum(id);
	v[1] = text_or_null(note, &nulls[1]);
	v[2] = import_error_prefixes();
	v[3] = BoolGetDatum(findings_imported);
	run(P_IMPORT_DONE, v, nulls);
}

void
scan_store_import_failed(int64 id, const char *error)
{
	run_id_text(P_IMPORT_FAILED, id, error);
}

int
scan_store_delete_old_scans(int days, int limit)
{
	Datum		v[2] = {Int32GetDatum(days), Int32GetDatum(limit)};

	return (int) run(P_RETENTION, v, NULL);
}

/* ---- the SQL API ---- */

int64
scan_store_insert_launch(const pg_uuid_t *target, const pg_uuid_t *profile, Oid launched_by,
						 Jsonb *options)
{
	Datum		v[4] = {UUIDPGetDatum(target), UUIDPGetDatum(profile),
	ObjectIdGetDatum(launched_by), options ? JsonbPGetDatum(options) : (Datum) 0};
	const char *nulls = options ? "    " : "   n";
	bool		isnull;

	if (!owner_by_oid && options)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("launch options need version 1.3 of extension invicti_scan"),
				 errhint("Run ALTER EXTENSION invicti_scan UPDATE.")));
	if (run(owner_by_oid ? P_INSERT_LAUNCH : P_INSERT_LAUNCH_BEFORE_1_3, v, nulls) != 1)
		elog(ERROR, "invicti_scan: the launch insert returned no row");
	return DatumGetInt64(col(0, 1, &isnull));
}

bool
scan_store_lock_for_abort(int64 id, WorkerState *state, char **status, Oid *launched_by)
{
	Datum		v[1] = {Int64GetDatum(id)};
	bool		isnull;
	Datum		d;

	if (run(owner_by_oid ? P_LOCK_FOR_ABORT : P_LOCK_FOR_ABORT_BEFORE_1_3, v, NULL) != 1)
		return false;
	*state = worker_state_from_name(TextDatumGetCString(col(0, 1, &isnull)));
	*status = TextDatumGetCString(col(0, 2, &isnull));
	d = col(0, 3, &isnull);
	*launched_by = isnull ? InvalidOid : DatumGetObjectId(d);
	return true;
}

void
scan_store_abort(int64 id, AbortAction action, const char *aborted_by)
{
	Datum		v[2];
	PlanId		plan;

	switch (action)
	{
		case ABORT_CANCEL_UNSENT:
			plan = P_ABORT_CANCEL;
			break;
		case ABORT_SEND_NOW:
			plan = P_ABORT_SEND;
			break;
		case ABORT_AFTER_LAUNCH:
			plan = P_ABORT_AFTER_LAUNCH;
			break;
		default:
			elog(ERROR, "invicti_scan: abort action %d changes no row", (int) action);
	}
	v[0] = Int64GetDatum(id);
	v[1] = DirectFunctionCall1(namein, CStringGetDatum(aborted_by));
	if (run(plan, v, NULL) != 1)
		elog(ERROR, "invicti_scan: scan " INT64_FORMAT " changed while it was locked", id);
}

bool
scan_store_find_for_refresh(int64 id, const pg_uuid_t *scan_id, int64 *found_id,
							WorkerState *state, Oid *launched_by)
{
	Datum		v[1];
	bool		isnull;
	Datum		d;

	v[0] = scan_id ? UUIDPGetDatum(scan_id) : Int64GetDatum(id);
	if (run(scan_id ? P_FIND_FOR_REFRESH_BY_SCAN_ID : P_FIND_FOR_REFRESH, v, NULL) != 1)
		return false;
	*found_id = DatumGetInt64(col(0, 1, &isnull));
	*state = worker_state_from_name(TextDatumGetCString(col(0, 2, &isnull)));
	d = col(0, 3, &isnull);
	*launched_by = isnull ? InvalidOid : DatumGetObjectId(d);
	return true;
}

/*
 * sql_api.c
 *		The SQL-callable functions of invicti_scan.
 *
 * invicti_launch_scan() only inserts a row, in the caller's transaction; it
 * never talks to the network.  It records the calling role, then inserts as
 * the table's owner with search_path pinned to pg_catalog, the way a
 * SECURITY DEFINER function would (so EXECUTE is the only grant a launcher
 * needs and PUBLIC can never write the table).  When the caller's
 * transaction commits, the worker's latch is set (commit_wake.c): the
 * worker wakes on commit, and a rolled-back launch sends nothing.
 *
 * invicti_abort_scan() likewise only changes the row (cancelling a scan that
 * was never sent, or marking it for the worker to abort through the API).
 * invicti_scan_worker_stats() reads the worker's counters from shared memory.
 *
 * Rules: every bad argument gets an error naming it; nothing here blocks on
 * the worker or on the API.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/acl.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/uuid.h"

#include "commit_wake.h"
#include "invicti_scan.h"
#include "settings.h"
#include "shared_state.h"
#include "sql_api.h"

PG_FUNCTION_INFO_V1(invicti_launch_scan);
PG_FUNCTION_INFO_V1(invicti_abort_scan);
PG_FUNCTION_INFO_V1(invicti_scan_worker_stats);
PG_FUNCTION_INFO_V1(invicti_scan_check_setup);

/* Plan for the insert, kept per backend; re-prepared if the table changes. */
static SPIPlanPtr launch_plan = NULL;
static Oid	launch_plan_relid = InvalidOid;

/*
 * A launch in a database the worker does not watch would wait forever; say
 * so now.  Only meaningful when the worker exists (library preloaded).
 */
static void
check_worker_database(void)
{
	char	   *here;

	if (!invicti_shmem_available())
		return;
	here = get_database_name(MyDatabaseId);
	if (here != NULL && strcmp(here, invicti_database_name) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the invicti_scan worker does not run in database \"%s\"", here),
				 errdetail("invicti_scan.database_name is \"%s\"; a scan launched here would never be sent.",
						   invicti_database_name),
				 errhint("Launch scans from database \"%s\", or set invicti_scan.database_name to \"%s\" and restart the server.",
						 invicti_database_name, here)));
}

static pg_uuid_t *
required_uuid_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	static const pg_uuid_t nil;
	pg_uuid_t  *u;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name),
				 errdetail("invicti_launch_scan needs the id of an Invicti target and of a scanning profile.")));
	u = PG_GETARG_UUID_P(argno);
	if (memcmp(u, &nil, sizeof(nil)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be the nil UUID", name),
				 errdetail("Invicti ids are never 00000000-0000-0000-0000-000000000000.")));
	return u;
}

/* The extension's table, found next to the function being called. */
Oid
invicti_scans_relid(FunctionCallInfo fcinfo, Oid *owner)
{
	Oid			nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
	Oid			relid = get_relname_relid("invicti_scans", nsp);
	HeapTuple	tup;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table \"%s.invicti_scans\" does not exist", get_namespace_name(nsp)),
				 errhint("Reinstall the extension: DROP EXTENSION invicti_scan; CREATE EXTENSION invicti_scan;")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	*owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return relid;
}

/*
 * Run fn(arg) as the table's owner with a safe search_path, then switch
 * back.  On error, transaction abort restores both, as for SECURITY DEFINER.
 */
void
invicti_run_as_owner(Oid owner, void (*fn) (void *), void *arg)
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	invicti_run_own_statement(fn, arg);
	AtEOXact_GUC(true, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

typedef struct LaunchArgs
{
	Oid			relid;
	pg_uuid_t  *target;
	pg_uuid_t  *profile;
	Name		launched_by;
	int64		id;
} LaunchArgs;

static void
insert_launch_row(void *p)
{
	LaunchArgs *a = (LaunchArgs *) p;
	Datum		values[3];
	bool		isnull;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (launch_plan == NULL || launch_plan_relid != a->relid)
	{
		Oid			types[3] = {UUIDOID, UUIDOID, NAMEOID};
		char	   *sql;
		SPIPlanPtr	plan;

		sql = psprintf("INSERT INTO %s.%s (target_id, profile_id, launched_by) "
					   "VALUES ($1, $2, $3) RETURNING id",
					   quote_identifier(get_namespace_name(get_rel_namespace(a->relid))),
					   quote_identifier(get_rel_name(a->relid)));
		plan = SPI_prepare(sql, 3, types);
		if (plan == NULL)
			elog(ERROR, "could not prepare the launch insert: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "could not keep the launch plan");
		if (launch_plan)
			SPI_freeplan(launch_plan);
		launch_plan = plan;
		launch_plan_relid = a->relid;
	}
	values[0] = UUIDPGetDatum(a->target);
	values[1] = UUIDPGetDatum(a->profile);
	values[2] = NameGetDatum(a->launched_by);
	rc = SPI_execute_plan(launch_plan, values, NULL, false, 1);
	if (rc != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "launch insert failed: %s", SPI_result_code_string(rc));
	a->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
}

Datum
invicti_launch_scan(PG_FUNCTION_ARGS)
{
	LaunchArgs	args;
	Oid			owner;
	NameData	caller;

	args.target = required_uuid_arg(fcinfo, 0, "target_id");
	args.profile = required_uuid_arg(fcinfo, 1, "profile_id");
	check_worker_database();

	namestrcpy(&caller, GetUserNameFromId(GetUserId(), false));
	args.launched_by = &caller;
	args.relid = invicti_scans_relid(fcinfo, &owner);
	invicti_run_as_owner(owner, insert_launch_row, &args);

	invicti_wake_worker_at_commit();
	PG_RETURN_INT64(args.id);
}

typedef struct AbortArgs
{
	Oid			relid;
	int64		id;
	bool		may_abort_any;	/* the caller has the owner's privileges */
	Name		caller;
	char	   *status;			/* out: the row's status afterwards */
} AbortArgs;

/* Run a statement about one row ($1 id, $2 caller), with the table's name for %s. */
static void
run_on_row(const AbortArgs *a, const char *sql_template, int expected)
{
	Oid			types[2] = {INT8OID, NAMEOID};
	Datum		values[2] = {Int64GetDatum(a->id), NameGetDatum(a->caller)};
	char	   *sql;
	int			rc;

	sql = psprintf(sql_template,
				   quote_identifier(get_namespace_name(get_rel_namespace(a->relid))),
				   quote_identifier(get_rel_name(a->relid)));
	rc = SPI_execute_with_args(sql, 2, types, values, NULL, false, 0);
	if (rc != expected)
		elog(ERROR, "invicti_scan: abort statement failed: %s",
			 SPI_result_code_string(rc));
}

static void
abort_row(void *p)
{
	AbortArgs  *a = (AbortArgs *) p;
	char	   *state;
	char	   *launched_by;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	run_on_row(a, "SELECT worker_state, status, launched_by FROM %s.%s "
			   "WHERE id = $1 FOR UPDATE", SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		launched_by = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
		if (!a->may_abort_any && strcmp(launched_by, NameStr(*a->caller)) != 0)
			SPI_processed = 0;	/* not yours: as if it did not exist */
	}
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("scan " INT64_FORMAT " does not exist", a->id),
				 errhint("Pass the id returned by invicti_launch_scan(); a role can abort only the scans it launched.")));

	state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	a->status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

	if (strcmp(state, "done") == 0 || strcmp(state, "import") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("scan " INT64_FORMAT " has already finished with status \"%s\"",
						a->id, a->status)));
	if (strcmp(state, "abort") == 0)
		ereport(NOTICE,
				(errmsg("an abort of scan " INT64_FORMAT " was already requested", a->id)));
	else if (strcmp(state, "launch") == 0)
	{
		/* never sent: cancel here, no request needed */
		run_on_row(a, "UPDATE %s.%s SET status = 'aborted', worker_state = 'done', "
				   "next_attempt_at = NULL, abort_requested_at = now(), aborted_by = $2, "
				   "updated_at = now() WHERE id = $1", SPI_OK_UPDATE);
		a->status = "aborted";
	}
	else if (strcmp(state, "poll") == 0)
	{
		run_on_row(a, "UPDATE %s.%s SET status = 'aborting', worker_state = 'abort', "
				   "next_attempt_at = now(), abort_requested_at = now(), aborted_by = $2, "
				   "updated_at = now() WHERE id = $1", SPI_OK_UPDATE);
		a->status = "aborting";
	}
	else
	{
		/* a launch is under way: the worker aborts the scan once it has its id */
		run_on_row(a, "UPDATE %s.%s SET status = 'aborting', abort_requested_at = now(), "
				   "aborted_by = $2, updated_at = now() WHERE id = $1", SPI_OK_UPDATE);
		a->status = "aborting";
	}
	a->status = MemoryContextStrdup(TopTransactionContext, a->status);
	SPI_finish();
}

Datum
invicti_abort_scan(PG_FUNCTION_ARGS)
{
	AbortArgs	args;
	Oid			owner;
	NameData	caller;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id must not be null"),
				 errhint("Pass the id returned by invicti_launch_scan().")));
	args.id = PG_GETARG_INT64(0);
	namestrcpy(&caller, GetUserNameFromId(GetUserId(), false));
	args.caller = &caller;
	args.relid = invicti_scans_relid(fcinfo, &owner);
	args.may_abort_any = has_privs_of_role(GetUserId(), owner);
	invicti_run_as_owner(owner, abort_row, &args);

	invicti_wake_worker_at_commit();
	PG_RETURN_TEXT_P(cstring_to_text(args.status));
}

static Datum
timestamp_or_null(TimestampTz t, bool *isnull)
{
	*isnull = (t == 0);
	return TimestampTzGetDatum(t);
}

/* {"launch": {"ok": 3, ...}, ...}: the non-zero counters. */
static Datum
requests_by_kind(const InvictiStats *st, int64 *total, int64 *rate_limited)
{
	StringInfoData buf;
	int			k;
	int			o;

	*total = *rate_limited = 0;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (k = 0; k < NUM_CALL_KINDS; k++)
	{
		bool		first = true;

		for (o = 0; o < NUM_OUTCOMES; o++)
		{
			uint64		n = st->requests[k][o];

			if (n == 0)
				continue;
			if (first)
				appendStringInfo(&buf, "%s\"%s\": {", buf.len > 1 ? ", " : "",
								 invicti_call_kind_names[k]);
			appendStringInfo(&buf, "%s\"%s\": " UINT64_FORMAT, first ? "" : ", ",
							 invicti_outcome_names[o], n);
			first = false;
			*total += n;
			if (o == OUTCOME_RATE_LIMITED)
				*rate_limited += n;
		}
		if (!first)
			appendStringInfoChar(&buf, '}');
	}
	appendStringInfoChar(&buf, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

Datum
invicti_scan_worker_stats(PG_FUNCTION_ARGS)
{
	InvictiStats st;
	TupleDesc	tupdesc;
	Datum		values[11];
	bool		nulls[11] = {0};
	int64		total;
	int64		rate_limited;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (!invicti_stats_read(&st))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("invicti_scan is not loaded through shared_preload_libraries"),
				 errhint("Add invicti_scan to shared_preload_libraries in postgresql.conf and restart the server.")));

	values[0] = Int32GetDatum(st.worker_pid);
	nulls[0] = st.worker_pid == 0;
	values[1] = timestamp_or_null(st.worker_started_at, &nulls[1]);
	values[2] = Int32GetDatum(st.in_flight);
	if (st.paused_until <= GetCurrentTimestamp())
		st.paused_until = 0;
	values[3] = timestamp_or_null(st.paused_until, &nulls[3]);
	values[5] = requests_by_kind(&st, &total, &rate_limited);
	values[4] = Int64GetDatum(total);
	values[6] = Int64GetDatum(rate_limited);
	values[7] = Int64GetDatum((int64) st.retries);
	values[8] = timestamp_or_null(st.last_success_at, &nulls[8]);
	values[9] = timestamp_or_null(st.last_error_at, &nulls[9]);
	values[10] = CStringGetTextDatum(st.last_error);
	nulls[10] = st.last_error[0] == '\0';
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * Called once by the install and upgrade scripts: warn when no worker will
 * ever see this database.  (The worker learns of the new schema from the
 * extension DDL hook in commit_wake.c.)
 */
Datum
invicti_scan_check_setup(PG_FUNCTION_ARGS)
{
	char	   *here = get_database_name(MyDatabaseId);

	if (!invicti_shmem_available())
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("invicti_scan is not loaded through shared_preload_libraries"),
				 errdetail("Scans can be queued, but no background worker will send them to Invicti."),
				 errhint("Add invicti_scan to shared_preload_libraries in postgresql.conf and restart the server.")));
	else if (here != NULL && strcmp(here, invicti_database_name) != 0)
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the invicti_scan worker runs in database \"%s\", not in \"%s\"",
						invicti_database_name, here),
				 errdetail("Scans launched in this database would never be sent."),
				 errhint("Set invicti_scan.database_name to \"%s\" and restart the server, or create the extension in database \"%s\".",
						 here, invicti_database_name)));
	PG_RETURN_VOID();
}

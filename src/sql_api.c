/*
 * sql_api.c
 *		The SQL-callable functions of invicti_scan.
 *
 * invicti_launch_scan() only inserts a row, in the caller's transaction; it
 * never talks to the network.  It records the calling role (by OID, the
 * role's identity, with its name alongside), then inserts as the table's
 * owner with search_path pinned to pg_catalog, the way a SECURITY DEFINER
 * function would (so EXECUTE is the only grant a launcher needs and PUBLIC
 * can never write the table).  When the caller's transaction commits, the
 * worker's latch is set (commit_wake.c): the worker wakes on commit, and a
 * rolled-back launch sends nothing.
 *
 * invicti_abort_scan() likewise only changes the row, as scan_state.c says
 * for the row's state (cancel a scan that was never sent, or have the
 * worker abort it through the API).  invicti_scan_worker_stats() reads the
 * worker's counters from shared memory.
 *
 * Rules: every bad argument gets an error naming it; nothing here blocks on
 * the worker or on the API; every statement is in scan_store.c.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/tuplestore.h"
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
#include "nodes/value.h"
#include "parser/parse_func.h"

#include "commit_wake.h"
#include "launch_options.h"
#include "pg_compat.h"
#include "scan_state.h"
#include "scan_store.h"
#include "invicti_scan.h"
#include "settings.h"
#include "shared_state.h"
#include "sql_api.h"

PG_FUNCTION_INFO_V1(invicti_launch_scan);
PG_FUNCTION_INFO_V1(invicti_launch_scan_by_profile);
PG_FUNCTION_INFO_V1(invicti_abort_scan);
PG_FUNCTION_INFO_V1(invicti_scan_worker_stats);
PG_FUNCTION_INFO_V1(invicti_refresh_scan);
PG_FUNCTION_INFO_V1(invicti_refresh_scan_by_scan_id);

/* Columns of invicti_scan_worker_stats() the library can fill. */
#define STATS_COLUMNS 18
PG_FUNCTION_INFO_V1(invicti_scan_check_setup);
PG_FUNCTION_INFO_V1(invicti_scan_state_moves);

/*
 * A launch in a database the worker does not watch would wait forever; say
 * so now.  Only meaningful when the worker exists (library preloaded).
 */
void
invicti_check_worker_database(void)
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

void
invicti_require_preloaded(void)
{
	if (!invicti_shmem_available())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("invicti_scan is not loaded through shared_preload_libraries"),
				 errhint("Add invicti_scan to shared_preload_libraries in postgresql.conf and restart the server.")));
}

char *
invicti_spi_strdup(const char *s)
{
	char	   *copy = SPI_palloc(strlen(s) + 1);

	strcpy(copy, s);
	return copy;
}

/* The extension's table, found next to the function being called. */
Oid
invicti_scans_relid(FunctionCallInfo fcinfo, Oid *owner)
{
	Oid			relid;

	*owner = scan_store_tables_owner(get_func_namespace(fcinfo->flinfo->fn_oid), &relid);
	return relid;
}

const char *
invicti_tables_schema(Oid scans_relid)
{
	return quote_identifier(get_namespace_name(get_rel_namespace(scans_relid)));
}

char *
invicti_qualified_table(Oid scans_relid, const char *table)
{
	return psprintf("%s.%s", invicti_tables_schema(scans_relid), quote_identifier(table));
}

void
invicti_run_pinned(Oid owner, void (*fn) (void *), void *arg)
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	if (OidIsValid(owner))
		SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
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
	Jsonb	   *options;
	Oid			caller;
	int64		id;
} LaunchArgs;

static void
insert_launch_row(void *p)
{
	LaunchArgs *a = (LaunchArgs *) p;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	scan_store_set_tables_of(a->relid);
	a->id = scan_store_insert_launch(a->target, a->profile, a->caller, a->options);
	SPI_finish();
}

/* Queue the launch described by args (its target, profile and options set). */
static int64
queue_launch(LaunchArgs *args, Oid owner)
{
	if (args->options)
		launch_options_check(args->options);
	invicti_check_worker_database();

	args->caller = GetUserId();
	invicti_run_pinned(owner, insert_launch_row, args);

	invicti_wake_worker_at_commit();
	return args->id;
}

Datum
invicti_launch_scan(PG_FUNCTION_ARGS)
{
	LaunchArgs	args;
	Oid			owner;

	args.target = required_uuid_arg(fcinfo, 0, "target_id");
	args.profile = required_uuid_arg(fcinfo, 1, "profile_id");
	/* invicti_launch_scan(target_id, profile_id, options jsonb) */
	args.options = PG_NARGS() > 2 && !PG_ARGISNULL(2) ? PG_GETARG_JSONB_P(2) : NULL;
	args.relid = invicti_scans_relid(fcinfo, &owner);
	PG_RETURN_INT64(queue_launch(&args, owner));
}

/*
 * Who may call invicti_launch_scan(uuid, text): whoever may call the
 * (uuid, uuid) launch next to it.  PostgreSQL resolves a call with two
 * quoted literals to the text overload, so it must not need a grant of its
 * own (a grant on the uuid launch would then stop working for them): it is
 * executable by PUBLIC and checks the uuid launch's privilege here.
 */
static void
check_launch_privilege(FunctionCallInfo fcinfo)
{
	Oid			nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
	Oid			argtypes[2] = {UUIDOID, UUIDOID};
	List	   *name = list_make2(makeString(get_namespace_name(nsp)),
								  makeString("invicti_launch_scan"));
	Oid			fn = LookupFuncName(name, 2, argtypes, false);

	if (!compat_function_privilege(fn, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function invicti_launch_scan(uuid, uuid)"),
				 errdetail("invicti_launch_scan(uuid, text) is allowed to the roles that may execute invicti_launch_scan(uuid, uuid)."),
				 errhint("The extension's owner can GRANT EXECUTE ON FUNCTION invicti_launch_scan(uuid, uuid) TO the role.")));
}

/*
 * invicti_launch_scan(target_id uuid, profile text): the profile by its
 * name as synced (or its id written as text), resolved now.
 */
Datum
invicti_launch_scan_by_profile(PG_FUNCTION_ARGS)
{
	static const pg_uuid_t nil;
	LaunchArgs	args;
	Oid			owner;
	char	   *profile;

	check_launch_privilege(fcinfo);
	args.target = required_uuid_arg(fcinfo, 0, "target_id");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("profile must not be null"),
				 errdetail("invicti_launch_scan needs a scanning profile, by name or id.")));
	profile = text_to_cstring(PG_GETARG_TEXT_PP(1));
	args.options = NULL;
	args.relid = invicti_scans_relid(fcinfo, &owner);
	args.profile = palloc(sizeof(pg_uuid_t));
	invicti_resolve_name(CATALOG_SCANNING_PROFILES, owner, args.relid, profile, args.profile);
	if (memcmp(args.profile, &nil, sizeof(nil)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("profile must not be the nil UUID"),
				 errdetail("Invicti ids are never 00000000-0000-0000-0000-000000000000.")));
	PG_RETURN_INT64(queue_launch(&args, owner));
}

typedef struct AbortArgs
{
	Oid			relid;
	int64		id;
	Oid			caller;
	bool		may_abort_any;	/* the caller has the owner's privileges */
	const char *caller_name;
	char	   *status;			/* out: the row's status afterwards */
} AbortArgs;

static void
abort_row(void *p)
{
	AbortArgs  *a = (AbortArgs *) p;
	WorkerState state;
	Oid			launched_by;
	AbortAction action;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	scan_store_set_tables_of(a->relid);
	if (!scan_store_lock_for_abort(a->id, &state, &a->status, &launched_by) ||
		(!a->may_abort_any && launched_by != a->caller))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("scan " INT64_FORMAT " does not exist", a->id),
				 errhint("Pass the id returned by invicti_launch_scan(); a role can abort only the scans it launched.")));

	action = worker_state_abort_action(state);
	switch (action)
	{
		case ABORT_REFUSE_FINISHED:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("scan " INT64_FORMAT " has already finished with status \"%s\"",
							a->id, a->status)));
			break;
		case ABORT_ALREADY_REQUESTED:
			ereport(NOTICE,
					(errmsg("an abort of scan " INT64_FORMAT " was already requested", a->id)));
			break;
		case ABORT_CANCEL_UNSENT:
			scan_store_abort(a->id, action, a->caller_name);
			a->status = SCAN_STATUS_ABORTED;
			break;
		case ABORT_SEND_NOW:
		case ABORT_AFTER_LAUNCH:
			scan_store_abort(a->id, action, a->caller_name);
			a->status = SCAN_STATUS_ABORTING;
			break;
	}
	a->status = MemoryContextStrdup(TopTransactionContext, a->status);
	SPI_finish();
}

Datum
invicti_abort_scan(PG_FUNCTION_ARGS)
{
	AbortArgs	args;
	Oid			owner;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id must not be null"),
				 errhint("Pass the id returned by invicti_launch_scan().")));
	args.id = PG_GETARG_INT64(0);
	args.caller = GetUserId();
	args.caller_name = GetUserNameFromId(args.caller, false);
	args.relid = invicti_scans_relid(fcinfo, &owner);
	args.may_abort_any = has_privs_of_role(args.caller, owner);
	invicti_run_pinned(owner, abort_row, &args);

	invicti_wake_worker_at_commit();
	PG_RETURN_TEXT_P(cstring_to_text(args.status));
}

typedef struct RefreshArgs
{
	Oid			relid;
	int64		id;
	pg_uuid_t  *scan_id;		/* or find the row by this */
	int64		found_id;
	WorkerState state;
	Oid			launched_by;
	bool		found;
} RefreshArgs;

static void
find_row_to_refresh(void *p)
{
	RefreshArgs *a = (RefreshArgs *) p;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	scan_store_set_tables_of(a->relid);
	a->found = scan_store_find_for_refresh(a->id, a->scan_id, &a->found_id, &a->state,
										   &a->launched_by);
	SPI_finish();
}

/*
 * invicti_refresh_scan(id) and (scan_id): the worker refreshes the scan as
 * soon as the request budget allows, through the authenticated API, so a
 * call can cost one request and never make a row say something the API
 * did not.  It only queues (shared memory): it never waits for the worker
 * or the API, is the same whether called once or many times, and takes
 * effect at once, committed or not.  True when the scan is running (a
 * refresh is queued); false when there is nothing to refresh (the scan has
 * not started yet, or has finished).
 */
static Datum
refresh_scan(FunctionCallInfo fcinfo, bool by_scan_id)
{
	RefreshArgs args;
	Oid			owner;
	Oid			caller = GetUserId();
	Oid			read_all;
	char	   *what;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", by_scan_id ? "scan_id" : "id"),
				 errhint("Pass the id returned by invicti_launch_scan(), or the scan_id of its row.")));
	memset(&args, 0, sizeof(args));
	if (by_scan_id)
	{
		args.scan_id = PG_GETARG_UUID_P(0);
		what = psprintf("scan %s", DatumGetCString(DirectFunctionCall1(uuid_out,
																	   UUIDPGetDatum(args.scan_id))));
	}
	else
	{
		args.id = PG_GETARG_INT64(0);
		what = psprintf("scan " INT64_FORMAT, args.id);
	}
	invicti_check_worker_database();
	args.relid = invicti_scans_relid(fcinfo, &owner);
	invicti_run_pinned(owner, find_row_to_refresh, &args);

	/* the rows a role may read: its own, or all for read_all and the owner */
	read_all = get_role_oid("invicti_scan_read_all", true);
	if (!args.found ||
		(args.launched_by != caller && !has_privs_of_role(caller, owner) &&
		 !(OidIsValid(read_all) && has_privs_of_role(caller, read_all))))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("%s does not exist", what),
				 errhint("A role can refresh only the scans it can read: the ones it launched, or all of them as a member of invicti_scan_read_all.")));
	if (args.state != WS_POLL)
		PG_RETURN_BOOL(false);
	invicti_require_preloaded();
	invicti_request_refresh(args.found_id);
	PG_RETURN_BOOL(true);
}

Datum
invicti_refresh_scan(PG_FUNCTION_ARGS)
{
	return refresh_scan(fcinfo, false);
}

Datum
invicti_refresh_scan_by_scan_id(PG_FUNCTION_ARGS)
{
	return refresh_scan(fcinfo, true);
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
								 api_call_names[k]);
			appendStringInfo(&buf, "%s\"%s\": " UINT64_FORMAT, first ? "" : ", ",
							 api_outcome_names[o], n);
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
	Datum		values[STATS_COLUMNS];
	bool		nulls[STATS_COLUMNS] = {0};
	int64		total;
	int64		rate_limited;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (tupdesc->natts > STATS_COLUMNS)
		elog(ERROR, "invicti_scan_worker_stats() returns more columns than the library knows");
	invicti_require_preloaded();
	(void) invicti_stats_read(&st);

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
	/* since 1.4 (a 1.3 definition asks for the first 11 only) */
	values[11] = CStringGetTextDatum(st.poll_method);
	nulls[11] = st.worker_pid == 0 || st.poll_method[0] == '\0';
	values[12] = Int32GetDatum(st.budget_per_minute);
	nulls[12] = st.budget_per_minute <= 0;
	values[13] = Float8GetDatum(st.budget_effective);
	nulls[13] = st.budget_effective < 0 || st.worker_pid == 0;
	values[14] = Int32GetDatum(st.requests_last_minute);
	values[15] = Int64GetDatum(st.budget_waits);
	values[16] = Int64GetDatum((int64) st.refresh_requests);
	/* since 1.6 */
	values[17] = Int64GetDatum(st.rate_cuts);
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
	Oid			nsp = get_func_namespace(fcinfo->flinfo->fn_oid);

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

	/*
	 * In a schema where every role may create objects, a look-alike function
	 * (invicti_launch_scan(text, text)) can catch unqualified calls.
	 */
	if (compat_schema_privilege(nsp, ACL_ID_PUBLIC, ACL_CREATE))
		ereport(NOTICE,
				(errmsg("invicti_scan is installed in schema \"%s\", where every role may create objects",
						get_namespace_name(nsp)),
				 errdetail("A function another role creates there, or earlier in a caller's search_path, can catch unqualified calls."),
				 errhint("Call the functions schema-qualified, or move the extension: CREATE SCHEMA invicti; ALTER EXTENSION invicti_scan SET SCHEMA invicti;")));
	PG_RETURN_VOID();
}

/* Every move scan_state.c allows, as rows (from_state, to_state). */
Datum
invicti_scan_state_moves(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			from;
	int			to;

	InitMaterializedSRF(fcinfo, 0);
	for (from = 0; from < NUM_WORKER_STATES; from++)
		for (to = 0; to < NUM_WORKER_STATES; to++)
		{
			Datum		values[2];
			bool		nulls[2] = {false, false};

			if (!worker_state_move_allowed(from, to))
				continue;
			values[0] = CStringGetTextDatum(worker_state_names[from]);
			values[1] = CStringGetTextDatum(worker_state_names[to]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	return (Datum) 0;
}

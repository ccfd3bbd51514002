/*
 * sql_api.c
 *		The SQL-callable functions of invicti_scan.
 *
 * invicti_launch_scan() only inserts a row, in the caller's transaction; it
 * never talks to the network.  It records the calling role, then inserts as
 * the table's owner with search_path pinned to pg_catalog, the way a
 * SECURITY DEFINER function would (so EXECUTE is the only grant a launcher
 * needs and PUBLIC can never write the table).  When the caller's
 * transaction commits, a transaction callback sets the worker's latch: the
 * worker wakes on commit, and a rolled-back launch sends nothing.
 *
 * Rules: every bad argument gets an error naming it; nothing here blocks on
 * the worker or on the API.
 */
#include "postgres.h"

#include "access/htup_details.h"
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

#include "invicti_scan.h"
#include "settings.h"
#include "shared_state.h"
#include "sql_api.h"

PG_FUNCTION_INFO_V1(invicti_launch_scan);
PG_FUNCTION_INFO_V1(invicti_scan_check_setup);

static bool wake_at_commit = false;
static bool xact_callback_registered = false;

/* Plan for the insert, kept per backend; re-prepared if the table changes. */
static SPIPlanPtr launch_plan = NULL;
static Oid	launch_plan_relid = InvalidOid;

static void
wake_worker_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit)
				invicti_wake_worker();
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

void
invicti_wake_worker_at_commit(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(wake_worker_xact_callback, NULL);
		xact_callback_registered = true;
	}
	wake_at_commit = true;
}

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
	fn(arg);
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

/*
 * Called once by the install and upgrade scripts: warn when no worker will
 * ever see this database, and wake the worker to pick up the new schema.
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
	invicti_wake_worker_at_commit();
	PG_RETURN_VOID();
}

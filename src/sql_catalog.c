/*
 * sql_catalog.c
 *		The SQL functions of the configure step: invicti_sync(),
 *		invicti_add_target(), and the resolution of the names of scanning
 *		profiles and report templates (invicti_launch_scan(target_id,
 *		profile text), invicti_request_report()).
 *
 * Like invicti_launch_scan() they only write rows, in the caller's
 * transaction, as the tables' owner with a pinned search_path, and wake
 * the worker at commit; none waits for the network.  Every bad argument
 * is an error naming it, before anything is queued.
 *
 * Rules: every statement is in catalog_store.c; nothing here decides what
 * an address may be (target_address.c).
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "api_response.h"
#include "catalog_store.h"
#include "commit_wake.h"
#include "sql_api.h"
#include "target_address.h"

PG_FUNCTION_INFO_V1(invicti_sync);
PG_FUNCTION_INFO_V1(invicti_add_target);

#define DESCRIPTION_MAX_CHARS 1024
/* Ids named in an "ambiguous" error. */
#define AMBIGUOUS_IDS_SHOWN 5

/* Point catalog_store.c at the schema of the extension's tables. */
static void
use_schema_of(Oid relid)
{
	catalog_store_set_schema(invicti_tables_schema(relid));
}

static void
spi_connect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/* ---- invicti_sync() ---- */

static void
request_sync(void *arg pg_attribute_unused())
{
	spi_connect();
	catalog_store_request_sync();
	SPI_finish();
}

Datum
invicti_sync(PG_FUNCTION_ARGS)
{
	Oid			owner;
	Oid			relid = invicti_scans_relid(fcinfo, &owner);

	use_schema_of(relid);
	invicti_run_pinned(owner, request_sync, NULL);
	invicti_wake_worker_at_commit();
	PG_RETURN_VOID();
}

/* ---- invicti_add_target() ---- */

typedef struct AddTargetArgs
{
	const char *address;
	const char *description;
	int32		criticality;
	Oid			caller;
	int64		id;
} AddTargetArgs;

static void
insert_target_request(void *p)
{
	AddTargetArgs *a = (AddTargetArgs *) p;
	pg_uuid_t	existing;
	int64		open_id;

	spi_connect();
	if (catalog_store_target_exists(a->address, &existing))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("Invicti target \"%s\" already exists", a->address),
				 errdetail("Target %s has this address (invicti_targets, as last synced).",
						   api_uuid_text(&existing)),
				 errhint("Launch scans of target %s; nothing needs adding.",
						 api_uuid_text(&existing))));
	if (catalog_store_target_request_open(a->address, &open_id))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("a request to add Invicti target \"%s\" is already queued", a->address),
				 errdetail("Request " INT64_FORMAT " in invicti_target_requests has not been answered yet.",
						   open_id),
				 errhint("Wait for it: its status becomes created, with the target_id, or failed.")));
	a->id = catalog_store_insert_target_request(a->address, a->description, a->criticality,
												a->caller);
	SPI_finish();
}

Datum
invicti_add_target(PG_FUNCTION_ARGS)
{
	AddTargetArgs args;
	Oid			owner;
	Oid			relid;
	const char *problem;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("address must not be null"),
				 errdetail("invicti_add_target needs the URL or host name of the application to scan.")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("description must not be null"),
				 errhint("Pass '' for no description.")));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("criticality must not be null"),
				 errhint("Criticality is 30 (critical), 20 (high), 10 (normal) or 0 (low).")));

	args.address = text_to_cstring(PG_GETARG_TEXT_PP(0));
	args.description = text_to_cstring(PG_GETARG_TEXT_PP(1));
	args.criticality = PG_GETARG_INT32(2);

	problem = target_address_problem(args.address);
	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a valid Invicti target address", args.address),
				 errdetail("An address is an http or https URL, or a host name with an optional port, of at most 1024 characters; %s.",
						   problem)));
	if (pg_mbstrlen(args.description) > DESCRIPTION_MAX_CHARS)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("description is longer than %d characters", DESCRIPTION_MAX_CHARS),
				 errdetail("The Invicti API takes target descriptions of at most %d characters.",
						   DESCRIPTION_MAX_CHARS)));
	if (args.criticality != 0 && args.criticality != 10 && args.criticality != 20 &&
		args.criticality != 30)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("criticality must be 30, 20, 10 or 0, not %d", args.criticality),
				 errdetail("Invicti knows four criticalities: 30 (critical), 20 (high), 10 (normal) and 0 (low).")));
	invicti_check_worker_database();

	args.caller = GetUserId();
	relid = invicti_scans_relid(fcinfo, &owner);
	use_schema_of(relid);
	invicti_run_pinned(owner, insert_target_request, &args);
	invicti_wake_worker_at_commit();
	PG_RETURN_INT64(args.id);
}

/* ---- names of scanning profiles and report templates ---- */

typedef struct ResolveArgs
{
	Catalog		catalog;
	const char *name;
	pg_uuid_t	ids[AMBIGUOUS_IDS_SHOWN];
	int			found;
	int64		listed;
} ResolveArgs;

static void
find_named(void *p)
{
	ResolveArgs *a = (ResolveArgs *) p;

	spi_connect();
	a->found = catalog_store_named(a->catalog, a->name, a->ids, AMBIGUOUS_IDS_SHOWN);
	a->listed = a->found == 0 ? catalog_store_count(a->catalog) : 0;
	SPI_finish();
}

void
invicti_resolve_name(Catalog c, Oid owner, Oid relid, const char *name, pg_uuid_t *out)
{
	const char *what = c == CATALOG_SCANNING_PROFILES ? "scanning profile" : "report template";
	const char *table = c == CATALOG_SCANNING_PROFILES ? "invicti_scanning_profiles" :
		"invicti_report_templates";
	ResolveArgs args;
	StringInfoData ids;
	int			i;

	/* an id written as text is an id */
	if (api_parse_uuid(name, strlen(name), out))
		return;

	memset(&args, 0, sizeof(args));
	args.catalog = c;
	args.name = name;
	use_schema_of(relid);
	invicti_run_pinned(owner, find_named, &args);
	if (args.found == 1)
	{
		*out = args.ids[0];
		return;
	}
	if (args.found == 0 && args.listed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("%s \"%s\" is not known: no %ss have been synced", what, name, what),
				 errdetail("Names are resolved from %s, which the worker fills from the API.", table),
				 errhint("Run SELECT invicti_sync() and try again once invicti_sync_status shows the %s synced, or pass the id.",
						 catalog_names[c])));
	if (args.found == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("%s \"%s\" does not exist", what, name),
				 errdetail("None of the " INT64_FORMAT " %ss synced from Invicti has this name.",
						   args.listed, what),
				 errhint("SELECT name FROM %s lists them; run SELECT invicti_sync() if it is new.",
						 table)));

	initStringInfo(&ids);
	for (i = 0; i < Min(args.found, AMBIGUOUS_IDS_SHOWN); i++)
		appendStringInfo(&ids, "%s%s", i > 0 ? ", " : "", api_uuid_text(&args.ids[i]));
	ereport(ERROR,
			(errcode(ERRCODE_AMBIGUOUS_PARAMETER),
			 errmsg("%s name \"%s\" is ambiguous", what, name),
			 errdetail("%d %ss have this name: %s%s.", args.found, what, ids.data,
					   args.found > AMBIGUOUS_IDS_SHOWN ? ", ..." : ""),
			 errhint("Use the id instead.")));
}

/*
 * sql_gate.c
 *		invicti_scan_passed(id, fail_on): the severity gate a pipeline
 *		fails a build on.
 *
 * A scan passes when it completed and found nothing at fail_on severity or
 * above (critical > high > medium > low > info).  The gate fails closed: a
 * completed scan whose counts are unknown does not pass (with a WARNING
 * saying why), and the counts it reads are valid by construction
 * (severity_counts.c and the table's CHECK constraint).
 *
 * It reads the row as its caller (row-level security decides which scans
 * exist for them), with search_path pinned to pg_catalog, pg_temp, so
 * nothing in the caller's path can stand in for the table or an operator.
 *
 * Rules: read only; every bad argument is an error naming it.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "severity_counts.h"
#include "sql_api.h"

PG_FUNCTION_INFO_V1(invicti_scan_passed);

typedef struct GateArgs
{
	Oid			relid;
	int64		id;
	int			level;
	bool		found;
	char	   *status;
	Jsonb	   *counts;
} GateArgs;

static void
read_scan(void *p)
{
	GateArgs   *a = (GateArgs *) p;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(a->id)};
	char	   *sql;
	bool		isnull;
	Datum		d;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sql = psprintf("SELECT status, severity_counts FROM %s WHERE id = $1",
				   invicti_qualified_table(a->relid, get_rel_name(a->relid)));
	if (SPI_execute_with_args(sql, 1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "invicti_scan: could not read scan " INT64_FORMAT, a->id);
	a->found = SPI_processed == 1;
	if (a->found)
	{
		/* copied out of SPI's memory, which SPI_finish() frees */
		a->status = invicti_spi_strdup(SPI_getvalue(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1));
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
			a->counts = DatumGetJsonbP(SPI_datumTransfer(d, false, -1));
	}
	SPI_finish();
}

Datum
invicti_scan_passed(PG_FUNCTION_ARGS)
{
	GateArgs	a;
	Oid			owner;
	char	   *fail_on;
	const char *problem;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id must not be null"),
				 errhint("Pass the id returned by invicti_launch_scan().")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("fail_on must not be null"),
				 errhint("Use one of critical, high, medium, low, info.")));
	memset(&a, 0, sizeof(a));
	a.id = PG_GETARG_INT64(0);
	fail_on = text_to_cstring(PG_GETARG_TEXT_PP(1));
	a.level = severity_level(asc_tolower(fail_on, strlen(fail_on)));
	if (a.level < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid fail_on value: \"%s\"", fail_on),
				 errhint("Use one of critical, high, medium, low, info.")));

	a.relid = invicti_scans_relid(fcinfo, &owner);
	invicti_run_pinned(InvalidOid, read_scan, &a);

	if (!a.found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("scan " INT64_FORMAT " does not exist", a.id),
				 errhint("Pass the id returned by invicti_launch_scan().")));
	if (strcmp(a.status, "completed") != 0)
	{
		bool		ended = strcmp(a.status, "failed") == 0 ||
			strcmp(a.status, "aborted") == 0 || strcmp(a.status, "error") == 0;

		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("scan " INT64_FORMAT " has not completed: its status is %s", a.id, a.status),
				 errhint(ended ? "A scan that did not complete cannot pass; launch it again."
						 : "Wait until the status is completed, e.g. by watching invicti_running_scans.")));
	}
	problem = a.counts ? severity_counts_problem(a.counts) : "no severity counts were received";
	if (problem != NULL)
	{
		ereport(WARNING,
				(errmsg("scan " INT64_FORMAT " does not pass: its severity counts cannot be read", a.id),
				 errdetail("%c%s.", pg_toupper((unsigned char) problem[0]), problem + 1)));
		PG_RETURN_BOOL(false);
	}
	PG_RETURN_BOOL(severity_counts_at_or_above(a.counts, a.level) == 0);
}

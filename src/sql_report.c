/*
 * sql_report.c
 *		invicti_request_report() and invicti_report_content(): reports of
 *		scans, asked for from SQL and read back as bytes.
 *
 * A report may cover only scans its caller may read: they are read as the
 * caller, under row-level security, with search_path pinned (as the gate
 * does), and each must have been launched (have an Invicti scan id).  The
 * row is then written as the tables' owner with the launchers of the
 * covered scans, which is what decides who reads the report
 * (invicti_reports_visible).  invicti_report_content() reads as its caller
 * too.  Neither waits for the network.
 *
 * Rules: every bad argument is an error naming it, before anything is
 * queued; nothing here talks to the API.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "api_response.h"
#include "catalog_store.h"
#include "commit_wake.h"
#include "sql_api.h"

PG_FUNCTION_INFO_V1(invicti_request_report);
PG_FUNCTION_INFO_V1(invicti_report_content);

/* The spec's ReportSource.id_list maxItems. */
#define REPORT_MAX_SCANS 500

typedef struct RequestArgs
{
	Oid			relid;			/* invicti_scans */
	int			n;
	int64	   *ids;			/* distinct, ascending */
	/* read as the caller */
	bool	   *found;
	char	  **status;
	bool	   *launched;
	Datum	   *api_ids;		/* uuid */
	Datum	   *owners;			/* oid */
	bool	   *owner_null;
	/* the row */
	pg_uuid_t	template_id;
	const char *format;
	Oid			caller;
	int64		report;
} RequestArgs;

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y;
}

/* The scans, read as the caller. */
static void
read_scans(void *p)
{
	RequestArgs *a = (RequestArgs *) p;
	Oid			types[1] = {INT8ARRAYOID};
	Datum	   *d = palloc(sizeof(Datum) * a->n);
	Datum		values[1];
	uint64		r;
	int			i;

	for (i = 0; i < a->n; i++)
		d[i] = Int64GetDatum(a->ids[i]);
	values[0] = PointerGetDatum(construct_array(d, a->n, INT8OID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(psprintf("SELECT id, status, scan_id, launched_by_oid FROM %s "
									   "WHERE id = ANY ($1)",
									   invicti_qualified_table(a->relid, "invicti_scans")),
							  1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "invicti_scan: could not read the scans");
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		int64	   *at = bsearch(&id, a->ids, a->n, sizeof(int64), cmp_int64);
		Datum		scan_id;

		if (at == NULL)
			continue;
		i = at - a->ids;
		a->found[i] = true;
		a->status[i] = invicti_spi_strdup(SPI_getvalue(tup, desc, 2));
		scan_id = SPI_getbinval(tup, desc, 3, &isnull);
		a->launched[i] = !isnull;
		if (!isnull)
		{
			pg_uuid_t  *u = SPI_palloc(sizeof(pg_uuid_t));

			*u = *DatumGetUUIDP(scan_id);
			a->api_ids[i] = UUIDPGetDatum(u);
		}
		a->owners[i] = SPI_getbinval(tup, desc, 4, &a->owner_null[i]);
	}
	SPI_finish();
}

static void
insert_report(void *p)
{
	RequestArgs *a = (RequestArgs *) p;
	Oid			types[6] = {INT8ARRAYOID, UUIDARRAYOID, OIDARRAYOID, UUIDOID, TEXTOID, OIDOID};
	Datum		v[6];
	Datum	   *d = palloc(sizeof(Datum) * a->n);
	int			dims[1] = {a->n};
	int			lbs[1] = {1};
	int			i;
	bool		isnull;

	for (i = 0; i < a->n; i++)
		d[i] = Int64GetDatum(a->ids[i]);
	v[0] = PointerGetDatum(construct_array(d, a->n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	v[1] = PointerGetDatum(construct_array(a->api_ids, a->n, UUIDOID, UUID_LEN, false,
										   TYPALIGN_CHAR));
	v[2] = PointerGetDatum(construct_md_array(a->owners, a->owner_null, 1, dims, lbs, OIDOID,
											  sizeof(Oid), true, TYPALIGN_INT));
	v[3] = UUIDPGetDatum(&a->template_id);
	v[4] = CStringGetTextDatum(a->format);
	v[5] = ObjectIdGetDatum(a->caller);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	catalog_store_set_schema(invicti_tables_schema(a->relid));
	if (catalog_store_exec("INSERT INTO @S.invicti_reports (scan_ids, api_scan_ids, scan_owner_oids, "
						   "  template_id, template_name, format, requested_by_oid, requested_by) "
						   "SELECT $1, $2, "
						   "  ARRAY(SELECT DISTINCT o FROM pg_catalog.unnest($3) AS o), $4, "
						   "  (SELECT name FROM @S.invicti_report_templates WHERE template_id = $4), "
						   "  $5, $6, r.rolname "
						   "FROM pg_catalog.pg_roles r WHERE r.oid = $6 "
						   "RETURNING id",
						   6, types, v, NULL) != 1)
		elog(ERROR, "invicti_scan: the calling role was not found");
	a->report = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											&isnull));
	SPI_finish();
}

Datum
invicti_request_report(PG_FUNCTION_ARGS)
{
	RequestArgs a;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	int			k;
	Oid			owner;
	char	   *template;
	char	   *format;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("scan_ids must not be null"),
				 errhint("Pass the ids invicti_launch_scan() returned, e.g. ARRAY[42].")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("template must not be null"),
				 errhint("Name a report template as synced into invicti_report_templates (e.g. 'Developer'), or pass its id.")));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("format must not be null"),
				 errhint("Use pdf or html.")));

	arr = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("scan_ids must be a one-dimensional array")));
	deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("scan_ids must name at least one scan")));
	memset(&a, 0, sizeof(a));
	a.ids = palloc(sizeof(int64) * n);
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("scan_ids must not contain nulls")));
		a.ids[i] = DatumGetInt64(elems[i]);
	}
	qsort(a.ids, n, sizeof(int64), cmp_int64);
	for (i = 0, k = 0; i < n; i++)
		if (k == 0 || a.ids[k - 1] != a.ids[i])
			a.ids[k++] = a.ids[i];
	a.n = k;
	if (a.n > REPORT_MAX_SCANS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a report covers at most %d scans, not %d", REPORT_MAX_SCANS, a.n),
				 errdetail("The Invicti API takes at most %d ids in a report's source.",
						   REPORT_MAX_SCANS)));

	format = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (pg_strcasecmp(format, "pdf") == 0)
		a.format = "pdf";
	else if (pg_strcasecmp(format, "html") == 0)
		a.format = "html";
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid report format: \"%s\"", format),
				 errhint("Use pdf or html.")));
	invicti_check_worker_database();

	/* the scans, as the caller sees them */
	a.relid = invicti_scans_relid(fcinfo, &owner);
	a.found = palloc0(sizeof(bool) * a.n);
	a.status = palloc0(sizeof(char *) * a.n);
	a.launched = palloc0(sizeof(bool) * a.n);
	a.api_ids = palloc0(sizeof(Datum) * a.n);
	a.owners = palloc0(sizeof(Datum) * a.n);
	a.owner_null = palloc0(sizeof(bool) * a.n);
	invicti_run_pinned(InvalidOid, read_scans, &a);
	for (i = 0; i < a.n; i++)
	{
		if (!a.found[i])
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("scan " INT64_FORMAT " does not exist", a.ids[i]),
					 errdetail("A report covers only scans its requester may read."),
					 errhint("Pass ids returned by invicti_launch_scan().")));
		if (!a.launched[i])
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("scan " INT64_FORMAT " has no Invicti scan to report on: its status is %s",
							a.ids[i], a.status[i]),
					 errhint("Request the report once the scan has been launched, e.g. after invicti_wait_scan().")));
	}

	template = text_to_cstring(PG_GETARG_TEXT_PP(1));
	invicti_resolve_name(CATALOG_REPORT_TEMPLATES, owner, a.relid, template, &a.template_id);

	a.caller = GetUserId();
	invicti_run_pinned(owner, insert_report, &a);
	invicti_wake_worker_at_commit();
	PG_RETURN_INT64(a.report);
}

typedef struct ContentArgs
{
	Oid			relid;
	int64		id;
	bool		found;
	char	   *status;
	char	   *last_error;
	bytea	   *content;
} ContentArgs;

static void
read_content(void *p)
{
	ContentArgs *a = (ContentArgs *) p;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(a->id)};
	bool		isnull;
	Datum		d;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(psprintf("SELECT status, last_error, content FROM %s WHERE id = $1",
									   invicti_qualified_table(a->relid, "invicti_reports")),
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "invicti_scan: could not read report " INT64_FORMAT, a->id);
	a->found = SPI_processed == 1;
	if (a->found)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *error = SPI_getvalue(tup, desc, 2);

		a->status = invicti_spi_strdup(SPI_getvalue(tup, desc, 1));
		a->last_error = error ? invicti_spi_strdup(error) : NULL;
		d = SPI_getbinval(tup, desc, 3, &isnull);
		if (!isnull)
			a->content = DatumGetByteaPP(SPI_datumTransfer(d, false, -1));
	}
	SPI_finish();
}

Datum
invicti_report_content(PG_FUNCTION_ARGS)
{
	ContentArgs a;
	Oid			owner;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id must not be null"),
				 errhint("Pass the id returned by invicti_request_report().")));
	memset(&a, 0, sizeof(a));
	a.id = PG_GETARG_INT64(0);
	a.relid = invicti_scans_relid(fcinfo, &owner);
	invicti_run_pinned(InvalidOid, read_content, &a);
	if (!a.found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("report " INT64_FORMAT " does not exist", a.id),
				 errdetail("A role reads the reports of scans it may read."),
				 errhint("Pass the id returned by invicti_request_report().")));
	if (a.content == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("report " INT64_FORMAT " is not ready: its status is %s", a.id, a.status),
				 a.last_error ? errdetail("Last error: %s", a.last_error) : 0,
				 errhint(strcmp(a.status, "failed") == 0 ?
						 "Request the report again with invicti_request_report()." :
						 "Wait until invicti_reports.status is ready.")));
	PG_RETURN_BYTEA_P(a.content);
}

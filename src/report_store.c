/*
 * report_store.c
 *		Every statement on invicti_reports, through SPI: the worker's (inside
 *		store_run) and the SQL API's insert (as the tables' owner).
 *
 * A report's status moves pending -> sending -> generating -> ready, or to
 * failed from any of them; sending -> pending when its answer is lost
 * (asking again is harmless) or refused for a while.  Every write names the
 * statuses it may leave, so a stale verdict never overwrites a row that
 * moved on (a row deleted meanwhile is simply not written).
 *
 * Rules: nothing here talks to the network; values are parameters, only the
 * quoted schema (catalog_store.c's) is spliced in.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "catalog_store.h"
#include "report_store.h"

int
report_store_sweep(const int64 *busy, int nbusy)
{
	Oid			types[1] = {INT8ARRAYOID};
	Datum		v[1] = {catalog_store_id_array(busy, nbusy)};

	return (int) catalog_store_exec("UPDATE @S.invicti_reports SET status = 'pending', "
									"  next_attempt_at = pg_catalog.now(), updated_at = pg_catalog.now() "
									"WHERE status = 'sending' AND id <> ALL ($1)",
									1, types, v, NULL);
}

static void
take_claims(ReportClaim *out, int from)
{
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
	{
		ReportClaim *r = &out[from + i];
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;
		ArrayType  *arr;
		Datum	   *elems;
		int			n;
		int			k;

		r->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		d = SPI_getbinval(tup, desc, 2, &isnull);
		r->has_report_id = !isnull;
		if (!isnull)
			r->report_id = *DatumGetUUIDP(d);
		r->template_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 3, &isnull));
		d = SPI_getbinval(tup, desc, 4, &isnull);
		r->format = SPI_palloc(8);
		strlcpy(r->format, TextDatumGetCString(d), 8);
		arr = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 5, &isnull));
		deconstruct_array(arr, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR, &elems, NULL, &n);
		r->nscans = n;
		r->scan_ids = SPI_palloc(sizeof(pg_uuid_t) * Max(n, 1));
		for (k = 0; k < n; k++)
			r->scan_ids[k] = *DatumGetUUIDP(elems[k]);
		r->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
		r->created_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 7, &isnull));
	}
}

#define CLAIM_COLUMNS "id, report_id, template_id, format, api_scan_ids, attempts, created_at"

int
report_store_claim(const int64 *busy, int nbusy, int limit, ReportClaim **out)
{
	Oid			types[2] = {INT8ARRAYOID, INT4OID};
	Datum		v[2] = {catalog_store_id_array(busy, nbusy), Int32GetDatum(limit)};
	int			n;
	int			m;

	*out = SPI_palloc(sizeof(ReportClaim) * Max(limit, 1));
	n = (int) catalog_store_exec("SELECT " CLAIM_COLUMNS " FROM @S.invicti_reports "
								 "WHERE status = 'generating' AND next_attempt_at <= pg_catalog.now() "
								 "  AND id <> ALL ($1) "
								 "ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
								 2, types, v, NULL);
	take_claims(*out, 0);
	if (n >= limit)
		return n;
	v[1] = Int32GetDatum(limit - n);
	m = (int) catalog_store_exec("UPDATE @S.invicti_reports SET status = 'sending', "
								 "  attempts = attempts + 1, last_attempt_at = pg_catalog.now(), "
								 "  updated_at = pg_catalog.now() "
								 "WHERE id IN (SELECT id FROM @S.invicti_reports "
								 "  WHERE status = 'pending' AND next_attempt_at <= pg_catalog.now() "
								 "    AND id <> ALL ($1) "
								 "  ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) "
								 "RETURNING " CLAIM_COLUMNS,
								 2, types, v, NULL);
	take_claims(*out, n);
	return n + m;
}

TimestampTz
report_store_next_due(const int64 *busy, int nbusy)
{
	Oid			types[1] = {INT8ARRAYOID};
	Datum		v[1] = {catalog_store_id_array(busy, nbusy)};
	bool		isnull;
	Datum		d;

	catalog_store_exec("SELECT pg_catalog.min(next_attempt_at) FROM @S.invicti_reports "
					   "WHERE status IN ('pending', 'generating') AND id <> ALL ($1)",
					   1, types, v, NULL);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

void
report_store_generating(int64 id, const pg_uuid_t *report_id, const char *api_status,
						TimestampTz when, const char *note)
{
	Oid			types[5] = {INT8OID, UUIDOID, TEXTOID, TIMESTAMPTZOID, TEXTOID};
	Datum		v[5];
	char		nulls[5] = "     ";

	v[0] = Int64GetDatum(id);
	v[1] = UUIDPGetDatum(report_id);
	v[2] = catalog_store_text_or_null(api_status, &nulls[2]);
	v[3] = TimestampTzGetDatum(when);
	v[4] = catalog_store_text_or_null(note, &nulls[4]);
	catalog_store_exec("UPDATE @S.invicti_reports SET status = 'generating', report_id = $2, "
					   "  api_status = COALESCE($3, api_status), next_attempt_at = $4, "
					   "  last_error = $5, updated_at = pg_catalog.now() "
					   "WHERE id = $1 AND status IN ('sending', 'generating')",
					   5, types, v, nulls);
}

void
report_store_retry(int64 id, TimestampTz when, const char *error)
{
	Oid			types[3] = {INT8OID, TIMESTAMPTZOID, TEXTOID};
	Datum		v[3];
	char		nulls[3] = "   ";

	v[0] = Int64GetDatum(id);
	v[1] = TimestampTzGetDatum(when);
	v[2] = catalog_store_text_or_null(error, &nulls[2]);
	catalog_store_exec("UPDATE @S.invicti_reports SET status = 'pending', next_attempt_at = $2, "
					   "  last_error = $3, updated_at = pg_catalog.now() "
					   "WHERE id = $1 AND status = 'sending'",
					   3, types, v, nulls);
}

void
report_store_ready(int64 id, const char *api_status, const char *content, size_t len,
				   const char *content_type)
{
	Oid			types[4] = {INT8OID, TEXTOID, BYTEAOID, TEXTOID};
	Datum		v[4];
	char		nulls[4] = "    ";
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), content, len);
	v[0] = Int64GetDatum(id);
	v[1] = catalog_store_text_or_null(api_status, &nulls[1]);
	v[2] = PointerGetDatum(b);
	v[3] = catalog_store_text_or_null(content_type, &nulls[3]);
	catalog_store_exec("UPDATE @S.invicti_reports SET status = 'ready', "
					   "  api_status = COALESCE($2, api_status), content = $3, "
					   "  size = pg_catalog.length($3), content_type = $4, last_error = NULL, "
					   "  next_attempt_at = NULL, ready_at = pg_catalog.now(), "
					   "  updated_at = pg_catalog.now() "
					   "WHERE id = $1 AND status = 'generating'",
					   4, types, v, nulls);
}

void
report_store_failed(int64 id, const char *api_status, const char *error)
{
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		v[3];
	char		nulls[3] = "   ";

	v[0] = Int64GetDatum(id);
	v[1] = catalog_store_text_or_null(api_status, &nulls[1]);
	v[2] = CStringGetTextDatum(error);
	catalog_store_exec("UPDATE @S.invicti_reports SET status = 'failed', "
					   "  api_status = COALESCE($2, api_status), last_error = $3, "
					   "  next_attempt_at = NULL, updated_at = pg_catalog.now() "
					   "WHERE id = $1 AND status IN ('sending', 'generating')",
					   3, types, v, nulls);
}

/*
 * catalog_store.c
 *		Every statement on the catalogs the worker copies from the API
 *		(invicti_targets, invicti_scanning_profiles, invicti_report_templates,
 *		with invicti_sync_status) and on invicti_target_requests, through
 *		SPI: the worker's (inside store_run) and the SQL API's (in the
 *		caller's transaction, as the tables' owner).
 *
 * A page of a catalog is stored by one statement that reads the API's
 * answer as jsonb: each item is checked there against the spec's limits
 * (an id that is a UUID, a name or address of the length the spec allows)
 * and skipped, with its reason, when it fails; one bad item never costs
 * the others.  A sync round stamps every row it sees with the round's
 * start; a complete round then marks the rows it did not see as vanished.
 *
 * A target request's status moves pending -> sending -> created | failed,
 * with sending -> reconcile (outcome unknown) -> created | pending; every
 * write names the statuses it may leave, so a stale verdict never
 * overwrites a row that moved on.
 *
 * Rules: nothing here talks to the network; no SQL is built from API or
 * user data (values are parameters; only the quoted schema is spliced in);
 * every function is named with pg_catalog.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "catalog_store.h"

const char *const catalog_names[NUM_CATALOGS] = {
	[CATALOG_SCANNING_PROFILES] = "scanning_profiles",
	[CATALOG_REPORT_TEMPLATES] = "report_templates",
	[CATALOG_TARGETS] = "targets",
};

/* The spec's list keys: ScanningProfilesResponse, ReportTemplateList, TargetListResponse. */
const char *const catalog_list_keys[NUM_CATALOGS] = {
	[CATALOG_SCANNING_PROFILES] = "scanning_profiles",
	[CATALOG_REPORT_TEMPLATES] = "templates",
	[CATALOG_TARGETS] = "targets",
};

static char *schema = NULL;

#define UUID_RE "'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'"
/* The item's field k as a uuid, NULL when it is not one. */
#define UUID_FIELD(k) \
	"CASE WHEN item ->> '" k "' ~ " UUID_RE " THEN (item ->> '" k "')::pg_catalog.uuid END"
/* The item's field k if it is a string of lo..hi characters. */
#define STRING_OK(k, lo, hi) \
	"(pg_catalog.jsonb_typeof(item -> '" k "') = 'string' AND " \
	" pg_catalog.length(item ->> '" k "') BETWEEN " #lo " AND " #hi ")"
#define OPTIONAL_STRING_OK(k, hi) \
	"(pg_catalog.jsonb_typeof(item -> '" k "') IS NULL OR " \
	" pg_catalog.jsonb_typeof(item -> '" k "') = 'null' OR " STRING_OK(k, 0, hi) ")"

/* The items of the page under `key`, with the first reason each is refused. */
#define CHECKED_ITEMS(key, problems) \
	"WITH checked AS (" \
	"  SELECT item, CASE " \
	"    WHEN pg_catalog.jsonb_typeof(item) <> 'object' THEN 'an item that is not an object' " \
	problems \
	"    END AS problem " \
	"  FROM pg_catalog.jsonb_array_elements(" \
	"    CASE WHEN pg_catalog.jsonb_typeof($1 -> '" key "') = 'array' " \
	"         THEN $1 -> '" key "' ELSE '[]' END) AS e(item)), "

/* How many were stored, how many refused, and the first reason. */
#define PAGE_RESULT \
	"SELECT (SELECT pg_catalog.count(*) FROM up)::pg_catalog.int4, " \
	"  (SELECT pg_catalog.count(*) FROM checked WHERE problem IS NOT NULL)::pg_catalog.int4, " \
	"  (SELECT problem FROM checked WHERE problem IS NOT NULL LIMIT 1)"

static const char *const page_sql[NUM_CATALOGS] = {
	[CATALOG_SCANNING_PROFILES] =
	CHECKED_ITEMS("scanning_profiles",
				  "WHEN (item ->> 'profile_id') IS NULL OR NOT (item ->> 'profile_id') ~ " UUID_RE
				  "  THEN 'a scanning profile without a valid profile_id' "
				  "WHEN NOT " STRING_OK("name", 1, 256)
				  "  THEN 'a scanning profile without a name of 1 to 256 characters' ")
	"good AS (SELECT DISTINCT ON (1) " UUID_FIELD("profile_id") " AS id, item "
	"  FROM checked WHERE problem IS NULL), "
	"up AS (INSERT INTO @S.invicti_scanning_profiles AS t "
	"  (profile_id, name, custom, sort_order, raw, synced_at) "
	"  SELECT id, item ->> 'name', "
	"    CASE WHEN pg_catalog.jsonb_typeof(item -> 'custom') = 'boolean' "
	"         THEN (item ->> 'custom')::pg_catalog.bool END, "
	"    CASE WHEN pg_catalog.jsonb_typeof(item -> 'sort_order') = 'number' "
	"          AND (item ->> 'sort_order') ~ '^-?[0-9]{1,9}$' "
	"         THEN (item ->> 'sort_order')::pg_catalog.int4 END, "
	"    item, $2 FROM good "
	"  ON CONFLICT (profile_id) DO UPDATE SET name = EXCLUDED.name, custom = EXCLUDED.custom, "
	"    sort_order = EXCLUDED.sort_order, raw = EXCLUDED.raw, synced_at = EXCLUDED.synced_at, "
	"    vanished_at = NULL "
	"  RETURNING 1) "
	PAGE_RESULT,

	[CATALOG_REPORT_TEMPLATES] =
	CHECKED_ITEMS("templates",
				  "WHEN (item ->> 'template_id') IS NULL OR NOT (item ->> 'template_id') ~ " UUID_RE
				  "  THEN 'a report template without a valid template_id' "
				  "WHEN NOT " STRING_OK("name", 1, 1024)
				  "  THEN 'a report template without a name of 1 to 1024 characters' "
				  "WHEN NOT " OPTIONAL_STRING_OK("group", 1024)
				  "  THEN 'a report template whose group is not a string of at most 1024 characters' ")
	"good AS (SELECT DISTINCT ON (1) " UUID_FIELD("template_id") " AS id, item "
	"  FROM checked WHERE problem IS NULL), "
	"up AS (INSERT INTO @S.invicti_report_templates AS t "
	"  (template_id, name, template_group, raw, synced_at) "
	"  SELECT id, item ->> 'name', item ->> 'group', item, $2 FROM good "
	"  ON CONFLICT (template_id) DO UPDATE SET name = EXCLUDED.name, "
	"    template_group = EXCLUDED.template_group, raw = EXCLUDED.raw, "
	"    synced_at = EXCLUDED.synced_at, vanished_at = NULL "
	"  RETURNING 1) "
	PAGE_RESULT,

	[CATALOG_TARGETS] =
	CHECKED_ITEMS("targets",
				  "WHEN (item ->> 'target_id') IS NULL OR NOT (item ->> 'target_id') ~ " UUID_RE
				  "  THEN 'a target without a valid target_id' "
				  "WHEN NOT " STRING_OK("address", 1, 1024)
				  "  THEN 'a target without an address of 1 to 1024 characters' "
				  "WHEN NOT " OPTIONAL_STRING_OK("description", 1024)
				  "  THEN 'a target whose description is not a string of at most 1024 characters' "
				  "WHEN NOT " OPTIONAL_STRING_OK("last_scan_session_status", 64)
				  "  THEN 'a target whose last_scan_session_status is not a string of at most 64 characters' ")
	"good AS (SELECT DISTINCT ON (1) " UUID_FIELD("target_id") " AS id, item "
	"  FROM checked WHERE problem IS NULL), "
	"up AS (INSERT INTO @S.invicti_targets AS t "
	"  (target_id, address, description, criticality, last_scan_id, last_scan_session_id, "
	"   last_scan_session_status, raw, synced_at) "
	"  SELECT id, item ->> 'address', COALESCE(item ->> 'description', ''), "
	"    CASE WHEN pg_catalog.jsonb_typeof(item -> 'criticality') = 'number' "
	"          AND (item ->> 'criticality') IN ('0', '10', '20', '30') "
	"         THEN (item ->> 'criticality')::pg_catalog.int4 END, "
	"    " UUID_FIELD("last_scan_id") ", " UUID_FIELD("last_scan_session_id") ", "
	"    item ->> 'last_scan_session_status', item, $2 FROM good "
	"  ON CONFLICT (target_id) DO UPDATE SET address = EXCLUDED.address, "
	"    description = EXCLUDED.description, criticality = EXCLUDED.criticality, "
	"    last_scan_id = EXCLUDED.last_scan_id, last_scan_session_id = EXCLUDED.last_scan_session_id, "
	"    last_scan_session_status = EXCLUDED.last_scan_session_status, raw = EXCLUDED.raw, "
	"    synced_at = EXCLUDED.synced_at, vanished_at = NULL "
	"  RETURNING 1) "
	PAGE_RESULT,
};

static const char *const catalog_tables[NUM_CATALOGS] = {
	[CATALOG_SCANNING_PROFILES] = "invicti_scanning_profiles",
	[CATALOG_REPORT_TEMPLATES] = "invicti_report_templates",
	[CATALOG_TARGETS] = "invicti_targets",
};

#define OPEN_REQUEST "status IN ('pending', 'sending', 'reconcile')"

void
catalog_store_set_schema(const char *quoted_schema)
{
	if (schema != NULL)
		pfree(schema);
	schema = MemoryContextStrdup(TopMemoryContext, quoted_schema);
}

/* sql with every "@S" replaced by the schema. */
static char *
with_schema(const char *sql)
{
	StringInfoData buf;
	const char *p;

	Assert(schema != NULL);
	initStringInfo(&buf);
	for (p = sql; *p; p++)
	{
		if (p[0] == '@' && p[1] == 'S')
		{
			appendStringInfoString(&buf, schema);
			p++;
		}
		else
			appendStringInfoChar(&buf, *p);
	}
	return buf.data;
}

/* Run a statement; returns the rows processed (SPI_tuptable holds any result). */
uint64
catalog_store_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	char	   *text = with_schema(sql);
	int			rc = SPI_execute_with_args(text, nargs, types, values, nulls, false, 0);

	if (rc < 0)
		elog(ERROR, "invicti_scan: catalog statement failed: %s", SPI_result_code_string(rc));
	pfree(text);
	return SPI_processed;
}

static Datum
col(int row, int colno, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, colno, isnull);
}

/* A text column, copied to the caller's (upper) context; NULL if null. */
static char *
col_text(int row, int colno)
{
	char	   *s = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, colno);
	char	   *copy;

	if (s == NULL)
		return NULL;
	copy = SPI_palloc(strlen(s) + 1);
	strcpy(copy, s);
	pfree(s);
	return copy;
}

Datum
catalog_store_id_array(const int64 *ids, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(ids[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

Datum
catalog_store_text_or_null(const char *s, char *null)
{
	*null = s ? ' ' : 'n';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/* ---- the catalogs ---- */

int
catalog_store_page(Catalog c, Jsonb *body, TimestampTz round, int *skipped, char **problem)
{
	Oid			types[2] = {JSONBOID, TIMESTAMPTZOID};
	Datum		v[2] = {JsonbPGetDatum(body), TimestampTzGetDatum(round)};
	bool		isnull;
	int			stored;

	catalog_store_exec(page_sql[c], 2, types, v, NULL);
	stored = DatumGetInt32(col(0, 1, &isnull));
	*skipped = DatumGetInt32(col(0, 2, &isnull));
	*problem = col_text(0, 3);
	return stored;
}

int
catalog_store_round_done(Catalog c, TimestampTz round, int items, int skipped, const char *note)
{
	Oid			types[6] = {TIMESTAMPTZOID, TEXTOID, INT4OID, INT4OID, INT4OID, TEXTOID};
	Datum		v[6];
	char		nulls[6] = "      ";
	char	   *mark;
	bool		isnull;
	int			vanished;

	mark = psprintf("WITH v AS (UPDATE @S.%s SET vanished_at = pg_catalog.now() "
					"WHERE synced_at < $1 AND vanished_at IS NULL RETURNING 1) "
					"SELECT pg_catalog.count(*)::pg_catalog.int4 FROM v",
					catalog_tables[c]);
	v[0] = TimestampTzGetDatum(round);
	catalog_store_exec(mark, 1, types, v, NULL);
	vanished = DatumGetInt32(col(0, 1, &isnull));

	v[1] = CStringGetTextDatum(catalog_names[c]);
	v[2] = Int32GetDatum(items);
	v[3] = Int32GetDatum(skipped);
	v[4] = Int32GetDatum(vanished);
	v[5] = catalog_store_text_or_null(note, &nulls[5]);
	catalog_store_exec("UPDATE @S.invicti_sync_status SET started_at = $1, succeeded_at = pg_catalog.now(), "
					   "  items = $3, skipped = $4, vanished = $5, last_error = $6, "
					   "  last_error_at = CASE WHEN $6 IS NULL THEN last_error_at ELSE pg_catalog.now() END "
					   "WHERE catalog = $2",
					   6, types, v, nulls);
	return vanished;
}

void
catalog_store_round_failed(Catalog c, TimestampTz round, const char *error)
{
	Oid			types[3] = {TIMESTAMPTZOID, TEXTOID, TEXTOID};
	Datum		v[3] = {TimestampTzGetDatum(round), CStringGetTextDatum(catalog_names[c]),
	CStringGetTextDatum(error)};

	catalog_store_exec("UPDATE @S.invicti_sync_status SET started_at = $1, last_error = $3, "
					   "  last_error_at = pg_catalog.now() WHERE catalog = $2",
					   3, types, v, NULL);
}

TimestampTz
catalog_store_sync_requested_at(void)
{
	bool		isnull;
	Datum		d;

	catalog_store_exec("SELECT pg_catalog.max(requested_at) FROM @S.invicti_sync_status", 0, NULL, NULL, NULL);
	d = col(0, 1, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

/* ---- target requests: the worker ---- */

int
catalog_store_sweep_targets(const int64 *busy, int nbusy, TimestampTz when)
{
	Oid			types[2] = {INT8ARRAYOID, TIMESTAMPTZOID};
	Datum		v[2] = {catalog_store_id_array(busy, nbusy), TimestampTzGetDatum(when)};

	return (int) catalog_store_exec("UPDATE @S.invicti_target_requests SET status = 'reconcile', "
									"  next_attempt_at = $2, updated_at = pg_catalog.now() "
									"WHERE status = 'sending' AND id <> ALL ($1)",
									2, types, v, NULL);
}

/* Target requests not yet sent, when another server may have sent them. */
int
catalog_store_origin_reconcile_targets(const char *note)
{
	Oid			types[1] = {TEXTOID};
	Datum		v[1] = {CStringGetTextDatum(note)};

	return (int) catalog_store_exec("UPDATE @S.invicti_target_requests SET status = 'reconcile', "
									"  next_attempt_at = pg_catalog.now(), last_error = $1, "
									"  updated_at = pg_catalog.now() WHERE status = 'pending'",
									1, types, v, NULL);
}

static void
take_claims(TargetClaim *out, int from, bool reconcile)
{
	uint64		i;
	bool		isnull;

	for (i = 0; i < SPI_processed; i++)
	{
		TargetClaim *t = &out[from + i];

		t->id = DatumGetInt64(col(i, 1, &isnull));
		t->address = col_text(i, 2);
		t->description = col_text(i, 3);
		t->criticality = DatumGetInt32(col(i, 4, &isnull));
		t->attempts = DatumGetInt32(col(i, 5, &isnull));
		t->reconcile = reconcile;
	}
}

int
catalog_store_claim_targets(const int64 *busy, int nbusy, int limit, TargetClaim **out)
{
	Oid			types[2] = {INT8ARRAYOID, INT4OID};
	Datum		v[2] = {catalog_store_id_array(busy, nbusy), Int32GetDatum(limit)};
	int			n;
	int			m;

	*out = SPI_palloc(sizeof(TargetClaim) * Max(limit, 1));
	n = (int) catalog_store_exec("SELECT id, address, description, criticality, attempts "
								 "FROM @S.invicti_target_requests "
								 "WHERE status = 'reconcile' AND next_attempt_at <= pg_catalog.now() "
								 "  AND id <> ALL ($1) "
								 "ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
								 2, types, v, NULL);
	take_claims(*out, 0, true);
	if (n >= limit)
		return n;
	v[1] = Int32GetDatum(limit - n);
	m = (int) catalog_store_exec("UPDATE @S.invicti_target_requests SET status = 'sending', "
								 "  attempts = attempts + 1, last_attempt_at = pg_catalog.now(), "
								 "  updated_at = pg_catalog.now() "
								 "WHERE id IN (SELECT id FROM @S.invicti_target_requests "
								 "  WHERE status = 'pending' AND next_attempt_at <= pg_catalog.now() "
								 "    AND id <> ALL ($1) "
								 "  ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) "
								 "RETURNING id, address, description, criticality, attempts",
								 2, types, v, NULL);
	take_claims(*out, n, false);
	return n + m;
}

TimestampTz
catalog_store_targets_next_due(const int64 *busy, int nbusy)
{
	Oid			types[1] = {INT8ARRAYOID};
	Datum		v[1] = {catalog_store_id_array(busy, nbusy)};
	bool		isnull;
	Datum		d;

	catalog_store_exec("SELECT pg_catalog.min(next_attempt_at) FROM @S.invicti_target_requests "
					   "WHERE " OPEN_REQUEST " AND status <> 'sending' AND id <> ALL ($1)",
					   1, types, v, NULL);
	d = col(0, 1, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

void
catalog_store_target_created(int64 id, const pg_uuid_t *target_id, Jsonb *item)
{
	Oid			types[3] = {INT8OID, UUIDOID, JSONBOID};
	Datum		v[3] = {Int64GetDatum(id), UUIDPGetDatum(target_id),
	item ? JsonbPGetDatum(item) : (Datum) 0};
	char		nulls[3] = {' ', ' ', item ? ' ' : 'n'};

	catalog_store_exec("WITH r AS (UPDATE @S.invicti_target_requests SET status = 'created', target_id = $2, "
					   "    last_error = NULL, next_attempt_at = NULL, updated_at = pg_catalog.now() "
					   "  WHERE id = $1 AND status IN ('sending', 'reconcile') "
					   "  RETURNING address, description, criticality) "
					   "INSERT INTO @S.invicti_targets (target_id, address, description, criticality, raw, synced_at) "
					   "SELECT $2, address, description, criticality, "
					   "  CASE WHEN pg_catalog.jsonb_typeof($3) = 'object' THEN $3 ELSE '{}' END, pg_catalog.now() "
					   "FROM r "
					   "ON CONFLICT (target_id) DO UPDATE SET vanished_at = NULL",
					   3, types, v, nulls);
}

/* Move an open request to `status` at `when` (NULL: not scheduled), with a note. */
static void
target_move(int64 id, const char *from, const char *to, TimestampTz when, const char *note)
{
	Oid			types[4] = {INT8OID, TEXTOID, TIMESTAMPTZOID, TEXTOID};
	Datum		v[4];
	char		nulls[4] = "    ";
	char	   *sql;

	v[0] = Int64GetDatum(id);
	v[1] = CStringGetTextDatum(to);
	v[2] = TimestampTzGetDatum(when);
	nulls[2] = when == 0 ? 'n' : ' ';
	v[3] = catalog_store_text_or_null(note, &nulls[3]);
	sql = psprintf("UPDATE @S.invicti_target_requests SET status = $2, next_attempt_at = $3, "
				   "  last_error = $4, updated_at = pg_catalog.now() "
				   "WHERE id = $1 AND status IN (%s)", from);
	catalog_store_exec(sql, 4, types, v, nulls);
}

void
catalog_store_target_retry(int64 id, TimestampTz when, const char *error)
{
	target_move(id, "'sending', 'reconcile'", "pending", when, error);
}

void
catalog_store_target_unknown(int64 id, TimestampTz when, const char *error)
{
	target_move(id, "'sending', 'reconcile'", "reconcile", when, error);
}

void
catalog_store_target_failed(int64 id, const char *error)
{
	target_move(id, "'sending', 'reconcile'", "failed", 0, error);
}

void
catalog_store_target_resend(int64 id, const char *note)
{
	target_move(id, "'reconcile'", "pending", GetCurrentTimestamp(), note);
}

/* ---- the SQL API ---- */

int64
catalog_store_insert_target_request(const char *address, const char *description,
									int32 criticality, Oid requested_by)
{
	Oid			types[4] = {TEXTOID, TEXTOID, INT4OID, OIDOID};
	Datum		v[4] = {CStringGetTextDatum(address), CStringGetTextDatum(description),
	Int32GetDatum(criticality), ObjectIdGetDatum(requested_by)};
	bool		isnull;

	catalog_store_exec("INSERT INTO @S.invicti_target_requests "
					   "  (address, description, criticality, requested_by_oid, requested_by) "
					   "SELECT $1, $2, $3, $4, r.rolname FROM pg_catalog.pg_roles r WHERE r.oid = $4 "
					   "RETURNING id",
					   4, types, v, NULL);
	if (SPI_processed != 1)
		elog(ERROR, "invicti_scan: the calling role was not found");
	return DatumGetInt64(col(0, 1, &isnull));
}

bool
catalog_store_target_exists(const char *address, pg_uuid_t *target_id)
{
	Oid			types[1] = {TEXTOID};
	Datum		v[1] = {CStringGetTextDatum(address)};
	bool		isnull;

	if (catalog_store_exec("SELECT target_id FROM @S.invicti_targets "
						   "WHERE address = $1 AND vanished_at IS NULL ORDER BY first_seen_at LIMIT 1",
						   1, types, v, NULL) == 0)
		return false;
	*target_id = *DatumGetUUIDP(col(0, 1, &isnull));
	return true;
}

bool
catalog_store_target_request_open(const char *address, int64 *request_id)
{
	Oid			types[1] = {TEXTOID};
	Datum		v[1] = {CStringGetTextDatum(address)};
	bool		isnull;

	if (catalog_store_exec("SELECT id FROM @S.invicti_target_requests "
						   "WHERE address = $1 AND " OPEN_REQUEST " LIMIT 1",
						   1, types, v, NULL) == 0)
		return false;
	*request_id = DatumGetInt64(col(0, 1, &isnull));
	return true;
}

/* The id column of each catalog's table. */
static const char *const catalog_id_columns[NUM_CATALOGS] = {
	[CATALOG_SCANNING_PROFILES] = "profile_id",
	[CATALOG_REPORT_TEMPLATES] = "template_id",
	[CATALOG_TARGETS] = "target_id",
};

int
catalog_store_named(Catalog c, const char *name, pg_uuid_t *ids, int max_ids)
{
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		v[2] = {CStringGetTextDatum(name), Int32GetDatum(max_ids)};
	uint64		n;
	uint64		i;
	bool		isnull;
	int			total;
	char	   *sql;

	Assert(c != CATALOG_TARGETS);
	/* exactly as written first; ignoring case only when nothing matches so */
	sql = psprintf("WITH exact AS (SELECT %s AS id FROM @S.%s "
				   "  WHERE vanished_at IS NULL AND name = $1), "
				   "folded AS (SELECT %s AS id FROM @S.%s "
				   "  WHERE vanished_at IS NULL AND pg_catalog.lower(name) = pg_catalog.lower($1) "
				   "    AND NOT EXISTS (SELECT FROM exact)), "
				   "found AS (SELECT * FROM exact UNION ALL SELECT * FROM folded) "
				   "SELECT id, (SELECT pg_catalog.count(*) FROM found)::pg_catalog.int4 "
				   "FROM found ORDER BY id LIMIT $2",
				   catalog_id_columns[c], catalog_tables[c],
				   catalog_id_columns[c], catalog_tables[c]);
	n = catalog_store_exec(sql, 2, types, v, NULL);
	if (n == 0)
		return 0;
	total = DatumGetInt32(col(0, 2, &isnull));
	for (i = 0; i < n; i++)
		ids[i] = *DatumGetUUIDP(col(i, 1, &isnull));
	return total;
}

int64
catalog_store_count(Catalog c)
{
	bool		isnull;

	catalog_store_exec(psprintf("SELECT pg_catalog.count(*) FROM @S.%s WHERE vanished_at IS NULL",
								catalog_tables[c]),
					   0, NULL, NULL, NULL);
	return DatumGetInt64(col(0, 1, &isnull));
}

void
catalog_store_request_sync(void)
{
	catalog_store_exec("UPDATE @S.invicti_sync_status SET requested_at = pg_catalog.clock_timestamp()",
					   0, NULL, NULL, NULL);
}

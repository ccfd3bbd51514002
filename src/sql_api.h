/*
 * sql_api.h
 *		Helpers shared by the SQL-callable functions.
 */
#ifndef INVICTI_SQL_API_H
#define INVICTI_SQL_API_H

#include "fmgr.h"
#include "utils/uuid.h"

#include "catalog_store.h"

/* An error unless the library was preloaded (its shared memory exists). */
extern void invicti_require_preloaded(void);

/* A copy of s in the memory of SPI's caller, to outlive SPI_finish(). */
extern char *invicti_spi_strdup(const char *s);

/* The extension's invicti_scans table (in the called function's schema). */
extern Oid	invicti_scans_relid(FunctionCallInfo fcinfo, Oid *owner);

/*
 * The schema of the extension's tables (scans_relid: invicti_scans), quoted;
 * and one of its tables, schema-qualified and quoted.
 */
extern const char *invicti_tables_schema(Oid scans_relid);
extern char *invicti_qualified_table(Oid scans_relid, const char *table);

/*
 * Run fn(arg) with search_path = pg_catalog, pg_temp; as `owner` (in a
 * security-restricted operation, like SECURITY DEFINER) unless owner is
 * InvalidOid.  Both are restored afterwards, or by the transaction's abort.
 */
extern void invicti_run_pinned(Oid owner, void (*fn) (void *), void *arg);

/*
 * An error when the worker does not run in this database: a row queued here
 * would never be sent.  Only checked when the library is preloaded.
 */
extern void invicti_check_worker_database(void);

/*
 * sql_catalog.c: the id a scanning profile's or report template's name
 * stands for (or the id itself, written as text): as synced, exactly or
 * else ignoring case, read as `owner` from the schema of relid; an error
 * when nothing or more than one item has the name.
 */
extern void invicti_resolve_name(Catalog c, Oid owner, Oid relid, const char *name,
								 pg_uuid_t *out);

#endif

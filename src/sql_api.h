/*
 * sql_api.h
 *		Helpers shared by the SQL-callable functions.
 */
#ifndef INVICTI_SQL_API_H
#define INVICTI_SQL_API_H

#include "fmgr.h"

/* An error unless the library was preloaded (its shared memory exists). */
extern void invicti_require_preloaded(void);

/* A copy of s in the memory of SPI's caller, to outlive SPI_finish(). */
extern char *invicti_spi_strdup(const char *s);

/* The extension's invicti_scans table (in the called function's schema). */
extern Oid	invicti_scans_relid(FunctionCallInfo fcinfo, Oid *owner);

/*
 * Run fn(arg) with search_path = pg_catalog, pg_temp; as `owner` (in a
 * security-restricted operation, like SECURITY DEFINER) unless owner is
 * InvalidOid.  Both are restored afterwards, or by the transaction's abort.
 */
extern void invicti_run_pinned(Oid owner, void (*fn) (void *), void *arg);

#endif

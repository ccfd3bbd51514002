/*
 * pg_compat.h
 *		Everything that differs between the PostgreSQL releases invicti_scan
 *		supports (15 to 18), in one place.
 *
 * Each difference is one macro or function here, guarded by PG_VERSION_NUM;
 * no other file tests PG_VERSION_NUM.  Where a newer release offers a better
 * facility (soft input errors since 16), it is used there and emulated
 * below it.
 */
#ifndef INVICTI_PG_COMPAT_H
#define INVICTI_PG_COMPAT_H

#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "utils/acl.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

#if PG_VERSION_NUM < 150000
#error "invicti_scan needs PostgreSQL 15 or later"
#endif

/* A PGPROC's number and back (17 dropped PGPROC.pgprocno). */
#if PG_VERSION_NUM >= 170000
#define compat_my_procno()			((int) GetNumberFromPGProc(MyProc))
#else
#define compat_my_procno()			(MyProc->pgprocno)
#endif
#define compat_proc_latch(procno)	(&ProcGlobal->allProcs[(procno)].procLatch)

/*
 * A WaitEventSet tied to no transaction: owned by TopMemoryContext before
 * 17, by no resource owner since.  The caller frees it (FreeWaitEventSet
 * also closes its epoll descriptor, which freeing memory would not).
 */
#if PG_VERSION_NUM >= 170000
#define compat_create_wait_event_set(nevents) \
	CreateWaitEventSet(NULL, (nevents))
#else
#define compat_create_wait_event_set(nevents) \
	CreateWaitEventSet(TopMemoryContext, (nevents))
#endif

/* DecodeDateTime gained an error-detail argument in 16. */
static inline int
compat_decode_datetime(char **field, int *ftype, int nf, int *dtype,
					   struct pg_tm *tm, fsec_t *fsec, int *tzp)
{
#if PG_VERSION_NUM >= 160000
	DateTimeErrorExtra extra;

	return DecodeDateTime(field, ftype, nf, dtype, tm, fsec, tzp, &extra);
#else
	return DecodeDateTime(field, ftype, nf, dtype, tm, fsec, tzp);
#endif
}

/*
 * Strings owned by GUC (check hooks' *newval and *extra): malloc before 16,
 * GUC's own memory context since.  NULL when out of memory.
 */
#if PG_VERSION_NUM >= 160000
#define compat_guc_strdup(s)	guc_strdup(LOG, (s))
#define compat_guc_free(p)		guc_free(p)
#else
#define compat_guc_strdup(s)	strdup(s)
#define compat_guc_free(p)		free(p)
#endif

/* Whether a role has a privilege on a schema (16 renamed the function). */
static inline bool
compat_schema_privilege(Oid nsp, Oid roleid, AclMode mode)
{
#if PG_VERSION_NUM >= 160000
	return object_aclcheck(NamespaceRelationId, nsp, roleid, mode) == ACLCHECK_OK;
#else
	return pg_namespace_aclcheck(nsp, roleid, mode) == ACLCHECK_OK;
#endif
}

/* Whether roleid may execute function fn. */
static inline bool
compat_function_privilege(Oid fn, Oid roleid)
{
#if PG_VERSION_NUM >= 160000
	return object_aclcheck(ProcedureRelationId, fn, roleid, ACL_EXECUTE) == ACLCHECK_OK;
#else
	return pg_proc_aclcheck(fn, roleid, ACL_EXECUTE) == ACLCHECK_OK;
#endif
}

/*
 * Timeouts only some releases have, pinned off in the worker like the
 * settings worker.c lists (17 added transaction_timeout).
 */
static inline void
compat_pin_release_settings(void)
{
#if PG_VERSION_NUM >= 170000
	SetConfigOption("transaction_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
#endif
}

/*
 * Text (in the server encoding) as jsonb, or NULL with *message and
 * *detail (palloc'd, detail may be NULL) saying why.  Never throws for bad
 * input: 16+ uses jsonb_in's soft errors, 15 catches its error.
 */
extern Jsonb *compat_jsonb_from_text(char *text, char **message, char **detail);

#endif

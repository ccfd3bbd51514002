/*
 * store_transaction.c
 *		Every transaction of the worker: opened, run as the tables' owner,
 *		committed or cleaned up, in one function.
 *
 * store_run() is the only way the worker touches the database.  It opens a
 * transaction only around database work (never while waiting on the
 * network), finds the extension afresh each time (it may be created,
 * dropped, updated or moved while the worker runs) and runs the caller's
 * function with SPI connected.  An error rolls everything back here and is
 * thrown on to the worker, which logs it and backs off.
 *
 * As whom.  The worker connects as the bootstrap superuser (a background
 * worker cannot log in as a NOLOGIN role before PostgreSQL 17), but it
 * runs every statement as the owner of invicti_scans, inside a
 * security-restricted operation, the way PostgreSQL runs index expressions
 * for VACUUM: so a statement of ours can do nothing the table's owner could
 * not do, whatever a database owner puts in the database's or a role's
 * settings.  The extension makes the role invicti_scan_owner (NOLOGIN) own
 * its tables; an owner that is a superuser is reported once, at WARNING.
 * On top of that, the worker's search_path is pinned to pg_catalog, pg_temp
 * when it connects (worker.c) and its SQL names its tables with their
 * schema (scan_store.c).
 *
 * Rules: nothing here talks to the network or reads API data; no
 * transaction outlives store_run(); plans are forgotten whenever the
 * tables they name may have changed.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "invicti_scan.h"
#include "catalog_store.h"
#include "scan_store.h"
#include "store_transaction.h"

/* The extension as last seen. */
static Oid	ext_oid = InvalidOid;
static Oid	ext_nsp = InvalidOid;
static char *scans_table = NULL;	/* quoted schema.invicti_scans */
static char *findings_table = NULL; /* quoted schema.invicti_vulnerabilities */
static char ext_version[NAMEDATALEN];
static bool ext_changed = false;
static Oid	superuser_owner_warned = InvalidOid;

/* Read the extension's schema and version straight from pg_extension. */
static bool
lookup_extension(Oid *oid, Oid *nsp, char *version)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	bool		found = false;

	*oid = get_extension_oid(INVICTI_EXTENSION_NAME, true);
	if (!OidIsValid(*oid))
		return false;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(*oid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		v = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		*nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
		strlcpy(version, isnull ? "" : TextDatumGetCString(v), NAMEDATALEN);
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

static void
remember_tables(Oid oid, Oid nsp)
{
	const char *schema = quote_identifier(get_namespace_name(nsp));

	if (scans_table)
		pfree(scans_table);
	if (findings_table)
		pfree(findings_table);
	scans_table = MemoryContextStrdup(TopMemoryContext,
									  psprintf("%s.invicti_scans", schema));
	findings_table = MemoryContextStrdup(TopMemoryContext,
										 psprintf("%s.invicti_vulnerabilities", schema));
	scan_store_set_tables(scans_table, findings_table);
	catalog_store_set_schema(schema);
	ext_oid = oid;
	ext_nsp = nsp;
	ext_changed = true;
}

/* The role the worker acts as: the owner of invicti_scans. */
static Oid
tables_owner(Oid nsp)
{
	Oid			relid;
	Oid			owner = scan_store_tables_owner(nsp, &relid);

	if (superuser_arg(owner) && owner != superuser_owner_warned)
	{
		ereport(WARNING,
				(errmsg("invicti_scan worker: table %s is owned by superuser \"%s\", so the worker's statements run with superuser rights",
						scans_table, GetUserNameFromId(owner, false)),
				 errhint("Give the extension's tables to a role without superuser rights, e.g. ALTER TABLE %s OWNER TO invicti_scan_owner, and the same for invicti_vulnerabilities.",
						 scans_table)));
		superuser_owner_warned = owner;
	}
	return owner;
}

/* Open the transaction; false (none left open) when the extension is not usable. */
static StoreStatus
begin(const char *activity, bool durable, MemoryContext caller_cxt)
{
	Oid			oid;
	Oid			nsp;
	char		version[NAMEDATALEN];

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	MemoryContextSwitchTo(caller_cxt);
	pgstat_report_activity(STATE_RUNNING, activity);

	if (!lookup_extension(&oid, &nsp, version))
	{
		if (OidIsValid(ext_oid))
		{
			scan_store_forget_plans();
			ext_oid = InvalidOid;
		}
		CommitTransactionCommand();
		return STORE_NO_EXTENSION;
	}
	strlcpy(ext_version, version, sizeof(ext_version));
	if (strcmp(version, INVICTI_SCAN_VERSION) != 0)
	{
		CommitTransactionCommand();
		return STORE_WRONG_VERSION;
	}
	if (oid != ext_oid || nsp != ext_nsp)
		remember_tables(oid, nsp);

	(void) set_config_option("synchronous_commit", durable ? "on" : "off",
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
							 true, 0, false);
	/* the transaction's end restores the user and context, also on abort */
	SetUserIdAndSecContext(tables_owner(nsp),
						   SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(caller_cxt);
	return STORE_READY;
}

StoreStatus
store_run(const char *activity, bool durable, void (*fn) (void *arg), void *arg)
{
	/*
	 * SPI is connected from the caller's context, so what fn hands back
	 * (allocated with SPI_palloc or in the caller's context) outlives the
	 * transaction.
	 */
	MemoryContext caller_cxt = CurrentMemoryContext;
	StoreStatus status;

	PG_TRY();
	{
		status = begin(activity, durable, caller_cxt);
		if (status == STORE_READY)
		{
			fn(arg);
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
		}
		MemoryContextSwitchTo(caller_cxt);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		scan_store_forget_plans();
		MemoryContextSwitchTo(caller_cxt);
		pgstat_report_activity(STATE_IDLE, NULL);
		ReThrowError(edata);
	}
	PG_END_TRY();

	store_flush_stats(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return status;
}

bool
store_attempt(void (*fn) (void *arg), void *arg, char **message)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		/* only the row's own troubles are caught; the rest ends the turn */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_OUT_OF_MEMORY ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			ReThrowError(edata);
		*message = pstrdup(edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return ok;
}

const char *
store_scans_table(void)
{
	return scans_table;
}

const char *
store_findings_table(void)
{
	return findings_table;
}

const char *
store_installed_version(void)
{
	return ext_version;
}

bool
store_extension_changed(void)
{
	bool		was = ext_changed;

	ext_changed = false;
	return was;
}

/*
 * Table statistics (pg_stat_user_tables) are flushed at most once a second
 * after a commit; what is left is flushed, forced, a second later, even if
 * the worker has nothing else to do then (as a backend does when it goes
 * idle), so the counters never lag behind an idle worker.  Outside a
 * transaction only a forced flush works: the unforced one judges "too soon"
 * by the last transaction's end.
 */
static TimestampTz stats_flush_due = 0;

void
store_flush_stats(bool force)
{
	long		wait_ms = pgstat_report_stat(force);

	/* PostgreSQL suggests 10 s; a second keeps pg_stat_user_tables current */
	stats_flush_due = wait_ms > 0 ?
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), Min(wait_ms, 1000)) : 0;
}

TimestampTz
store_stats_flush_due(void)
{
	return stats_flush_due;
}

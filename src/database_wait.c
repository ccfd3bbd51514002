/*
 * database_wait.c
 *		Whether invicti_scan.database_name exists, asked without connecting
 *		to it.
 *
 * Connecting a background worker to a database that does not exist ends it
 * with FATAL, and the postmaster would restart it every few seconds, each
 * time with a line in the log.  So before connecting, the worker starts a
 * short-lived helper (invicti_database_check_main) that connects to no
 * database, reads pg_database (a shared catalog) and leaves the answer in
 * shared memory; the worker waits quietly, asking every 10 s, until the
 * database is there.
 *
 * Rules: the helper reads one shared catalog and nothing else; the worker
 * never connects before the answer is yes.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/snapmgr.h"

#include "database_wait.h"
#include "invicti_scan.h"
#include "settings.h"
#include "shared_state.h"

#define DATABASE_RECHECK_MS 10000

void
invicti_database_check_main(Datum main_arg pg_attribute_unused())
{
	bool		exists = false;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	/* a plain heap scan: without a database, indexes cannot be opened */
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (!exists && (tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		exists = strcmp(NameStr(((Form_pg_database) GETSTRUCT(tup))->datname),
						invicti_database_name) == 0;
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	invicti_set_database_exists(exists);
}

void
database_wait(void)
{
	bool		said = false;

	for (;;)
	{
		BackgroundWorker check;
		BackgroundWorkerHandle *handle;

		memset(&check, 0, sizeof(check));
		check.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		check.bgw_start_time = BgWorkerStart_RecoveryFinished;
		check.bgw_restart_time = BGW_NEVER_RESTART;
		check.bgw_notify_pid = MyProcPid;
		snprintf(check.bgw_library_name, BGW_MAXLEN, INVICTI_EXTENSION_NAME);
		snprintf(check.bgw_function_name, BGW_MAXLEN, "invicti_database_check_main");
		snprintf(check.bgw_name, BGW_MAXLEN, "invicti_scan database check");
		snprintf(check.bgw_type, BGW_MAXLEN, "invicti_scan database check");

		invicti_set_database_exists(false);
		if (RegisterDynamicBackgroundWorker(&check, &handle))
		{
			BgwHandleStatus status = WaitForBackgroundWorkerShutdown(handle);

			pfree(handle);		/* one per try: don't let a long wait grow */
			if (status == BGWH_POSTMASTER_DIED)
				proc_exit(1);
			if (invicti_database_exists())
				return;
			if (!said)
				ereport(LOG,
						(errmsg("invicti_scan worker: database \"%s\" does not exist; waiting for it",
								invicti_database_name),
						 errhint("Create the database, or set invicti_scan.database_name and restart the server.")));
		}
		else if (!said)
			ereport(LOG,
					(errmsg("invicti_scan worker: no background worker slot free to check for database \"%s\"; retrying",
							invicti_database_name),
					 errhint("Consider increasing max_worker_processes.")));
		said = true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 DATABASE_RECHECK_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

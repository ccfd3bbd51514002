/*
 * invicti_scan.c
 *		Entry point of the invicti_scan extension: drives Invicti
 *		web-vulnerability scans from SQL.
 *
 * Design, in one paragraph.  invicti_launch_scan() inserts a row into
 * invicti_scans inside the caller's transaction and nothing else; at commit
 * it sets the worker's latch.  One background worker (worker.c), connected
 * to invicti_scan.database_name on the primary, turns committed rows into
 * Invicti API calls with libcurl (api_client.c), records the scan id, then
 * polls each running scan every invicti_scan.poll_interval and writes what
 * changed (scan_store.c).  A launch is recorded as "sending" in a committed
 * transaction before it goes out; when its outcome is unknown, the worker
 * asks the API which scans exist instead of sending it again, so a launch is
 * never sent twice when the first may have arrived.
 *
 * Rules for the whole extension:
 *  - SQL callers never wait on the network; only the worker talks to the API.
 *  - No transaction is open while waiting on the network.
 *  - Shared memory holds plain values, never process-local pointers.
 *  - libcurl memory stays in api_client.c and never mixes with palloc.
 *  - The API token is never logged, stored in a row or shown to anyone.
 *
 * This file only wires things up at load time: settings, shared memory,
 * the hook that watches extension DDL, and the worker's registration.  It must not grow logic of its own.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"

#include "commit_wake.h"
#include "invicti_scan.h"
#include "settings.h"
#include "shared_state.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
request_shmem(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	invicti_shmem_request();
}

static void
startup_shmem(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	invicti_shmem_startup();
}

static void
register_worker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	/* Started only once the server accepts writes: never on a standby. */
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, INVICTI_EXTENSION_NAME);
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "invicti_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, INVICTI_WORKER_NAME);
	snprintf(worker.bgw_type, BGW_MAXLEN, INVICTI_WORKER_NAME);
	RegisterBackgroundWorker(&worker);
}

void
_PG_init(void)
{
	invicti_define_settings();

	/*
	 * pg_upgrade starts both servers in binary-upgrade mode with the
	 * preloaded libraries: no worker may touch the tables meanwhile.
	 */
	if (!process_shared_preload_libraries_in_progress || IsBinaryUpgrade)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = request_shmem;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = startup_shmem;
	invicti_watch_extension_ddl();
	register_worker();
}

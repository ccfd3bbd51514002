/*
 * commit_wake.c
 *		Telling the worker, when a transaction commits, that the table has
 *		work for it.
 *
 * The worker never reads invicti_scans on a timer.  It learns of new work
 * in three ways, all at commit, all through its latch:
 *   - invicti_launch_scan() and invicti_abort_scan() ask for a wake: the
 *     worker then claims what is due from the table;
 *   - any other change to the table (an operator's UPDATE or DELETE, a
 *     restore's COPY, TRUNCATE) fires the statement trigger
 *     invicti_scans_changed, which asks for a wake and a resync: the worker
 *     then also reloads which scans it polls;
 *   - CREATE, ALTER or DROP of an extension (an object access hook, in
 *     every backend of a server that preloads the library) asks for the
 *     same, so the worker notices its extension appear, change version or
 *     go away even while it has no other reason to open a transaction.
 * A rolled-back or prepared transaction asks for nothing.  The worker's
 * own statements fire the trigger too, and wake no worker.
 *
 * Every committed change to the table, the worker's included, also wakes
 * the sessions waiting in invicti_wait_scan() (scan_wait.c), which then
 * read the row they wait for again.
 *
 * Rules: nothing here blocks, reads the table or talks to the network; the
 * shared flags are set only after the commit, so the worker's next
 * snapshot sees what it was woken for.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_extension.h"
#include "commands/trigger.h"
#include "fmgr.h"

#include "commit_wake.h"
#include "shared_state.h"

PG_FUNCTION_INFO_V1(invicti_scan_table_changed);

static bool wake_at_commit = false;
static bool resync_at_commit = false;
static bool changed_at_commit = false;	/* the trigger fired: wake waiters */
static bool callback_registered = false;

/* true in the worker, and while the SQL API runs its own statements */
static bool in_worker = false;
static int	own_statements = 0;

static object_access_hook_type prev_object_access_hook = NULL;

static void
commit_wake_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (resync_at_commit)
				invicti_request_resync();
			if (wake_at_commit || resync_at_commit)
				invicti_wake_worker();
			if (changed_at_commit)
				invicti_announce_scan_changes();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;
	}
	wake_at_commit = false;
	resync_at_commit = false;
	changed_at_commit = false;
	own_statements = 0;
}

static void
register_callback(void)
{
	if (!callback_registered)
	{
		RegisterXactCallback(commit_wake_xact_callback, NULL);
		callback_registered = true;
	}
}

void
invicti_wake_worker_at_commit(void)
{
	register_callback();
	wake_at_commit = true;
}

void
invicti_commit_wake_in_worker(void)
{
	in_worker = true;
}

void
invicti_run_own_statement(void (*fn) (void *), void *arg)
{
	own_statements++;
	PG_TRY();
	{
		fn(arg);
	}
	PG_FINALLY();
	{
		own_statements--;
	}
	PG_END_TRY();
}

/*
 * Statement trigger on invicti_scans: a change the worker was not told
 * about otherwise.  Cheap by design: one call per statement, no row access.
 */
Datum
invicti_scan_table_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("invicti_scan_table_changed() may only be called as a trigger")));
	register_callback();
	changed_at_commit = true;
	if (!in_worker && own_statements == 0)
		resync_at_commit = true;
	return PointerGetDatum(NULL);
}

/*
 * Any extension created, altered or dropped: no catalog lookup here (the
 * extension's row may not be visible yet), so it may be another one; a
 * spurious resync costs the worker one look at the table.
 */
static void
extension_ddl_hook(ObjectAccessType access, Oid classId, Oid objectId,
				   int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (classId == ExtensionRelationId && subId == 0 &&
		(access == OAT_POST_CREATE || access == OAT_POST_ALTER || access == OAT_DROP))
	{
		register_callback();
		resync_at_commit = true;
	}
}

void
invicti_watch_extension_ddl(void)
{
	prev_object_access_hook = object_access_hook;
	object_access_hook = extension_ddl_hook;
}

/*
 * scan_wait.c
 *		invicti_wait_scan(id, timeout): wait until the worker is finished
 *		with a scan, and return its status; what a pipeline calls between
 *		the launch and the severity gate.
 *
 * The worker is finished with a row when its worker_state is done
 * (scan_state.c): the scan ended and its end date and findings were
 * imported, or it was refused, cancelled or lost on the server.  The
 * wait sleeps on a condition variable in shared memory that every
 * committed change to invicti_scans broadcasts (commit_wake.c), so it
 * answers as soon as the worker commits the row's last write, and re-reads
 * the row on its own every WAIT_RECHECK_MS besides (a change no
 * broadcast announced, such as COMMIT PREPARED).  It reads the row as
 * its caller, under row-level security, with search_path pinned, each
 * time with a new snapshot.
 *
 * It refuses what could never end well: a scan launched or changed in the
 * caller's own transaction (the worker cannot see it before the commit, so
 * the launch must commit first), a transaction whose snapshot never moves
 * (REPEATABLE READ, SERIALIZABLE), and a timeout over a day (the wait holds
 * its statement's snapshot, which keeps VACUUM from removing dead rows).
 *
 * Rules: read only; never sleeps without a timeout, and every sleep is
 * interruptible (a cancel or statement_timeout ends the wait with the
 * usual error); every bad argument is an error naming it.
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "scan_state.h"
#include "shared_state.h"
#include "sql_api.h"

PG_FUNCTION_INFO_V1(invicti_wait_scan);

/* The longest wait between two reads of the row, broadcast or not. */
#define WAIT_RECHECK_MS 10000

typedef struct WaitArgs
{
	const char *sql;
	int64		id;
	bool		found;
	bool		finished;
	bool		changed_here;	/* by the caller's own transaction */
	char	   *status;			/* in the caller's memory context */
} WaitArgs;

static void
read_row(void *p)
{
	WaitArgs   *a = (WaitArgs *) p;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(a->id)};
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	char	   *state;
	Datum		xmin;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* not read only: a new snapshot, so commits since the last read show */
	if (SPI_execute_with_args(a->sql, 1, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "invicti_scan: could not read scan " INT64_FORMAT, a->id);
	a->found = SPI_processed == 1;
	if (a->found)
	{
		row = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		state = SPI_getvalue(row, desc, 2);
		a->finished = state != NULL && strcmp(state, worker_state_names[WS_DONE]) == 0;
		xmin = SPI_getbinval(row, desc, 3, &isnull);
		a->changed_here = !isnull &&
			TransactionIdIsCurrentTransactionId(DatumGetTransactionId(xmin));
		a->status = invicti_spi_strdup(SPI_getvalue(row, desc, 1));
	}
	SPI_finish();
}

/* The timeout in milliseconds, or an error naming what is wrong with it. */
static int64
timeout_ms(FunctionCallInfo fcinfo)
{
	Interval   *t;
	int64		us;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("timeout must not be null"),
				 errhint("Pass how long to wait at most, e.g. '1 hour'.")));
	t = PG_GETARG_INTERVAL_P(1);
	if (t->month != 0 || t->day < -1 || t->day > 1 ||
		(us = t->time + t->day * USECS_PER_DAY) < 0 || us > USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must be between 0 and 1 day"),
				 errdetail("A wait holds its statement's snapshot, which keeps VACUUM from removing dead rows."),
				 errhint("Wait in a loop of shorter calls, each in a transaction of its own.")));
	return us / 1000;
}

/*
 * invicti_wait_scan(id bigint, timeout interval): the scan's status once the
 * worker is finished with it, or its status at the timeout (with a NOTICE).
 */
Datum
invicti_wait_scan(PG_FUNCTION_ARGS)
{
	WaitArgs	a;
	Oid			owner;
	Oid			relid;
	int64		limit_ms;
	TimestampTz deadline;
	MemoryContext caller_cxt = CurrentMemoryContext;
	MemoryContext read_cxt;
	char	   *status;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id must not be null"),
				 errhint("Pass the id returned by invicti_launch_scan().")));
	limit_ms = timeout_ms(fcinfo);
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("invicti_wait_scan() cannot wait in a %s transaction",
						IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
				 errdetail("The transaction's snapshot would never show the worker's progress."),
				 errhint("Call it in a READ COMMITTED transaction, the default.")));
	invicti_require_preloaded();

	memset(&a, 0, sizeof(a));
	a.id = PG_GETARG_INT64(0);
	relid = invicti_scans_relid(fcinfo, &owner);
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(relid)),
				 errdetail("invicti_wait_scan() reads the scan as its caller."),
				 errhint("Grant SELECT on the table; row-level security still shows each role only the scans it may see.")));
	a.sql = psprintf("SELECT status, worker_state, xmin FROM %s WHERE id = $1",
					 invicti_qualified_table(relid, get_rel_name(relid)));
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), limit_ms);
	read_cxt = AllocSetContextCreate(caller_cxt, "invicti_wait_scan", ALLOCSET_SMALL_SIZES);

	for (;;)
	{
		long		left_ms;

		MemoryContextReset(read_cxt);
		MemoryContextSwitchTo(read_cxt);
		invicti_run_pinned(InvalidOid, read_row, &a);
		MemoryContextSwitchTo(caller_cxt);

		if (!a.found)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("scan " INT64_FORMAT " does not exist", a.id),
					 errhint("Pass the id returned by invicti_launch_scan().")));
		if (a.finished)
			break;
		if (a.changed_here)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("scan " INT64_FORMAT " was launched or changed in this transaction", a.id),
					 errdetail("The worker sees the scan only once the transaction commits."),
					 errhint("Commit first, then wait in a new transaction (in psql, a separate -c or statement).")));

		left_ms = (long) ((deadline - GetCurrentTimestamp()) / 1000);
		if (left_ms <= 0)
		{
			ereport(NOTICE,
					(errmsg("scan " INT64_FORMAT " is not finished after the timeout: its status is %s",
							a.id, a.status)));
			break;
		}
		(void) invicti_wait_for_scan_changes(Min(left_ms, WAIT_RECHECK_MS), PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
	}
	invicti_stop_waiting_for_scan_changes();

	status = pstrdup(a.status);
	MemoryContextDelete(read_cxt);
	PG_RETURN_TEXT_P(cstring_to_text(status));
}

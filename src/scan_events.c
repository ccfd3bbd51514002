/*
 * scan_events.c
 *		NOTIFY invicti_scan on every status change of a scan.
 *
 * The row trigger function behind invicti_scans_notify_insert and
 * invicti_scans_notify_update: when invicti_scan.notify is on, it queues a
 * notification whose payload is the row's id ("42") in the transaction
 * that wrote the row, so listeners hear of it only if that transaction
 * commits.
 *
 * Why only the id, and why off by default: PostgreSQL checks no privilege
 * on LISTEN or NOTIFY.  Any role that can connect can listen on any
 * channel, and send on it.  So the payload says nothing a role could not
 * read anyway (a listener reads the row, under row-level security), and a
 * forged notification can at most make a listener read a row again.  The
 * ids and the timing of changes are still visible to every role that can
 * connect, which is why the channel stays closed unless the operator opens
 * it.  It is C, not PL/pgSQL, because every launch runs it: it must cost
 * the launching transaction next to nothing (see bench/run, "enqueue
 * cost").
 *
 * Rules: it reads only the trigger's tuple, never runs a query, and never
 * puts anything but the row id in the payload.
 */
#include "postgres.h"

#include "commands/async.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"

#include "settings.h"

PG_FUNCTION_INFO_V1(invicti_scan_notify);

#define EVENT_CHANNEL "invicti_scan"

/* The column `name` of the trigger's relation; an error if it is missing. */
static int
column_number(TupleDesc desc, const char *name)
{
	int			attno = SPI_fnumber(desc, name);

	if (attno <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("invicti_scan_notify(): column \"%s\" not found", name),
				 errhint("The trigger belongs on the invicti_scans table.")));
	return attno;
}

Datum
invicti_scan_notify(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tuple;
	Datum		value;
	bool		isnull;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("invicti_scan_notify() must be called as a row trigger on INSERT or UPDATE")));
	if (!invicti_notify)
		return PointerGetDatum(NULL);

	desc = RelationGetDescr(trigdata->tg_relation);
	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
		trigdata->tg_newtuple : trigdata->tg_trigtuple;
	value = heap_getattr(tuple, column_number(desc, "id"), desc, &isnull);
	if (!isnull)
	{
		char		payload[32];

		snprintf(payload, sizeof(payload), INT64_FORMAT, DatumGetInt64(value));
		Async_Notify(EVENT_CHANNEL, payload);
	}
	return PointerGetDatum(NULL);
}

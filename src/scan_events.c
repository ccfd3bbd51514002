/*
 * scan_events.c
 *		NOTIFY invicti_scan on every status change of a scan.
 *
 * The row trigger function behind invicti_scans_notify_insert and
 * invicti_scans_notify_update: it queues a notification with the payload
 *		{"id" : 42, "scan_id" : "...", "status" : "processing", "progress" : 37}
 * in the transaction that wrote the row, so listeners hear of it only if
 * that transaction commits.  It is C, not PL/pgSQL, because every launch
 * runs it: it must cost the launching transaction next to nothing (see
 * bench/run, "enqueue cost").
 *
 * Rules: it reads only the trigger's tuple, never runs a query, and
 * writes the same JSON that json_build_object() would (a status longer
 * than MAX_STATUS_BYTES is cut, so the payload always fits NOTIFY).
 */
#include "postgres.h"

#include "commands/async.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/uuid.h"

PG_FUNCTION_INFO_V1(invicti_scan_notify);

#define EVENT_CHANNEL "invicti_scan"
/* A status is the API's string, verbatim: cut it well below NOTIFY's limit. */
#define MAX_STATUS_BYTES 1000

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
	StringInfoData payload;
	Datum		value;
	bool		isnull;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("invicti_scan_notify() must be called as a row trigger on INSERT or UPDATE")));

	desc = RelationGetDescr(trigdata->tg_relation);
	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
		trigdata->tg_newtuple : trigdata->tg_trigtuple;

	initStringInfo(&payload);
	value = heap_getattr(tuple, column_number(desc, "id"), desc, &isnull);
	appendStringInfo(&payload, "{\"id\" : " INT64_FORMAT, isnull ? 0 : DatumGetInt64(value));

	appendStringInfoString(&payload, ", \"scan_id\" : ");
	value = heap_getattr(tuple, column_number(desc, "scan_id"), desc, &isnull);
	if (isnull)
		appendStringInfoString(&payload, "null");
	else
		appendStringInfo(&payload, "\"%s\"",
						 DatumGetCString(DirectFunctionCall1(uuid_out, value)));

	appendStringInfoString(&payload, ", \"status\" : ");
	value = heap_getattr(tuple, column_number(desc, "status"), desc, &isnull);
	if (isnull)
		appendStringInfoString(&payload, "null");
	else
	{
		char	   *status = TextDatumGetCString(value);
		int			len = strlen(status);

		if (len > MAX_STATUS_BYTES)
			status[pg_mbcliplen(status, len, MAX_STATUS_BYTES)] = '\0';
		escape_json(&payload, status);
	}

	appendStringInfoString(&payload, ", \"progress\" : ");
	value = heap_getattr(tuple, column_number(desc, "progress"), desc, &isnull);
	if (isnull)
		appendStringInfoString(&payload, "null}");
	else
		appendStringInfo(&payload, "%d}", DatumGetInt32(value));

	Async_Notify(EVENT_CHANNEL, payload.data);
	pfree(payload.data);
	return PointerGetDatum(NULL);
}

/*
 * sql_failover.c
 *		invicti_server_identity(): the identity the worker compares with
 *		invicti_server_history to notice a failover (server_origin.c).
 *
 * Rules: read only; never on a standby (its timeline is not yet its own).
 */
#include "postgres.h"

#include "access/xlog.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "server_origin.h"

PG_FUNCTION_INFO_V1(invicti_server_identity);

Datum
invicti_server_identity(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		v[2];
	bool		nulls[2] = {false, false};
	ServerIdentity id;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("invicti_server_identity() cannot run during recovery"),
				 errdetail("A standby's timeline becomes its own only when it is promoted.")));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "invicti_server_identity: the result type must be a row type");
	id = server_identity();
	v[0] = DirectFunctionCall3(numeric_in,
							   CStringGetDatum(psprintf(UINT64_FORMAT, id.system_identifier)),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	v[1] = Int32GetDatum((int32) id.timeline);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), v, nulls)));
}

/*
 * pg_compat.c
 *		The functions behind pg_compat.h: one body per release family.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"

#include "pg_compat.h"

#if PG_VERSION_NUM >= 160000

#include "nodes/miscnodes.h"

Jsonb *
compat_jsonb_from_text(char *text, char **message, char **detail)
{
	ErrorSaveContext escontext;
	Datum		result;

	memset(&escontext, 0, sizeof(escontext));
	escontext.type = T_ErrorSaveContext;
	escontext.details_wanted = true;
	*message = *detail = NULL;
	if (DirectInputFunctionCallSafe(jsonb_in, text, InvalidOid, -1,
									(Node *) &escontext, &result))
		return DatumGetJsonbP(result);
	*message = pstrdup(escontext.error_data->message);
	if (escontext.error_data->detail)
		*detail = pstrdup(escontext.error_data->detail);
	return NULL;
}

#else

Jsonb *
compat_jsonb_from_text(char *text, char **message, char **detail)
{
	MemoryContext cxt = CurrentMemoryContext;
	Jsonb	   *volatile result = NULL;

	*message = *detail = NULL;
	PG_TRY();
	{
		result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		*message = pstrdup(edata->message);
		if (edata->detail)
			*detail = pstrdup(edata->detail);
		FreeErrorData(edata);
		result = NULL;
	}
	PG_END_TRY();
	return result;
}

#endif

/*
 * severity_counts.c
 *		The one definition of a valid severity_counts object, and the sum
 *		the severity gate is judged by.
 *
 * The API's current_session.severity_counts (the spec's SeverityCounts) is
 * an object of integer counts keyed critical, high, medium, low and info;
 * older servers leave keys out (a missing key counts 0).  Anything else (an
 * unknown or differently spelt key, a negative, fractional, huge or
 * non-numeric count) is refused where it arrives (the worker records the
 * answer's problem on the row and keeps the raw answer in last_response),
 * and by the table's CHECK constraint (invicti_severity_counts_valid), so
 * that the gate and the views only ever read counts that mean something.
 *
 * Rules: pure functions of their argument; nothing here throws for bad
 * input.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

#include "severity_counts.h"

PG_FUNCTION_INFO_V1(invicti_severity_counts_valid);

const char *const severity_names[NUM_SEVERITIES] = {
	"critical", "high", "medium", "low", "info"
};

int
severity_level(const char *name)
{
	int			i;

	for (i = 0; i < NUM_SEVERITIES; i++)
		if (strcmp(severity_names[i], name) == 0)
			return i;
	return -1;
}

/* A count: a JSON number that is a whole number from 0 to 2^31-1. */
static bool
valid_count(JsonbValue *v)
{
	Numeric		n;

	if (v->type != jbvNumeric)
		return false;
	n = v->val.numeric;
	if (numeric_is_nan(n) || numeric_is_inf(n))
		return false;
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
										  DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))) < 0)
		return false;
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
										  DirectFunctionCall1(int4_numeric, Int32GetDatum(PG_INT32_MAX)))) > 0)
		return false;
	/* whole: equal to its own truncation */
	return DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(n),
											DirectFunctionCall2(numeric_trunc, NumericGetDatum(n),
																Int32GetDatum(0))));
}

const char *
severity_counts_problem(Jsonb *counts)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	if (!JB_ROOT_IS_OBJECT(counts))
		return "severity_counts is not a JSON object";
	it = JsonbIteratorInit(&counts->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			if (severity_level(key) < 0)
				return psprintf("severity_counts has the key \"%s\", which is not one of critical, high, medium, low, info",
								key);
		}
		else if (tok == WJB_VALUE && !valid_count(&v))
			return psprintf("severity_counts.%s is not a whole number from 0 to %d", key, PG_INT32_MAX);
	}
	return NULL;
}

int64
severity_counts_at_or_above(Jsonb *counts, int level)
{
	int64		sum = 0;
	int			i;

	for (i = 0; i <= level; i++)
	{
		JsonbValue *v = getKeyJsonValueFromContainer(&counts->root, severity_names[i],
													 strlen(severity_names[i]), NULL);

		if (v != NULL && v->type == jbvNumeric)
			sum += DatumGetInt64(DirectFunctionCall1(numeric_int8,
													 NumericGetDatum(v->val.numeric)));
	}
	return sum;
}

/* SQL: the table's CHECK constraint on severity_counts. */
Datum
invicti_severity_counts_valid(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(severity_counts_problem(PG_GETARG_JSONB_P(0)) == NULL);
}

/*
 * launch_options.c
 *		The options a caller may pass to invicti_launch_scan(): what the
 *		spec's Scan schema offers beyond target and profile.
 *
 *	 report_template_id  uuid      the report Invicti makes when the scan ends
 *	 incremental         boolean   scan only what changed since the last scan
 *	 max_scan_time       integer   minutes, 0 = no limit
 *	 schedule            object    disable, time_sensitive, triggerable
 *	                               (booleans), start_date (RFC 3339 date-time
 *	                               or null), recurrence (RFC 5545 rule, at most
 *	                               256 characters), history_limit (0..10)
 *
 * They are checked here, in the caller's transaction, before the row is
 * inserted (an unknown key or a wrong type is an error naming the key);
 * the row keeps them (launch_options) and the launch request sends them as
 * they are.
 *
 * Rules: nothing here touches the database or the network; the limits are
 * the spec's (test/contract/acunetix-api.yaml, definitions Scan and
 * Schedule).
 */
#include "postgres.h"

#include <ctype.h>

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/numeric.h"

#include "api_response.h"
#include "launch_options.h"

typedef enum OptionType
{
	OPT_UUID,
	OPT_BOOL,
	OPT_MINUTES,
	OPT_HISTORY,
	OPT_DATETIME_OR_NULL,
	OPT_RRULE,
	OPT_SCHEDULE
} OptionType;

typedef struct OptionDef
{
	const char *name;
	OptionType	type;
	const char *must_be;		/* for the error message */
} OptionDef;

static const OptionDef scan_options[] = {
	{"report_template_id", OPT_UUID, "a report template id (a UUID string)"},
	{"incremental", OPT_BOOL, "true or false"},
	{"max_scan_time", OPT_MINUTES, "a whole number of minutes from 0 (no limit) to 2147483647"},
	{"schedule", OPT_SCHEDULE, "an object"},
};

static const OptionDef schedule_options[] = {
	{"disable", OPT_BOOL, "true or false"},
	{"time_sensitive", OPT_BOOL, "true or false"},
	{"triggerable", OPT_BOOL, "true or false"},
	{"start_date", OPT_DATETIME_OR_NULL,
	"an RFC 3339 date-time with its offset, e.g. \"2026-12-01T02:00:00+00:00\", or null"},
	{"recurrence", OPT_RRULE, "an RFC 5545 recurrence rule (FREQ=...) of at most 256 characters"},
	{"history_limit", OPT_HISTORY, "a whole number from 0 to 10"},
};

static const char *
known_names(const OptionDef *defs, int n)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < n; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", defs[i].name);
	return buf.data;
}

static bool
whole_number(JsonbValue *v, int64 min, int64 max)
{
	Numeric		n;
	int64		x;

	if (v->type != jbvNumeric)
		return false;
	n = v->val.numeric;
	if (numeric_is_nan(n) || numeric_is_inf(n) ||
		!DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(n),
										  DirectFunctionCall2(numeric_trunc, NumericGetDatum(n),
															  Int32GetDatum(0)))))
		return false;
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
										  DirectFunctionCall1(int8_numeric, Int64GetDatum(max)))) > 0 ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
										  DirectFunctionCall1(int8_numeric, Int64GetDatum(min)))) < 0)
		return false;
	x = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(n)));
	return x >= min && x <= max;
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM), and a real instant. */
static bool
rfc3339(const char *s, int len)
{
	static const char pattern[] = "dddd-dd-ddTdd:dd:dd";
	char	   *copy;
	TimestampTz ts;
	int			i;
	int			p;

	if (len < (int) sizeof(pattern) - 1)
		return false;
	for (i = 0; pattern[i]; i++)
		if (pattern[i] == 'd' ? !isdigit((unsigned char) s[i]) : s[i] != pattern[i])
			return false;
	p = i;
	if (p < len && s[p] == '.')
		for (p++; p < len && isdigit((unsigned char) s[p]); p++)
			;
	if (p == len - 1 && (s[p] == 'Z' || s[p] == 'z'))
		;
	else if (!(p == len - 6 && (s[p] == '+' || s[p] == '-') &&
			   isdigit((unsigned char) s[p + 1]) && isdigit((unsigned char) s[p + 2]) &&
			   s[p + 3] == ':' && isdigit((unsigned char) s[p + 4]) &&
			   isdigit((unsigned char) s[p + 5])))
		return false;
	/* and a date that exists (no 2026-02-30) */
	copy = pnstrdup(s, len);
	return api_parse_timestamp(copy, &ts);
}

static bool
rrule(const char *s, int len)
{
	int			i;

	if (len < 1 || len > 256)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] > 0x7e)
			return false;
	return strstr(pnstrdup(s, len), "FREQ=") != NULL;
}

static void
refuse(const char *prefix, const OptionDef *def)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("launch option \"%s%s\" must be %s", prefix, def->name, def->must_be)));
}

static void check_object(JsonbContainer *obj, const OptionDef *defs, int ndefs,
						 const char *prefix);

static void
check_value(JsonbValue *v, const OptionDef *def, const char *prefix)
{
	pg_uuid_t	u;
	static const pg_uuid_t nil;

	switch (def->type)
	{
		case OPT_UUID:
			if (v->type != jbvString ||
				!api_parse_uuid(v->val.string.val, v->val.string.len, &u) ||
				memcmp(&u, &nil, sizeof(u)) == 0)
				refuse(prefix, def);
			break;
		case OPT_BOOL:
			if (v->type != jbvBool)
				refuse(prefix, def);
			break;
		case OPT_MINUTES:
			if (!whole_number(v, 0, PG_INT32_MAX))
				refuse(prefix, def);
			break;
		case OPT_HISTORY:
			if (!whole_number(v, 0, 10))
				refuse(prefix, def);
			break;
		case OPT_DATETIME_OR_NULL:
			if (v->type != jbvNull &&
				(v->type != jbvString || !rfc3339(v->val.string.val, v->val.string.len)))
				refuse(prefix, def);
			break;
		case OPT_RRULE:
			if (v->type != jbvString || !rrule(v->val.string.val, v->val.string.len))
				refuse(prefix, def);
			break;
		case OPT_SCHEDULE:
			if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
				refuse(prefix, def);
			check_object(v->val.binary.data, schedule_options, lengthof(schedule_options),
						 "schedule.");
			break;
	}
}

static void
check_object(JsonbContainer *obj, const OptionDef *defs, int ndefs, const char *prefix)
{
	JsonbIterator *it = JsonbIteratorInit(obj);
	JsonbValue	v;
	JsonbIteratorToken tok;
	const OptionDef *def = NULL;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			int			i;

			def = NULL;
			for (i = 0; i < ndefs; i++)
				if (strlen(defs[i].name) == (size_t) v.val.string.len &&
					strncmp(defs[i].name, v.val.string.val, v.val.string.len) == 0)
					def = &defs[i];
			if (def == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown launch option \"%s%.*s\"", prefix,
								Min(v.val.string.len, 100), v.val.string.val),
						 errhint("Known %s: %s.", *prefix ? "schedule options" : "options",
								 known_names(defs, ndefs))));
		}
		else if (tok == WJB_VALUE)
			check_value(&v, def, prefix);
	}
}

void
launch_options_check(Jsonb *options)
{
	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object"),
				 errhint("For example '{\"incremental\": true, \"schedule\": {\"start_date\": \"2026-12-01T02:00:00Z\"}}'.")));
	check_object(&options->root, scan_options, lengthof(scan_options), "");
}

/* A JSON value as text (a container or a scalar). */
static void
append_value(StringInfo buf, JsonbValue *v)
{
	if (v->type == jbvBinary)
		(void) JsonbToCString(buf, v->val.binary.data, v->val.binary.len);
	else
	{
		Jsonb	   *scalar = JsonbValueToJsonb(v);

		(void) JsonbToCString(buf, &scalar->root, VARSIZE(scalar));
	}
}

/* Every member of obj but `skip` (NULL: none), as ", key: value". */
static void
append_members(StringInfo buf, JsonbContainer *obj, const char *const *skip, int nskip)
{
	JsonbIterator *it = JsonbIteratorInit(obj);
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		int			i;
		bool		skipped = false;

		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		for (i = 0; i < nskip; i++)
			skipped |= strcmp(key, skip[i]) == 0;
		if (skipped)
			continue;
		appendStringInfoString(buf, ", ");
		escape_json(buf, key);
		appendStringInfoString(buf, ": ");
		append_value(buf, &v);
	}
}

void
launch_options_body(StringInfo body, const char *target_id, const char *profile_id,
					Jsonb *options)
{
	static const char *const defaults[] = {"disable", "time_sensitive"};
	static const char *const schedule_key[] = {"schedule"};
	JsonbValue *schedule = options ?
		getKeyJsonValueFromContainer(&options->root, "schedule", 8, NULL) : NULL;
	int			i;

	appendStringInfo(body, "{\"user_authorized_to_scan\": \"yes\", "
					 "\"target_id\": \"%s\", \"profile_id\": \"%s\", \"schedule\": {",
					 target_id, profile_id);
	/* the seed's schedule, with the caller's schedule options over it */
	for (i = 0; i < (int) lengthof(defaults); i++)
	{
		JsonbValue *v = schedule ?
			getKeyJsonValueFromContainer(schedule->val.binary.data, defaults[i],
										 strlen(defaults[i]), NULL) : NULL;

		appendStringInfo(body, "%s\"%s\": ", i ? ", " : "", defaults[i]);
		if (v)
			append_value(body, v);
		else
			appendStringInfoString(body, "false");
	}
	if (schedule)
		append_members(body, schedule->val.binary.data, defaults, lengthof(defaults));
	appendStringInfoChar(body, '}');
	if (options)
		append_members(body, &options->root, schedule_key, lengthof(schedule_key));
	appendStringInfoChar(body, '}');
}

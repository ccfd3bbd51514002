/*
 * api_response.c
 *		Reads what the Invicti API sent back: classifies HTTP outcomes, parses
 *		bodies with PostgreSQL's own jsonb parser, and pulls out scan ids,
 *		scan states and list pages, accepting every shape in invicti-api.md.
 *
 * Rules: nothing here throws for bad input from the network.  Bodies are
 * checked for size, NUL bytes and UTF-8 first; the one PostgreSQL parser
 * that reports problems by ereport (jsonb_in) runs inside PG_TRY and its
 * error becomes a message.  Everything that may reach a table or a log line
 * is a readable sentence on one line, in the server encoding, and never
 * holds the API token.
 */
#include "postgres.h"

#include <ctype.h>
#include <curl/curl.h>
#include <math.h>

#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/formatting.h"
#include "utils/numeric.h"
#include "pgtime.h"
#include "utils/timestamp.h"

#include "api_response.h"
#include "pg_compat.h"
#include "redact.h"
#include "settings.h"
#include "severity_counts.h"

#define MAX_MESSAGE 1000
/* The longest status taken as one (the spec's are at most 10 letters). */
#define MAX_STATUS_LEN 64

/*
 * Some servers answer a missing or unusable X-Auth with 400 "Invalid
 * Authorization header" instead of 401: that says nothing about the
 * request's content, so it must not fail a launch for good.
 */
static bool
is_authorization_complaint(const ApiResponse *r)
{
	static const char *const words[] = {"authoriz", "x-auth"};
	char	   *lower;
	int			i;

	if (r->body_len == 0 || r->body_len > 4096 || memchr(r->body, '\0', r->body_len))
		return false;
	lower = asc_tolower(r->body, r->body_len);
	for (i = 0; i < (int) lengthof(words); i++)
		if (strstr(lower, words[i]) != NULL)
			return true;
	return false;
}

ResponseClass
api_classify(const ApiResponse *r)
{
	long		s = r->http_status;

	if (s == 0)
		return RESP_NO_RESPONSE;
	if (s >= 200 && s < 300)
		return RESP_SUCCESS;
	if (s == 401 || s == 403 || (s == 400 && is_authorization_complaint(r)))
		return RESP_AUTH;
	if (s == 429)
		return RESP_RATE_LIMITED;
	if (s == 404)
		return RESP_NOT_FOUND;
	if (s == 503 || s == 408)
		return RESP_UNAVAILABLE;
	if (s >= 400 && s < 500)
		return RESP_REJECTED;
	return RESP_SERVER_ERROR;
}

ApiOutcome
api_failure_outcome(ResponseClass cls)
{
	switch (cls)
	{
		case RESP_SUCCESS:
			break;				/* a 2xx we could not use */
		case RESP_AUTH:
			return OUTCOME_AUTH_ERROR;
		case RESP_RATE_LIMITED:
			return OUTCOME_RATE_LIMITED;
		case RESP_NOT_FOUND:
		case RESP_REJECTED:
			return OUTCOME_CLIENT_ERROR;
		case RESP_UNAVAILABLE:
		case RESP_SERVER_ERROR:
			return OUTCOME_SERVER_ERROR;
		case RESP_NO_RESPONSE:
			return OUTCOME_NETWORK_ERROR;
	}
	return OUTCOME_BAD_RESPONSE;
}

char *
api_printable(const char *s, size_t maxlen)
{
	size_t		n = Min(strlen(s), maxlen);
	char	   *out = palloc(n + 1);
	size_t		i;

	for (i = 0; i < n; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[n] = '\0';
	return out;
}

/*
 * Make text from the network fit one log line and one last_error: line
 * breaks and tabs become spaces, every other control character (C0, DEL,
 * and in UTF-8 the C1 range and the line and paragraph separators) becomes
 * '?', so that an API answer cannot forge log lines or terminal escapes;
 * then the length is capped on a character boundary.
 */
static void
one_line(StringInfo buf)
{
	bool		utf8 = GetDatabaseEncoding() == PG_UTF8;
	unsigned char *p = (unsigned char *) buf->data;
	int			in;
	int			out = 0;

	for (in = 0; in < buf->len; in++)
	{
		unsigned char c = p[in];

		if (c == '\n' || c == '\r' || c == '\t')
			c = ' ';
		else if (c < 0x20 || c == 0x7f)
			c = '?';
		else if (utf8 && c == 0xc2 && in + 1 < buf->len && p[in + 1] >= 0x80 && p[in + 1] <= 0x9f)
		{
			c = '?';			/* U+0080..U+009F */
			in++;
		}
		else if (utf8 && c == 0xe2 && in + 2 < buf->len && p[in + 1] == 0x80 &&
				 (p[in + 2] == 0xa8 || p[in + 2] == 0xa9))
		{
			c = ' ';			/* U+2028, U+2029 */
			in += 2;
		}
		p[out++] = c;
	}
	buf->len = out;
	buf->data[out] = '\0';
	if (buf->len > MAX_MESSAGE)
	{
		int			cut = pg_mbcliplen(buf->data, buf->len, MAX_MESSAGE - 3);

		buf->len = cut;
		buf->data[cut] = '\0';
		appendStringInfoString(buf, "...");
	}
}

static char *
json_get_string(JsonbContainer *obj, const char *key)
{
	JsonbValue *v;

	if (obj == NULL || !JsonContainerIsObject(obj))
		return NULL;
	v = getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static JsonbContainer *
json_get_container(JsonbContainer *obj, const char *key, bool want_object)
{
	JsonbValue *v;

	if (obj == NULL || !JsonContainerIsObject(obj))
		return NULL;
	v = getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);
	if (v == NULL || v->type != jbvBinary)
		return NULL;
	if (want_object ? !JsonContainerIsObject(v->val.binary.data)
		: !JsonContainerIsArray(v->val.binary.data))
		return NULL;
	return v->val.binary.data;
}

/* Render a scalar or container as compact text. */
static void
append_json_value(StringInfo buf, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			appendBinaryStringInfo(buf, v->val.string.val, v->val.string.len);
			break;
		case jbvNumeric:
			appendStringInfoString(buf,
								   DatumGetCString(DirectFunctionCall1(numeric_out,
																	   NumericGetDatum(v->val.numeric))));
			break;
		case jbvBool:
			appendStringInfoString(buf, v->val.boolean ? "true" : "false");
			break;
		case jbvBinary:
			(void) JsonbToCString(buf, v->val.binary.data, v->val.binary.len);
			break;
		default:
			appendStringInfoString(buf, "null");
			break;
	}
}

/*
 * The API's error body: {"code": 404, "reason": "...", "details": [...]}.
 * Appends ": <reason> (code N): detail; detail" when the body has that form.
 */
static bool
append_error_body(StringInfo buf, const ApiResponse *r)
{
	char	   *err;
	Jsonb	   *body;
	JsonbContainer *root;
	JsonbValue *code;
	JsonbValue *reason;
	JsonbContainer *details;

	if (r->body_len == 0)
		return false;
	body = api_parse_json(r, &err);
	if (body == NULL || !JsonContainerIsObject(&body->root))
		return false;
	root = &body->root;
	reason = getKeyJsonValueFromContainer(root, "reason", 6, NULL);
	code = getKeyJsonValueFromContainer(root, "code", 4, NULL);
	if (reason == NULL && code == NULL)
		return false;

	appendStringInfoString(buf, ": ");
	if (reason)
		append_json_value(buf, reason);
	if (code)
	{
		appendStringInfoString(buf, reason ? " (code " : "code ");
		append_json_value(buf, code);
		if (reason)
			appendStringInfoChar(buf, ')');
	}
	details = json_get_container(root, "details", false);
	if (details && JsonContainerSize(details) > 0)
	{
		int			i;
		int			n = JsonContainerSize(details);

		appendStringInfoString(buf, ": ");
		for (i = 0; i < n; i++)
		{
			JsonbValue *d = getIthJsonbValueFromContainer(details, i);

			if (i > 0)
				appendStringInfoString(buf, "; ");
			append_json_value(buf, d);
		}
	}
	return true;
}

char *
api_describe_failure(const ApiResponse *r, const char *what)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (r->too_large)
		appendStringInfo(&buf, "%s: the response was larger than invicti_scan.max_response_size (%d kB)",
						 what, invicti_max_response_kb);
	else if (r->http_status == 0)
		appendStringInfo(&buf, "%s: no response from Invicti: %s",
						 what, api_printable(r->error ? r->error : "unknown error", 300));
	else if (r->curl_code != 0)
		appendStringInfo(&buf, "%s: the HTTP %ld response was cut short: %s",
						 what, r->http_status,
						 api_printable(r->error ? r->error : "unknown error", 300));
	else
	{
		if (api_classify(r) == RESP_AUTH)
			appendStringInfo(&buf, "%s: Invicti refused the API token (HTTP %ld)",
							 what, r->http_status);
		else
			appendStringInfo(&buf, "%s: HTTP %ld from Invicti", what, r->http_status);
		if (!append_error_body(&buf, r))
		{
			if (r->body_len == 0)
				appendStringInfoString(&buf, " with an empty body");
			else
				appendStringInfo(&buf, " with a %zu-byte %s body", r->body_len,
								 r->content_type ? api_printable(r->content_type, 60) : "untyped");
		}
	}
	one_line(&buf);
	return buf.data;
}

Jsonb *
api_parse_json(const ApiResponse *r, char **error)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	char	   *volatile text = NULL;
	char	   *message = NULL;
	char	   *detail = NULL;
	Jsonb	   *result = NULL;

	*error = NULL;
	if (r->too_large)
	{
		*error = psprintf("the response was larger than invicti_scan.max_response_size (%d kB)",
						  invicti_max_response_kb);
		return NULL;
	}
	if (r->curl_code != 0)
	{
		*error = psprintf("the response was cut short: %s",
						  api_printable(r->error ? r->error : "unknown error", 300));
		return NULL;
	}
	if (r->body_len == 0)
	{
		*error = pstrdup("the response body was empty");
		return NULL;
	}
	if (memchr(r->body, '\0', r->body_len) != NULL ||
		!pg_verify_mbstr(PG_UTF8, r->body, (int) r->body_len, true))
	{
		*error = psprintf("the response body (%zu bytes, %s) is not UTF-8 text",
						  r->body_len,
						  r->content_type ? api_printable(r->content_type, 60) : "untyped");
		return NULL;
	}

	/* a server in another encoding: converting can fail, so catch that */
	PG_TRY();
	{
		text = pg_any_to_server(r->body, (int) r->body_len, PG_UTF8);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		*error = psprintf("the response body cannot be converted to the server encoding: %s",
						  edata->message);
		FreeErrorData(edata);
		text = NULL;
	}
	PG_END_TRY();

	if (text == NULL)
		return NULL;
	result = compat_jsonb_from_text(text, &message, &detail);
	if (result == NULL)
	{
		StringInfoData buf;

		initStringInfo(&buf);
		appendStringInfo(&buf, "the response body (%zu bytes, %s) is not valid JSON: %s",
						 r->body_len,
						 r->content_type ? api_printable(r->content_type, 60) : "untyped",
						 message);
		if (detail)
			appendStringInfo(&buf, " (%s)", detail);
		one_line(&buf);
		*error = buf.data;
		return NULL;
	}
	/* a token spelled with escapes is only visible once parsed */
	if (memchr(r->body, '\\', r->body_len) != NULL &&
		(result = invicti_redact_jsonb(result)) == NULL)
		*error = pstrdup("the response body could not be cleared of the API token");
	return result;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char) tolower((unsigned char) c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool
api_parse_uuid(const char *s, size_t len, pg_uuid_t *out)
{
	int			i;
	int			j = 0;

	if (len != 36)
		return false;
	for (i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
			continue;
		}
		if (hexval(s[i]) < 0 || hexval(s[i + 1]) < 0)
			return false;
		out->data[j++] = (unsigned char) (hexval(s[i]) * 16 + hexval(s[i + 1]));
		i++;
	}
	return true;
}

char *
api_uuid_text(const pg_uuid_t *u)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(u)));
}

bool
api_created_id(const ApiResponse *r, Jsonb *body, const char *key, const char *what,
			   pg_uuid_t *out, char **error)
{
	char	   *id;

	if (r->location)
	{
		char	   *loc = pstrdup(r->location);
		char	   *end = loc + strcspn(loc, "?#");
		char	   *slash;

		*end = '\0';
		while (end > loc && end[-1] == '/')
			*--end = '\0';
		slash = strrchr(loc, '/');
		id = slash ? slash + 1 : loc;
		if (api_parse_uuid(id, strlen(id), out))
			return true;
	}
	if (body && JsonContainerIsObject(&body->root) &&
		(id = json_get_string(&body->root, key)) != NULL &&
		api_parse_uuid(id, strlen(id), out))
		return true;

	*error = psprintf("the %s was accepted (HTTP %ld) but the response carried no usable %s (Location: %s)",
					  what, r->http_status, key,
					  r->location ? api_printable(r->location, 200) : "none");
	return false;
}

bool
api_launch_scan_id(const ApiResponse *r, Jsonb *body, pg_uuid_t *out, char **error)
{
	return api_created_id(r, body, "scan_id", "launch", out, error);
}

bool
api_target_item(JsonbValue *item, pg_uuid_t *target_id, char **address)
{
	JsonbContainer *obj;
	char	   *id;

	if (item->type != jbvBinary || !JsonContainerIsObject(item->val.binary.data))
		return false;
	obj = item->val.binary.data;
	id = json_get_string(obj, "target_id");
	*address = json_get_string(obj, "address");
	return id != NULL && *address != NULL && api_parse_uuid(id, strlen(id), target_id);
}

bool
api_report_state(Jsonb *body, char **status, List **downloads)
{
	JsonbContainer *list;
	int			n;
	int			i;

	*status = NULL;
	*downloads = NIL;
	if (body == NULL || !JsonContainerIsObject(&body->root))
		return false;
	*status = json_get_string(&body->root, "status");
	list = json_get_container(&body->root, "download", false);
	n = list ? JsonContainerSize(list) : 0;
	for (i = 0; i < n; i++)
	{
		JsonbValue *v = getIthJsonbValueFromContainer(list, i);

		if (v->type == jbvString)
			*downloads = lappend(*downloads, pnstrdup(v->val.string.val, v->val.string.len));
	}
	return *status != NULL;
}

bool
api_parse_timestamp(const char *s, TimestampTz *out)
{
	static pg_tz *utc = NULL;
	char		workbuf[MAXDATELEN + MAXDATEFIELDS];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	int			tz;
	fsec_t		fsec;
	struct pg_tm tt;
	pg_tz	   *session_tz = session_timezone;
	bool		ok;

	if (s == NULL || strlen(s) >= MAXDATELEN)
		return false;
	if (utc == NULL && (utc = pg_tzset("UTC")) == NULL)
		return false;
	session_timezone = utc;
	ok = ParseDateTime(s, workbuf, sizeof(workbuf), field, ftype, MAXDATEFIELDS, &nf) == 0 &&
		compat_decode_datetime(field, ftype, nf, &dtype, &tt, &fsec, &tz) == 0 &&
		dtype == DTK_DATE;
	session_timezone = session_tz;
	return ok && tm2timestamp(&tt, fsec, &tz, out) == 0 && IS_VALID_TIMESTAMP(*out);
}

static bool
json_get_timestamp(JsonbContainer *obj, const char *key, TimestampTz *out)
{
	return api_parse_timestamp(json_get_string(obj, key), out);
}

/*
 * The latest instant a date the API sent can stand for: the instant itself
 * for a date-time; for a plain "date" (the spec types current_session's
 * start_date and next_run so), the end of that day anywhere on Earth, UTC
 * + 14 h.  A bound a date cannot defeat.
 */
static bool
json_get_latest_instant(JsonbContainer *obj, const char *key, TimestampTz *out)
{
	char	   *s = json_get_string(obj, key);

	if (!api_parse_timestamp(s, out))
		return false;
	if (strlen(s) == 10)		/* YYYY-MM-DD: api_parse_timestamp took it */
		*out += (TimestampTz) (24 + 14) * USECS_PER_HOUR;
	return true;
}

/*
 * The latest the scan can have been created: its start date (the scan's
 * date-time, or its session's date) or next run, whichever is earliest (each
 * is no earlier than the scan's creation).
 */
static void
created_bound(JsonbContainer *scan, JsonbContainer *session, ApiScanState *out)
{
	TimestampTz t;

	out->has_created = false;
	if (json_get_latest_instant(scan, "start_date", &t))
		out->has_created = true, out->created = t;
	if (session && json_get_latest_instant(session, "start_date", &t) &&
		(!out->has_created || t < out->created))
		out->has_created = true, out->created = t;
	if (json_get_latest_instant(scan, "next_run", &t) &&
		(!out->has_created || t < out->created))
		out->has_created = true, out->created = t;
}

/* A status: printable ASCII, short (anything else is not a status word). */
static bool
plain_word(const char *s)
{
	size_t		n = strlen(s);
	size_t		i;

	if (n > MAX_STATUS_LEN)
		return false;
	for (i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

/* Fill state from one scan object (an item of "scans" or the whole body). */
static bool
scan_state_from_object(JsonbContainer *scan, ApiScanState *out, char **error)
{
	JsonbContainer *session = json_get_container(scan, "current_session", true);
	JsonbValue *v;
	char	   *s;

	memset(out, 0, sizeof(ApiScanState));
	out->target_id = json_get_string(scan, "target_id");
	out->profile_id = json_get_string(scan, "profile_id");

	/*
	 * Before its session starts, a scan's current_session may be missing,
	 * empty or without a status: that is news of nothing (status NULL), not
	 * an error.  An object that is neither a scan nor has a session is.
	 */
	if (session == NULL)
	{
		if (json_get_string(scan, "scan_id") == NULL)
		{
			*error = pstrdup("the response is not a scan: it has neither scan_id nor current_session");
			return false;
		}
		created_bound(scan, NULL, out);
		return true;
	}
	out->status = json_get_string(session, "status");
	if (out->status != NULL && out->status[0] == '\0')
		out->status = NULL;
	if (out->status != NULL && !plain_word(out->status))
	{
		*error = psprintf("current_session.status \"%s\" is not a status (at most %d printable characters)",
						  api_printable(out->status, MAX_STATUS_LEN), MAX_STATUS_LEN);
		return false;
	}

	v = getKeyJsonValueFromContainer(session, "progress", 8, NULL);
	if (v && v->type == jbvNumeric)
	{
		double		p = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
														   NumericGetDatum(v->val.numeric)));

		out->has_progress = !isnan(p);
		out->progress = p <= 0 ? 0 : p >= 100 ? 100 : (int32) rint(p);
	}
	s = json_get_string(session, "scan_session_id");
	if (s)
		out->has_session_id = api_parse_uuid(s, strlen(s), &out->session_id);

	/*
	 * severity_counts is stored as sent (keys vary between servers), once it
	 * is known to mean something (severity_counts.c); otherwise the row's
	 * counts are cleared (scan_store.c: a gate must never pass on the counts
	 * of an earlier answer), last_error says why and last_response keeps the
	 * answer.
	 */
	v = getKeyJsonValueFromContainer(session, "severity_counts", 15, NULL);
	if (v && v->type != jbvNull)
	{
		Jsonb	   *counts = JsonbValueToJsonb(v);

		out->problem = severity_counts_problem(counts);
		if (out->problem == NULL)
			out->severity_counts = counts;
		else
			out->problem = psprintf("the answer's %s; the counts were not stored",
									out->problem);
	}

	/*
	 * The spec types the session's start_date as a plain date, the scan's own
	 * (ScanItemResponse) as a date-time: the row takes the finer one.
	 */
	s = json_get_string(session, "start_date");
	if (s && strlen(s) == 10 && json_get_timestamp(scan, "start_date", &out->start_date))
		out->has_start_date = true;
	else
		out->has_start_date = api_parse_timestamp(s, &out->start_date);
	out->has_end_date = json_get_timestamp(session, "end_date", &out->end_date);
	created_bound(scan, session, out);
	return true;
}

bool
api_scan_state(Jsonb *body, const pg_uuid_t *scan_id, ApiScanState *out,
			   char **error)
{
	JsonbContainer *root = &body->root;
	JsonbContainer *scans;
	JsonbContainer *scan = NULL;
	char	   *want = api_uuid_text(scan_id);
	char	   *got;

	if (!JsonContainerIsObject(root))
	{
		*error = pstrdup("the response is not a JSON object");
		return false;
	}

	/* The seed's shape wraps the scan in a list: {"scans": [ {...} ]}. */
	scans = json_get_container(root, "scans", false);
	if (scans)
	{
		int			n = JsonContainerSize(scans);
		int			i;

		for (i = 0; i < n && scan == NULL; i++)
		{
			JsonbValue *item = getIthJsonbValueFromContainer(scans, i);
			pg_uuid_t	id;

			if (item->type != jbvBinary || !JsonContainerIsObject(item->val.binary.data))
				continue;
			got = json_get_string(item->val.binary.data, "scan_id");
			if ((got == NULL && n == 1) ||
				(got && api_parse_uuid(got, strlen(got), &id) &&
				 memcmp(&id, scan_id, sizeof(id)) == 0))
				scan = item->val.binary.data;
		}
		if (scan == NULL)
		{
			*error = psprintf("the response lists %d scan(s) but not scan %s", n, want);
			return false;
		}
	}
	else
	{
		pg_uuid_t	id;

		scan = root;
		got = json_get_string(scan, "scan_id");
		if (got && (!api_parse_uuid(got, strlen(got), &id) ||
					memcmp(&id, scan_id, sizeof(id)) != 0))
		{
			*error = psprintf("the response describes scan \"%s\", not %s",
							  api_printable(got, 60), want);
			return false;
		}
	}
	return scan_state_from_object(scan, out, error);
}

/* A cursor as text: a non-empty string, or a whole number; else NULL. */
static char *
cursor_text(JsonbValue *v)
{
	if (v == NULL)
		return NULL;
	if (v->type == jbvString && v->val.string.len > 0)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvNumeric && !numeric_is_nan(v->val.numeric))
	{
		char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out,
															   NumericGetDatum(v->val.numeric)));

		/* whole numbers only: "100", not "1e2" or "100.5" */
		if (strspn(text, "0123456789-") == strlen(text))
			return text;
	}
	return NULL;
}

bool
api_list_page(Jsonb *body, const char *key, ListPage *out, char **error)
{
	JsonbContainer *root = &body->root;
	JsonbContainer *items = json_get_container(root, key, false);
	JsonbContainer *pagination;
	int			n;
	int			i;

	memset(out, 0, sizeof(ListPage));
	if (!JsonContainerIsObject(root))
	{
		*error = pstrdup("the response is not a JSON object");
		return false;
	}

	/*
	 * Some lists' keys the spec requires (TargetListResponse,
	 * VulnerabilityListResponse, ReportListResponse); the others' it does not
	 * (ScanListResponse, ScanResultListResponse, ScanningProfilesResponse,
	 * ReportTemplateList): a page without such a key lists nothing.  A key
	 * that is there and not a list is never a page.
	 */
	if (items == NULL)
	{
		static const char *const required[] = {"targets", "vulnerabilities", "reports"};
		bool		is_required = false;
		int			k;

		for (k = 0; k < (int) lengthof(required); k++)
			is_required |= strcmp(key, required[k]) == 0;
		if (is_required ||
			getKeyJsonValueFromContainer(root, key, strlen(key), NULL) != NULL)
		{
			*error = psprintf("the response has no \"%s\" list", key);
			return false;
		}
	}
	n = items ? JsonContainerSize(items) : 0;
	out->items = palloc0(sizeof(JsonbValue *) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		JsonbValue *item = getIthJsonbValueFromContainer(items, i);

		if (item->type == jbvBinary && JsonContainerIsObject(item->val.binary.data))
			out->items[out->n_items++] = item;
	}

	/*
	 * Paging: the spec's "cursors": [current, next] while there is a next
	 * page, or the older "next_cursor" (null at the end).  Either may be a
	 * string or a number (servers that count offsets send integers).
	 */
	pagination = json_get_container(root, "pagination", true);
	if (pagination)
	{
		JsonbContainer *cursors = json_get_container(pagination, "cursors", false);

		if (cursors && JsonContainerSize(cursors) >= 2)
			out->next_cursor = cursor_text(getIthJsonbValueFromContainer(cursors, 1));
		if (out->next_cursor == NULL)
			out->next_cursor = cursor_text(getKeyJsonValueFromContainer(pagination, "next_cursor",
																		11, NULL));
	}
	return true;
}

/* An integer member (a JSON number within int32 range), rounded. */
static bool
json_get_int(JsonbContainer *obj, const char *key, int32 *out)
{
	JsonbValue *v = getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);
	double		d;

	if (v == NULL || v->type != jbvNumeric)
		return false;
	d = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
										   NumericGetDatum(v->val.numeric)));
	if (isnan(d) || d < PG_INT32_MIN || d > PG_INT32_MAX)
		return false;
	*out = (int32) rint(d);
	return true;
}

/* A member that may be a string or a number, as text. */
static char *
json_get_id(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);
	StringInfoData buf;

	if (v == NULL || (v->type != jbvString && v->type != jbvNumeric))
		return NULL;
	initStringInfo(&buf);
	append_json_value(&buf, v);
	return buf.len > 0 ? buf.data : NULL;
}

const char *
api_finding(JsonbValue *item, Finding *out)
{
	JsonbContainer *obj = item->val.binary.data;
	char	   *target;

	memset(out, 0, sizeof(Finding));
	out->vuln_id = json_get_id(obj, "vuln_id");
	if (out->vuln_id == NULL)
		return "without a vuln_id";
	if (strlen(out->vuln_id) > FINDING_MAX_ID_BYTES)
		return "with a vuln_id longer than " CppAsString2(FINDING_MAX_ID_BYTES) " bytes";
	out->vt_id = json_get_id(obj, "vt_id");
	out->vt_name = json_get_string(obj, "vt_name");
	out->has_severity = json_get_int(obj, "severity", &out->severity);
	out->has_confidence = json_get_int(obj, "confidence", &out->confidence);
	out->has_criticality = json_get_int(obj, "criticality", &out->criticality);
	out->affects_url = json_get_string(obj, "affects_url");
	out->affects_detail = json_get_string(obj, "affects_detail");
	out->status = json_get_string(obj, "status");
	target = json_get_string(obj, "target_id");
	out->has_target_id = target && api_parse_uuid(target, strlen(target), &out->target_id);
	out->has_first_seen = json_get_timestamp(obj, "first_seen", &out->first_seen);
	out->has_last_seen = json_get_timestamp(obj, "last_seen", &out->last_seen);
	out->raw = JsonbValueToJsonb(item);
	return NULL;
}

bool
api_result_item(JsonbValue *item, pg_uuid_t *result_id, bool *has_end_date,
				TimestampTz *end_date)
{
	JsonbContainer *obj = item->val.binary.data;
	char	   *id = json_get_string(obj, "result_id");

	if (id == NULL || !api_parse_uuid(id, strlen(id), result_id))
		return false;
	*has_end_date = json_get_timestamp(obj, "end_date", end_date);
	return true;
}

bool
api_scan_list_item(JsonbContainer *item, pg_uuid_t *scan_id, ApiScanState *state)
{
	char	   *id = json_get_string(item, "scan_id");
	char	   *error;

	if (id == NULL || !api_parse_uuid(id, strlen(id), scan_id))
		return false;
	if (!scan_state_from_object(item, state, &error))
	{
		/* A list item without a session is still a scan; keep its ids. */
		char	   *target = json_get_string(item, "target_id");
		char	   *profile = json_get_string(item, "profile_id");

		memset(state, 0, sizeof(ApiScanState));
		state->target_id = target;
		state->profile_id = profile;
		created_bound(item, NULL, state);
	}
	return true;
}

bool
api_scan_list_state(JsonbValue *item, pg_uuid_t *scan_id, bool *has_session,
					ApiScanState *state, char **error)
{
	JsonbContainer *obj = item->val.binary.data;
	char	   *id = json_get_string(obj, "scan_id");

	if (id == NULL || !api_parse_uuid(id, strlen(id), scan_id))
	{
		*error = pstrdup("a listed scan has no usable scan_id");
		return false;
	}
	*has_session = getKeyJsonValueFromContainer(obj, "current_session", 15, NULL) != NULL;
	return scan_state_from_object(obj, state, error);
}

/*
 * How long the server asks us to wait, in seconds, or -1.  The standard
 * Retry-After header (delta-seconds or an HTTP date) first; without one, a
 * delay in the error body's "details" when that is an object (the vendor
 * documents no format for it: a numeric member whose name says retry,
 * wait or delay, in seconds, is taken).
 */
int64
api_retry_after_seconds(const ApiResponse *r, const char **source)
{
	char	   *err;
	Jsonb	   *body;
	JsonbContainer *details;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		wanted = false;

	*source = NULL;
	if (r->retry_after && r->retry_after[0])
	{
		char	   *end;
		long		secs;
		time_t		when;

		*source = "Retry-After";
		errno = 0;
		secs = strtol(r->retry_after, &end, 10);
		if (end != r->retry_after && *end == '\0' && errno == 0)
			return secs < 0 ? -1 : secs;
		when = curl_getdate(r->retry_after, NULL);
		if (when != -1)
			return Max((int64) (when - time(NULL)), 0);
	}
	if (r->body_len == 0 || r->body_len > 65536 || (body = api_parse_json(r, &err)) == NULL ||
		(details = json_get_container(&body->root, "details", true)) == NULL)
		return -1;
	it = JsonbIteratorInit(details);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char	   *key = asc_tolower(v.val.string.val, v.val.string.len);

			wanted = strstr(key, "retry") || strstr(key, "wait") || strstr(key, "delay");
		}
		else if (tok == WJB_VALUE && wanted && v.type == jbvNumeric &&
				 !numeric_is_nan(v.val.numeric))
		{
			double		d = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
															   NumericGetDatum(v.val.numeric)));

			if (d >= 0 && d < 1e9)
			{
				*source = "a delay in the response body";
				return (int64) ceil(d);
			}
		}
	}
	return -1;
}

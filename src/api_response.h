/*
 * api_response.h
 *		Turning Invicti API responses into facts the worker can act on.
 */
#ifndef INVICTI_API_RESPONSE_H
#define INVICTI_API_RESPONSE_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "api_call.h"
#include "api_client.h"

/*
 * What kind of answer a finished transfer is.  This is the one
 * classification of HTTP outcomes: what to do next is decided from it, and
 * the statistics' outcome is derived from it (api_outcome).
 */
typedef enum ResponseClass
{
	RESP_SUCCESS,				/* 2xx */
	RESP_AUTH,					/* 401, 403: the token is wrong or lacks
								 * rights */
	RESP_RATE_LIMITED,			/* 429 */
	RESP_NOT_FOUND,				/* 404 */
	RESP_REJECTED,				/* other 4xx: the request itself is wrong */
	RESP_UNAVAILABLE,			/* 503, 408: not processed, try again */
	RESP_SERVER_ERROR,			/* other 5xx, 1xx/3xx: outcome unknown */
	RESP_NO_RESPONSE			/* transport failure, no HTTP status */
} ResponseClass;

extern ResponseClass api_classify(const ApiResponse *r);

/*
 * How long the server asks to be left alone, in seconds (Retry-After, or a
 * delay in the error body), or -1; *source says where it was found.
 */
extern int64 api_retry_after_seconds(const ApiResponse *r, const char **source);

/* The statistics' outcome of a request the worker could not use. */
extern ApiOutcome api_failure_outcome(ResponseClass cls);

/* Copy of s, at most maxlen bytes, anything but printable ASCII as '?'. */
extern char *api_printable(const char *s, size_t maxlen);

/* A readable, single-line sentence about a failed request. */
extern char *api_describe_failure(const ApiResponse *r, const char *what);

/* The body as jsonb, or NULL with *error set. Never throws for bad input. */
extern Jsonb *api_parse_json(const ApiResponse *r, char **error);

/*
 * An ISO 8601 timestamp, without ever throwing.  The spec declares some
 * dates as plain "date" (no zone): those are UTC, never the session's
 * TimeZone.
 */
extern bool api_parse_timestamp(const char *s, TimestampTz *out);

/* Strict UUID parsing (hex with dashes, any case); no errors thrown. */
extern bool api_parse_uuid(const char *s, size_t len, pg_uuid_t *out);
extern char *api_uuid_text(const pg_uuid_t *u);

/*
 * A created object's id from a 201: the last segment of Location first,
 * then body.<key>.  `what` names the request in the error.
 */
extern bool api_created_id(const ApiResponse *r, Jsonb *body, const char *key,
						   const char *what, pg_uuid_t *out, char **error);

/* The new scan's id from a 201 (api_created_id of scan_id). */
extern bool api_launch_scan_id(const ApiResponse *r, Jsonb *body, pg_uuid_t *out,
							   char **error);

/*
 * A Report (GET /reports/{id}): its status and its download entries (the
 * strings of "download", palloc'd); false when it has no status.
 */
extern bool api_report_state(Jsonb *body, char **status, List **downloads);

/* A target list item (GET /targets): its id and address; false if it has none. */
extern bool api_target_item(JsonbValue *item, pg_uuid_t *target_id, char **address);

/* One scan's state as the API reports it (either response shape). */
typedef struct ApiScanState
{
	char	   *status;			/* current_session.status; NULL: not started */
	bool		has_progress;
	int32		progress;		/* clamped to 0..100 */
	bool		has_session_id;
	pg_uuid_t	session_id;
	Jsonb	   *severity_counts;	/* the object as sent, or NULL */
	const char *problem;		/* what is wrong with the answer's counts, or
								 * NULL */
	bool		has_start_date;
	TimestampTz start_date;
	bool		has_end_date;
	TimestampTz end_date;
	char	   *target_id;		/* when present (single shape, lists) */
	char	   *profile_id;
	bool		has_created;	/* the scan was made no later than created */
	TimestampTz created;		/* (a plain date: the end of its day) */
} ApiScanState;

extern bool api_scan_state(Jsonb *body, const pg_uuid_t *scan_id,
						   ApiScanState *out, char **error);

/* A page of a list endpoint: the items and the cursor of the next page. */
typedef struct ListPage
{
	int			n_items;
	JsonbValue **items;			/* each an object (jbvBinary) */
	char	   *next_cursor;	/* NULL on the last page */
} ListPage;

extern bool api_list_page(Jsonb *body, const char *key, ListPage *out,
						  char **error);

/* Scan list items (GET /scans) reduced to what reconciliation needs. */
extern bool api_scan_list_item(JsonbContainer *item, pg_uuid_t *scan_id,
							   ApiScanState *state);

/*
 * A scan list item (GET /scans) as a refresh of that scan: its id, whether
 * it carries a current_session at all, and the state a GET of the scan
 * would give.  False, with *error, when the item is not a usable scan.
 */
extern bool api_scan_list_state(JsonbValue *item, pg_uuid_t *scan_id, bool *has_session,
								ApiScanState *state, char **error);

/* An item of GET /scans/{id}/results (ScanResultItem): its session and end. */
extern bool api_result_item(JsonbValue *item, pg_uuid_t *result_id, bool *has_end_date,
							TimestampTz *end_date);

/* One finding (item of .../vulnerabilities), fields as far as usable. */
typedef struct Finding
{
	char	   *vuln_id;		/* required */
	char	   *vt_id;
	char	   *vt_name;
	bool		has_severity;
	int32		severity;
	bool		has_confidence;
	int32		confidence;
	bool		has_criticality;
	int32		criticality;
	char	   *affects_url;
	char	   *affects_detail;
	char	   *status;
	bool		has_target_id;
	pg_uuid_t	target_id;
	bool		has_first_seen;
	TimestampTz first_seen;
	bool		has_last_seen;
	TimestampTz last_seen;
	Jsonb	   *raw;			/* the item as sent */
} Finding;

/*
 * Ids longer than this are refused: the findings' primary key index could
 * not hold them (a B-tree entry is at most a third of a page).
 */
#define FINDING_MAX_ID_BYTES 255

/* NULL when the item is usable, else what is wrong with it ("without a vuln_id"). */
extern const char *api_finding(JsonbValue *item, Finding *out);

#endif

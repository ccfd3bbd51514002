/*
 * api_response.h
 *		Turning Invicti API responses into facts the worker can act on.
 */
#ifndef INVICTI_API_RESPONSE_H
#define INVICTI_API_RESPONSE_H

#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "api_client.h"

/* What kind of answer a finished transfer is, for deciding what to do. */
typedef enum ResponseClass
{
	RESP_SUCCESS,				/* 2xx */
	RESP_AUTH,					/* 401, 403: the token is wrong or lacks rights */
	RESP_RATE_LIMITED,			/* 429 */
	RESP_NOT_FOUND,				/* 404 */
	RESP_REJECTED,				/* other 4xx: the request itself is wrong */
	RESP_UNAVAILABLE,			/* 503, 408: not processed, try again */
	RESP_SERVER_ERROR,			/* other 5xx, 1xx/3xx: outcome unknown */
	RESP_NO_RESPONSE			/* transport failure, no HTTP status */
} ResponseClass;

extern ResponseClass classify_response(const ApiResponse *r);

/* A readable, single-line sentence about a failed request (never the token). */
extern char *describe_failure(const ApiResponse *r, const char *what);

/* The body as jsonb, or NULL with *error set. Never throws for bad input. */
extern Jsonb *parse_json_body(const ApiResponse *r, char **error);

/* Strict UUID parsing (hex with dashes, any case); no errors thrown. */
extern bool parse_uuid(const char *s, size_t len, pg_uuid_t *out);
extern char *uuid_to_text(const pg_uuid_t *u);

/* The new scan's id from a 201: Location first, then body.scan_id. */
extern bool launch_scan_id(const ApiResponse *r, Jsonb *body, pg_uuid_t *out,
						   char **error);

/* One scan's state as the API reports it (either response shape). */
typedef struct ApiScanState
{
	char	   *status;			/* current_session.status */
	bool		has_progress;
	int32		progress;		/* clamped to 0..100 */
	bool		has_session_id;
	pg_uuid_t	session_id;
	Jsonb	   *severity_counts;	/* the object as sent, or NULL */
	bool		has_start_date;
	TimestampTz start_date;
	bool		has_end_date;
	TimestampTz end_date;
	char	   *target_id;		/* when present (single shape, lists) */
	char	   *profile_id;
	bool		has_created;	/* a timestamp telling when it was made */
	TimestampTz created;
} ApiScanState;

extern bool scan_state_from_body(Jsonb *body, const pg_uuid_t *scan_id,
								 ApiScanState *out, char **error);

extern bool is_terminal_status(const char *status);

/* A page of a list endpoint: the items and the cursor of the next page. */
typedef struct ListPage
{
	int			n_items;
	JsonbValue **items;			/* each an object (jbvBinary) */
	char	   *next_cursor;	/* NULL on the last page */
} ListPage;

extern bool parse_list_page(Jsonb *body, const char *key, ListPage *out,
							char **error);

/* Scan list items (GET /scans) reduced to what reconciliation needs. */
extern bool scan_list_item(JsonbContainer *item, pg_uuid_t *scan_id,
						   ApiScanState *state);

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

/* False when the item has no usable vuln_id. */
extern bool finding_from_item(JsonbValue *item, Finding *out);

/* Text of a string member of an object, or NULL. */
extern char *json_get_string(JsonbContainer *obj, const char *key);

/* A copy of message with every occurrence of the API token blanked out. */
extern char *redact_token(const char *message);

#endif

/*
 * api_call.h
 *		The kinds of request the worker makes and the outcomes it counts, with
 *		their names: one table each, used by the statistics and the messages.
 */
#ifndef INVICTI_API_CALL_H
#define INVICTI_API_CALL_H

/* What a request is for. */
typedef enum ApiCallKind
{
	CALL_LAUNCH,				/* POST /scans */
	CALL_POLL,					/* GET /scans/{id} */
	CALL_RECONCILE,				/* GET /scans?q=target:... after an unknown
								 * launch */
	CALL_ABORT,					/* POST /scans/{id}/abort */
	CALL_RESULTS,				/* GET .../results/{session}/vulnerabilities */
	CALL_SESSIONS,				/* GET /scans/{id}/results: sessions, end
								 * dates */
	CALL_POLL_LIST,				/* GET /scans?q=scan_status:...: running
								 * scans, a page at a time */
	CALL_SYNC,					/* GET /targets, /scanning_profiles,
								 * /report_templates: the catalogs */
	CALL_ADD_TARGET,			/* POST /targets */
	CALL_FIND_TARGET,			/* GET /targets after an unknown add */
	CALL_REPORT,				/* POST /reports, GET /reports/{id} */
	CALL_REPORT_DOWNLOAD,		/* GET /reports/download/{descriptor} */
	NUM_CALL_KINDS
} ApiCallKind;

/* How a request ended, as counted in invicti_scan_stats. */
typedef enum ApiOutcome
{
	OUTCOME_OK,
	OUTCOME_CLIENT_ERROR,		/* 4xx other than 401, 403, 429 */
	OUTCOME_AUTH_ERROR,			/* 401, 403 */
	OUTCOME_RATE_LIMITED,		/* 429 */
	OUTCOME_SERVER_ERROR,		/* 5xx */
	OUTCOME_NETWORK_ERROR,		/* no HTTP response: refused, timeout, reset */
	OUTCOME_BAD_RESPONSE,		/* an answer we cannot use: garbage, cut short */
	NUM_OUTCOMES
} ApiOutcome;

/* The kind's key in invicti_scan_stats.requests_by_kind ("poll"). */
extern const char *const api_call_names[NUM_CALL_KINDS];

/* The kind in a sentence ("status request"). */
extern const char *const api_call_nouns[NUM_CALL_KINDS];

/*
 * Whether the request budget serves the kind first: launches and aborts
 * are what a user waits for; polls and imports can wait for them.
 */
extern const bool api_call_urgent[NUM_CALL_KINDS];

/* The outcome's key in invicti_scan_stats.requests_by_kind ("ok"). */
extern const char *const api_outcome_names[NUM_OUTCOMES];

#endif

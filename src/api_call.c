/*
 * api_call.c
 *		Names of the request kinds and outcomes (see api_call.h).  They are
 *		user-visible (statistics keys, log and last_error text): change them
 *		only with an upgrade note.
 */
#include "postgres.h"

#include "api_call.h"

const char *const api_call_names[NUM_CALL_KINDS] = {
	[CALL_LAUNCH] = "launch",
	[CALL_POLL] = "poll",
	[CALL_RECONCILE] = "reconcile",
	[CALL_ABORT] = "abort",
	[CALL_RESULTS] = "results",
	[CALL_SESSIONS] = "sessions",
	[CALL_POLL_LIST] = "poll_list",
	[CALL_SYNC] = "sync",
	[CALL_ADD_TARGET] = "add_target",
	[CALL_FIND_TARGET] = "find_target",
	[CALL_REPORT] = "report",
	[CALL_REPORT_DOWNLOAD] = "report_download",
};

const char *const api_call_nouns[NUM_CALL_KINDS] = {
	[CALL_LAUNCH] = "launch",
	[CALL_POLL] = "status request",
	[CALL_RECONCILE] = "scan list request",
	[CALL_ABORT] = "abort request",
	[CALL_RESULTS] = "findings request",
	[CALL_SESSIONS] = "results request",
	[CALL_POLL_LIST] = "status list request",
	[CALL_SYNC] = "sync request",
	[CALL_ADD_TARGET] = "target creation",
	[CALL_FIND_TARGET] = "target list request",
	[CALL_REPORT] = "report request",
	[CALL_REPORT_DOWNLOAD] = "report download",
};

const bool	api_call_urgent[NUM_CALL_KINDS] = {
	[CALL_LAUNCH] = true,
	[CALL_ABORT] = true,
	[CALL_ADD_TARGET] = true,
};

const char *const api_outcome_names[NUM_OUTCOMES] = {
	[OUTCOME_OK] = "ok",
	[OUTCOME_CLIENT_ERROR] = "client_error",
	[OUTCOME_AUTH_ERROR] = "auth_error",
	[OUTCOME_RATE_LIMITED] = "rate_limited",
	[OUTCOME_SERVER_ERROR] = "server_error",
	[OUTCOME_NETWORK_ERROR] = "network_error",
	[OUTCOME_BAD_RESPONSE] = "bad_response",
};

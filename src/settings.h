/*
 * settings.h
 *		The invicti_scan.* configuration parameters.
 *
 * Every module reads settings through these variables or accessors; only
 * settings.c defines or changes them.
 */
#ifndef INVICTI_SETTINGS_H
#define INVICTI_SETTINGS_H

extern char *invicti_base_url;
extern char *invicti_api_path;
extern char *invicti_database_name; /* defined only when preloaded */
extern char *invicti_api_token_file;
extern char *invicti_ca_file;
extern char *invicti_proxy;
extern int	invicti_poll_interval_s;
extern int	invicti_request_timeout_ms;
extern int	invicti_max_concurrent;
extern int	invicti_retry_max_delay_s;
extern int	invicti_max_response_kb;
extern bool invicti_allow_insecure_http;
extern bool invicti_import_vulnerabilities;
extern bool invicti_notify;
extern int	invicti_history_days;
extern int	invicti_poll_method;
extern int	invicti_max_requests_per_minute;
extern bool invicti_adaptive_rate_limit;
extern int	invicti_sync_interval_s;
extern int	invicti_max_report_kb;
extern int	invicti_report_timeout_s;

/* invicti_scan.poll_method */
typedef enum PollMethod
{
	POLL_METHOD_AUTO,			/* by list, falling back to scan by scan */
	POLL_METHOD_LIST,			/* GET /scans?q=scan_status:... pages */
	POLL_METHOD_SCAN			/* GET /scans/{id} for each scan */
} PollMethod;

extern void invicti_define_settings(void);

/*
 * The API token the worker must send, from api_token_file when that is set,
 * else from api_token.  Never log, display or copy it anywhere else.
 * Returns "" when no token is configured; *problem then (or when the file
 * cannot be used) points to a sentence saying why.
 */
extern const char *invicti_api_token(const char **problem);

/* Re-read api_token_file; the worker calls this at start and on reload. */
extern void invicti_reload_token_file(void);

/*
 * Facts of a URL as libcurl parses it: its host is a loopback address
 * (127.0.0.0/8, ::1, localhost); its scheme is https.  False for a URL
 * that does not parse.
 */
extern bool invicti_url_is_loopback(const char *url);
extern bool invicti_url_is_https(const char *url);

#endif

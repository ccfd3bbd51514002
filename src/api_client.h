/*
 * api_client.h
 *		HTTP transfers to the Invicti API through libcurl's multi interface,
 *		driven by the worker's WaitEventSet.
 */
#ifndef INVICTI_API_CLIENT_H
#define INVICTI_API_CLIENT_H

#include "storage/latch.h"

/* What to send.  All strings are only read during api_client_submit(). */
typedef struct ApiRequest
{
	const char *method;			/* "GET", "POST", "PUT" or "DELETE" */
	const char *url;
	const char *json_body;		/* POST body, or NULL */
	bool		fresh_connection;	/* never reuse a connection (see launch) */
	size_t		max_body;		/* largest body accepted; 0: max_response_size */
	bool		file;			/* a download: accept any type, not only JSON */
} ApiRequest;

/* What came back.  Every pointer is palloc'd in the submitter's context. */
typedef struct ApiResponse
{
	int			curl_code;		/* CURLcode; 0 when the transfer finished */
	long		http_status;	/* 0 when no HTTP response was received */
	bool		request_sent;	/* any byte of the request left this host */
	bool		too_large;		/* body exceeded max_body (max_response_size) */
	char	   *body;			/* NUL-terminated; body_len excludes the NUL */
	size_t		body_len;
	char	   *location;		/* Location header, or NULL */
	char	   *retry_after;	/* Retry-After header, or NULL */
	char	   *content_type;	/* Content-Type header, or NULL */
	/* rate-limit headers, when sent (the X- and IETF draft spellings) */
	char	   *ratelimit_remaining;	/* X-RateLimit-Remaining,
										 * RateLimit-Remaining */
	char	   *ratelimit_reset;	/* X-RateLimit-Reset, RateLimit-Reset */
	char	   *ratelimit;		/* RateLimit (the draft's one-header form) */
	char	   *error;			/* curl's description when curl_code != 0 */
	int64		elapsed_ms;
} ApiResponse;

extern void api_client_init(void);
extern void api_client_cleanup(void);

/*
 * Start a transfer.  Returns false (with *error set, palloc'd) when it could
 * not even be started; nothing was sent then.  The tag comes back with the
 * response, whose strings are allocated in `cxt`.
 */
extern bool api_client_submit(const ApiRequest *req, void *tag,
							  MemoryContext cxt, char **error);

/* Waiting: how many sockets to watch, add them, and curl's own deadline. */
extern int	api_client_socket_count(void);
extern void api_client_add_sockets(WaitEventSet *set);
extern long api_client_timeout_ms(void);

/* After waiting: feed socket readiness and expired timers to libcurl. */
extern void api_client_socket_ready(pgsocket fd, uint32 events);
extern void api_client_run_timers(void);

/* Take one finished transfer; false when none is waiting. */
extern bool api_client_next_completed(void **tag, ApiResponse *resp);

/* A URL-encoded copy of s (for query values), palloc'd. */
extern char *api_client_escape(const char *s);

/* The User-Agent sent with every request. */
extern const char *api_client_user_agent(void);

#endif

/*
 * api_client.c
 *		Runs HTTP transfers to the Invicti API with libcurl's multi interface,
 *		so many requests are in flight at once and none holds up another.
 *
 * The worker owns the waiting: it asks this file which sockets libcurl wants
 * watched and for how long, puts them in a WaitEventSet next to its latch,
 * and feeds readiness back.  So signals, reload and postmaster death are
 * handled during transfers, and no transfer blocks the process.
 *
 * Rules this file keeps:
 *  - libcurl memory and PostgreSQL memory never mix.  Everything a transfer
 *    owns while in flight (buffers, headers, the easy handle) is malloc'd and
 *    freed here; a finished transfer is copied into palloc'd memory in one
 *    place, api_client_next_completed(), and its malloc'd parts freed at once.
 *  - libcurl callbacks never call anything that can ereport() or palloc():
 *    a longjmp through libcurl's stack would corrupt it.
 *  - Requests go only to http/https, never follow redirects (a redirect
 *    would carry X-Auth to another host), verify TLS peers and host names,
 *    use no proxy but invicti_scan.proxy (libcurl would otherwise follow
 *    http_proxy and friends from the postmaster's environment), and stop
 *    reading at invicti_scan.max_response_size.
 *  - Nothing here logs a header: the X-Auth token exists only inside the
 *    header list handed to libcurl, and libcurl is never told to log TLS
 *    keys (SSLKEYLOGFILE is removed from the worker's environment).
 */
#include "postgres.h"

#include <curl/curl.h>

#include "utils/timestamp.h"

#include "api_client.h"
#include "settings.h"

#define EASY_POOL_MAX 64

typedef struct Transfer
{
	CURL	   *easy;
	struct curl_slist *headers;
	void	   *tag;
	MemoryContext cxt;			/* where the response is copied to */
	char	   *buf;			/* response body, malloc'd */
	size_t		len;
	size_t		cap;
	size_t		limit;
	bool		too_large;
	char	   *location;		/* captured headers, malloc'd */
	char	   *retry_after;
	char	   *content_type;
	char	   *ratelimit_remaining;
	char	   *ratelimit_reset;
	char	   *ratelimit;
	char		errbuf[CURL_ERROR_SIZE];
	struct Transfer *prev;
	struct Transfer *next;
} Transfer;

typedef struct WatchedSocket
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN, _OUT or _INOUT */
} WatchedSocket;

static CURLM *multi = NULL;
static Transfer *transfers = NULL;	/* all in flight, doubly linked */

static WatchedSocket *watched = NULL;
static int	n_watched = 0;
static int	cap_watched = 0;

/* libcurl's timer: -1 none, else when to call it back */
static bool timer_armed = false;
static TimestampTz timer_due = 0;

static CURL *easy_pool[EASY_POOL_MAX];
static int	n_easy_pool = 0;

static char user_agent[128];

/* ---- libcurl callbacks: plain C only, no ereport, no palloc ---- */

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	Transfer   *t = (Transfer *) userp;
	size_t		n = size * nmemb;

	if (t->len + n > t->limit)
	{
		t->too_large = true;
		return CURL_WRITEFUNC_ERROR;
	}
	if (t->len + n + 1 > t->cap)
	{
		size_t		newcap = t->cap ? t->cap : 4096;
		char	   *p;

		while (newcap < t->len + n + 1)
			newcap *= 2;
		p = realloc(t->buf, newcap);
		if (p == NULL)
			return CURL_WRITEFUNC_ERROR;
		t->buf = p;
		t->cap = newcap;
	}
	memcpy(t->buf + t->len, data, n);
	t->len += n;
	t->buf[t->len] = '\0';
	return n;
}

/* Forget the headers captured so far (a new response begins, or the end). */
static void
free_headers(Transfer *t)
{
	free(t->location);
	free(t->retry_after);
	free(t->content_type);
	free(t->ratelimit_remaining);
	free(t->ratelimit_reset);
	free(t->ratelimit);
	t->location = t->retry_after = t->content_type = NULL;
	t->ratelimit_remaining = t->ratelimit_reset = t->ratelimit = NULL;
}

/* If the header line is "<name>: value", store a malloc'd copy of value. */
static void
capture_header(const char *line, size_t len, const char *name, char **dest)
{
	size_t		nlen = strlen(name);
	const char *v;
	const char *end = line + len;

	if (len <= nlen || pg_strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
		return;
	v = line + nlen + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	free(*dest);
	*dest = strndup(v, end - v);
}

static size_t
header_cb(char *line, size_t size, size_t nitems, void *userp)
{
	Transfer   *t = (Transfer *) userp;
	size_t		len = size * nitems;

	/* A new status line starts a new response (e.g. after 100 Continue). */
	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0)
	{
		free_headers(t);
		return len;
	}
	capture_header(line, len, "location", &t->location);
	capture_header(line, len, "retry-after", &t->retry_after);
	capture_header(line, len, "content-type", &t->content_type);
	capture_header(line, len, "x-ratelimit-remaining", &t->ratelimit_remaining);
	capture_header(line, len, "ratelimit-remaining", &t->ratelimit_remaining);
	capture_header(line, len, "x-ratelimit-reset", &t->ratelimit_reset);
	capture_header(line, len, "ratelimit-reset", &t->ratelimit_reset);
	capture_header(line, len, "ratelimit", &t->ratelimit);
	return len;
}

static int
socket_cb(CURL *easy pg_attribute_unused(), curl_socket_t fd, int what,
		  void *userp pg_attribute_unused(), void *socketp pg_attribute_unused())
{
	int			i;

	for (i = 0; i < n_watched; i++)
		if (watched[i].fd == fd)
			break;

	if (what == CURL_POLL_REMOVE)
	{
		if (i < n_watched)
			watched[i] = watched[--n_watched];
		return 0;
	}
	if (i == n_watched)
	{
		if (n_watched == cap_watched)
		{
			int			newcap = cap_watched ? cap_watched * 2 : 16;
			WatchedSocket *p = realloc(watched, newcap * sizeof(WatchedSocket));

			if (p == NULL)
				return -1;
			watched = p;
			cap_watched = newcap;
		}
		n_watched++;
	}
	watched[i].fd = fd;
	watched[i].what = what;
	return 0;
}

static int
timer_cb(CURLM *m pg_attribute_unused(), long timeout_ms, void *userp pg_attribute_unused())
{
	if (timeout_ms < 0)
		timer_armed = false;
	else
	{
		timer_armed = true;
		timer_due = GetCurrentTimestamp() + (TimestampTz) timeout_ms * 1000;
	}
	return 0;
}

/* ---- setup and teardown ---- */

/* CURLMOPT_MAXCONNECTS as last set; follows max_concurrent_requests. */
static int	cache_size = 0;

void
api_client_init(void)
{
	const curl_version_info_data *v;

	/*
	 * libcurl writes every TLS session key to $SSLKEYLOGFILE when the
	 * environment names one: whoever reads that file and captured the traffic
	 * reads the token.  The postmaster's environment is not ours.
	 */
	if (getenv("SSLKEYLOGFILE") != NULL)
	{
		unsetenv("SSLKEYLOGFILE");
		ereport(LOG,
				(errmsg("invicti_scan worker: ignoring SSLKEYLOGFILE from the server's environment"),
				 errdetail("TLS session keys of requests carrying the API token are never written to a file.")));
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libcurl")));
	multi = curl_multi_init();
	if (multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);

	v = curl_version_info(CURLVERSION_NOW);
	snprintf(user_agent, sizeof(user_agent),
			 "invicti_scan/%s (PostgreSQL %s) libcurl/%s",
			 INVICTI_SCAN_VERSION, PG_MAJORVERSION, v->version);
}

static void
free_transfer(Transfer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		transfers = t->next;
	if (t->next)
		t->next->prev = t->prev;

	curl_multi_remove_handle(multi, t->easy);
	if (n_easy_pool < EASY_POOL_MAX)
	{
		curl_easy_reset(t->easy);
		easy_pool[n_easy_pool++] = t->easy;
	}
	else
		curl_easy_cleanup(t->easy);
	curl_slist_free_all(t->headers);
	free(t->buf);
	free_headers(t);
	free(t);
}

void
api_client_cleanup(void)
{
	if (multi == NULL)
		return;
	while (transfers)
		free_transfer(transfers);
	while (n_easy_pool > 0)
		curl_easy_cleanup(easy_pool[--n_easy_pool]);
	curl_multi_cleanup(multi);
	multi = NULL;
	free(watched);
	watched = NULL;
	n_watched = cap_watched = 0;
	timer_armed = false;
	curl_global_cleanup();
}

const char *
api_client_user_agent(void)
{
	return user_agent;
}

char *
api_client_escape(const char *s)
{
	char	   *esc = curl_easy_escape(NULL, s, 0);
	char	   *copy = NULL;

	/* copy without any chance of an error before curl's string is freed */
	if (esc != NULL)
	{
		copy = palloc_extended(strlen(esc) + 1, MCXT_ALLOC_NO_OOM);
		if (copy)
			strcpy(copy, esc);
		curl_free(esc);
	}
	if (copy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return copy;
}

/* ---- submitting ---- */

static struct curl_slist *
build_headers(const ApiRequest *req, bool *ok)
{
	struct curl_slist *list = NULL;
	struct curl_slist *tmp;
	const char *problem;
	const char *token = invicti_api_token(&problem);
	size_t		hlen = strlen(token) + sizeof("X-Auth: ");
	char	   *auth = malloc(hlen);

	*ok = false;
	if (auth == NULL)
		return NULL;
	snprintf(auth, hlen, "X-Auth: %s", token);
	tmp = curl_slist_append(list, auth);
	explicit_bzero(auth, hlen);
	free(auth);
	if (tmp == NULL)
		return NULL;
	list = tmp;

#define APPEND_HEADER(h) \
	do { \
		if ((tmp = curl_slist_append(list, (h))) == NULL) \
		{ curl_slist_free_all(list); return NULL; } \
		list = tmp; \
	} while (0)

	APPEND_HEADER(req->file ? "Accept: */*" : "Accept: application/json");

	/*
	 * The spec consumes application/json, and says so for every operation: a
	 * POST or PUT without a body (abort, resume, trigger) says it too, or
	 * libcurl would call it application/x-www-form-urlencoded.
	 */
	if (req->json_body || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0)
		APPEND_HEADER("Content-Type: application/json");
	/* no "Expect: 100-continue" round trip for our small bodies */
	APPEND_HEADER("Expect:");
#undef APPEND_HEADER

	*ok = true;
	return list;
}

bool
api_client_submit(const ApiRequest *req, void *tag, MemoryContext cxt,
				  char **error)
{
	Transfer   *t;
	CURL	   *e;
	bool		ok;
	CURLcode	rc = CURLE_OK;
	long		timeout = invicti_request_timeout_ms;

	t = calloc(1, sizeof(Transfer));
	if (t == NULL)
	{
		*error = pstrdup("out of memory starting an HTTP request");
		return false;
	}
	t->headers = build_headers(req, &ok);
	e = n_easy_pool > 0 ? easy_pool[--n_easy_pool] : curl_easy_init();
	if (!ok || e == NULL)
	{
		if (e)
			curl_easy_cleanup(e);
		curl_slist_free_all(t->headers);
		free(t);
		*error = pstrdup("out of memory starting an HTTP request");
		return false;
	}
	t->easy = e;
	t->tag = tag;
	t->cxt = cxt;
	t->limit = req->max_body > 0 ? req->max_body : (size_t) invicti_max_response_kb * 1024;

#define SETOPT(opt, val) \
	do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, (opt), (val)); } while (0)

	SETOPT(CURLOPT_URL, req->url);
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_NOPROGRESS, 1L);
	SETOPT(CURLOPT_TIMEOUT_MS, timeout);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, Min(timeout, 10000L));
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	if (invicti_ca_file && invicti_ca_file[0])
		SETOPT(CURLOPT_CAINFO, invicti_ca_file);
	/* one explicit proxy or none: never http_proxy & co. from the environment */
	SETOPT(CURLOPT_PROXY, invicti_proxy ? invicti_proxy : "");
	SETOPT(CURLOPT_NOPROXY, "");
	SETOPT(CURLOPT_HTTPHEADER, t->headers);
	SETOPT(CURLOPT_USERAGENT, user_agent);
	SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) t->limit);
	SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(CURLOPT_WRITEDATA, t);
	SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
	SETOPT(CURLOPT_HEADERDATA, t);
	SETOPT(CURLOPT_ERRORBUFFER, t->errbuf);
	SETOPT(CURLOPT_PRIVATE, t);
	if (strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0)
	{
		SETOPT(CURLOPT_POST, 1L);
		SETOPT(CURLOPT_COPYPOSTFIELDS, req->json_body ? req->json_body : "");
		if (req->method[1] == 'U')
			SETOPT(CURLOPT_CUSTOMREQUEST, "PUT");
	}
	else if (strcmp(req->method, "GET") != 0)
		SETOPT(CURLOPT_CUSTOMREQUEST, req->method);

	/*
	 * libcurl silently re-sends a request once when a reused keep-alive
	 * connection turns out to be closed before any response byte arrived. For
	 * a launch that could create a second scan (the server may have acted
	 * before closing), so launches always use a new connection and leave none
	 * behind.
	 */
	if (req->fresh_connection)
	{
		SETOPT(CURLOPT_FRESH_CONNECT, 1L);
		SETOPT(CURLOPT_FORBID_REUSE, 1L);
	}
#undef SETOPT

	/*
	 * Keep a keep-alive connection for every request that may be in flight.
	 * libcurl's default cache holds 4 per transfer currently added, so when
	 * few are running it closes connections that the next burst of polls must
	 * open again (about one poll in ten, measured).
	 */
	if (cache_size != invicti_max_concurrent)
	{
		cache_size = invicti_max_concurrent;
		curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) cache_size);
	}

	if (rc == CURLE_OK)
	{
		CURLMcode	mrc = curl_multi_add_handle(multi, e);

		if (mrc != CURLM_OK)
		{
			*error = psprintf("could not start an HTTP request: %s",
							  curl_multi_strerror(mrc));
			rc = CURLE_FAILED_INIT;
		}
	}
	else
		*error = psprintf("could not set up an HTTP request: %s",
						  curl_easy_strerror(rc));

	if (rc != CURLE_OK)
	{
		curl_easy_cleanup(e);
		curl_slist_free_all(t->headers);
		free(t);
		return false;
	}

	t->next = transfers;
	if (transfers)
		transfers->prev = t;
	transfers = t;
	return true;
}

/* ---- waiting ---- */

int
api_client_socket_count(void)
{
	return n_watched;
}

void
api_client_add_sockets(WaitEventSet *set)
{
	int			i;

	for (i = 0; i < n_watched; i++)
	{
		uint32		events = 0;

		if (watched[i].what & CURL_POLL_IN)
			events |= WL_SOCKET_READABLE;
		if (watched[i].what & CURL_POLL_OUT)
			events |= WL_SOCKET_WRITEABLE;
		if (events)
			AddWaitEventToSet(set, events, watched[i].fd, NULL, NULL);
	}
}

long
api_client_timeout_ms(void)
{
	TimestampTz now;

	if (!timer_armed)
		return -1;
	now = GetCurrentTimestamp();
	if (timer_due <= now)
		return 0;
	return (long) ((timer_due - now + 999) / 1000);
}

void
api_client_socket_ready(pgsocket fd, uint32 events)
{
	int			mask = 0;
	int			running;

	if (events & WL_SOCKET_READABLE)
		mask |= CURL_CSELECT_IN;
	if (events & WL_SOCKET_WRITEABLE)
		mask |= CURL_CSELECT_OUT;
	curl_multi_socket_action(multi, fd, mask, &running);
}

void
api_client_run_timers(void)
{
	int			running;

	if (timer_armed && timer_due <= GetCurrentTimestamp())
	{
		timer_armed = false;
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
}

/* ---- completion ---- */

/*
 * Copy n bytes plus a NUL into the current context without ever throwing:
 * the transfer must be freed below whatever happens.
 */
static char *
copy_bytes(const char *s, size_t n, bool *oom)
{
	char	   *p;

	if (s == NULL)
		return NULL;
	p = palloc_extended(n + 1, MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
	if (p == NULL)
	{
		*oom = true;
		return NULL;
	}
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

#define copy_str(s, oom) copy_bytes((s), (s) ? strlen(s) : 0, (oom))

bool
api_client_next_completed(void **tag, ApiResponse *resp)
{
	CURLMsg    *msg;
	int			pending;

	while ((msg = curl_multi_info_read(multi, &pending)) != NULL)
	{
		Transfer   *t;
		long		request_size = 0;
		curl_off_t	total_us = 0;
		MemoryContext old;
		bool		oom = false;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
		old = MemoryContextSwitchTo(t->cxt);

		memset(resp, 0, sizeof(ApiResponse));
		resp->curl_code = msg->data.result;
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &resp->http_status);
		curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &request_size);
		curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &total_us);
		resp->request_sent = request_size > 0;
		resp->too_large = t->too_large ||
			msg->data.result == CURLE_FILESIZE_EXCEEDED;
		resp->elapsed_ms = total_us / 1000;
		resp->body = copy_bytes(t->buf ? t->buf : "", t->len, &oom);
		resp->body_len = resp->body ? t->len : 0;
		resp->location = copy_str(t->location, &oom);
		resp->retry_after = copy_str(t->retry_after, &oom);
		resp->content_type = copy_str(t->content_type, &oom);
		resp->ratelimit_remaining = copy_str(t->ratelimit_remaining, &oom);
		resp->ratelimit_reset = copy_str(t->ratelimit_reset, &oom);
		resp->ratelimit = copy_str(t->ratelimit, &oom);
		if (resp->curl_code != CURLE_OK)
			resp->error = copy_str(t->errbuf[0] ? t->errbuf
								   : curl_easy_strerror(resp->curl_code), &oom);
		MemoryContextSwitchTo(old);
		*tag = t->tag;
		free_transfer(t);
		if (oom)
		{
			/* the answer is lost, but its transfer is not: report it as such */
			resp->curl_code = CURLE_OUT_OF_MEMORY;
			resp->error = NULL;
		}
		return true;
	}
	return false;
}

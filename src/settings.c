/*
 * settings.c
 *		Defines the invicti_scan.* configuration parameters and keeps the API
 *		token secret.
 *
 * The token is the one secret this extension holds: it can start active
 * security scans.  Its parameter is superuser-only (GUC_SUPERUSER_ONLY), and
 * on top of that the stored value is never the token: the check hook moves
 * the real value into the hook's private "extra" and leaves a constant mask
 * in the variable.  So SHOW, current_setting(), pg_settings (even for
 * superusers and pg_read_all_settings) and the server's own "parameter
 * changed" log line on reload only ever see the mask.  The token can also
 * come from a file (invicti_scan.api_token_file) that only the server can
 * read, so it need not sit in postgresql.conf at all.
 *
 * This file must never log, display or copy the token; only
 * invicti_api_token() hands it out, to the request builder.
 *
 * All connection settings are PGC_SIGHUP: they only matter to the worker,
 * which applies them on reload without a restart.
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "pg_compat.h"
#include "settings.h"

#define TOKEN_MASK "********"
#define TOKEN_FILE_MAX 16384
/* jsonb holds at most 256 MB, and a response must fit one allocation */
#define MAX_RESPONSE_KB (256 * 1024)

char	   *invicti_base_url = NULL;
char	   *invicti_api_path = NULL;
char	   *invicti_database_name = NULL;
char	   *invicti_api_token_file = NULL;
char	   *invicti_ca_file = NULL;
char	   *invicti_proxy = NULL;
int			invicti_poll_interval_s = 300;
int			invicti_request_timeout_ms = 30000;
int			invicti_max_concurrent = 16;
int			invicti_retry_max_delay_s = 300;
int			invicti_max_response_kb = 8192;
bool		invicti_allow_insecure_http = false;
bool		invicti_import_vulnerabilities = true;
bool		invicti_notify = false;
int			invicti_history_days = 0;
int			invicti_poll_method = POLL_METHOD_AUTO;
int			invicti_max_requests_per_minute = 0;
bool		invicti_adaptive_rate_limit = true;
int			invicti_sync_interval_s = 3600;
int			invicti_max_report_kb = 51200;
int			invicti_report_timeout_s = 3600;

static const struct config_enum_entry poll_method_options[] = {
	{"auto", POLL_METHOD_AUTO, false},
	{"list", POLL_METHOD_LIST, false},
	{"scan", POLL_METHOD_SCAN, false},
	{NULL, 0, false}
};

/* The variable GUC sees: always the mask (or empty), never the token. */
static char *api_token_masked = NULL;

/* The real token from the parameter, owned by GUC as the hook's "extra". */
static const char *api_token_real = "";

/* The real token from api_token_file, owned by this file (malloc). */
static char *file_token = NULL;
static char file_problem[256];

/*
 * Keep the token out of the GUC variable: stash it in *extra (in GUC's own
 * memory, see pg_compat.h) and replace *newval with the mask.  The
 * mask is the same whether or not a token is set, so the server's reload log
 * never finds a "change" to report (it would print the raw file value).
 */
static bool
check_api_token(char **newval, void **extra, GucSource source pg_attribute_unused())
{
	const char *real = *newval ? *newval : "";
	char	   *copy;
	char	   *mask;

	copy = compat_guc_strdup(real);
	mask = compat_guc_strdup(TOKEN_MASK);
	if (copy == NULL || mask == NULL)
	{
		if (copy)
			compat_guc_free(copy);
		if (mask)
			compat_guc_free(mask);
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errmsg("out of memory");
		return false;
	}
	if (*newval)
	{
		explicit_bzero(*newval, strlen(*newval));
		compat_guc_free(*newval);
	}
	*newval = mask;
	*extra = copy;
	return true;
}

static void
assign_api_token(const char *newval pg_attribute_unused(), void *extra)
{
	api_token_real = extra ? (const char *) extra : "";
}

static const char *
show_api_token(void)
{
	return api_token_real[0] != '\0' ? TOKEN_MASK : "";
}

/*
 * Parse a URL the way libcurl will; *problem says what is wrong with it (a
 * sentence), or is NULL.  Only http and https, without credentials, query
 * or fragment.  Returns the parsed handle (curl_url_cleanup it) or NULL.
 */
static CURLU *
parse_url(const char *url, const char **problem)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	char	   *part = NULL;

	*problem = NULL;
	if (u == NULL)
		*problem = "Out of memory.";
	else if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
		*problem = "The value is not a valid URL.";
	else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
			 (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0))
		*problem = "Only http:// and https:// URLs are allowed.";
	else if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK)
		*problem = "The URL must not contain a user name or password.";
	else if (curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK)
		*problem = "The URL must not contain a query string.";
	else if (curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK)
		*problem = "The URL must not contain a fragment.";
	curl_free(scheme);
	curl_free(part);
	if (*problem && u)
	{
		curl_url_cleanup(u);
		u = NULL;
	}
	return u;
}

/*
 * base_url: http or https, a host, optionally a port and a path prefix.
 * The value kept is the URL as libcurl normalises it ("http:/host" becomes
 * "http://host"), without a trailing slash, so what is shown, checked and
 * requested is one and the same URL.  Whether plain http is acceptable
 * depends on allow_insecure_http and is decided by the worker
 * (worker_config.c) on the parsed scheme and host.
 */
static bool
check_base_url(char **newval, void **extra pg_attribute_unused(),
			   GucSource source pg_attribute_unused())
{
	const char *problem;
	CURLU	   *u;
	char	   *normal = NULL;
	char	   *copy;
	size_t		len;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	u = parse_url(*newval, &problem);
	if (u == NULL)
	{
		GUC_check_errdetail("%s", problem);
		return false;
	}
	if (curl_url_get(u, CURLUPART_URL, &normal, 0) != CURLUE_OK)
	{
		curl_url_cleanup(u);
		GUC_check_errdetail("The value is not a valid URL.");
		return false;
	}
	len = strlen(normal);
	while (len > 0 && normal[len - 1] == '/')
		normal[--len] = '\0';
	copy = compat_guc_strdup(normal);
	curl_free(normal);
	curl_url_cleanup(u);
	if (copy == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errmsg("out of memory");
		return false;
	}
	compat_guc_free(*newval);
	*newval = copy;
	return true;
}

/*
 * proxy: empty (no proxy at all: libcurl's http_proxy and friends from the
 * server's environment are ignored), or one explicit proxy.  Credentials
 * are refused: the value would show in the server log when it changes.
 */
static bool
check_proxy(char **newval, void **extra pg_attribute_unused(),
			GucSource source pg_attribute_unused())
{
	CURLU	   *u = NULL;
	char	   *scheme = NULL;
	char	   *part = NULL;
	bool		ok = false;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if ((u = curl_url()) == NULL)
		GUC_check_errdetail("Out of memory.");
	else if (curl_url_set(u, CURLUPART_URL, *newval, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
		GUC_check_errdetail("The value is not a valid URL.");
	else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
			 (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0 &&
			  strcmp(scheme, "socks5") != 0 && strcmp(scheme, "socks5h") != 0))
		GUC_check_errdetail("Only http://, https://, socks5:// and socks5h:// proxies are allowed.");
	else if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK)
		GUC_check_errdetail("The proxy URL must not contain a user name or password.");
	else
		ok = true;
	curl_free(scheme);
	curl_free(part);
	curl_url_cleanup(u);
	return ok;
}

/*
 * api_path: the API's path prefix, "/api/v1" (for a server behind a proxy
 * that mounts the API elsewhere).  Plain path segments only, so nothing a
 * prefix holds can change which host or resource a request reaches.
 */
static bool
check_api_path(char **newval, void **extra pg_attribute_unused(),
			   GucSource source pg_attribute_unused())
{
	const char *p = *newval;
	size_t		len;

	if (p == NULL || p[0] != '/')
	{
		GUC_check_errdetail("The path must start with \"/\".");
		return false;
	}
	for (; *p; p++)
	{
		if (!(isalnum((unsigned char) *p) || strchr("/._~-", *p)))
		{
			GUC_check_errdetail("Only letters, digits and \"/._~-\" are allowed.");
			return false;
		}
	}
	if (strstr(*newval, "/../") || strstr(*newval, "//") ||
		(strlen(*newval) >= 3 && strcmp(*newval + strlen(*newval) - 3, "/..") == 0))
	{
		GUC_check_errdetail("The path must not contain empty or \"..\" segments.");
		return false;
	}
	len = strlen(*newval);
	while (len > 1 && (*newval)[len - 1] == '/')
		(*newval)[--len] = '\0';
	return true;
}

void
invicti_define_settings(void)
{
	DefineCustomStringVariable("invicti_scan.base_url",
							   "Base URL of the Invicti API, e.g. https://platform.invicti.com.",
							   "The worker sends requests only to this URL plus the fixed API paths.",
							   &invicti_base_url, "",
							   PGC_SIGHUP, 0,
							   check_base_url, NULL, NULL);

	DefineCustomStringVariable("invicti_scan.api_path",
							   "Path prefix of the Invicti API under base_url.",
							   NULL,
							   &invicti_api_path, "/api/v1",
							   PGC_SIGHUP, 0,
							   check_api_path, NULL, NULL);

	DefineCustomStringVariable("invicti_scan.proxy",
							   "Proxy for requests to the Invicti API; empty means none.",
							   "The proxy variables of the server's environment (http_proxy and others) are never used.",
							   &invicti_proxy, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   check_proxy, NULL, NULL);

	DefineCustomStringVariable("invicti_scan.api_token",
							   "Invicti API token sent in the X-Auth header.",
							   "Never displayed; prefer invicti_scan.api_token_file.",
							   &api_token_masked, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   check_api_token, assign_api_token, show_api_token);

	DefineCustomStringVariable("invicti_scan.api_token_file",
							   "File holding the Invicti API token; overrides invicti_scan.api_token.",
							   "The file must be readable by the server and by nobody else.",
							   &invicti_api_token_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	/*
	 * Only the worker uses this, and it exists only when the library is
	 * preloaded; PostgreSQL allows postmaster-level settings only then.
	 */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomStringVariable("invicti_scan.database_name",
								   "Database the invicti_scan worker connects to.",
								   NULL,
								   &invicti_database_name, "postgres",
								   PGC_POSTMASTER, 0,
								   NULL, NULL, NULL);

	DefineCustomIntVariable("invicti_scan.poll_interval",
							"Time between two status reads of one running scan.",
							"Invicti advises 5 to 10 minutes.",
							&invicti_poll_interval_s, 300, 1, 7 * 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("invicti_scan.request_timeout",
							"Time limit for one HTTP request to the Invicti API.",
							NULL,
							&invicti_request_timeout_ms, 30000, 100, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("invicti_scan.max_concurrent_requests",
							"Maximum number of HTTP requests in flight at once.",
							NULL,
							&invicti_max_concurrent, 16, 1, 1024,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("invicti_scan.retry_max_delay",
							"Upper bound of the exponential backoff between retries.",
							NULL,
							&invicti_retry_max_delay_s, 300, 1, 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("invicti_scan.max_response_size",
							"Largest API response body the worker accepts.",
							"Larger bodies are cut off and treated as a failed request.",
							&invicti_max_response_kb, 8192, 64, MAX_RESPONSE_KB,
							PGC_SIGHUP, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomStringVariable("invicti_scan.ca_file",
							   "File of CA certificates to verify the Invicti API's TLS certificate.",
							   "Empty means the system's default CA store.",
							   &invicti_ca_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("invicti_scan.allow_insecure_http",
							 "Allow plain http:// base URLs that are not loopback addresses.",
							 "The API token would cross the network unencrypted.",
							 &invicti_allow_insecure_http, false,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("invicti_scan.import_vulnerabilities",
							 "Import the findings of completed scans into invicti_vulnerabilities.",
							 NULL,
							 &invicti_import_vulnerabilities, true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("invicti_scan.notify",
							 "Send NOTIFY invicti_scan, with the row id, when a scan's status changes.",
							 "Any role that can connect can listen: the payload is only the row id.",
							 &invicti_notify, false,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("invicti_scan.history_days",
							"Days to keep finished scans (and their findings); 0 keeps them forever.",
							"The worker deletes older finished scans in small batches.",
							&invicti_history_days, 0, 0, 100 * 366,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("invicti_scan.poll_method",
							 "How running scans are refreshed: auto, list or scan.",
							 "list reads the running scans 100 to a page (GET /scans with a scan_status "
							 "filter); scan asks for each scan (GET /scans/{id}); auto lists, and falls "
							 "back to scan by scan when the server does not filter its list or leaves "
							 "the sessions out.",
							 &invicti_poll_method, POLL_METHOD_AUTO, poll_method_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("invicti_scan.max_requests_per_minute",
							"Sets a ceiling on the API requests the worker sends in a minute; 0 sets none.",
							"Without a ceiling the worker sends as fast as the server accepts "
							"(adaptive_rate_limit); launches and aborts are served before polls and "
							"imports.",
							&invicti_max_requests_per_minute, 0, 0, 60000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("invicti_scan.adaptive_rate_limit",
							 "Slows the worker's requests down when the API answers 429, and speeds them "
							 "up again when it stops.",
							 "The rate is cut once per window on a 429 and grows back within seconds "
							 "(AIMD); a minute without a 429 lifts it.  Retry-After and rate-limit "
							 "headers are obeyed either way.",
							 &invicti_adaptive_rate_limit, true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("invicti_scan.sync_interval",
							"Time between two syncs of the targets, scanning profiles and report "
							"templates; 0 syncs only when invicti_sync() asks.",
							"The worker also syncs when it starts.",
							&invicti_sync_interval_s, 3600, 0, 7 * 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("invicti_scan.max_report_size",
							"Largest report file the worker downloads and stores.",
							"A larger report fails with a message saying so.",
							&invicti_max_report_kb, 51200, 1, 256 * 1024,
							PGC_SIGHUP, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("invicti_scan.report_timeout",
							"How long a requested report may take to be generated before it fails.",
							NULL,
							&invicti_report_timeout_s, 3600, 1, 7 * 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("invicti_scan");
}

/* Forget the file token, wiping it first. */
static void
clear_file_token(void)
{
	if (file_token)
	{
		explicit_bzero(file_token, strlen(file_token));
		free(file_token);
		file_token = NULL;
	}
}

void
invicti_reload_token_file(void)
{
	struct stat st;
	char		buf[TOKEN_FILE_MAX + 1];
	ssize_t		n;
	size_t		len = 0;
	int			fd;

	clear_file_token();
	file_problem[0] = '\0';
	if (invicti_api_token_file == NULL || invicti_api_token_file[0] == '\0')
		return;

	fd = open(invicti_api_token_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		snprintf(file_problem, sizeof(file_problem),
				 "invicti_scan.api_token_file cannot be opened: %m");
		return;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		snprintf(file_problem, sizeof(file_problem),
				 "invicti_scan.api_token_file is not a regular file");
	else if (st.st_mode & (S_IRWXG | S_IRWXO))
		snprintf(file_problem, sizeof(file_problem),
				 "invicti_scan.api_token_file is accessible to other users; make it mode 0600");
	else
	{
		while (len < TOKEN_FILE_MAX &&
			   (n = read(fd, buf + len, TOKEN_FILE_MAX - len)) > 0)
			len += n;
		while (len > 0 && isspace((unsigned char) buf[len - 1]))
			len--;
		buf[len] = '\0';
		if (len == 0)
			snprintf(file_problem, sizeof(file_problem),
					 "invicti_scan.api_token_file is empty");
		else if (strpbrk(buf, "\r\n") != NULL)
			snprintf(file_problem, sizeof(file_problem),
					 "invicti_scan.api_token_file must hold the token on a single line");
		else if ((file_token = strdup(buf)) == NULL)
			snprintf(file_problem, sizeof(file_problem), "out of memory");
	}
	explicit_bzero(buf, sizeof(buf));
	close(fd);
}

const char *
invicti_api_token(const char **problem)
{
	*problem = NULL;
	if (invicti_api_token_file != NULL && invicti_api_token_file[0] != '\0')
	{
		if (file_token == NULL)
		{
			*problem = file_problem[0] ? file_problem
				: "invicti_scan.api_token_file has not been read";
			return "";
		}
		return file_token;
	}
	if (api_token_real[0] == '\0')
		*problem = "no API token is configured: set invicti_scan.api_token_file or invicti_scan.api_token";
	else if (strpbrk(api_token_real, "\r\n") != NULL)
	{
		*problem = "invicti_scan.api_token must not contain line breaks";
		return "";
	}
	return api_token_real;
}

bool
invicti_url_is_loopback(const char *url)
{
	const char *problem;
	CURLU	   *u = parse_url(url, &problem);
	char	   *host = NULL;
	bool		loopback = false;

	if (u != NULL && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
	{
		struct in_addr a4;

		if (pg_strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
			loopback = true;
		else if (inet_pton(AF_INET, host, &a4) == 1)
			loopback = (ntohl(a4.s_addr) >> 24) == 127;
	}
	curl_free(host);
	curl_url_cleanup(u);
	return loopback;
}

bool
invicti_url_is_https(const char *url)
{
	const char *problem;
	CURLU	   *u = parse_url(url, &problem);
	char	   *scheme = NULL;
	bool		https = false;

	if (u != NULL && curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK)
		https = strcmp(scheme, "https") == 0;
	curl_free(scheme);
	curl_url_cleanup(u);
	return https;
}

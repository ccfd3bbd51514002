/*
 * worker_config.c
 *		The worker's view of its settings: reloading them, and deciding
 *		whether requests may be sent at all.
 *
 * A request needs a base URL, a token, and a way to send the token that
 * does not cross the network in clear text: https, or plain http to a
 * loopback address without a proxy, unless invicti_scan.allow_insecure_http
 * says otherwise.  The decision is made on the URL as libcurl parses it
 * (settings.c), never on its spelling.  A problem is logged once as a
 * WARNING and its end once at LOG; until then nothing is sent and nothing
 * is lost (rows wait).
 *
 * Rules: never log or show the token; everything here is decided from the
 * settings alone, without the database or the network.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "postmaster/interrupt.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "retry_policy.h"
#include "settings.h"
#include "worker_config.h"

static const char *problem = NULL;
static char *problem_logged = NULL;
static uint32 settings_hash = 0;

/* A hash of everything that decides where and how requests go. */
static uint32
hash_api_settings(void)
{
	const char *token_problem;
	const char *parts[7];
	uint32		h = 0;
	int			i;

	parts[0] = invicti_base_url;
	parts[1] = invicti_api_path;
	parts[2] = invicti_api_token(&token_problem);
	parts[3] = invicti_ca_file;
	parts[4] = invicti_allow_insecure_http ? "on" : "off";
	parts[5] = invicti_api_token_file;
	parts[6] = invicti_proxy;
	for (i = 0; i < (int) lengthof(parts); i++)
		h = hash_combine(h, hash_bytes((const unsigned char *) parts[i], strlen(parts[i])));
	return h;
}

static const char *
find_problem(void)
{
	const char *token_problem;

	if (invicti_base_url == NULL || invicti_base_url[0] == '\0')
		return "invicti_scan.base_url is not set";
	if (!invicti_allow_insecure_http && !invicti_url_is_https(invicti_base_url))
	{
		if (invicti_proxy[0] != '\0')
			return "invicti_scan.base_url uses plain http:// through invicti_scan.proxy, so the API token would reach the proxy unencrypted; use https:// or set invicti_scan.allow_insecure_http = on";
		if (!invicti_url_is_loopback(invicti_base_url))
			return "invicti_scan.base_url uses plain http:// to a host that is not a loopback address, so the API token would cross the network unencrypted; use https:// or set invicti_scan.allow_insecure_http = on";
	}
	(void) invicti_api_token(&token_problem);
	return token_problem;
}

static void
check(void)
{
	problem = find_problem();
	if (problem == NULL && problem_logged != NULL)
	{
		ereport(LOG,
				(errmsg("invicti_scan worker: configuration is complete; sending requests to %s",
						invicti_base_url)));
		pfree(problem_logged);
		problem_logged = NULL;
	}
	else if (problem != NULL &&
			 (problem_logged == NULL || strcmp(problem_logged, problem) != 0))
	{
		ereport(WARNING,
				(errmsg("invicti_scan worker: not sending requests: %s", problem),
				 errdetail("Scans stay pending until this is fixed; nothing is lost."),
				 errhint("Fix the setting in postgresql.conf and reload the configuration.")));
		if (problem_logged)
			pfree(problem_logged);
		problem_logged = MemoryContextStrdup(TopMemoryContext, problem);
	}
}

void
worker_config_load(void)
{
	invicti_reload_token_file();
	settings_hash = hash_api_settings();
	check();
}

bool
worker_config_reload(void)
{
	uint32		before = settings_hash;

	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	invicti_reload_token_file();
	settings_hash = hash_api_settings();
	check();
	if (settings_hash == before)
		return false;
	ereport(LOG,
			(errmsg("invicti_scan worker: API settings changed; retrying paused requests now")));
	api_pause_reset();
	return true;
}

const char *
worker_config_problem(void)
{
	return problem;
}

/*
 * target_address.c
 *		What the spec's Target.address may be ("host|url", at most 1024
 *		characters), decided before a target request is queued, so that a
 *		bad address is the caller's error, not a row that fails later.
 *
 * Accepted: an http or https URL with a host, as libcurl parses it (no
 * user name or password in it: the API would store them); or a bare host
 * name or IPv4 address with an optional port.  Nothing with spaces or
 * control characters.  Never looks anything up on the network.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "mb/pg_wchar.h"

#include "target_address.h"

#define ADDRESS_MAX_CHARS 1024

/* A DNS name or dotted IPv4 address: labels of letters, digits and inner hyphens. */
static bool
plain_host(const char *s, size_t len)
{
	size_t		label = 0;
	size_t		i;

	if (len == 0 || len > 253)
		return false;
	for (i = 0; i < len; i++)
	{
		char		c = s[i];

		if (c == '.')
		{
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
		}
		else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
				 (c == '-' && label > 0))
		{
			if (++label > 63)
				return false;
		}
		else
			return false;
	}
	return label > 0 && s[len - 1] != '-';
}

static bool
port_number(const char *s)
{
	long		port = 0;

	if (*s == '\0' || strlen(s) > 5)
		return false;
	for (; *s; s++)
	{
		if (*s < '0' || *s > '9')
			return false;
		port = port * 10 + (*s - '0');
	}
	return port >= 1 && port <= 65535;
}

static const char *
url_problem(const char *address)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *user = NULL;
	const char *problem = NULL;

	if (u == NULL)
		elog(ERROR, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, address, 0) != CURLUE_OK)
		problem = "it is not a URL libcurl can parse";
	else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
			 (pg_strcasecmp(scheme, "http") != 0 && pg_strcasecmp(scheme, "https") != 0))
		problem = "only http and https URLs are targets";
	else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0')
		problem = "the URL has no host";
	else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
		problem = "the URL carries a user name or password; give credentials to Invicti, not in the address";
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_url_cleanup(u);
	return problem;
}

const char *
target_address_problem(const char *address)
{
	const char *p;
	const char *colon;

	if (address[0] == '\0')
		return "it is empty";
	if (pg_mbstrlen(address) > ADDRESS_MAX_CHARS)
		return "it is longer than 1024 characters";
	for (p = address; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7f)
			return "it contains a space or a control character";
	if (strstr(address, "://") != NULL)
		return url_problem(address);

	/* a bare host, with an optional port */
	colon = strchr(address, ':');
	if (colon != NULL && !port_number(colon + 1))
		return "the part after the colon is not a port number from 1 to 65535";
	if (!plain_host(address, colon ? (size_t) (colon - address) : strlen(address)))
		return "it is neither an http(s) URL nor a host name";
	return NULL;
}

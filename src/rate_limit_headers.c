/*
 * rate_limit_headers.c
 *		Reading a server's rate-limit headers: how many requests its window
 *		has left, and in how many seconds it resets.
 *
 * The vendor's spec names no such header (nor 429 at all), but servers and
 * the gateways in front of them send them, in three spellings, all read:
 *
 *   X-RateLimit-Remaining: 57      X-RateLimit-Reset: 30    (de facto; the
 *                                  reset is also seen as a Unix time)
 *   RateLimit-Remaining: 57        RateLimit-Reset: 30      (IETF httpapi
 *                                  draft, up to -06)
 *   RateLimit: limit=100, remaining=57, reset=30            (draft -03 to -06)
 *   RateLimit: "default";r=57;t=30                          (draft -07 on)
 *
 * Rules: nothing here throws, allocates or trusts a value: a number that is
 * not a plain non-negative decimal, a reset more than a day away, or a
 * header that says only half of it, is no window at all.
 */
#include "postgres.h"

#include <math.h>
#include <time.h>

#include "rate_limit_headers.h"

/* A reset further away than this is not believed. */
#define MAX_RESET_S 86400.0
/* A reset above this is a Unix time, not a delay (2001-09-09). */
#define EPOCH_THRESHOLD 1e9

/* A plain non-negative decimal number of at most 15 digits, or -1. */
static double
plain_number(const char *s, size_t len)
{
	char		buf[24];
	char	   *end;
	size_t		i;
	bool		dot = false;
	double		v;

	while (len > 0 && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof(buf) - 1 || len > 16)
		return -1;
	for (i = 0; i < len; i++)
	{
		if (s[i] == '.' && !dot && i > 0)
			dot = true;
		else if (s[i] < '0' || s[i] > '9')
			return -1;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	v = strtod(buf, &end);
	return (*end == '\0' && isfinite(v)) ? v : -1;
}

/*
 * The value of parameter `name` (or `alias`) in a structured header such
 * as `limit=100, remaining=57, reset=30` or `"default";r=57;t=30`, or -1.
 */
static double
parameter(const char *header, const char *name, const char *alias)
{
	const char *p = header;

	while (*p)
	{
		size_t		len = strcspn(p, ",;");
		const char *eq = memchr(p, '=', len);

		if (eq)
		{
			const char *key = p;
			size_t		klen = eq - p;

			while (klen > 0 && (*key == ' ' || *key == '\t'))
				key++, klen--;
			while (klen > 0 && (key[klen - 1] == ' ' || key[klen - 1] == '\t'))
				klen--;
			if ((klen == strlen(name) && pg_strncasecmp(key, name, klen) == 0) ||
				(klen == strlen(alias) && pg_strncasecmp(key, alias, klen) == 0))
				return plain_number(eq + 1, len - (eq + 1 - p));
		}
		p += len;
		if (*p)
			p++;
	}
	return -1;
}

bool
api_rate_limit_window(const ApiResponse *r, double *remaining, double *reset_s)
{
	double		left = -1;
	double		reset = -1;

	if (r->ratelimit_remaining)
		left = plain_number(r->ratelimit_remaining, strlen(r->ratelimit_remaining));
	if (r->ratelimit_reset)
		reset = plain_number(r->ratelimit_reset, strlen(r->ratelimit_reset));
	if (r->ratelimit && left < 0)
		left = parameter(r->ratelimit, "remaining", "r");
	if (r->ratelimit && reset < 0)
		reset = parameter(r->ratelimit, "reset", "t");
	if (reset >= EPOCH_THRESHOLD)
		reset -= (double) time(NULL);
	if (left < 0 || reset < 0 || reset > MAX_RESET_S || left > 1e9)
		return false;
	*remaining = floor(left);
	*reset_s = reset;
	return true;
}

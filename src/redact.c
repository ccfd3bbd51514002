/*
 * redact.c
 *		The one place where the API token is taken out of what the API sent.
 *
 * A server that echoes the token (in a Location header, an error reason, a
 * scan object) must not make the worker store it in a row, a log line or
 * invicti_scan_stats.  Every response is redacted once, as the worker takes
 * it from libcurl and before anything reads it (jobs.c), so every message
 * later built from it, however it is cut, can only hold "[redacted]".  A
 * JSON body can also spell the token with escapes ("\u0074oken"), which
 * only parsing reveals: a parsed body that held a backslash is checked again
 * (api_response.c calls invicti_redact_jsonb).
 *
 * Rules: never log, copy or compare the token anywhere but here; tokens
 * shorter than 8 bytes are placeholders, not secrets, and are left alone
 * (blanking "x" would garble every message).
 */
#include "postgres.h"

#include <string.h>

#include "utils/fmgrprotos.h"

#include "pg_compat.h"
#include "redact.h"
#include "settings.h"

#define MIN_SECRET_LEN 8

static const char *
token_to_hide(size_t *len)
{
	const char *problem;
	const char *token = invicti_api_token(&problem);

	*len = strlen(token);
	return *len >= MIN_SECRET_LEN ? token : NULL;
}

/* Copy of n bytes with the token replaced; NULL when it holds none. */
static char *
redact_bytes(const char *bytes, size_t n, size_t *out_len)
{
	size_t		tlen;
	const char *token = token_to_hide(&tlen);
	const char *p = bytes;
	const char *end = bytes + n;
	const char *hit;
	StringInfoData buf;

	if (token == NULL || bytes == NULL ||
		(hit = memmem(bytes, n, token, tlen)) == NULL)
		return NULL;
	initStringInfo(&buf);
	do
	{
		appendBinaryStringInfo(&buf, p, hit - p);
		appendStringInfoString(&buf, REDACTED);
		p = hit + tlen;
	} while ((hit = memmem(p, end - p, token, tlen)) != NULL);
	appendBinaryStringInfo(&buf, p, end - p);
	*out_len = buf.len;
	return buf.data;
}

char *
invicti_redact(const char *message)
{
	size_t		len;
	char	   *r = redact_bytes(message, strlen(message), &len);

	return r ? r : pstrdup(message);
}

static void
redact_string(char **s)
{
	size_t		len;
	char	   *r;

	if (*s && (r = redact_bytes(*s, strlen(*s), &len)) != NULL)
		*s = r;
}

void
invicti_redact_response(ApiResponse *r)
{
	size_t		len;
	char	   *body = redact_bytes(r->body, r->body_len, &len);

	if (body)
	{
		r->body = body;
		r->body_len = len;
	}
	redact_string(&r->location);
	redact_string(&r->retry_after);
	redact_string(&r->content_type);
	redact_string(&r->ratelimit_remaining);
	redact_string(&r->ratelimit_reset);
	redact_string(&r->ratelimit);
	redact_string(&r->error);
}

Jsonb *
invicti_redact_jsonb(Jsonb *body)
{
	size_t		tlen;
	size_t		len;
	char	   *json;
	char	   *clean;
	char	   *message;
	char	   *detail;
	Jsonb	   *result;

	if (token_to_hide(&tlen) == NULL)
		return body;
	json = JsonbToCString(NULL, &body->root, VARSIZE(body));
	clean = redact_bytes(json, strlen(json), &len);
	if (clean == NULL)
		return body;

	/*
	 * The redacted text is JSON (the token was inside a string or a key);
	 * should it somehow not parse, the caller gets nothing rather than the
	 * token.
	 */
	result = compat_jsonb_from_text(clean, &message, &detail);
	return result;
}

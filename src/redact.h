/*
 * redact.h
 *		Keeping the API token out of everything the worker stores, logs or
 *		shows (see redact.c).
 */
#ifndef INVICTI_REDACT_H
#define INVICTI_REDACT_H

#include "utils/jsonb.h"

#include "api_client.h"

/* What replaces the token. */
#define REDACTED "[redacted]"

/* A palloc'd copy of text with every occurrence of the token replaced. */
extern char *invicti_redact(const char *message);

/* The same, in place, for every part of a finished response. */
extern void invicti_redact_response(ApiResponse *r);

/*
 * A parsed body whose text may hold the token (spelled with JSON escapes),
 * redacted; NULL if that cannot be done.
 */
extern Jsonb *invicti_redact_jsonb(Jsonb *body);

#endif

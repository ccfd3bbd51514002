/*
 * job_target.c
 *		Creating the target invicti_add_target() asked for (POST /targets),
 *		at most once, and finding out whether a target was created when
 *		the answer was lost (GET /targets, page by page, by address).
 *
 * The request's row was committed 'sending' before the POST leaves
 * (table_work.c), so a worker that dies meanwhile leaves a row that is
 * reconciled, never sent blind.  The answers:
 *   - 201 with an id (Location, else body.target_id): created;
 *   - 201 without one, 5xx, a transfer cut short after sending: unknown,
 *     reconcile after the request timeout;
 *   - nothing sent, 408/503, 401/403/429: not created, send again (the
 *     whole-API pause or backoff decides when);
 *   - any other 4xx: refused for good, the API's reason on the row.
 * Reconciling lists the targets and takes the first whose address is the
 * request's (ignoring case and a trailing slash: a server may normalise);
 * none: send again.  After TARGET_MAX_ATTEMPTS sends the request fails.
 *
 * The API drives the listing, so it ends: a cursor seen before or more
 * pages than the cap end it as "not found" only when every page was read;
 * otherwise the row is reconciled again later, never resent on a guess.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/json.h"

#include "catalog_store.h"
#include "jobs.h"
#include "job_kinds.h"
#include "retry_policy.h"
#include "settings.h"

#define WHAT api_call_nouns[CALL_ADD_TARGET]
#define WHAT_FIND api_call_nouns[CALL_FIND_TARGET]
#define FIND_MAX_PAGES 10000
#define TARGET_MAX_ATTEMPTS 10

typedef enum TargetVerdict
{
	V_TARGET_CREATED,			/* target_id known */
	V_TARGET_RETRY,				/* not created: send again at retry_at */
	V_TARGET_UNKNOWN,			/* maybe created: reconcile at retry_at */
	V_TARGET_FAILED,			/* refused for good */
	V_TARGET_NEXT_PAGE,			/* reconciling: not on this page, more follow */
	V_TARGET_NOT_FOUND			/* reconciling: not on any page */
} TargetVerdict;

typedef struct TargetData
{
	TargetClaim claim;
	pg_uuid_t	target_id;
	Jsonb	   *item;			/* the 201's body (request context) */
	char	   *cursor;			/* reconciling: the page being fetched */
	List	   *seen_cursors;
} TargetData;

static TimestampTz
after_ms(int64 ms)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
}

static void
target_build(Job *job, ApiRequest *req)
{
	TargetData *d = job->data;

	if (d->claim.reconcile)
	{
		job->call = CALL_FIND_TARGET;
		req->method = "GET";
		req->url = job_api_url(psprintf("/targets?l=%d%s%s", API_LIST_LIMIT,
										d->cursor ? "&c=" : "",
										d->cursor ? api_client_escape(d->cursor) : ""));
	}
	else
	{
		StringInfoData body;

		initStringInfo(&body);
		appendStringInfoString(&body, "{\"address\": ");
		escape_json(&body, d->claim.address);
		appendStringInfoString(&body, ", \"description\": ");
		escape_json(&body, d->claim.description);
		appendStringInfo(&body, ", \"criticality\": %d, \"type\": \"default\"}",
						 d->claim.criticality);
		job->call = CALL_ADD_TARGET;
		req->method = "POST";
		req->url = job_api_url("/targets");
		req->json_body = body.data;
		/* never resent by libcurl on a connection that turns out dead */
		req->fresh_connection = true;
	}
}

/* Send again, or give up when it was sent often enough. */
static void
send_again(Job *job, const char *why, TimestampTz when)
{
	TargetData *d = job->data;

	if (d->claim.attempts >= TARGET_MAX_ATTEMPTS)
		job_verdict(job, V_TARGET_FAILED,
					psprintf("%s: given up after %d attempts: %s", WHAT, d->claim.attempts, why), 0);
	else
		job_verdict(job, V_TARGET_RETRY, why, when);
}

static void
target_not_sent(Job *job, const char *error)
{
	TargetData *d = job->data;

	if (d->claim.reconcile)
		job_verdict(job, V_TARGET_UNKNOWN, error,
					after_ms(retry_policy_delay_ms(d->claim.attempts)));
	else
		send_again(job, psprintf("%s; nothing was sent", error),
				   after_ms(retry_policy_delay_ms(d->claim.attempts)));
}

static bool
judge_create(Job *job, const ApiResponse *r, ResponseClass cls)
{
	TargetData *d = job->data;
	char	   *err = NULL;
	char	   *what;

	if (cls == RESP_SUCCESS)
	{
		if (r->body_len > 0)
			d->item = api_parse_json(r, &err);
		if (api_created_id(r, d->item, "target_id", WHAT, &d->target_id, &err))
		{
			job_verdict(job, V_TARGET_CREATED, NULL, 0);
			return true;
		}
		job_verdict(job, V_TARGET_UNKNOWN,
					psprintf("%s: %s; looking for it by address before sending again", WHAT, err),
					after_ms(invicti_request_timeout_ms));
		return false;
	}

	what = api_describe_failure(r, WHAT);
	if (cls == RESP_NO_RESPONSE && !r->request_sent)
		send_again(job, what, after_ms(retry_policy_delay_ms(d->claim.attempts)));
	else
		switch (cls)
		{
			case RESP_AUTH:
			case RESP_RATE_LIMITED:
				/* the whole-API pause decides when */
				send_again(job, what, GetCurrentTimestamp());
				break;
			case RESP_UNAVAILABLE:
				send_again(job, what, after_ms(retry_policy_delay_ms(d->claim.attempts)));
				break;
			case RESP_NOT_FOUND:
			case RESP_REJECTED:
				job_verdict(job, V_TARGET_FAILED, what, 0);
				break;
			default:
				job_verdict(job, V_TARGET_UNKNOWN,
							psprintf("%s; the target may exist, looking for it by address before sending again", what),
							after_ms(invicti_request_timeout_ms));
				break;
		}
	return false;
}

/* Addresses equal but for case and trailing slashes. */
static bool
same_address(const char *a, const char *b)
{
	size_t		la = strlen(a);
	size_t		lb = strlen(b);

	while (la > 0 && a[la - 1] == '/')
		la--;
	while (lb > 0 && b[lb - 1] == '/')
		lb--;
	return la == lb && pg_strncasecmp(a, b, la) == 0;
}

static bool
judge_find(Job *job, const ApiResponse *r, ResponseClass cls)
{
	TargetData *d = job->data;
	Jsonb	   *body;
	ListPage	page;
	char	   *err = NULL;
	int			i;

	if (cls != RESP_SUCCESS)
	{
		job_verdict(job, V_TARGET_UNKNOWN, api_describe_failure(r, WHAT_FIND),
					cls == RESP_AUTH || cls == RESP_RATE_LIMITED ? GetCurrentTimestamp() :
					after_ms(retry_policy_delay_ms(d->claim.attempts)));
		return false;
	}
	body = api_parse_json(r, &err);
	if (body == NULL || !api_list_page(body, "targets", &page, &err))
	{
		job_verdict(job, V_TARGET_UNKNOWN, psprintf("%s: %s", WHAT_FIND, err),
					after_ms(retry_policy_delay_ms(d->claim.attempts)));
		return false;
	}
	for (i = 0; i < page.n_items; i++)
	{
		char	   *address;

		if (api_target_item(page.items[i], &d->target_id, &address) &&
			same_address(address, d->claim.address))
		{
			d->item = NULL;
			job_verdict(job, V_TARGET_CREATED, NULL, 0);
			return true;
		}
	}
	if (page.next_cursor == NULL)
		job_verdict(job, V_TARGET_NOT_FOUND,
					psprintf("%s: no target with address \"%s\" was found after an unknown outcome; sending it again",
							 WHAT, api_printable(d->claim.address, 200)), 0);
	else if (job_cursor_seen(job->cxt, &d->seen_cursors, page.next_cursor) ||
			 list_length(d->seen_cursors) > FIND_MAX_PAGES)
		job_verdict(job, V_TARGET_UNKNOWN,
					psprintf("%s: the API's pages of targets did not end (a cursor came back, or more than %d pages); looking again later",
							 WHAT_FIND, FIND_MAX_PAGES),
					after_ms(retry_policy_delay_ms(d->claim.attempts + 1)));
	else
	{
		d->cursor = llast(d->seen_cursors);
		job_verdict(job, V_TARGET_NEXT_PAGE, NULL, 0);
		job->next = NEXT_REQUEST;
	}
	return true;
}

static bool
target_judge(Job *job, const ApiResponse *r, ResponseClass cls)
{
	TargetData *d = job->data;

	return d->claim.reconcile ? judge_find(job, r, cls) : judge_create(job, r, cls);
}

static void
target_record(Job *job)
{
	TargetData *d = job->data;

	switch ((TargetVerdict) job->verdict)
	{
		case V_TARGET_CREATED:
			catalog_store_target_created(job->row_id, &d->target_id, d->item);
			break;
		case V_TARGET_RETRY:
			catalog_store_target_retry(job->row_id, job->retry_at, job->message);
			jobs_table_changed();
			break;
		case V_TARGET_UNKNOWN:
			catalog_store_target_unknown(job->row_id, job->retry_at, job->message);
			jobs_table_changed();
			break;
		case V_TARGET_FAILED:
			catalog_store_target_failed(job->row_id, job->message);
			break;
		case V_TARGET_NOT_FOUND:
			catalog_store_target_resend(job->row_id, job->message);
			jobs_table_changed();
			break;
		case V_TARGET_NEXT_PAGE:
			break;
	}
}

static void
target_record_failure(Job *job, const char *error)
{
	TargetData *d = job->data;

	/* the outcome is in doubt: look it up rather than send again */
	catalog_store_target_unknown(job->row_id,
								 after_ms(retry_policy_delay_ms(d->claim.attempts)),
								 psprintf("%s: the answer could not be recorded: %s", WHAT, error));
	jobs_table_changed();
}

static bool
target_recorded(Job *job pg_attribute_unused(), TimestampTz now pg_attribute_unused())
{
	return false;
}

static const JobKind target_kind = {
	.call = CALL_ADD_TARGET,
	.durable = true,
	.rows = ROWS_TARGET_REQUESTS,
	.build = target_build,
	.judge = target_judge,
	.not_sent = target_not_sent,
	.record = target_record,
	.record_failure = target_record_failure,
	.recorded = target_recorded,
};

void
job_target_start(const TargetClaim *claim)
{
	Job		   *job = job_new(&target_kind, claim->id, sizeof(TargetData));
	TargetData *d = job->data;

	d->claim = *claim;
	d->claim.address = MemoryContextStrdup(job->cxt, claim->address);
	d->claim.description = MemoryContextStrdup(job->cxt, claim->description);
	job_submit(job);
}

/*
 * job_launch.c
 *		Launching a scan at most once: the launch request, and the
 *		reconciliation that follows a launch whose outcome is unknown.
 *
 * The at-most-once rule is decided here.  A launch is already 'sending' in
 * a committed row before its request leaves (table_work.c).  Its verdict:
 *  - launched: a 201 with a scan id (Location first, body second);
 *  - retry: the request provably had no effect (nothing was sent, or the
 *    answer was 401/403/429/503/408), so it may be sent again;
 *  - unknown: it may have reached the server (timeout after sending, dropped
 *    connection, other 5xx, a 201 without a usable id).  The row goes to
 *    'reconcile': the worker lists the target's scans and adopts the one
 *    this attempt created; only when none exists is the launch sent again;
 *  - failed: 400/404/422 and other 4xx, with the API's reason.
 *
 * Reconciliation follows the list's pages to the end; a cursor seen before
 * or a page count over RECONCILE_MAX_PAGES ends it (and the row is tried
 * again later), so a server that pages in circles cannot hold it forever.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "nodes/pg_list.h"

#include "api_client.h"
#include "jobs.h"
#include "launch_options.h"
#include "job_kinds.h"
#include "poll_schedule.h"
#include "retry_policy.h"
#include "scan_store.h"
#include "settings.h"

/* Scans created this long before a launch attempt cannot be its result. */
#define RECONCILE_CLOCK_SKEW_MS (10 * 60 * 1000)
/* A scan list longer than this many pages is not followed further. */
#define RECONCILE_MAX_PAGES 1000

typedef enum LaunchVerdict
{
	V_LAUNCHED,
	V_LAUNCH_RETRY,
	V_LAUNCH_UNKNOWN,
	V_LAUNCH_FAILED
} LaunchVerdict;

typedef struct LaunchData
{
	pg_uuid_t	target_id;
	pg_uuid_t	profile_id;
	int32		attempts;		/* sends so far, this one included */
	Jsonb	   *options;		/* launch_options (checked when queued), or
								 * NULL */
	pg_uuid_t	scan_id;		/* the new scan */
	Jsonb	   *first_state;	/* the 201's scan, when it has a session */
	bool		schedule_new;	/* after commit: start polling scan_id */
} LaunchData;

/* ---- the launch ---- */

/* The seed's launch body, with the row's launch options. */
static void
launch_build(Job *job, ApiRequest *req)
{
	LaunchData *d = job->data;
	StringInfoData body;

	initStringInfo(&body);
	launch_options_body(&body, api_uuid_text(&d->target_id), api_uuid_text(&d->profile_id),
						d->options);
	req->method = "POST";
	req->url = job_api_url("/scans");
	req->json_body = body.data;
	req->fresh_connection = true;
}

static TimestampTz
after_ms(int64 ms)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
}

static void
launch_not_sent(Job *job, const char *error)
{
	LaunchData *d = job->data;

	job_verdict(job, V_LAUNCH_RETRY, error, after_ms(retry_policy_delay_ms(d->attempts)));
}

static bool
launch_judge(Job *job, const ApiResponse *r, ResponseClass cls)
{
	LaunchData *d = job->data;
	int64		grace = invicti_request_timeout_ms;
	char	   *err = NULL;

	if (cls == RESP_SUCCESS)
	{
		Jsonb	   *body = NULL;

		if (r->curl_code == 0 && r->body_len > 0)
			body = api_parse_json(r, &err);
		if (api_launch_scan_id(r, body, &d->scan_id, &err))
		{
			JsonbValue *session = body && JsonContainerIsObject(&body->root) ?
				getKeyJsonValueFromContainer(&body->root, "current_session", 15, NULL) : NULL;

			/* the spec's 201 is the new scan itself: its first state */
			if (session && session->type == jbvBinary &&
				JsonContainerIsObject(session->val.binary.data))
			{
				d->first_state = MemoryContextAlloc(job->cxt, VARSIZE(body));
				memcpy(d->first_state, body, VARSIZE(body));
			}
			job_verdict(job, V_LAUNCHED, NULL, 0);
			return true;
		}
		job_verdict(job, V_LAUNCH_UNKNOWN,
					psprintf("%s: %s; checking with Invicti before launching again", api_call_nouns[CALL_LAUNCH], err),
					after_ms(grace));
		return false;
	}

	err = api_describe_failure(r, api_call_nouns[CALL_LAUNCH]);
	if (cls == RESP_NO_RESPONSE && !r->request_sent)
		job_verdict(job, V_LAUNCH_RETRY, psprintf("%s; nothing was sent, retrying", err),
					after_ms(retry_policy_delay_ms(d->attempts)));
	else
		switch (cls)
		{
			case RESP_AUTH:
			case RESP_RATE_LIMITED:
				/* the whole-API pause decides when; the row is due now */
				job_verdict(job, V_LAUNCH_RETRY, psprintf("%s; retrying", err),
							GetCurrentTimestamp());
				break;
			case RESP_UNAVAILABLE:
				job_verdict(job, V_LAUNCH_RETRY, psprintf("%s; retrying", err),
							after_ms(retry_policy_delay_ms(d->attempts)));
				break;
			case RESP_NOT_FOUND:
			case RESP_REJECTED:
				job_verdict(job, V_LAUNCH_FAILED, err, 0);
				break;
			default:
				job_verdict(job, V_LAUNCH_UNKNOWN,
							psprintf("%s; the scan may exist, checking with Invicti before launching again", err),
							after_ms(grace));
				break;
		}
	return false;
}

static void
launch_record(Job *job)
{
	LaunchData *d = job->data;
	int64		holder;

	d->schedule_new = false;
	switch ((LaunchVerdict) job->verdict)
	{
		case V_LAUNCHED:
			switch (scan_store_launch_ok(job->row_id, &d->scan_id, &holder))
			{
				case ADOPTED:
					d->schedule_new = true;
					break;
				case ADOPTED_TO_ABORT:
					jobs_table_changed();
					break;
				case SCAN_ID_TAKEN:

					/*
					 * the server repeated an id: it is inconsistent, so do
					 * not resend
					 */
					scan_store_launch_failed(job->row_id,
											 psprintf("%s: Invicti answered with scan id %s, which row " INT64_FORMAT " already tracks; not launching again",
													  api_call_nouns[CALL_LAUNCH], api_uuid_text(&d->scan_id), holder));
					break;
				case ROW_MOVED_ON:
					ereport(WARNING,
							(errmsg("invicti_scan: Invicti created scan %s for row " INT64_FORMAT ", but the row no longer waits for it",
									api_uuid_text(&d->scan_id), job->row_id),
							 errhint("If the row was deleted, abort or delete the scan in Invicti.")));
					break;
			}
			break;
		case V_LAUNCH_RETRY:
			scan_store_launch_retry(job->row_id, job->retry_at, job->message);
			jobs_table_changed();
			break;
		case V_LAUNCH_UNKNOWN:
			scan_store_launch_unknown(job->row_id, job->retry_at, job->message);
			jobs_table_changed();
			break;
		case V_LAUNCH_FAILED:
			scan_store_launch_failed(job->row_id, job->message);
			break;
	}
}

/*
 * The new scan is tracked from now on.  When the 201 carried its state, that
 * is recorded as its first refresh, and the next one is a poll_interval
 * away (a list round's, where rounds are on): entering the running set costs
 * no request.  Otherwise the scan is fetched now.
 */
static bool
launch_recorded(Job *job, TimestampTz now)
{
	LaunchData *d = job->data;

	if (job->record_failed || !d->schedule_new)
		return false;
	if (d->first_state)
	{
		JsonbValue	item;

		item.type = jbvBinary;
		item.val.binary.data = &d->first_state->root;
		item.val.binary.len = VARSIZE(d->first_state) - VARHDRSZ;
		poll_schedule_add(job->row_id, &d->scan_id,
						  TimestampTzPlusMilliseconds(now, (int64) invicti_poll_interval_s * 1000),
						  false);
		job_poll_from_list(job->row_id, &d->scan_id, &item,
						   hash_bytes_extended((const unsigned char *) item.val.binary.data,
											   item.val.binary.len, 0) | 1);
	}
	else
		poll_schedule_add(job->row_id, &d->scan_id, now, true);
	return false;
}

static const JobKind launch_kind = {
	.call = CALL_LAUNCH,
	.durable = true,
	.build = launch_build,
	.judge = launch_judge,
	.not_sent = launch_not_sent,
	.record = launch_record,
	.record_failure = NULL,		/* the row stays 'sending': the sweep
								 * reconciles it */
	.recorded = launch_recorded,
};

void
job_launch_start(const LaunchClaim *claim)
{
	Job		   *job = job_new(&launch_kind, claim->id, sizeof(LaunchData));
	LaunchData *d = job->data;

	d->target_id = claim->target_id;
	d->profile_id = claim->profile_id;
	d->attempts = claim->attempts;
	if (claim->options)
	{
		d->options = MemoryContextAlloc(job->cxt, VARSIZE(claim->options));
		memcpy(d->options, claim->options, VARSIZE(claim->options));
	}
	job->is_retry = claim->attempts > 1;
	job_submit(job);
}

/* ---- reconciliation ---- */

typedef enum ReconcileVerdict
{
	V_RECONCILE_DONE,
	V_RECONCILE_RETRY
} ReconcileVerdict;

typedef struct Candidate
{
	pg_uuid_t	scan_id;
	bool		has_created;
	TimestampTz created;
} Candidate;

typedef struct ReconcileData
{
	pg_uuid_t	target_id;
	pg_uuid_t	profile_id;
	TimestampTz attempt_at;		/* when the launch was sent */
	char	   *cursor;			/* page being fetched, NULL for the first */
	List	   *seen_cursors;	/* every cursor followed so far */
	List	   *candidates;		/* Candidate * */
	bool		schedule_new;
	pg_uuid_t	adopted;
	int			key;			/* target_keys[] the request used */
	bool		other_key_tried;
} ReconcileData;

/*
 * The q key for one target: the spec's example request says "target_id",
 * its q description "target".  The one a server refused is not asked again
 * (until the worker restarts).
 */
static const char *const target_keys[] = {"target_id", "target"};
static int	target_key = 0;

static void
reconcile_build(Job *job, ApiRequest *req)
{
	ReconcileData *d = job->data;

	req->method = "GET";
	d->key = target_key;
	req->url = job_api_url(psprintf("/scans?l=%d&q=%s:%s%s%s", API_LIST_LIMIT,
									target_keys[d->key], api_uuid_text(&d->target_id),
									d->cursor ? "&c=" : "",
									d->cursor ? api_client_escape(d->cursor) : ""));
}

static void
reconcile_not_sent(Job *job, const char *error)
{
	job_verdict(job, V_RECONCILE_RETRY, error, job_retry_time(job, RESP_NO_RESPONSE));
}

/* Keep the scans on this page that this row's launch attempt could have made. */
static void
gather_candidates(Job *job, ListPage *page)
{
	ReconcileData *d = job->data;
	int			i;
	TimestampTz earliest = d->attempt_at - (TimestampTz) RECONCILE_CLOCK_SKEW_MS * 1000;
	MemoryContext old;

	/* the list outlives this page's request context */
	old = MemoryContextSwitchTo(job->cxt);
	for (i = 0; i < page->n_items; i++)
	{
		pg_uuid_t	id;
		pg_uuid_t	other;
		ApiScanState st;
		Candidate  *c;

		if (!api_scan_list_item(page->items[i]->val.binary.data, &id, &st))
			continue;
		if (st.target_id && api_parse_uuid(st.target_id, strlen(st.target_id), &other) &&
			memcmp(&other, &d->target_id, sizeof(other)) != 0)
			continue;
		if (st.profile_id && api_parse_uuid(st.profile_id, strlen(st.profile_id), &other) &&
			memcmp(&other, &d->profile_id, sizeof(other)) != 0)
			continue;
		if (st.has_created && st.created < earliest)
			continue;
		c = palloc(sizeof(Candidate));
		c->scan_id = id;
		c->has_created = st.has_created;
		c->created = st.created;
		d->candidates = lappend(d->candidates, c);
	}
	MemoryContextSwitchTo(old);
}

static bool
reconcile_judge(Job *job, const ApiResponse *r, ResponseClass cls)
{
	ReconcileData *d = job->data;
	char	   *err;
	Jsonb	   *body;
	ListPage	page;

	if (cls == RESP_REJECTED && d->cursor == NULL && !d->other_key_tried)
	{
		/* the filter's key may be the one this server does not take */
		if (target_key == d->key)
			target_key = 1 - d->key;
		d->other_key_tried = true;
		job->next = NEXT_REQUEST;
		return false;
	}
	if (cls != RESP_SUCCESS)
	{
		job_verdict(job, V_RECONCILE_RETRY, api_describe_failure(r, api_call_nouns[CALL_RECONCILE]),
					job_retry_time(job, cls));
		return false;
	}
	body = api_parse_json(r, &err);
	if (body == NULL || !api_list_page(body, "scans", &page, &err))
	{
		job_verdict(job, V_RECONCILE_RETRY, psprintf("%s: %s", api_call_nouns[CALL_RECONCILE], err),
					job_retry_time(job, cls));
		return false;
	}
	gather_candidates(job, &page);

	if (page.next_cursor == NULL)
	{
		job_verdict(job, V_RECONCILE_DONE, NULL, 0);
		return true;
	}
	if (job_cursor_seen(job->cxt, &d->seen_cursors, page.next_cursor) ||
		list_length(d->seen_cursors) > RECONCILE_MAX_PAGES)
	{
		/* not the whole list: the scan may be on a page never seen */
		job_verdict(job, V_RECONCILE_RETRY,
					psprintf("%s: the list's pages do not end (%d pages, cursor \"%s\" %s); checking again later",
							 api_call_nouns[CALL_RECONCILE], list_length(d->seen_cursors) + 1,
							 api_printable(page.next_cursor, 60),
							 list_length(d->seen_cursors) > RECONCILE_MAX_PAGES ?
							 "is past the page limit" : "was seen before"),
					job_retry_time(job, RESP_SERVER_ERROR));
		return false;
	}
	d->cursor = llast(d->seen_cursors);
	job->next = NEXT_REQUEST;
	return true;
}

static int
candidate_cmp(const ListCell *a, const ListCell *b)
{
	const Candidate *ca = lfirst(a);
	const Candidate *cb = lfirst(b);

	if (ca->has_created != cb->has_created)
		return ca->has_created ? -1 : 1;
	if (ca->created != cb->created)
		return ca->created < cb->created ? -1 : 1;
	return 0;
}

static void
reconcile_record(Job *job)
{
	ReconcileData *d = job->data;
	ListCell   *lc;

	d->schedule_new = false;
	if (job->verdict == V_RECONCILE_RETRY)
	{
		scan_store_work_retry(job->row_id, WS_RECONCILE, job->retry_at, job->message);
		jobs_table_changed();
		return;
	}

	list_sort(d->candidates, candidate_cmp);
	foreach(lc, d->candidates)
	{
		Candidate  *c = lfirst(lc);
		int64		holder;

		if (scan_store_scan_id_known(&c->scan_id))
			continue;
		switch (scan_store_reconcile_adopt(job->row_id, &c->scan_id, &holder))
		{
			case ADOPTED:
				d->adopted = c->scan_id;
				d->schedule_new = true;
				break;
			case ADOPTED_TO_ABORT:
				jobs_table_changed();
				break;
			default:
				return;
		}
		ereport(LOG,
				(errmsg("invicti_scan: the launch of scan row " INT64_FORMAT " had an unknown outcome; adopted scan %s found on the Invicti server",
						job->row_id, api_uuid_text(&c->scan_id))));
		return;
	}
	jobs_table_changed();
	scan_store_reconcile_resend(job->row_id,
								"an earlier launch attempt's outcome was unknown and Invicti lists no scan it could have created; launching again");
}

static void
reconcile_record_failure(Job *job, const char *error)
{
	scan_store_work_retry(job->row_id, WS_RECONCILE,
						  job_retry_time(job, RESP_SERVER_ERROR),
						  psprintf("%s: the result could not be recorded: %s", api_call_nouns[CALL_RECONCILE], error));
	jobs_table_changed();
}

static bool
reconcile_recorded(Job *job, TimestampTz now)
{
	ReconcileData *d = job->data;

	if (!job->record_failed && d->schedule_new)
		poll_schedule_add(job->row_id, &d->adopted, now, true);
	if (!job->record_failed && job->verdict == V_RECONCILE_DONE)
		job_clear_row_failures(job->row_id);
	return false;
}

static const JobKind reconcile_kind = {
	.call = CALL_RECONCILE,
	.durable = true,
	.build = reconcile_build,
	.judge = reconcile_judge,
	.not_sent = reconcile_not_sent,
	.record = reconcile_record,
	.record_failure = reconcile_record_failure,
	.recorded = reconcile_recorded,
};

void
job_reconcile_start(const TableClaim *claim)
{
	Job		   *job = job_new(&reconcile_kind, claim->id, sizeof(ReconcileData));
	ReconcileData *d = job->data;

	d->target_id = claim->target_id;
	d->profile_id = claim->profile_id;
	d->attempt_at = claim->last_attempt_at;
	job->is_retry = job_row_failures(claim->id) > 0;
	job_submit(job);
}

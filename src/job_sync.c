/*
 * job_sync.c
 *		Sync rounds: the API's scanning profiles (GET /scanning_profiles),
 *		report templates (GET /report_templates) and targets (GET /targets,
 *		a hundred a page) copied into their tables.
 *
 * A round runs when the worker starts and every invicti_scan.sync_interval
 * after the last one (unless it is 0), and when invicti_sync() asked (the claim reads the
 * request: job_sync_note_request).  Its requests go one after another, as
 * the request budget allows, each page recorded before the next is asked
 * for.  One catalog's failure is recorded in invicti_sync_status and the
 * round goes on with the next; the round after a failure comes sooner
 * (retry backoff, never later than the interval; with an interval of 0,
 * five times at most, then only when invicti_sync() asks again).
 *
 * Only a complete listing may mark rows vanished: a round whose pages of a
 * catalog stop early (an error, a cursor seen before, more pages than the
 * cap) stores what it received and marks nothing.
 *
 * Nothing here writes SQL (catalog_store.c) or decides when other work runs.
 */
#include "postgres.h"

#include "catalog_store.h"
#include "jobs.h"
#include "job_kinds.h"
#include "retry_policy.h"
#include "settings.h"

#define WHAT api_call_nouns[CALL_SYNC]
/* 1,000,000 targets at 100 a page. */
#define SYNC_MAX_PAGES 10000
/* Failed rounds retried when sync_interval is 0, before waiting for invicti_sync(). */
#define SYNC_RETRIES_ON_DEMAND 5

typedef enum SyncVerdict
{
	V_SYNC_PAGE,				/* a page to store */
	V_SYNC_FAILED				/* the catalog's listing failed */
} SyncVerdict;

typedef struct SyncData
{
	TimestampTz round;			/* when the round started */
	Catalog		catalog;		/* being listed */
	char	   *cursor;			/* its page being fetched; NULL: the first */
	List	   *seen_cursors;
	int			items;			/* stored, over its pages */
	int			skipped;
	char	   *problem;		/* the first skipped item's reason */
	bool		round_failed;	/* some catalog failed */

	/* the page judged (request context) */
	Jsonb	   *page;
	char	   *next_cursor;	/* NULL: the listing ends with this page */
	char	   *stopped;		/* why the listing ends early, or NULL */
} SyncData;

/* The rounds' state, across rounds. */
static struct
{
	bool		running;
	bool		requested;		/* invicti_sync() asked since the last start */
	TimestampTz requested_seen; /* when the worker learnt of it */
	TimestampTz last_start;		/* 0: none yet (the first is due at once) */
	TimestampTz next_at;		/* the next round by the clock; 0: none */
	int			failures;		/* rounds in a row with a failed catalog */
}			rounds;

static void
schedule_after(TimestampTz from)
{
	/* on demand only: a failed round is retried a few times, then waits */
	if (rounds.failures > SYNC_RETRIES_ON_DEMAND && invicti_sync_interval_s == 0)
		rounds.next_at = 0;
	else if (rounds.failures > 0)
	{
		int64		delay = retry_policy_delay_ms(rounds.failures);

		if (invicti_sync_interval_s > 0)
			delay = Min(delay, (int64) invicti_sync_interval_s * 1000);
		rounds.next_at = TimestampTzPlusMilliseconds(from, delay);
	}
	else if (invicti_sync_interval_s > 0)
		rounds.next_at = TimestampTzPlusMilliseconds(from, (int64) invicti_sync_interval_s * 1000);
	else
		rounds.next_at = 0;
}

void
job_sync_configure(void)
{
	/*
	 * The first round when the worker starts, then as the interval says; an
	 * interval of 0 means only when invicti_sync() asks.
	 */
	if (rounds.last_start == 0)
		rounds.next_at = invicti_sync_interval_s > 0 ? GetCurrentTimestamp() : 0;
	else if (!rounds.running)
		schedule_after(rounds.last_start);
}

void
job_sync_note_request(TimestampTz requested_at)
{
	if (requested_at > rounds.last_start && !rounds.requested)
	{
		rounds.requested = true;
		rounds.requested_seen = GetCurrentTimestamp();
	}
}

TimestampTz
job_sync_next_round_at(void)
{
	if (rounds.running)
		return 0;
	/* a time in the past, not "now": a turn compares it with its own start */
	if (rounds.requested)
		return rounds.requested_seen;
	return rounds.next_at;
}

static const char *
catalog_path(Catalog c)
{
	switch (c)
	{
		case CATALOG_SCANNING_PROFILES:
			return "/scanning_profiles";
		case CATALOG_REPORT_TEMPLATES:
			return "/report_templates";
		case CATALOG_TARGETS:
			return "/targets";
		default:
			elog(ERROR, "invicti_scan: unknown catalog %d", (int) c);
	}
	return NULL;				/* keep the compiler quiet */
}

static void
sync_build(Job *job, ApiRequest *req)
{
	SyncData   *d = job->data;

	req->method = "GET";
	if (d->catalog == CATALOG_TARGETS)
		req->url = job_api_url(psprintf("%s?l=%d%s%s", catalog_path(d->catalog), API_LIST_LIMIT,
										d->cursor ? "&c=" : "",
										d->cursor ? api_client_escape(d->cursor) : ""));
	else
		req->url = job_api_url(catalog_path(d->catalog));
}

static void
sync_not_sent(Job *job, const char *error)
{
	job_verdict(job, V_SYNC_FAILED, error, 0);
}

static bool
sync_judge(Job *job, const ApiResponse *r, ResponseClass cls)
{
	SyncData   *d = job->data;
	Jsonb	   *body;
	ListPage	page;
	char	   *error = NULL;

	/* what the previous page said is in memory the request reset */
	d->page = NULL;
	d->next_cursor = NULL;
	d->stopped = NULL;
	if (cls != RESP_SUCCESS)
	{
		job_verdict(job, V_SYNC_FAILED, api_describe_failure(r, WHAT), 0);
		return false;
	}
	body = api_parse_json(r, &error);
	if (body == NULL || !api_list_page(body, catalog_list_keys[d->catalog], &page, &error))
	{
		job_verdict(job, V_SYNC_FAILED,
					psprintf("%s for %s: %s", WHAT, catalog_names[d->catalog], error), 0);
		return false;
	}
	d->page = body;
	/* only targets are paged (the spec pages no other of these lists) */
	if (d->catalog == CATALOG_TARGETS && page.next_cursor != NULL)
	{
		if (job_cursor_seen(job->cxt, &d->seen_cursors, page.next_cursor))
			d->stopped = psprintf("the API's pages of targets go in a circle (cursor \"%s\" came back after %d pages)",
								  api_printable(page.next_cursor, 64),
								  list_length(d->seen_cursors));
		else if (list_length(d->seen_cursors) > SYNC_MAX_PAGES)
			d->stopped = psprintf("the API sent more than %d pages of targets", SYNC_MAX_PAGES);
		else
			d->next_cursor = llast(d->seen_cursors);
	}
	job_verdict(job, V_SYNC_PAGE, NULL, 0);
	return true;
}

static void
sync_record(Job *job)
{
	SyncData   *d = job->data;
	int			skipped;
	char	   *problem;

	if (job->verdict == V_SYNC_FAILED)
	{
		catalog_store_round_failed(d->catalog, d->round, job->message);
		return;
	}
	d->items += catalog_store_page(d->catalog, d->page, d->round, &skipped, &problem);
	d->skipped += skipped;
	if (problem != NULL && d->problem == NULL)
		d->problem = MemoryContextStrdup(job->cxt, problem);

	if (d->stopped)
		catalog_store_round_failed(d->catalog, d->round,
								   psprintf("%s for %s: %s; nothing was marked vanished",
											WHAT, catalog_names[d->catalog], d->stopped));
	else if (d->next_cursor == NULL)
	{
		char	   *note = NULL;

		if (d->skipped > 0)
			note = psprintf("%d items skipped, the first: %s", d->skipped, d->problem);
		(void) catalog_store_round_done(d->catalog, d->round, d->items, d->skipped, note);
	}
}

static void
sync_record_failure(Job *job, const char *error)
{
	SyncData   *d = job->data;

	catalog_store_round_failed(d->catalog, d->round,
							   psprintf("%s for %s: the answer could not be stored: %s",
										WHAT, catalog_names[d->catalog], error));
	job->verdict = V_SYNC_FAILED;
}

static bool
sync_recorded(Job *job, TimestampTz now)
{
	SyncData   *d = job->data;

	if (job->verdict == V_SYNC_PAGE && !job->record_failed && d->stopped == NULL &&
		d->next_cursor != NULL)
	{
		d->cursor = d->next_cursor;
		return true;			/* the next page */
	}
	if (job->verdict == V_SYNC_FAILED || job->record_failed || d->stopped != NULL)
		d->round_failed = true;

	/* the next catalog, or the round is over */
	if (d->catalog + 1 < NUM_CATALOGS)
	{
		d->catalog++;
		d->cursor = NULL;
		list_free_deep(d->seen_cursors);
		d->seen_cursors = NIL;
		d->items = d->skipped = 0;
		d->problem = NULL;
		return true;
	}
	rounds.running = false;
	rounds.failures = d->round_failed ? rounds.failures + 1 : 0;
	schedule_after(now);
	if (d->round_failed)
		elog(DEBUG1, "invicti_scan worker: a sync round failed; the next in %.1f s",
			 (rounds.next_at - now) / 1000000.0);
	return false;
}

static void
sync_dropped(Job *job pg_attribute_unused())
{
	rounds.running = false;
	schedule_after(GetCurrentTimestamp());
}

static const JobKind sync_kind = {
	.call = CALL_SYNC,
	.durable = false,
	.rows = ROWS_NONE,
	.build = sync_build,
	.judge = sync_judge,
	.not_sent = sync_not_sent,
	.record = sync_record,
	.record_failure = sync_record_failure,
	.recorded = sync_recorded,
	.dropped = sync_dropped,
};

bool
job_sync_start_round(TimestampTz now)
{
	Job		   *job;
	SyncData   *d;
	TimestampTz due = job_sync_next_round_at();

	if (due == 0 || due > now)
		return false;
	job = job_new(&sync_kind, 0, sizeof(SyncData));
	d = job->data;
	d->round = now;
	d->catalog = 0;
	rounds.running = true;
	rounds.requested = false;
	rounds.last_start = now;
	job_submit(job);
	return true;
}

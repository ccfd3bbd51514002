/*
 * job_import.c
 *		Finishing an ended scan: its end date, then its findings.
 *
 * The end date.  The spec's ScanInfo (current_session) has no end_date: a
 * session's end is on GET /scans/{scan_id}/results (ScanResultItem), so
 * when the last poll did not carry one, this job first reads the results
 * list, page by page, to the item of the row's session.
 *
 * The findings.  GET /scans/{scan_id}/results/{session}/vulnerabilities,
 * page by page; a failed or aborted session's findings are imported too
 * (they are findings of the part that ran).  Each page is recorded (its
 * findings inserted, the next page's cursor kept in the row) before the
 * next page is asked for, by the same job; a worker that dies in between
 * carries on from the cursor in the row.  A finding is stored once per
 * session (ON CONFLICT DO NOTHING), so a page seen twice does no harm.
 *
 * The API drives both loops, so they must end whatever the API sends: a
 * cursor seen before, or more pages than the cap, stops the loop with what
 * was received and a last_error saying why; a finding that cannot be stored
 * (no vuln_id, or one too long for the index) is skipped and counted in
 * last_error; a page the table refuses ends the import as failed, with the
 * table's reason.
 */
#include "postgres.h"

#include "jobs.h"
#include "job_kinds.h"
#include "scan_store.h"
#include "settings.h"

/* 1,000,000 findings at 100 a page. */
#define IMPORT_MAX_PAGES 10000
/* Sessions of one scan: a recurring scan has one per run. */
#define SESSIONS_MAX_PAGES 100

/* How each request is named in messages. */
#define WHAT api_call_nouns[CALL_RESULTS]
#define WHAT_SESSIONS api_call_nouns[CALL_SESSIONS]

typedef enum ImportStep
{
	STEP_END_DATE,				/* GET /scans/{id}/results */
	STEP_FINDINGS				/* GET .../results/{session}/vulnerabilities */
} ImportStep;

typedef enum ImportVerdict
{
	V_END_DATE,					/* the session's end date, or none known */
	V_IMPORT_PAGE,				/* a page of findings; next_cursor or the end */
	V_IMPORT_GONE,				/* 404: the session is unknown */
	V_IMPORT_RETRY
} ImportVerdict;

typedef struct ImportData
{
	pg_uuid_t	scan_id;
	pg_uuid_t	session_id;
	ImportStep	step;
	bool		findings;		/* import the findings
								 * (import_vulnerabilities) */
	char	   *cursor;			/* the page being fetched; NULL: the first */
	List	   *seen_cursors;
	int			imported;		/* findings stored by this job */

	/* the end date found (STEP_END_DATE) */
	bool		has_end_date;
	TimestampTz end_date;

	/* the page judged (request context) */
	int			n_findings;
	Finding    *page_findings;
	char	   *next_cursor;	/* the page after it; NULL at the end */
	char	   *stopped;		/* why paging stops before the end, or NULL */

	/* skipped findings, by reason, over every page of this job */
	int			skipped;
	const char *skip_reason;
} ImportData;

static void
import_build(Job *job, ApiRequest *req)
{
	ImportData *d = job->data;
	const char *cursor = d->cursor ? psprintf("&c=%s", api_client_escape(d->cursor)) : "";

	req->method = "GET";
	if (d->step == STEP_END_DATE)
	{
		job->call = CALL_SESSIONS;
		req->url = job_api_url(psprintf("/scans/%s/results?l=%d%s",
										api_uuid_text(&d->scan_id), API_LIST_LIMIT, cursor));
	}
	else
		req->url = job_api_url(psprintf("/scans/%s/results/%s/vulnerabilities?l=%d%s",
										api_uuid_text(&d->scan_id),
										api_uuid_text(&d->session_id), API_LIST_LIMIT, cursor));
}

static void
import_not_sent(Job *job, const char *error)
{
	job_verdict(job, V_IMPORT_RETRY, error, job_retry_time(job, RESP_NO_RESPONSE));
}

/*
 * A page's next cursor: follow it, or say why not (a cursor that comes
 * back, or too many pages) in *stopped; NULL when the list ended.
 */
static char *
follow(Job *job, const char *next, int max_pages, const char *what, char **stopped)
{
	ImportData *d = job->data;

	*stopped = NULL;
	if (next == NULL)
		return NULL;
	if (job_cursor_seen(job->cxt, &d->seen_cursors, next))
		*stopped = psprintf("the API's pages of %s go in a circle (cursor \"%s\" came back after %d pages)",
							what, api_printable(next, 60), list_length(d->seen_cursors));
	else if (list_length(d->seen_cursors) > max_pages)
		*stopped = psprintf("the API sent more than %d pages of %s", max_pages, what);
	/* the copy in the job's memory: the page's is reset by the next request */
	return *stopped ? NULL : (char *) llast(d->seen_cursors);
}

/* The results list: find the row's session and its end date. */
static bool
judge_sessions(Job *job, const ApiResponse *r, ResponseClass cls)
{
	ImportData *d = job->data;
	char	   *err;
	Jsonb	   *body;
	ListPage	page;
	int			i;

	if (cls == RESP_NOT_FOUND)
	{
		/* the scan is gone: no end date, nor findings */
		job_verdict(job, V_IMPORT_GONE,
					psprintf("%s: scan %s is unknown to Invicti (HTTP 404); its end date and findings are not known",
							 WHAT_SESSIONS, api_uuid_text(&d->scan_id)), 0);
		return true;
	}
	body = cls == RESP_SUCCESS ? api_parse_json(r, &err) : NULL;
	if (body == NULL || !api_list_page(body, "results", &page, &err))
	{
		job_verdict(job, V_IMPORT_RETRY,
					cls == RESP_SUCCESS ? psprintf("%s: %s", WHAT_SESSIONS, err)
					: api_describe_failure(r, WHAT_SESSIONS),
					job_retry_time(job, cls));
		return false;
	}
	for (i = 0; i < page.n_items; i++)
	{
		pg_uuid_t	result_id;

		if (api_result_item(page.items[i], &result_id, &d->has_end_date, &d->end_date) &&
			memcmp(&result_id, &d->session_id, sizeof(result_id)) == 0)
		{
			job_verdict(job, V_END_DATE, NULL, 0);
			return true;
		}
	}
	d->has_end_date = false;
	d->cursor = follow(job, page.next_cursor, SESSIONS_MAX_PAGES, "results", &d->stopped);
	if (d->cursor)
	{
		job->next = NEXT_REQUEST;
		return true;
	}
	/* not listed (or the list would not end): the end date stays unknown */
	job_verdict(job, V_END_DATE, d->stopped ? psprintf("%s: %s", WHAT_SESSIONS, d->stopped) : NULL, 0);
	return true;
}

/* Turn the page's items into findings; count the ones that cannot be stored. */
static void
take_findings(ImportData *d, ListPage *page)
{
	int			i;

	d->page_findings = palloc(sizeof(Finding) * Max(page->n_items, 1));
	d->n_findings = 0;
	for (i = 0; i < page->n_items; i++)
	{
		const char *problem = api_finding(page->items[i], &d->page_findings[d->n_findings]);

		if (problem == NULL)
			d->n_findings++;
		else
		{
			d->skipped++;
			d->skip_reason = problem;
		}
	}
}

static bool
judge_findings(Job *job, const ApiResponse *r, ResponseClass cls)
{
	ImportData *d = job->data;
	char	   *err;
	Jsonb	   *body;
	ListPage	page;

	if (cls == RESP_NOT_FOUND)
	{
		job_verdict(job, V_IMPORT_GONE,
					psprintf("%s: session %s of scan %s is unknown to Invicti (HTTP 404); findings not imported",
							 WHAT, api_uuid_text(&d->session_id), api_uuid_text(&d->scan_id)), 0);
		return true;
	}
	if (cls != RESP_SUCCESS)
	{
		job_verdict(job, V_IMPORT_RETRY, api_describe_failure(r, WHAT), job_retry_time(job, cls));
		return false;
	}
	body = api_parse_json(r, &err);
	if (body == NULL || !api_list_page(body, "vulnerabilities", &page, &err))
	{
		job_verdict(job, V_IMPORT_RETRY, psprintf("%s: %s", WHAT, err), job_retry_time(job, cls));
		return false;
	}
	take_findings(d, &page);
	d->next_cursor = follow(job, page.next_cursor, IMPORT_MAX_PAGES, "findings", &d->stopped);
	job_verdict(job, V_IMPORT_PAGE, NULL, 0);
	return true;
}

static bool
import_judge(Job *job, const ApiResponse *r, ResponseClass cls)
{
	ImportData *d = job->data;

	return d->step == STEP_END_DATE ? judge_sessions(job, r, cls) : judge_findings(job, r, cls);
}

/* What last_error says about findings this job could not store, or NULL. */
static char *
skipped_note(ImportData *d)
{
	if (d->skipped == 0)
		return NULL;
	return psprintf("%s: %d finding%s %s (and perhaps others like it) could not be stored and %s skipped",
					WHAT, d->skipped, d->skipped == 1 ? "" : "s", d->skip_reason,
					d->skipped == 1 ? "was" : "were");
}

static void
import_record(Job *job)
{
	ImportData *d = job->data;
	int			i;

	switch ((ImportVerdict) job->verdict)
	{
		case V_END_DATE:
			if (d->has_end_date)
				scan_store_set_end_date(job->row_id, d->end_date);
			if (!d->findings)
				scan_store_import_done(job->row_id, job->message, false);
			break;
		case V_IMPORT_PAGE:
			for (i = 0; i < d->n_findings; i++)
				(void) scan_store_insert_finding(job->row_id, &d->session_id, &d->page_findings[i]);
			if (d->stopped)
				scan_store_import_failed(job->row_id,
										 psprintf("%s: import stopped: %s; %d findings were stored",
												  WHAT, d->stopped, d->imported + d->n_findings));
			else if (d->next_cursor)
				scan_store_import_page(job->row_id, d->next_cursor, skipped_note(d));
			else
				scan_store_import_done(job->row_id, skipped_note(d), true);
			break;
		case V_IMPORT_GONE:
			scan_store_import_failed(job->row_id, job->message);
			break;
		case V_IMPORT_RETRY:
			scan_store_work_retry(job->row_id, WS_IMPORT, job->retry_at, job->message);
			jobs_table_changed();
			break;
	}
}

static void
import_record_failure(Job *job, const char *error)
{
	ImportData *d = job->data;

	scan_store_import_failed(job->row_id,
							 psprintf("%s: import stopped: an answer could not be stored: %s; %d findings were stored before",
									  WHAT, error, d->imported));
}

static bool
import_recorded(Job *job, TimestampTz now pg_attribute_unused())
{
	ImportData *d = job->data;

	if (job->record_failed || job->verdict == V_IMPORT_RETRY || job->verdict == V_IMPORT_GONE)
		return false;
	job_clear_row_failures(job->row_id);
	if (job->verdict == V_END_DATE)
	{
		if (!d->findings)
			return false;
		/* on to the findings, from their first page */
		d->step = STEP_FINDINGS;
		d->cursor = NULL;
		d->seen_cursors = NIL;
		return true;
	}
	if (d->stopped || d->next_cursor == NULL)
		return false;
	/* the page is in the table: ask for the next one */
	d->imported += d->n_findings;
	d->cursor = d->next_cursor;
	return true;
}

static const JobKind import_kind = {
	.call = CALL_RESULTS,
	.durable = true,
	.build = import_build,
	.judge = import_judge,
	.not_sent = import_not_sent,
	.record = import_record,
	.record_failure = import_record_failure,
	.recorded = import_recorded,
};

void
job_import_start(const TableClaim *claim)
{
	Job		   *job = job_new(&import_kind, claim->id, sizeof(ImportData));
	ImportData *d = job->data;

	d->scan_id = claim->scan_id;
	d->session_id = claim->session_id;
	d->findings = invicti_import_vulnerabilities;
	/* a row part-way through its findings already knows its end date */
	d->step = claim->has_end_date || claim->cursor ? STEP_FINDINGS : STEP_END_DATE;
	if (claim->cursor)
	{
		d->cursor = MemoryContextStrdup(job->cxt, claim->cursor);
		(void) job_cursor_seen(job->cxt, &d->seen_cursors, d->cursor);
	}
	job->is_retry = job_row_failures(claim->id) > 0;
	job_submit(job);
}

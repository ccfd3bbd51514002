/*
 * job_import.c
 *		Importing the findings of a finished scan session, page by page:
 *		GET /scans/{scan_id}/results/{session}/vulnerabilities.
 *
 * Each page is recorded (its findings inserted, the next page's cursor
 * kept in the row) before the next page is asked for, by the same job; a
 * worker that dies in between carries on from the cursor in the row.  A
 * finding is stored once per session (ON CONFLICT DO NOTHING), so a page
 * seen twice does no harm.
 *
 * The API drives this loop, so it must end whatever the API sends: a
 * cursor seen before, or more than IMPORT_MAX_PAGES pages, stops the import
 * with what was received and a last_error saying why; a finding that cannot
 * be stored (no vuln_id, or one too long for the index) is skipped and
 * counted in last_error; a page the table refuses ends the import as
 * failed, with the table's reason.
 */
#include "postgres.h"

#include "jobs.h"
#include "job_kinds.h"
#include "scan_store.h"

/* How this work is named in messages. */
#define WHAT api_call_nouns[CALL_RESULTS]

/* 1,000,000 findings at 100 a page. */
#define IMPORT_MAX_PAGES 10000

typedef enum ImportVerdict
{
	V_IMPORT_PAGE,				/* a page of findings; next_cursor or the end */
	V_IMPORT_GONE,				/* 404: the session's findings are unknown */
	V_IMPORT_RETRY
} ImportVerdict;

typedef struct ImportData
{
	pg_uuid_t	scan_id;
	pg_uuid_t	session_id;
	char	   *cursor;			/* the page being fetched; NULL: the first */
	List	   *seen_cursors;
	int			imported;		/* findings stored by this job */

	/* the page judged (request context) */
	int			n_findings;
	Finding    *findings;
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

	req->method = "GET";
	req->url = job_api_url(psprintf("/scans/%s/results/%s/vulnerabilities?l=100%s%s",
									api_uuid_text(&d->scan_id),
									api_uuid_text(&d->session_id),
									d->cursor ? "&c=" : "",
									d->cursor ? api_client_escape(d->cursor) : ""));
}

static void
import_not_sent(Job *job, const char *error)
{
	job_verdict(job, V_IMPORT_RETRY, error, job_retry_time(job, RESP_NO_RESPONSE));
}

/* Turn the page's items into findings; count the ones that cannot be stored. */
static void
take_findings(ImportData *d, ListPage *page)
{
	int			i;

	d->findings = palloc(sizeof(Finding) * Max(page->n_items, 1));
	d->n_findings = 0;
	for (i = 0; i < page->n_items; i++)
	{
		const char *problem = api_finding(page->items[i], &d->findings[d->n_findings]);

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
import_judge(Job *job, const ApiResponse *r, ResponseClass cls)
{
	ImportData *d = job->data;
	char	   *err;
	Jsonb	   *body;
	ListPage	page;

	if (cls == RESP_NOT_FOUND)
	{
		job_verdict(job, V_IMPORT_GONE,
					psprintf("%s: session %s of scan %s is unknown to Invicti (HTTP 404); findings not imported", WHAT,
							 api_uuid_text(&d->session_id), api_uuid_text(&d->scan_id)), 0);
		return true;
	}
	if (cls != RESP_SUCCESS)
	{
		job_verdict(job, V_IMPORT_RETRY, api_describe_failure(r, WHAT),
					job_retry_time(job, cls));
		return false;
	}
	body = api_parse_json(r, &err);
	if (body == NULL || !api_list_page(body, "vulnerabilities", &page, &err))
	{
		job_verdict(job, V_IMPORT_RETRY, psprintf("%s: %s", WHAT, err),
					job_retry_time(job, cls));
		return false;
	}
	take_findings(d, &page);
	d->next_cursor = page.next_cursor;
	d->stopped = NULL;
	if (d->next_cursor &&
		job_cursor_seen(job->cxt, &d->seen_cursors, d->next_cursor))
		d->stopped = psprintf("the API's pages of findings go in a circle (cursor \"%s\" came back after %d pages)",
							  api_printable(d->next_cursor, 60), list_length(d->seen_cursors));
	else if (d->next_cursor && list_length(d->seen_cursors) > IMPORT_MAX_PAGES)
		d->stopped = psprintf("the API sent more than %d pages of findings", IMPORT_MAX_PAGES);
	job_verdict(job, V_IMPORT_PAGE, NULL, 0);
	return true;
}

/* What last_error says about findings this job could not store, or NULL. */
static char *
skipped_note(ImportData *d)
{
	if (d->skipped == 0)
		return NULL;
	return psprintf("%s: %d finding%s %s (and perhaps others like it) could not be stored and %s skipped", WHAT,
					d->skipped, d->skipped == 1 ? "" : "s", d->skip_reason,
					d->skipped == 1 ? "was" : "were");
}

static void
import_record(Job *job)
{
	ImportData *d = job->data;
	int			i;

	switch ((ImportVerdict) job->verdict)
	{
		case V_IMPORT_PAGE:
			for (i = 0; i < d->n_findings; i++)
				(void) scan_store_insert_finding(job->row_id, &d->session_id, &d->findings[i]);
			if (d->stopped)
				scan_store_import_failed(job->row_id,
										 psprintf("%s: import stopped: %s; %d findings were stored", WHAT,
												  d->stopped, d->imported + d->n_findings));
			else if (d->next_cursor)
				scan_store_import_page(job->row_id, d->next_cursor, skipped_note(d));
			else
				scan_store_import_done(job->row_id, skipped_note(d));
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
							 psprintf("%s: import stopped: a page of findings could not be stored: %s; %d findings were stored before", WHAT,
									  error, d->imported));
}

static bool
import_recorded(Job *job, TimestampTz now pg_attribute_unused())
{
	ImportData *d = job->data;

	if (job->record_failed || job->verdict == V_IMPORT_RETRY)
		return false;
	job_clear_row_failures(job->row_id);
	if (job->verdict != V_IMPORT_PAGE || d->stopped || d->next_cursor == NULL)
		return false;
	/* the page is in the table: ask for the next one */
	d->imported += d->n_findings;
	d->cursor = llast(d->seen_cursors);
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
import_job_start(const TableClaim *claim)
{
	Job		   *job = job_new(&import_kind, claim->id, sizeof(ImportData));
	ImportData *d = job->data;

	d->scan_id = claim->scan_id;
	d->session_id = claim->session_id;
	if (claim->cursor)
	{
		d->cursor = MemoryContextStrdup(job->cxt, claim->cursor);
		(void) job_cursor_seen(job->cxt, &d->seen_cursors, d->cursor);
	}
	job->is_retry = job_row_failures(claim->id) > 0;
	job_submit(job);
}

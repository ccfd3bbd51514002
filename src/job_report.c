/*
 * job_report.c
 *		A report invicti_request_report() asked for: POST /reports (the
 *		template, the scans as source), then GET /reports/{id} until it is
 *		ready, then the file from its download list, stored in the row.
 *
 * Each step's verdict is recorded before the next step is due, except the
 * download, which follows the status answer that offered it at once.  A
 * report asked for twice (an answer lost) costs the server a second file
 * and nothing else, so a lost answer means asking again, never reconciling.
 *
 * What the API sends is not trusted:
 *   - the download is fetched from invicti_scan.base_url, whatever host or
 *     path the download entry names: only its last segment (the
 *     descriptor, letters, digits, '.', '_', '-') is used, so the token
 *     goes nowhere else;
 *   - a file larger than invicti_scan.max_report_size is not stored (the
 *     transfer stops at the limit) and the report fails saying so; a "pdf"
 *     that does not start as one fails too;
 *   - a report that never becomes ready fails after
 *     invicti_scan.report_timeout, whatever status the API keeps sending.
 * The report statuses (queued, processing, completed, failed) are the
 * vendor clients'; the spec says only that status is a string.
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "jobs.h"
#include "job_kinds.h"
#include "report_store.h"
#include "retry_policy.h"
#include "settings.h"

#define WHAT api_call_nouns[CALL_REPORT]
#define WHAT_DOWNLOAD api_call_nouns[CALL_REPORT_DOWNLOAD]
#define REPORT_MAX_ATTEMPTS 10
#define DESCRIPTOR_MAX 255
/* The longest wait between two looks at a report being generated. */
#define STATUS_MAX_DELAY_MS 10000

typedef enum ReportStep
{
	STEP_REQUEST,				/* POST /reports */
	STEP_STATUS,				/* GET /reports/{id} */
	STEP_DOWNLOAD				/* GET /reports/download/{descriptor} */
} ReportStep;

typedef enum ReportVerdict
{
	V_REPORT_GENERATING,		/* report_id known: look again at retry_at */
	V_REPORT_RETRY,				/* not asked for: ask again at retry_at */
	V_REPORT_READY,				/* the file */
	V_REPORT_FAILED
} ReportVerdict;

typedef struct ReportData
{
	ReportClaim claim;
	ReportStep	step;
	pg_uuid_t	report_id;
	char	   *api_status;		/* as last sent (job memory) */
	char	   *descriptor;		/* the file to fetch */
	/* the file (request context) */
	const char *content;
	size_t		len;
	char	   *content_type;
} ReportData;

static TimestampTz
after_ms(int64 ms)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
}

static TimestampTz
next_look(void)
{
	return after_ms(Min((int64) invicti_poll_interval_s * 1000, STATUS_MAX_DELAY_MS));
}

static void
report_build(Job *job, ApiRequest *req)
{
	ReportData *d = job->data;
	StringInfoData body;
	int			i;

	switch (d->step)
	{
		case STEP_REQUEST:
			initStringInfo(&body);
			appendStringInfo(&body, "{\"template_id\": \"%s\", \"source\": {\"list_type\": \"scans\", \"id_list\": [",
							 api_uuid_text(&d->claim.template_id));
			for (i = 0; i < d->claim.nscans; i++)
				appendStringInfo(&body, "%s\"%s\"", i > 0 ? ", " : "",
								 api_uuid_text(&d->claim.scan_ids[i]));
			appendStringInfoString(&body, "]}}");
			job->call = CALL_REPORT;
			req->method = "POST";
			req->url = job_api_url("/reports");
			req->json_body = body.data;
			break;
		case STEP_STATUS:
			job->call = CALL_REPORT;
			req->method = "GET";
			req->url = job_api_url(psprintf("/reports/%s", api_uuid_text(&d->report_id)));
			break;
		case STEP_DOWNLOAD:
			job->call = CALL_REPORT_DOWNLOAD;
			req->method = "GET";
			req->url = job_api_url(psprintf("/reports/download/%s", d->descriptor));
			req->file = true;
			req->max_body = (size_t) invicti_max_report_kb * 1024;
			break;
	}
}

/* Ask again later, or give up when it was asked often enough. */
static void
ask_again(Job *job, const char *why, TimestampTz when)
{
	ReportData *d = job->data;

	if (d->claim.attempts >= REPORT_MAX_ATTEMPTS)
		job_verdict(job, V_REPORT_FAILED,
					psprintf("%s: given up after %d attempts: %s", WHAT, d->claim.attempts, why), 0);
	else
		job_verdict(job, V_REPORT_RETRY, why, when);
}

/* Look at the report again later (its status, or a download that failed). */
static void
look_again(Job *job, const char *note, TimestampTz when)
{
	ReportData *d = job->data;
	TimestampTz deadline = TimestampTzPlusMilliseconds(d->claim.created_at,
													   (int64) invicti_report_timeout_s * 1000);

	if (GetCurrentTimestamp() >= deadline)
		job_verdict(job, V_REPORT_FAILED,
					psprintf("the report was not ready within invicti_scan.report_timeout (%d s); its status was %s%s%s",
							 invicti_report_timeout_s,
							 d->api_status ? api_printable(d->api_status, 64) : "unknown",
							 note ? "; last: " : "", note ? note : ""), 0);
	else
		job_verdict(job, V_REPORT_GENERATING, note, when);
}

static void
report_not_sent(Job *job, const char *error)
{
	ReportData *d = job->data;

	if (d->step == STEP_REQUEST)
		ask_again(job, error, after_ms(retry_policy_delay_ms(d->claim.attempts)));
	else
		look_again(job, error, after_ms(retry_policy_delay_ms(1)));
}

static bool
judge_request(Job *job, const ApiResponse *r, ResponseClass cls)
{
	ReportData *d = job->data;
	char	   *err = NULL;
	Jsonb	   *body = NULL;

	if (cls == RESP_SUCCESS)
	{
		if (r->curl_code == 0 && r->body_len > 0)
			body = api_parse_json(r, &err);
		if (api_created_id(r, body, "report_id", WHAT, &d->report_id, &err))
		{
			char	   *status = NULL;
			List	   *downloads = NIL;

			if (api_report_state(body, &status, &downloads))
				d->api_status = MemoryContextStrdup(job->cxt, api_printable(status, 64));
			job_verdict(job, V_REPORT_GENERATING, NULL, next_look());
			return true;
		}
		ask_again(job, psprintf("%s: %s; asking again", WHAT, err),
				  after_ms(retry_policy_delay_ms(d->claim.attempts)));
		return false;
	}
	err = api_describe_failure(r, WHAT);
	switch (cls)
	{
		case RESP_NOT_FOUND:
		case RESP_REJECTED:
			job_verdict(job, V_REPORT_FAILED, err, 0);
			break;
		case RESP_AUTH:
		case RESP_RATE_LIMITED:
			/* the whole-API pause decides when */
			ask_again(job, err, GetCurrentTimestamp());
			break;
		default:
			ask_again(job, err, after_ms(retry_policy_delay_ms(d->claim.attempts)));
			break;
	}
	return false;
}

/* The descriptor of the first download entry of our format, or NULL. */
static char *
pick_download(List *downloads, const char *format)
{
	ListCell   *lc;
	char	   *suffix = psprintf(".%s", format);

	foreach(lc, downloads)
	{
		char	   *entry = pstrdup(lfirst(lc));
		char	   *end = entry + strcspn(entry, "?#");
		char	   *slash;
		char	   *seg;
		const char *p;
		size_t		len;

		*end = '\0';
		slash = strrchr(entry, '/');
		seg = slash ? slash + 1 : entry;
		len = strlen(seg);
		if (len <= strlen(suffix) || len > DESCRIPTOR_MAX ||
			pg_strcasecmp(seg + len - strlen(suffix), suffix) != 0 || seg[0] == '.')
			continue;
		for (p = seg; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
				  (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
				break;
		if (*p == '\0')
			return seg;
	}
	return NULL;
}

static bool
judge_status(Job *job, const ApiResponse *r, ResponseClass cls)
{
	ReportData *d = job->data;
	char	   *err = NULL;
	Jsonb	   *body;
	char	   *status;
	List	   *downloads;

	if (cls == RESP_NOT_FOUND)
	{
		job_verdict(job, V_REPORT_FAILED,
					psprintf("%s: report %s no longer exists on the Invicti server (HTTP 404)",
							 WHAT, api_uuid_text(&d->report_id)), 0);
		return true;
	}
	if (cls != RESP_SUCCESS)
	{
		look_again(job, api_describe_failure(r, WHAT),
				   cls == RESP_AUTH || cls == RESP_RATE_LIMITED ? GetCurrentTimestamp() :
				   after_ms(retry_policy_delay_ms(2)));
		return false;
	}
	body = api_parse_json(r, &err);
	if (body == NULL || !api_report_state(body, &status, &downloads))
	{
		look_again(job, psprintf("%s: %s", WHAT, err ? err : "the answer has no status"),
				   after_ms(retry_policy_delay_ms(2)));
		return false;
	}
	d->api_status = MemoryContextStrdup(job->cxt, api_printable(status, 64));
	if (pg_strcasecmp(status, "failed") == 0)
	{
		job_verdict(job, V_REPORT_FAILED,
					"the Invicti server could not generate the report (status failed)", 0);
		return true;
	}
	if (pg_strcasecmp(status, "completed") == 0)
	{
		char	   *descriptor = pick_download(downloads, d->claim.format);

		if (descriptor == NULL)
		{
			job_verdict(job, V_REPORT_FAILED,
						psprintf("the report is completed but offers no usable %s download (%d entries)",
								 d->claim.format, list_length(downloads)), 0);
			return true;
		}
		d->descriptor = MemoryContextStrdup(job->cxt, descriptor);
		d->step = STEP_DOWNLOAD;
		job->next = NEXT_REQUEST;
		return true;
	}
	look_again(job, NULL, next_look());
	return true;
}

static bool
judge_download(Job *job, const ApiResponse *r, ResponseClass cls)
{
	ReportData *d = job->data;

	d->step = STEP_STATUS;		/* should it have to be fetched again */
	if (r->too_large)
	{
		job_verdict(job, V_REPORT_FAILED,
					psprintf("the report file is larger than invicti_scan.max_report_size (%d kB); it was not stored",
							 invicti_max_report_kb), 0);
		return false;
	}
	if (cls != RESP_SUCCESS || r->curl_code != 0)
	{
		look_again(job, api_describe_failure(r, WHAT_DOWNLOAD),
				   cls == RESP_AUTH || cls == RESP_RATE_LIMITED ? GetCurrentTimestamp() :
				   after_ms(retry_policy_delay_ms(2)));
		return false;
	}
	if (strcmp(d->claim.format, "pdf") == 0 &&
		(r->body_len < 5 || memcmp(r->body, "%PDF-", 5) != 0))
	{
		job_verdict(job, V_REPORT_FAILED,
					psprintf("%s: the file offered as a PDF does not start like one (%zu bytes); it was not stored",
							 WHAT_DOWNLOAD, r->body_len), 0);
		return false;
	}
	d->content = r->body;
	d->len = r->body_len;
	d->content_type = r->content_type ? api_printable(r->content_type, 100) : NULL;
	job_verdict(job, V_REPORT_READY, NULL, 0);
	return true;
}

static bool
report_judge(Job *job, const ApiResponse *r, ResponseClass cls)
{
	ReportData *d = job->data;

	switch (d->step)
	{
		case STEP_REQUEST:
			return judge_request(job, r, cls);
		case STEP_STATUS:
			return judge_status(job, r, cls);
		case STEP_DOWNLOAD:
			return judge_download(job, r, cls);
	}
	return false;
}

static void
report_record(Job *job)
{
	ReportData *d = job->data;

	switch ((ReportVerdict) job->verdict)
	{
		case V_REPORT_GENERATING:
			report_store_generating(job->row_id, &d->report_id, d->api_status, job->retry_at,
									job->message);
			jobs_table_changed();
			break;
		case V_REPORT_RETRY:
			report_store_retry(job->row_id, job->retry_at, job->message);
			jobs_table_changed();
			break;
		case V_REPORT_READY:
			report_store_ready(job->row_id, d->api_status, d->content, d->len, d->content_type);
			break;
		case V_REPORT_FAILED:
			report_store_failed(job->row_id, d->api_status, job->message);
			break;
	}
}

static void
report_record_failure(Job *job, const char *error)
{
	ReportData *d = job->data;

	report_store_failed(job->row_id, d->api_status,
						psprintf("%s: the answer could not be recorded: %s", WHAT, error));
}

static bool
report_recorded(Job *job pg_attribute_unused(), TimestampTz now pg_attribute_unused())
{
	return false;
}

static const JobKind report_kind = {
	.call = CALL_REPORT,
	.durable = false,
	.rows = ROWS_REPORTS,
	.build = report_build,
	.judge = report_judge,
	.not_sent = report_not_sent,
	.record = report_record,
	.record_failure = report_record_failure,
	.recorded = report_recorded,
};

void
job_report_start(const ReportClaim *claim)
{
	Job		   *job = job_new(&report_kind, claim->id, sizeof(ReportData));
	ReportData *d = job->data;
	MemoryContext old = MemoryContextSwitchTo(job->cxt);

	d->claim = *claim;
	d->claim.format = pstrdup(claim->format);
	d->claim.scan_ids = palloc(sizeof(pg_uuid_t) * Max(claim->nscans, 1));
	memcpy(d->claim.scan_ids, claim->scan_ids, sizeof(pg_uuid_t) * claim->nscans);
	MemoryContextSwitchTo(old);
	d->step = claim->has_report_id ? STEP_STATUS : STEP_REQUEST;
	if (claim->has_report_id)
		d->report_id = claim->report_id;
	job_submit(job);
}

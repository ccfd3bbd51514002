/*
 * job_abort.c
 *		Sending the abort that invicti_abort_scan() asked for:
 *		POST /scans/{scan_id}/abort, then polling the scan to its end.
 *
 * The spec's abort takes no body and answers 204.  Accepted (2xx), the row
 * goes back to polling at once, and the polls show the scan aborting.  A
 * 409 says the scan is in no state to abort (it has ended, or is ending):
 * the row goes back to polling, and says so.  Any other 4xx is a refusal:
 * the scan was not aborted and runs on, so the row goes back to polling
 * with last_error saying that, loudly (a WARNING), and invicti_abort_scan()
 * may ask again; it is never recorded as sent.  A scan the API no longer
 * knows (404) ends the row; anything else is retried with backoff.
 */
#include "postgres.h"

#include "jobs.h"
#include "job_kinds.h"
#include "poll_schedule.h"
#include "scan_store.h"

/* How this work is named in messages. */
#define WHAT api_call_nouns[CALL_ABORT]

typedef enum AbortVerdict
{
	V_ABORT_SENT,				/* accepted, or too late (409): poll now */
	V_ABORT_REFUSED,			/* another 4xx: not aborted, poll on */
	V_ABORT_GONE,				/* 404: the scan no longer exists */
	V_ABORT_RETRY
} AbortVerdict;

typedef struct AbortData
{
	pg_uuid_t	scan_id;
} AbortData;

static void
abort_build(Job *job, ApiRequest *req)
{
	AbortData  *d = job->data;

	req->method = "POST";
	req->url = job_api_url(psprintf("/scans/%s/abort", api_uuid_text(&d->scan_id)));
}

static void
abort_not_sent(Job *job, const char *error)
{
	job_verdict(job, V_ABORT_RETRY, error, job_retry_time(job, RESP_NO_RESPONSE));
}

static bool
abort_judge(Job *job, const ApiResponse *r, ResponseClass cls)
{
	AbortData  *d = job->data;

	switch (cls)
	{
		case RESP_SUCCESS:
			job_verdict(job, V_ABORT_SENT, NULL, 0);
			return true;
		case RESP_NOT_FOUND:
			job_verdict(job, V_ABORT_GONE,
						psprintf("%s: scan %s no longer exists on the Invicti server (HTTP 404)", WHAT,
								 api_uuid_text(&d->scan_id)), 0);
			return true;
		case RESP_REJECTED:
			if (r->http_status == 409)
				job_verdict(job, V_ABORT_SENT,
							psprintf("%s; the scan is in no state to abort (it has ended or is ending), the next poll shows how",
									 api_describe_failure(r, WHAT)), 0);
			else
			{
				job_verdict(job, V_ABORT_REFUSED,
							psprintf("%s; Invicti refused the abort: the scan was not aborted and is polled on (invicti_abort_scan() may ask again)",
									 api_describe_failure(r, WHAT)), 0);
				ereport(WARNING,
						(errmsg("invicti_scan: Invicti refused to abort scan %s (HTTP %ld)",
								api_uuid_text(&d->scan_id), r->http_status),
						 errdetail("The scan was not aborted and goes on; its row is polled as before and its last_error says why.")));
			}
			return false;
		default:
			job_verdict(job, V_ABORT_RETRY, api_describe_failure(r, WHAT),
						job_retry_time(job, cls));
			return false;
	}
}

static void
abort_record(Job *job)
{
	switch ((AbortVerdict) job->verdict)
	{
		case V_ABORT_SENT:
		case V_ABORT_REFUSED:
			scan_store_abort_sent(job->row_id, job->message);
			break;
		case V_ABORT_GONE:
			scan_store_abort_gone(job->row_id, job->message);
			break;
		case V_ABORT_RETRY:
			scan_store_work_retry(job->row_id, WS_ABORT, job->retry_at, job->message);
			jobs_table_changed();
			break;
	}
}

static void
abort_record_failure(Job *job, const char *error)
{
	scan_store_work_retry(job->row_id, WS_ABORT, job_retry_time(job, RESP_SERVER_ERROR),
						  psprintf("%s: the answer could not be recorded: %s", WHAT, error));
	jobs_table_changed();
}

static bool
abort_recorded(Job *job, TimestampTz now)
{
	AbortData  *d = job->data;

	if (job->record_failed || job->verdict == V_ABORT_RETRY)
		return false;
	job_clear_row_failures(job->row_id);
	if (job->verdict == V_ABORT_SENT || job->verdict == V_ABORT_REFUSED)
		poll_schedule_add(job->row_id, &d->scan_id, now, true);
	return false;
}

static const JobKind abort_kind = {
	.call = CALL_ABORT,
	.durable = true,
	.build = abort_build,
	.judge = abort_judge,
	.not_sent = abort_not_sent,
	.record = abort_record,
	.record_failure = abort_record_failure,
	.recorded = abort_recorded,
};

void
job_abort_start(const TableClaim *claim)
{
	Job		   *job = job_new(&abort_kind, claim->id, sizeof(AbortData));
	AbortData  *d = job->data;

	d->scan_id = claim->scan_id;
	job->is_retry = job_row_failures(claim->id) > 0;
	poll_schedule_remove(claim->id);	/* polled again once aborted */
	job_submit(job);
}

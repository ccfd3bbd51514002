/*
 * job_poll.c
 *		Polling one running scan: GET /scans/{scan_id}, and what its answer
 *		makes of the row.
 *
 * Most polls of a long scan hear what they heard last time.  When the body
 * is byte for byte the one the row already holds (poll_schedule.c keeps a
 * hash of it), there is nothing to parse and nothing to write: no
 * transaction at all.  A scan the API no longer knows (404) stops being
 * polled; a refused token or a 429 pauses every request (retry_policy.c)
 * and the scan is polled again when the pause ends; any other failure is
 * written to last_error and the poll is retried with backoff.
 */
#include "postgres.h"

#include "common/hashfn.h"

#include "jobs.h"
#include "job_kinds.h"
#include "poll_schedule.h"
#include "scan_store.h"
#include "settings.h"

/* How this work is named in messages. */
#define WHAT api_call_nouns[CALL_POLL]

typedef enum PollVerdict
{
	V_POLL_STATE,				/* the scan's state, to record */
	V_POLL_GONE,				/* 404: the scan no longer exists */
	V_POLL_ERROR,				/* a failed poll, to note on the row */
	V_POLL_DEFERRED				/* a whole-API pause: poll again after it */
} PollVerdict;

typedef struct PollData
{
	pg_uuid_t	scan_id;
	ApiScanState state;
	Jsonb	   *response;		/* in the request context */
	uint64		answer_hash;	/* hash of the body, never 0 */
	bool		still_polled;	/* after recording: the row is still polled */
} PollData;

static void
poll_build(Job *job, ApiRequest *req)
{
	PollData   *d = job->data;

	req->method = "GET";
	req->url = job_api_url(psprintf("/scans/%s", api_uuid_text(&d->scan_id)));
}

static void
poll_not_sent(Job *job, const char *error)
{
	job_verdict(job, V_POLL_ERROR, error, 0);
}

static bool
poll_judge(Job *job, const ApiResponse *r, ResponseClass cls)
{
	PollData   *d = job->data;
	char	   *err;

	switch (cls)
	{
		case RESP_SUCCESS:
			d->answer_hash = (r->body ?
							  hash_bytes_extended((const unsigned char *) r->body,
												  (int) r->body_len, 0) : 0) | 1;
			if (r->curl_code == 0 &&
				d->answer_hash == poll_schedule_recorded_answer(job->row_id))
			{
				job->next = NEXT_FINISHED;
				return true;
			}
			d->response = api_parse_json(r, &err);
			if (d->response == NULL ||
				!api_scan_state(d->response, &d->scan_id, &d->state, &err))
			{
				job_verdict(job, V_POLL_ERROR, psprintf("%s: %s", WHAT, err), 0);
				return false;
			}
			if (d->state.problem)
				d->state.problem = psprintf("%s: %s", WHAT, d->state.problem);
			job_verdict(job, V_POLL_STATE, NULL, 0);
			return true;
		case RESP_NOT_FOUND:
			job_verdict(job, V_POLL_GONE,
						psprintf("scan %s no longer exists on the Invicti server (HTTP 404); polling stopped",
								 api_uuid_text(&d->scan_id)), 0);
			return true;
		case RESP_AUTH:
			job_verdict(job, V_POLL_DEFERRED, api_describe_failure(r, WHAT), 0);
			return false;
		case RESP_RATE_LIMITED:
			job_verdict(job, V_POLL_DEFERRED, NULL, 0);
			return false;
		default:
			job_verdict(job, V_POLL_ERROR, api_describe_failure(r, WHAT), 0);
			return false;
	}
}

static void
poll_record(Job *job)
{
	PollData   *d = job->data;
	WorkerState next;

	d->still_polled = true;
	switch ((PollVerdict) job->verdict)
	{
		case V_POLL_STATE:
			next = worker_state_after_poll(d->state.status);
			d->still_polled = scan_store_poll_update(job->row_id, &d->state, d->response, next,
													 invicti_import_vulnerabilities);
			/* import to start, or the row was moved on (an abort) meanwhile */
			if (next == WS_IMPORT || (next == WS_POLL && !d->still_polled))
				jobs_table_changed();
			break;
		case V_POLL_GONE:
			scan_store_poll_gone(job->row_id, job->message);
			d->still_polled = false;
			break;
		case V_POLL_ERROR:
		case V_POLL_DEFERRED:
			if (job->message)
				scan_store_poll_error(job->row_id, job->message);
			break;
	}
}

static bool
poll_batchable(Job *job)
{
	return job->verdict == V_POLL_STATE;
}

/* Many polls' new states in one statement (see poll_record). */
static void
poll_record_batch(Job **jobs, int n)
{
	int64	   *ids = palloc(sizeof(int64) * n);
	ApiScanState **states = palloc(sizeof(ApiScanState *) * n);
	Jsonb	  **responses = palloc(sizeof(Jsonb *) * n);
	WorkerState *next = palloc(sizeof(WorkerState) * n);
	bool	   *still = palloc(sizeof(bool) * n);
	int			i;

	for (i = 0; i < n; i++)
	{
		PollData   *d = jobs[i]->data;

		ids[i] = jobs[i]->row_id;
		states[i] = &d->state;
		responses[i] = d->response;
		next[i] = worker_state_after_poll(d->state.status);
	}
	scan_store_poll_update_many(ids, states, responses, next, n,
								invicti_import_vulnerabilities, still);
	for (i = 0; i < n; i++)
	{
		((PollData *) jobs[i]->data)->still_polled = still[i];
		/* import to start, or the row was moved on (an abort) meanwhile */
		if (next[i] == WS_IMPORT || (next[i] == WS_POLL && !still[i]))
			jobs_table_changed();
	}
}

static void
poll_record_failure(Job *job, const char *error)
{
	scan_store_poll_error(job->row_id,
						  psprintf("%s: the answer could not be recorded: %s", WHAT, error));
}

static bool
poll_recorded(Job *job, TimestampTz now)
{
	PollData   *d = job->data;

	if (job->next == NEXT_FINISHED)
		poll_schedule_done(job->row_id, POLL_OK, now);
	else if (job->record_failed)
		poll_schedule_done(job->row_id, POLL_FAILED, now);
	else if (!d->still_polled)
		poll_schedule_remove(job->row_id);
	else if (job->verdict == V_POLL_STATE)
	{
		poll_schedule_done(job->row_id, POLL_OK, now);
		/* the row now holds this answer (and no error) */
		poll_schedule_set_recorded_answer(job->row_id, d->answer_hash);
	}
	else
		poll_schedule_done(job->row_id,
						   job->verdict == V_POLL_DEFERRED ? POLL_DEFERRED : POLL_FAILED,
						   now);
	return false;
}

static const JobKind poll_kind = {
	.call = CALL_POLL,
	.durable = false,
	.build = poll_build,
	.judge = poll_judge,
	.not_sent = poll_not_sent,
	.record = poll_record,
	.batchable = poll_batchable,
	.record_batch = poll_record_batch,
	.record_failure = poll_record_failure,
	.recorded = poll_recorded,
};

/*
 * A list item refreshes the scan as its own GET would: the same verdict,
 * with the item (copied: the page's memory goes with the next page) as the
 * answer the row keeps.
 */
void
job_poll_from_list(int64 id, const pg_uuid_t *scan_id, JsonbValue *item, uint64 hash)
{
	Job		   *job = job_new(&poll_kind, id, sizeof(PollData));
	PollData   *d = job->data;
	MemoryContext old = MemoryContextSwitchTo(job->cxt);
	char	   *err;

	d->scan_id = *scan_id;
	d->answer_hash = hash;
	d->response = JsonbValueToJsonb(item);
	if (api_scan_state(d->response, scan_id, &d->state, &err))
	{
		if (d->state.problem)
			d->state.problem = psprintf("%s: %s", api_call_nouns[CALL_POLL_LIST], d->state.problem);
		job_verdict(job, V_POLL_STATE, NULL, 0);
	}
	else
		job_verdict(job, V_POLL_ERROR, psprintf("%s: %s", api_call_nouns[CALL_POLL_LIST], err), 0);
	MemoryContextSwitchTo(old);
	job_enqueue_verdict(job);
}

void
job_poll_start(int64 id, const pg_uuid_t *scan_id)
{
	Job		   *job = job_new(&poll_kind, id, sizeof(PollData));
	PollData   *d = job->data;

	d->scan_id = *scan_id;
	job_submit(job);
}

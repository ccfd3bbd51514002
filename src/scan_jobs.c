/*
 * scan_jobs.c
 *		One API request made for one row, from start to recorded verdict:
 *		build the request, send it through api_client.c, judge the answer
 *		(outside any transaction), then record the verdict through
 *		scan_store.c (inside the worker's transaction).
 *
 * The at-most-once rule for launches is decided here.  A launch is already
 * 'sending' in a committed row before its request leaves.  Its verdict is:
 *  - launched: a 201 with a scan id (Location first, body second);
 *  - retry: the request provably had no effect (nothing was sent, or the
 *    answer was 401/403/429/503/408), so it may be sent again;
 *  - unknown: it may have reached the server (timeout after sending, dropped
 *    connection, other 5xx, a 201 without usable id).  The row goes to
 *    'reconcile': the worker lists the target's scans and adopts the one
 *    this attempt created; only when none exists is the launch sent again;
 *  - failed: 400/404/422 and other 4xx, with the API's reason.
 *
 * Memory: each job has its own context (and a child for the current
 * request's response), deleted as a whole when the job ends, so a worker
 * that runs for months does not grow.
 */
#include "postgres.h"

#include "common/hashfn.h"

#include "lib/ilist.h"
#include "nodes/pg_list.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "api_client.h"
#include "api_response.h"
#include "poll_schedule.h"
#include "retry_policy.h"
#include "scan_jobs.h"
#include "settings.h"
#include "shared_state.h"

/* Scans created this long before a launch attempt cannot be its result. */
#define RECONCILE_CLOCK_SKEW_MS (10 * 60 * 1000)
/* A scan list longer than this many pages is not followed further. */
#define RECONCILE_MAX_PAGES 1000
/* A verdict that cannot be recorded this many times is dropped. */
#define MAX_RECORD_FAILURES 3

typedef enum Verdict
{
	V_NONE,
	V_LAUNCHED,
	V_LAUNCH_RETRY,
	V_LAUNCH_UNKNOWN,
	V_LAUNCH_FAILED,
	V_POLL_STATE,
	V_POLL_UNCHANGED,			/* the answer recorded last time, byte for byte */
	V_POLL_GONE,
	V_POLL_ERROR,
	V_POLL_DEFERRED,
	V_RECONCILE_DONE,
	V_ABORT_SENT,				/* accepted, or refused with a note: poll now */
	V_ABORT_GONE,				/* 404: the scan no longer exists */
	V_IMPORT_PAGE,				/* a page of findings; next_cursor or the end */
	V_IMPORT_FAILED,			/* 404: findings cannot be imported */
	V_WORK_RETRY				/* table-scheduled work: try again at retry_at */
} Verdict;

typedef struct Candidate
{
	pg_uuid_t	scan_id;
	bool		has_created;
	TimestampTz created;
} Candidate;

typedef struct Job
{
	dlist_node	node;
	MemoryContext cxt;			/* the job and its verdict */
	MemoryContext req_cxt;		/* the current request and its response */
	InvictiCallKind kind;
	int64		row_id;
	pg_uuid_t	target_id;
	pg_uuid_t	profile_id;
	pg_uuid_t	scan_id;		/* polled scan, or the one found */
	pg_uuid_t	session_id;		/* import: the completed session */
	TimestampTz attempt_at;		/* reconcile: when the launch was sent */
	int32		attempts;		/* launch: sends so far, this one included */
	bool		is_retry;
	const char *method;
	char	   *url;
	char	   *cursor;			/* reconcile, import: page being fetched */
	int			pages;
	List	   *candidates;		/* reconcile: Candidate *, in job cxt */
	ListPage	page;			/* import: the page's findings (req_cxt) */

	Verdict		verdict;
	char	   *message;
	TimestampTz retry_at;
	ApiScanState	state;
	Jsonb	   *response;
	uint64		answer_hash;	/* poll: hash of the body, never 0 */

	bool		recording;
	int			record_failures;
	bool		schedule_new;	/* after commit: start polling scan_id */
	bool		schedule_remove;	/* after commit: stop polling */
} Job;

static MemoryContext jobs_cxt = NULL;
static dlist_head in_flight = DLIST_STATIC_INIT(in_flight);
static dlist_head waiting = DLIST_STATIC_INIT(waiting);
static int	n_in_flight = 0;
static int	n_waiting = 0;

/* A recorded verdict created or moved work the table schedules. */
static bool table_work_changed = false;

/* Consecutive failures of table-scheduled work, by row id. */
typedef struct RowFailures
{
	int64		id;
	int			failures;
} RowFailures;
static HTAB *row_failures = NULL;

static const char *const kind_what[NUM_CALL_KINDS] = {
	"launch", "status request", "scan list request", "abort request", "results request"
};

static void send_job(Job *job);

void
jobs_init(void)
{
	jobs_cxt = AllocSetContextCreate(TopMemoryContext, "invicti_scan jobs",
									 ALLOCSET_DEFAULT_SIZES);
	jobs_forget_failures();
}

void
jobs_forget_failures(void)
{
	HASHCTL		ctl;

	if (row_failures)
		hash_destroy(row_failures);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(RowFailures);
	ctl.hcxt = jobs_cxt;
	row_failures = hash_create("invicti_scan row failures", 64, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

static int
note_row_failure(int64 id)
{
	bool		found;
	RowFailures *f = hash_search(row_failures, &id, HASH_ENTER, &found);

	f->failures = found ? f->failures + 1 : 1;
	return f->failures;
}

static int
row_failure_count(int64 id)
{
	RowFailures *f = hash_search(row_failures, &id, HASH_FIND, NULL);

	return f ? f->failures : 0;
}

static void
clear_row_failures(int64 id)
{
	hash_search(row_failures, &id, HASH_REMOVE, NULL);
}

static Job *
new_job(InvictiCallKind kind, int64 row_id)
{
	MemoryContext cxt = AllocSetContextCreate(jobs_cxt, "invicti_scan job",
											  ALLOCSET_SMALL_SIZES);
	Job		   *job = MemoryContextAllocZero(cxt, sizeof(Job));

	job->cxt = cxt;
	job->req_cxt = AllocSetContextCreate(cxt, "invicti_scan request",
										 ALLOCSET_DEFAULT_SIZES);
	job->kind = kind;
	job->row_id = row_id;
	return job;
}

static void
free_job(Job *job)
{
	MemoryContextDelete(job->cxt);
}

int
jobs_in_flight(void)
{
	return n_in_flight;
}

int
jobs_waiting(void)
{
	return n_waiting;
}

int
jobs_busy_ids(int64 **ids)
{
	dlist_iter	it;
	int			n = 0;

	*ids = palloc(sizeof(int64) * Max(n_in_flight + n_waiting, 1));
	dlist_foreach(it, &in_flight)
		(*ids)[n++] = dlist_container(Job, node, it.cur)->row_id;
	dlist_foreach(it, &waiting)
		(*ids)[n++] = dlist_container(Job, node, it.cur)->row_id;
	return n;
}

static char *
api_url(const char *suffix)
{
	return psprintf("%s%s%s", invicti_base_url, invicti_api_path, suffix);
}

/* The seed's launch body. */
static char *
launch_body(const Job *job)
{
	return psprintf("{\"user_authorized_to_scan\": \"yes\", "
					"\"target_id\": \"%s\", \"profile_id\": \"%s\", "
					"\"schedule\": {\"disable\": false, \"time_sensitive\": false}}",
					uuid_to_text(&job->target_id), uuid_to_text(&job->profile_id));
}

static void
give_verdict(Job *job, Verdict v, const char *message, TimestampTz retry_at)
{
	job->verdict = v;
	job->message = message ? MemoryContextStrdup(job->cxt, message) : NULL;
	job->retry_at = retry_at;
	dlist_push_tail(&waiting, &job->node);
	n_waiting++;
}

static TimestampTz
after_ms(int64 ms)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
}

/* A request that could not even be started: nothing was sent. */
static void
not_sent(Job *job, const char *error)
{
	char	   *msg = psprintf("%s: %s", kind_what[job->kind], error);

	invicti_stats_count(job->kind, OUTCOME_NETWORK_ERROR, job->is_retry, msg);
	switch (job->kind)
	{
		case CALL_LAUNCH:
			give_verdict(job, V_LAUNCH_RETRY, msg, after_ms(retry_delay_ms(job->attempts)));
			break;
		case CALL_POLL:
			give_verdict(job, V_POLL_ERROR, msg, 0);
			break;
		default:
			give_verdict(job, V_WORK_RETRY, msg,
						 after_ms(retry_delay_ms(note_row_failure(job->row_id))));
			break;
	}
}

static void
send_job(Job *job)
{
	MemoryContext old;
	ApiRequest	req;
	char	   *error;

	MemoryContextReset(job->req_cxt);
	old = MemoryContextSwitchTo(job->req_cxt);
	memset(&req, 0, sizeof(req));
	switch (job->kind)
	{
		case CALL_LAUNCH:
			req.method = "POST";
			req.url = api_url("/scans");
			req.json_body = launch_body(job);
			req.fresh_connection = true;
			break;
		case CALL_POLL:
			req.method = "GET";
			req.url = api_url(psprintf("/scans/%s", uuid_to_text(&job->scan_id)));
			break;
		case CALL_RECONCILE:
			req.method = "GET";
			req.url = api_url(psprintf("/scans?l=100&q=target_id:%s%s%s",
									   uuid_to_text(&job->target_id),
									   job->cursor ? "&c=" : "",
									   job->cursor ? api_client_escape(job->cursor) : ""));
			break;
		case CALL_ABORT:
			req.method = "POST";
			req.url = api_url(psprintf("/scans/%s/abort", uuid_to_text(&job->scan_id)));
			break;
		case CALL_RESULTS:
			req.method = "GET";
			req.url = api_url(psprintf("/scans/%s/results/%s/vulnerabilities?l=100%s%s",
									   uuid_to_text(&job->scan_id),
									   uuid_to_text(&job->session_id),
									   job->cursor ? "&c=" : "",
									   job->cursor ? api_client_escape(job->cursor) : ""));
			break;
		default:
			elog(ERROR, "invicti_scan: unexpected job kind %d", (int) job->kind);
	}
	job->method = req.method;
	job->url = (char *) req.url;

	if (api_client_submit(&req, job, job->req_cxt, &error))
	{
		dlist_push_tail(&in_flight, &job->node);
		n_in_flight++;
	}
	else
		not_sent(job, error);
	MemoryContextSwitchTo(old);
}

void
jobs_start_launch(const LaunchClaim *claim)
{
	Job		   *job = new_job(CALL_LAUNCH, claim->id);

	job->target_id = claim->target_id;
	job->profile_id = claim->profile_id;
	job->attempts = claim->attempts;
	job->is_retry = claim->attempts > 1;
	send_job(job);
}

void
jobs_start_table_work(const TableClaim *claim)
{
	Job		   *job = new_job(claim->kind, claim->id);

	job->target_id = claim->target_id;
	job->profile_id = claim->profile_id;
	job->scan_id = claim->scan_id;
	job->session_id = claim->session_id;
	job->attempt_at = claim->last_attempt_at;
	job->attempts = claim->attempts;
	if (claim->cursor)
		job->cursor = MemoryContextStrdup(job->cxt, claim->cursor);
	job->is_retry = row_failure_count(claim->id) > 0;
	if (claim->kind == CALL_ABORT)
		poll_schedule_remove(claim->id);	/* polled again once aborted */
	send_job(job);
}

void
jobs_start_poll(int64 id, const pg_uuid_t *scan_id)
{
	Job		   *job = new_job(CALL_POLL, id);

	job->scan_id = *scan_id;
	send_job(job);
}

/* ---- judging answers (no transaction open) ---- */

static InvictiOutcome
failure_outcome(const ApiResponse *r)
{
	if (r->http_status == 0)
		return OUTCOME_NETWORK_ERROR;
	if (r->http_status == 401 || r->http_status == 403)
		return OUTCOME_AUTH_ERROR;
	if (r->http_status == 429)
		return OUTCOME_RATE_LIMITED;
	if (r->http_status >= 200 && r->http_status < 300)
		return OUTCOME_BAD_RESPONSE;
	if (r->http_status >= 400 && r->http_status < 500)
		return OUTCOME_CLIENT_ERROR;
	return OUTCOME_SERVER_ERROR;
}

static bool
judge_launch(Job *job, const ApiResponse *r, ResponseClass cls)
{
	int64		grace = invicti_request_timeout_ms;
	char	   *err = NULL;

	if (cls == RESP_SUCCESS)
	{
		Jsonb	   *body = NULL;

		if (r->curl_code == 0 && r->body_len > 0)
			body = parse_json_body(r, &err);
		if (launch_scan_id(r, body, &job->scan_id, &err))
		{
			give_verdict(job, V_LAUNCHED, NULL, 0);
			return true;
		}
		give_verdict(job, V_LAUNCH_UNKNOWN,
					 psprintf("launch: %s; checking with Invicti before launching again", err),
					 after_ms(grace));
		return false;
	}

	err = describe_failure(r, "launch");
	if (cls == RESP_NO_RESPONSE && !r->request_sent)
		give_verdict(job, V_LAUNCH_RETRY, psprintf("%s; nothing was sent, retrying", err),
					 after_ms(retry_delay_ms(job->attempts)));
	else
		switch (cls)
		{
			case RESP_AUTH:
			case RESP_RATE_LIMITED:
				/* the whole-API pause decides when; the row is due now */
				give_verdict(job, V_LAUNCH_RETRY, psprintf("%s; retrying", err),
							 GetCurrentTimestamp());
				break;
			case RESP_UNAVAILABLE:
				give_verdict(job, V_LAUNCH_RETRY, psprintf("%s; retrying", err),
							 after_ms(retry_delay_ms(job->attempts)));
				break;
			case RESP_NOT_FOUND:
			case RESP_REJECTED:
				give_verdict(job, V_LAUNCH_FAILED, err, 0);
				break;
			default:
				give_verdict(job, V_LAUNCH_UNKNOWN,
							 psprintf("%s; the scan may exist, checking with Invicti before launching again", err),
							 after_ms(grace));
				break;
		}
	return false;
}

static bool
judge_poll(Job *job, const ApiResponse *r, ResponseClass cls)
{
	char	   *err;

	switch (cls)
	{
		case RESP_SUCCESS:

			/*
			 * Most polls of a long scan hear what they heard last time.
			 * When the body is the one already in the row, there is
			 * nothing to parse and nothing to write: no transaction at all.
			 */
			job->answer_hash = (r->body ?
								hash_bytes_extended((const unsigned char *) r->body,
													(int) r->body_len, 0) : 0) | 1;
			if (r->curl_code == 0 &&
				job->answer_hash == poll_schedule_recorded_answer(job->row_id))
			{
				job->verdict = V_POLL_UNCHANGED;
				return true;
			}
			job->response = parse_json_body(r, &err);
			if (job->response == NULL ||
				!scan_state_from_body(job->response, &job->scan_id, &job->state, &err))
			{
				give_verdict(job, V_POLL_ERROR, psprintf("status request: %s", err), 0);
				return false;
			}
			give_verdict(job, V_POLL_STATE, NULL, 0);
			return true;
		case RESP_NOT_FOUND:
			give_verdict(job, V_POLL_GONE,
						 psprintf("scan %s no longer exists on the Invicti server (HTTP 404); polling stopped",
								  uuid_to_text(&job->scan_id)), 0);
			return true;
		case RESP_AUTH:
			give_verdict(job, V_POLL_DEFERRED, describe_failure(r, "status request"), 0);
			return false;
		case RESP_RATE_LIMITED:
			give_verdict(job, V_POLL_DEFERRED, NULL, 0);
			return false;
		default:
			give_verdict(job, V_POLL_ERROR, describe_failure(r, "status request"), 0);
			return false;
	}
}

/* Table-scheduled work failed: due now under a whole-API pause, else backoff. */
static void
retry_table_work(Job *job, ResponseClass cls, const char *message)
{
	TimestampTz when = GetCurrentTimestamp();

	if (cls != RESP_AUTH && cls != RESP_RATE_LIMITED)
		when = after_ms(retry_delay_ms(note_row_failure(job->row_id)));
	give_verdict(job, V_WORK_RETRY, message, when);
}

static bool
judge_abort(Job *job, const ApiResponse *r, ResponseClass cls)
{
	switch (cls)
	{
		case RESP_SUCCESS:
			give_verdict(job, V_ABORT_SENT, NULL, 0);
			return true;
		case RESP_NOT_FOUND:
			give_verdict(job, V_ABORT_GONE,
						 psprintf("abort request: scan %s no longer exists on the Invicti server (HTTP 404)",
								  uuid_to_text(&job->scan_id)), 0);
			return true;
		case RESP_REJECTED:
			/* e.g. 409: it has already finished; the next poll shows how */
			give_verdict(job, V_ABORT_SENT, describe_failure(r, "abort request"), 0);
			return false;
		default:
			retry_table_work(job, cls, describe_failure(r, "abort request"));
			return false;
	}
}

static bool
judge_import(Job *job, const ApiResponse *r, ResponseClass cls)
{
	char	   *err;
	Jsonb	   *body;

	if (cls == RESP_NOT_FOUND)
	{
		give_verdict(job, V_IMPORT_FAILED,
					 psprintf("findings request: session %s of scan %s is unknown to Invicti (HTTP 404); findings not imported",
							  uuid_to_text(&job->session_id), uuid_to_text(&job->scan_id)), 0);
		return true;
	}
	if (cls != RESP_SUCCESS)
	{
		retry_table_work(job, cls, describe_failure(r, "findings request"));
		return false;
	}
	body = parse_json_body(r, &err);
	if (body == NULL || !parse_list_page(body, "vulnerabilities", &job->page, &err))
	{
		retry_table_work(job, cls, psprintf("findings request: %s", err));
		return false;
	}
	/* a cursor that repeats would loop forever: treat it as the end */
	if (job->page.next_cursor && job->cursor &&
		strcmp(job->page.next_cursor, job->cursor) == 0)
		job->page.next_cursor = NULL;
	give_verdict(job, V_IMPORT_PAGE, NULL, 0);
	return true;
}

/* Keep the scans on this page that this row's launch attempt could have made. */
static void
gather_candidates(Job *job, ListPage *page)
{
	int			i;
	TimestampTz earliest = job->attempt_at - (TimestampTz) RECONCILE_CLOCK_SKEW_MS * 1000;
	MemoryContext old;

	/* the list outlives this page's request context */
	old = MemoryContextSwitchTo(job->cxt);
	for (i = 0; i < page->n_items; i++)
	{
		pg_uuid_t	id;
		pg_uuid_t	other;
		ApiScanState	st;
		Candidate  *c;

		if (!scan_list_item(page->items[i]->val.binary.data, &id, &st))
			continue;
		if (st.target_id && parse_uuid(st.target_id, strlen(st.target_id), &other) &&
			memcmp(&other, &job->target_id, sizeof(other)) != 0)
			continue;
		if (st.profile_id && parse_uuid(st.profile_id, strlen(st.profile_id), &other) &&
			memcmp(&other, &job->profile_id, sizeof(other)) != 0)
			continue;
		if (st.has_created && st.created < earliest)
			continue;
		c = palloc(sizeof(Candidate));
		c->scan_id = id;
		c->has_created = st.has_created;
		c->created = st.created;
		job->candidates = lappend(job->candidates, c);
	}
	MemoryContextSwitchTo(old);
}

static bool
judge_reconcile_page(Job *job, const ApiResponse *r, ResponseClass cls)
{
	char	   *err;
	Jsonb	   *body;
	ListPage	page;

	if (cls != RESP_SUCCESS)
	{
		retry_table_work(job, cls, describe_failure(r, "scan list request"));
		return false;
	}
	body = parse_json_body(r, &err);
	if (body == NULL || !parse_list_page(body, "scans", &page, &err))
	{
		retry_table_work(job, cls, psprintf("scan list request: %s", err));
		return false;
	}
	gather_candidates(job, &page);

	if (page.next_cursor && job->pages < RECONCILE_MAX_PAGES &&
		(job->cursor == NULL || strcmp(page.next_cursor, job->cursor) != 0))
	{
		job->cursor = MemoryContextStrdup(job->cxt, page.next_cursor);
		job->pages++;
		send_job(job);
	}
	else
		give_verdict(job, V_RECONCILE_DONE, NULL, 0);
	return true;
}

static void
judge(Job *job, const ApiResponse *r)
{
	ResponseClass cls = classify_response(r);
	bool		ok = false;
	char	   *problem;

	/* What the answer says about the whole API. */
	if (cls == RESP_RATE_LIMITED || (cls == RESP_UNAVAILABLE && r->retry_after))
		api_pause_rate_limited(r->retry_after);
	else if (cls == RESP_AUTH)
		api_pause_auth_failed(describe_failure(r, kind_what[job->kind]));
	else if (cls == RESP_SUCCESS || cls == RESP_NOT_FOUND)
		api_pause_success();

	ereport(DEBUG1,
			(errmsg_internal("invicti_scan: %s %s -> %ld in %ld ms%s%s",
							 job->method, job->url, r->http_status,
							 (long) r->elapsed_ms,
							 r->error ? ": " : "", r->error ? r->error : "")));

	switch (job->kind)
	{
		case CALL_LAUNCH:
			ok = judge_launch(job, r, cls);
			break;
		case CALL_POLL:
			ok = judge_poll(job, r, cls);
			break;
		case CALL_RECONCILE:
			ok = judge_reconcile_page(job, r, cls);
			break;
		case CALL_ABORT:
			ok = judge_abort(job, r, cls);
			break;
		case CALL_RESULTS:
			ok = judge_import(job, r, cls);
			break;
		default:
			elog(ERROR, "invicti_scan: unexpected job kind %d", (int) job->kind);
	}
	problem = ok ? NULL : job->message ? job->message
		: describe_failure(r, kind_what[job->kind]);
	invicti_stats_count(job->kind,
						ok ? OUTCOME_OK : failure_outcome(r),
						job->is_retry, problem);
}

void
jobs_collect(void)
{
	void	   *tag;
	ApiResponse resp;

	while (api_client_next_completed(&tag, &resp))
	{
		Job		   *job = (Job *) tag;
		MemoryContext old;

		dlist_delete(&job->node);
		n_in_flight--;
		old = MemoryContextSwitchTo(job->req_cxt);
		judge(job, &resp);
		MemoryContextSwitchTo(old);
		if (job->verdict == V_POLL_UNCHANGED)
		{
			poll_schedule_done(job->row_id, POLL_OK, GetCurrentTimestamp());
			free_job(job);
		}
	}
}

/* ---- recording verdicts (inside the worker's transaction) ---- */

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
record_reconcile(Job *job)
{
	ListCell   *lc;

	list_sort(job->candidates, candidate_cmp);
	foreach(lc, job->candidates)
	{
		Candidate  *c = lfirst(lc);
		int64		holder;

		if (store_scan_id_known(&c->scan_id))
			continue;
		switch (store_reconcile_adopt(job->row_id, &c->scan_id, &holder))
		{
			case ADOPTED:
				job->scan_id = c->scan_id;
				job->schedule_new = true;
				break;
			case ADOPTED_TO_ABORT:
				table_work_changed = true;
				break;
			default:
				return;
		}
		ereport(LOG,
				(errmsg("invicti_scan: the launch of scan row " INT64_FORMAT " had an unknown outcome; adopted scan %s found on the Invicti server",
						job->row_id, uuid_to_text(&c->scan_id))));
		return;
	}
	table_work_changed = true;
	store_reconcile_resend(job->row_id,
						   "an earlier launch attempt's outcome was unknown and Invicti lists no scan it could have created; launching again");
}

static void
record_launched(Job *job)
{
	int64		holder;

	switch (store_launch_ok(job->row_id, &job->scan_id, &holder))
	{
		case ADOPTED:
			job->schedule_new = true;
			break;
		case ADOPTED_TO_ABORT:
			table_work_changed = true;
			break;
		case SCAN_ID_TAKEN:
			/* the server repeated an id: it is inconsistent, so do not resend */
			store_launch_failed(job->row_id,
								psprintf("launch: Invicti answered with scan id %s, which row " INT64_FORMAT " already tracks; not launching again",
										 uuid_to_text(&job->scan_id), holder));
			break;
		case ROW_MOVED_ON:
			ereport(WARNING,
					(errmsg("invicti_scan: Invicti created scan %s for row " INT64_FORMAT ", but the row no longer waits for it",
							uuid_to_text(&job->scan_id), job->row_id),
					 errhint("If the row was deleted, abort or delete the scan in Invicti.")));
			break;
	}
}

/* What a poll's answer makes of the row: still running, done, or import. */
static const char *
state_after_poll(const ApiScanState *st)
{
	if (!is_terminal_status(st->status))
		return NULL;
	if (strcmp(st->status, "completed") == 0 && invicti_import_vulnerabilities)
		return "import";
	return "done";
}

static void
record_import_page(Job *job)
{
	int			i;
	int			skipped = 0;

	for (i = 0; i < job->page.n_items; i++)
	{
		Finding		f;

		if (finding_from_item(job->page.items[i], &f))
			(void) store_insert_finding(job->row_id, &job->session_id, &f);
		else
			skipped++;
	}
	if (skipped > 0)
		ereport(LOG,
				(errmsg("invicti_scan: skipped %d findings without a vuln_id in scan %s",
						skipped, uuid_to_text(&job->scan_id))));
	if (job->page.next_cursor)
		store_import_page(job->row_id, job->page.next_cursor);
	else
		store_import_done(job->row_id);
	table_work_changed = true;
}

static void
record(Job *job)
{
	const char *next;

	switch (job->verdict)
	{
		case V_LAUNCHED:
			record_launched(job);
			break;
		case V_LAUNCH_RETRY:
			store_launch_retry(job->row_id, job->retry_at, job->message);
			table_work_changed = true;
			break;
		case V_LAUNCH_UNKNOWN:
			store_launch_unknown(job->row_id, job->retry_at, job->message);
			table_work_changed = true;
			break;
		case V_LAUNCH_FAILED:
			store_launch_failed(job->row_id, job->message);
			break;
		case V_POLL_STATE:
			next = state_after_poll(&job->state);
			job->schedule_remove =
				!store_poll_update(job->row_id, &job->state, job->response, next);
			if (next && strcmp(next, "import") == 0)
				table_work_changed = true;
			break;
		case V_POLL_GONE:
			store_poll_gone(job->row_id, job->message);
			job->schedule_remove = true;
			break;
		case V_POLL_ERROR:
		case V_POLL_DEFERRED:
			if (job->message)
				store_poll_error(job->row_id, job->message);
			break;
		case V_RECONCILE_DONE:
			record_reconcile(job);
			break;
		case V_ABORT_SENT:
			store_abort_sent(job->row_id, job->message);
			job->schedule_new = true;
			break;
		case V_ABORT_GONE:
			store_abort_gone(job->row_id, job->message);
			break;
		case V_IMPORT_PAGE:
			record_import_page(job);
			break;
		case V_IMPORT_FAILED:
			store_import_failed(job->row_id, job->message);
			break;
		case V_WORK_RETRY:
			store_work_retry(job->row_id,
							 job->kind == CALL_ABORT ? "abort" :
							 job->kind == CALL_RESULTS ? "import" : "reconcile",
							 job->retry_at, job->message);
			table_work_changed = true;
			break;
		case V_POLL_UNCHANGED:
		case V_NONE:
			elog(ERROR, "invicti_scan: job without a verdict to record");
	}
}

bool
jobs_waiting_need_durability(void)
{
	dlist_iter	it;

	dlist_foreach(it, &waiting)
	{
		if (dlist_container(Job, node, it.cur)->kind != CALL_POLL)
			return true;
	}
	return false;
}

void
jobs_record(int max)
{
	dlist_iter	it;
	int			n = 0;

	dlist_foreach(it, &waiting)
	{
		Job		   *job = dlist_container(Job, node, it.cur);

		if (max > 0 && n >= max)
			break;
		job->recording = true;
		record(job);
		n++;
	}
}

/* The verdict is in the table (or abandoned): update memory, free the job. */
static void
finish_job(Job *job, TimestampTz now)
{
	dlist_delete(&job->node);
	n_waiting--;
	if (job->schedule_new)
		poll_schedule_add(job->row_id, &job->scan_id, now);
	else if (job->kind == CALL_POLL)
	{
		if (job->schedule_remove)
			poll_schedule_remove(job->row_id);
		else
		{
			poll_schedule_done(job->row_id,
							   job->verdict == V_POLL_STATE ? POLL_OK :
							   job->verdict == V_POLL_DEFERRED ? POLL_DEFERRED : POLL_FAILED,
							   now);
			/* the row now holds this answer (and no error) */
			if (job->verdict == V_POLL_STATE)
				poll_schedule_set_recorded_answer(job->row_id, job->answer_hash);
		}
	}
	if (job->kind != CALL_LAUNCH && job->kind != CALL_POLL &&
		job->verdict != V_WORK_RETRY)
		clear_row_failures(job->row_id);
	free_job(job);
}

bool
jobs_recorded(void)
{
	dlist_mutable_iter it;
	TimestampTz now = GetCurrentTimestamp();
	bool		changed = table_work_changed;

	dlist_foreach_modify(it, &waiting)
	{
		Job		   *job = dlist_container(Job, node, it.cur);

		if (job->recording)
			finish_job(job, now);
	}
	table_work_changed = false;
	return changed;
}

void
jobs_record_failed(void)
{
	dlist_mutable_iter it;
	TimestampTz now = GetCurrentTimestamp();

	dlist_foreach_modify(it, &waiting)
	{
		Job		   *job = dlist_container(Job, node, it.cur);

		if (!job->recording)
			continue;
		table_work_changed = false;
		job->recording = false;
		job->schedule_new = job->schedule_remove = false;
		if (++job->record_failures < MAX_RECORD_FAILURES)
		{
			/* to the back of the queue: the others get their turn first */
			dlist_delete(&job->node);
			dlist_push_tail(&waiting, &job->node);
		}
		else
		{
			/*
			 * Give up on this verdict.  A launch row stays 'sending' and is
			 * reconciled by the next sweep; a poll is simply made again.
			 */
			ereport(WARNING,
					(errmsg("invicti_scan: could not record the result of a %s for scan row " INT64_FORMAT "; giving up on it",
							kind_what[job->kind], job->row_id)));
			if (job->kind == CALL_POLL)
				job->verdict = V_POLL_ERROR;
			finish_job(job, now);
		}
	}
}

void
jobs_discard_waiting(void)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &waiting)
	{
		Job		   *job = dlist_container(Job, node, it.cur);

		dlist_delete(&job->node);
		n_waiting--;
		free_job(job);
	}
}

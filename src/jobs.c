/*
 * jobs.c
 *		The engine that carries every piece of API work from its request to
 *		its recorded verdict.  What a launch, a poll, an abort or an import
 *		does with an answer is in its own file (job_*.c); this file owns the
 *		order of things, which is the same for all of them:
 *
 *	 submit (held until the request budget has a token) -> in flight ->
 *	 judge (no transaction) -> waiting -> record (subtransaction, in the
 *	 worker's one transaction; many verdicts of a kind that can, in one
 *	 statement) -> commit -> recorded -> next request or end.
 *
 * One bad verdict never rolls back another: each is recorded in a
 * subtransaction of its own (a batch that fails is recorded again one by
 * one), and one that cannot be recorded is written to
 * its row as a failure (job kinds' record_failure), so API data the table
 * refuses ends as a readable last_error rather than an endless retry.  A
 * verdict whose row another session holds locked waits (not_before) while
 * the others are recorded: nothing here ever waits for a user's lock.
 *
 * Every response is cleared of the API token (redact.c) before anything
 * reads it.  Multi-page work asks for its next page only after judging the
 * current one has returned, so the memory of the answer being judged is
 * never reset under it.
 *
 * Memory: each job has its own context (and a child for the current
 * request), deleted as a whole when the job ends, so a worker that runs for
 * months does not grow.
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "jobs.h"
#include "log_limit.h"
#include "rate_limit_headers.h"
#include "redact.h"
#include "request_budget.h"
#include "retry_policy.h"
#include "scan_store.h"
#include "settings.h"
#include "shared_state.h"
#include "store_transaction.h"

/* A verdict that cannot be recorded (nor its failure) this often is dropped. */
#define MAX_RECORD_FAILURES 3
/* How long a verdict waits for a row another session has locked. */
#define LOCKED_ROW_WAIT_MS 1000

static MemoryContext jobs_cxt = NULL;
static dlist_head in_flight = DLIST_STATIC_INIT(in_flight);
static dlist_head waiting = DLIST_STATIC_INIT(waiting);

/* requests held for the budget: urgent ones (launches, aborts) first */
static dlist_head held[2] = {DLIST_STATIC_INIT(held[0]), DLIST_STATIC_INIT(held[1])};
static int	n_in_flight = 0;
static int	n_waiting = 0;
static int	n_held = 0;
static bool table_work_changed = false;
static LogLimit record_warnings;

/* Consecutive failures of table-scheduled work, by row id. */
typedef struct RowFailures
{
	int64		id;
	int			failures;
} RowFailures;
static HTAB *row_failures = NULL;

/* How a job's row is named in messages. */
static const char *const rows_noun[] = {
	[ROWS_SCANS] = "scan row",
	[ROWS_TARGET_REQUESTS] = "target request",
	[ROWS_REPORTS] = "report",
	[ROWS_NONE] = "sync round",
};

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

int
job_note_row_failure(int64 id)
{
	bool		found;
	RowFailures *f = hash_search(row_failures, &id, HASH_ENTER, &found);

	f->failures = found ? f->failures + 1 : 1;
	return f->failures;
}

int
job_row_failures(int64 id)
{
	RowFailures *f = hash_search(row_failures, &id, HASH_FIND, NULL);

	return f ? f->failures : 0;
}

void
job_clear_row_failures(int64 id)
{
	hash_search(row_failures, &id, HASH_REMOVE, NULL);
}

Job *
job_new(const JobKind *kind, int64 row_id, size_t data_size)
{
	MemoryContext cxt = AllocSetContextCreate(jobs_cxt, "invicti_scan job",
											  ALLOCSET_SMALL_SIZES);
	Job		   *job = MemoryContextAllocZero(cxt, sizeof(Job));

	job->cxt = cxt;
	job->req_cxt = AllocSetContextCreate(cxt, "invicti_scan request",
										 ALLOCSET_DEFAULT_SIZES);
	job->kind = kind;
	job->row_id = row_id;
	job->data = data_size ? MemoryContextAllocZero(cxt, data_size) : NULL;
	return job;
}

static void
free_job(Job *job)
{
	MemoryContextDelete(job->cxt);
}

char *
job_api_url(const char *suffix)
{
	return psprintf("%s%s%s", invicti_base_url, invicti_api_path, suffix);
}

int
jobs_in_flight(void)
{
	return n_in_flight;
}

int
jobs_held(void)
{
	return n_held;
}

int
jobs_busy_ids(JobRows rows, int64 **ids)
{
	dlist_head *lists[4] = {&in_flight, &waiting, &held[0], &held[1]};
	int			n = 0;
	int			l;

	*ids = palloc(sizeof(int64) * Max(n_in_flight + n_waiting + n_held, 1));
	for (l = 0; l < (int) lengthof(lists); l++)
	{
		dlist_iter	it;

		dlist_foreach(it, lists[l])
		{
			Job		   *job = dlist_container(Job, node, it.cur);

			if (job->kind->rows == rows)
				(*ids)[n++] = job->row_id;
		}
	}
	return n;
}

TimestampTz
job_retry_time(Job *job, ResponseClass cls)
{
	/* a whole-API pause (429, refused token) decides when: due now */
	if (cls == RESP_AUTH || cls == RESP_RATE_LIMITED)
		return GetCurrentTimestamp();
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
									   retry_policy_delay_ms(job_note_row_failure(job->row_id)));
}

bool
job_cursor_seen(MemoryContext cxt, List **seen, const char *cursor)
{
	ListCell   *lc;
	MemoryContext old;

	foreach(lc, *seen)
	{
		if (strcmp((const char *) lfirst(lc), cursor) == 0)
			return true;
	}
	old = MemoryContextSwitchTo(cxt);
	*seen = lappend(*seen, pstrdup(cursor));
	MemoryContextSwitchTo(old);
	return false;
}

void
job_verdict(Job *job, int verdict, const char *message, TimestampTz retry_at)
{
	job->next = NEXT_RECORD;
	job->verdict = verdict;
	job->message = message ? MemoryContextStrdup(job->cxt, message) : NULL;
	job->retry_at = retry_at;
}

static void
to_waiting(Job *job)
{
	job->not_before = 0;
	dlist_push_tail(&waiting, &job->node);
	n_waiting++;
}

void
job_enqueue_verdict(Job *job)
{
	to_waiting(job);
}

/* Send the job's current request now (its token, number seq, is taken). */
static void
send(Job *job, int64 seq)
{
	MemoryContext old;
	ApiRequest	req;
	char	   *error;

	job->budget_seq = seq;
	MemoryContextReset(job->req_cxt);
	old = MemoryContextSwitchTo(job->req_cxt);
	memset(&req, 0, sizeof(req));
	job->call = job->kind->call;
	job->kind->build(job, &req);
	job->method = req.method;
	job->url = (char *) req.url;
	job->next = NEXT_RECORD;
	job->record_failed = false;
	job->record_failures = 0;

	if (api_client_submit(&req, job, job->req_cxt, &error))
	{
		dlist_push_tail(&in_flight, &job->node);
		n_in_flight++;
	}
	else
	{
		char	   *msg = psprintf("%s: %s", api_call_nouns[job->call], error);

		invicti_stats_count(job->call, OUTCOME_NETWORK_ERROR, job->is_retry, msg);
		job->kind->not_sent(job, msg);
		to_waiting(job);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Every request spends a token of the budget (request_budget.c); without
 * one it is held, in order, urgent kinds first, until there is one.
 */
void
job_submit(Job *job)
{
	bool		urgent = api_call_urgent[job->kind->call];
	dlist_head *queue = &held[urgent ? 0 : 1];
	int64		seq;

	if (dlist_is_empty(queue) && (seq = budget_take(urgent)) != 0)
		send(job, seq);
	else
	{
		budget_note_wait();
		dlist_push_tail(queue, &job->node);
		n_held++;
	}
}

void
jobs_release_held(void)
{
	int			u;

	int64		seq;

	for (u = 0; u < 2; u++)
	{
		while (!dlist_is_empty(&held[u]) && n_in_flight < invicti_max_concurrent &&
			   (seq = budget_take(u == 0)) != 0)
		{
			Job		   *job = dlist_container(Job, node, dlist_pop_head_node(&held[u]));

			n_held--;
			send(job, seq);
		}
	}
}

TimestampTz
jobs_next_release_at(void)
{
	int			u;

	for (u = 0; u < 2; u++)
		if (!dlist_is_empty(&held[u]))
		{
			TimestampTz t = budget_next_at(u == 0);

			return t != 0 ? t : GetCurrentTimestamp();
		}
	return 0;
}

/* After the verdict is in the table (or was never needed): carry on or end. */
static void
finish_job(Job *job, TimestampTz now)
{
	if (job->kind->recorded(job, now))
		job_submit(job);
	else
		free_job(job);
}

static void
judge(Job *job, ApiResponse *r)
{
	ResponseClass cls;
	bool		ok;

	invicti_redact_response(r);
	cls = api_classify(r);

	/* What the answer says about the whole API. */
	if (r->http_status != 0)
	{
		double		remaining;
		double		reset_s;

		if (api_rate_limit_window(r, &remaining, &reset_s))
			budget_server_window(Max(remaining - n_in_flight, 0), reset_s);
		if (cls != RESP_RATE_LIMITED)
			budget_accepted();
	}
	if (cls == RESP_RATE_LIMITED || cls == RESP_UNAVAILABLE)
	{
		const char *source;
		int64		wait_s = api_retry_after_seconds(r, &source);

		/* a 503 pauses everything only when it says for how long */
		if (cls == RESP_RATE_LIMITED || wait_s >= 0)
			api_pause_rate_limited(wait_s, source);
		if (wait_s > 0)
			budget_server_pause(Min(wait_s, 3600) * 1000);
		if (cls == RESP_RATE_LIMITED)
			budget_rate_limited(job->budget_seq);
	}
	else if (cls == RESP_AUTH)
		api_pause_auth_failed(api_describe_failure(r, api_call_nouns[job->call]));
	else if (cls == RESP_SUCCESS || cls == RESP_NOT_FOUND)
		api_pause_success();

	ereport(DEBUG1,
			(errmsg_internal("invicti_scan: %s %s -> %ld in %ld ms%s%s",
							 job->method, job->url, r->http_status,
							 (long) r->elapsed_ms,
							 r->error ? ": " : "", r->error ? r->error : "")));

	job->message = NULL;
	ok = job->kind->judge(job, r, cls);
	invicti_stats_count(job->call,
						ok ? OUTCOME_OK : api_failure_outcome(cls),
						job->is_retry,
						ok ? NULL : job->message ? job->message
						: api_describe_failure(r, api_call_nouns[job->call]));
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
		switch (job->next)
		{
			case NEXT_RECORD:
				to_waiting(job);
				break;
			case NEXT_REQUEST:
				job_submit(job);
				break;
			case NEXT_FINISHED:
				finish_job(job, GetCurrentTimestamp());
				break;
		}
	}
}

bool
jobs_record_due(TimestampTz now)
{
	dlist_iter	it;

	dlist_foreach(it, &waiting)
	{
		if (dlist_container(Job, node, it.cur)->not_before <= now)
			return true;
	}
	return false;
}

TimestampTz
jobs_next_record_due(void)
{
	dlist_iter	it;
	TimestampTz due = 0;

	dlist_foreach(it, &waiting)
	{
		TimestampTz t = dlist_container(Job, node, it.cur)->not_before;

		if (due == 0 || t < due)
			due = t;
	}
	return due;
}

void
jobs_table_changed(void)
{
	table_work_changed = true;
}

static void
record_one(void *arg)
{
	Job		   *job = (Job *) arg;

	job->kind->record(job);
}

typedef struct BatchArgs
{
	Job		  **jobs;
	int			n;
} BatchArgs;

static void
record_batch(void *arg)
{
	BatchArgs  *b = (BatchArgs *) arg;

	b->jobs[0]->kind->record_batch(b->jobs, b->n);
}

/*
 * Record the batchable verdicts of one kind among due[0..n) (not busy) in
 * one subtransaction; marks them recorded.  On failure nothing is marked:
 * each is then recorded on its own.
 */
static void
record_batches(Job **due, const bool *busy, int n)
{
	Job		  **batch = palloc(sizeof(Job *) * Max(n, 1));
	int			nb = 0;
	int			i;
	char	   *error;
	const JobKind *kind = NULL;

	for (i = 0; i < n; i++)
	{
		Job		   *job = due[i];

		if (busy[i] || job->kind->record_batch == NULL || !job->kind->batchable(job) ||
			(kind != NULL && job->kind != kind))
			continue;
		kind = job->kind;
		batch[nb++] = job;
	}
	if (nb >= 2)
	{
		BatchArgs	b = {batch, nb};

		if (store_attempt(record_batch, &b, &error))
		{
			for (i = 0; i < nb; i++)
				batch[i]->recorded = true;
		}
		else
			elog(DEBUG1, "invicti_scan worker: recording %d results at once failed (%s); one by one instead",
				 nb, error);
	}
	pfree(batch);
}

typedef struct FailureArgs
{
	Job		   *job;
	const char *error;
} FailureArgs;

static void
record_failure(void *arg)
{
	FailureArgs *a = (FailureArgs *) arg;

	a->job->kind->record_failure(a->job, a->error);
}

static void
warn_unrecorded(Job *job, const char *error)
{
	int			suppressed;

	if (log_limit_allow(&record_warnings, &suppressed))
		ereport(WARNING,
				(errmsg_internal("invicti_scan worker: could not record a result: %s", error),
				 errdetail("The result of a %s for %s " INT64_FORMAT " is %s.%s",
						   api_call_nouns[job->call], rows_noun[job->kind->rows], job->row_id,
						   job->kind->record_failure ? "recorded as a failure instead" :
						   "tried again in a later turn",
						   suppressed ? psprintf(" %d similar messages were suppressed.", suppressed) : "")));
}

/* The due verdicts, each in its own subtransaction (inside store_run). */
static void
record_due(void *arg pg_attribute_unused())
{
	TimestampTz now = GetCurrentTimestamp();
	Job		  **due = palloc(sizeof(Job *) * Max(n_waiting, 1));
	int64	   *ids = palloc(sizeof(int64) * Max(n_waiting, 1));
	bool	   *locked = palloc(sizeof(bool) * Max(n_waiting, 1));
	bool	   *busy = palloc(sizeof(bool) * Max(n_waiting, 1));
	int			n = 0;
	int			i;
	dlist_iter	it;

	dlist_foreach(it, &waiting)
	{
		Job		   *job = dlist_container(Job, node, it.cur);

		if (job->not_before <= now)
		{
			due[n] = job;
			/* only scan rows are locked first: no other row is shared */
			ids[n++] = job->kind->rows == ROWS_SCANS ? job->row_id : 0;
		}
	}
	scan_store_lock_rows(ids, n, locked, busy);
	for (i = 0; i < n; i++)
		if (due[i]->kind->rows != ROWS_SCANS)
			busy[i] = false;
	record_batches(due, busy, n);

	for (i = 0; i < n; i++)
	{
		Job		   *job = due[i];
		char	   *error;

		if (job->recorded)
			continue;			/* in a batch */
		if (busy[i])
		{
			/* someone holds the row: its verdict waits, no other does */
			job->not_before = TimestampTzPlusMilliseconds(now, LOCKED_ROW_WAIT_MS);
			continue;
		}

		/*
		 * A verdict that waited for a row someone else held: that someone may
		 * have given the row table work (an abort) that the last claim
		 * skipped while the row was busy here.  Look at the table again.
		 */
		if (job->not_before != 0)
			jobs_table_changed();
		if (store_attempt(record_one, job, &error))
			job->recorded = true;
		else
		{
			FailureArgs fa = {job, error};
			char	   *error2 = NULL;

			warn_unrecorded(job, error);
			if (job->kind->record_failure &&
				store_attempt(record_failure, &fa, &error2))
				job->recorded = job->record_failed = true;
			else if (++job->record_failures >= MAX_RECORD_FAILURES)
			{
				/*
				 * Give up on it: a launch row stays 'sending' and is
				 * reconciled by the next sweep; other work is done again.
				 */
				ereport(WARNING,
						(errmsg("invicti_scan worker: giving up on the result of a %s for %s " INT64_FORMAT,
								api_call_nouns[job->call], rows_noun[job->kind->rows], job->row_id)));
				job->recorded = job->record_failed = true;
			}
		}
	}
}

/* Whether any waiting verdict must survive a crash. */
static bool
waiting_need_durability(void)
{
	dlist_iter	it;

	dlist_foreach(it, &waiting)
	{
		if (dlist_container(Job, node, it.cur)->kind->durable)
			return true;
	}
	return false;
}

bool
jobs_record(bool *table_changed)
{
	dlist_mutable_iter mit;
	dlist_iter	it;
	TimestampTz now;
	StoreStatus status;

	table_work_changed = false;
	PG_TRY();
	{
		status = store_run("recording Invicti API results", waiting_need_durability(),
						   record_due, NULL);
	}
	PG_CATCH();
	{
		/* nothing was committed: every verdict waits for the next try */
		dlist_foreach(it, &waiting)
		{
			Job		   *job = dlist_container(Job, node, it.cur);

			job->recorded = job->record_failed = false;
		}
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (status != STORE_READY)
	{
		jobs_discard_waiting();
		return false;
	}
	now = GetCurrentTimestamp();
	dlist_foreach_modify(mit, &waiting)
	{
		Job		   *job = dlist_container(Job, node, mit.cur);

		if (!job->recorded)
			continue;
		dlist_delete(&job->node);
		n_waiting--;
		job->recorded = false;
		finish_job(job, now);
	}
	*table_changed = table_work_changed;
	table_work_changed = false;
	return true;
}

/* Free every job on a list, and count them off. */
static void
discard_list(dlist_head *list, int *count)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, list)
	{
		Job		   *job = dlist_container(Job, node, it.cur);

		dlist_delete(&job->node);
		(*count)--;
		if (job->kind->dropped)
			job->kind->dropped(job);
		free_job(job);
	}
}

void
jobs_discard_waiting(void)
{
	discard_list(&waiting, &n_waiting);
	discard_list(&held[0], &n_held);
	discard_list(&held[1], &n_held);
}

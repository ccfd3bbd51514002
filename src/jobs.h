/*
 * jobs.h
 *		The life of one piece of API work done for one row: send its
 *		request(s), judge each answer, record the verdict, then carry on or
 *		finish.  What differs between kinds of work is in a JobKind.
 */
#ifndef INVICTI_JOBS_H
#define INVICTI_JOBS_H

#include "lib/ilist.h"
#include "nodes/pg_list.h"
#include "utils/timestamp.h"

#include "api_call.h"
#include "api_client.h"
#include "api_response.h"

typedef struct Job Job;

/*
 * Items asked for per page of every list (the l parameter).  The spec's
 * limitParameter says "maximum: 100" and, in its description, "1 < limit <
 * 100": 99 is within both readings, so a server strict about either one
 * accepts it.
 */
#define API_LIST_LIMIT 99

/* What the engine does with a job once its answer is judged. */
typedef enum JobNext
{
	NEXT_RECORD,				/* record the verdict in the next transaction */
	NEXT_REQUEST,				/* send the job's next request now (a page) */
	NEXT_FINISHED				/* nothing to record: the job is over */
} JobNext;

/* Which table a job's row_id names. */
typedef enum JobRows
{
	ROWS_SCANS = 0,				/* invicti_scans (the default) */
	ROWS_TARGET_REQUESTS,		/* invicti_target_requests */
	ROWS_REPORTS,				/* invicti_reports */
	ROWS_NONE					/* no row: row_id is 0 (a catalog sync) */
} JobRows;

typedef struct JobKind
{
	ApiCallKind call;			/* its name in statistics and messages */
	bool		durable;		/* its verdicts need a synchronous commit */
	JobRows		rows;			/* what row_id names */

	/*
	 * The request for the job's current step, allocated in the current
	 * context; it may set job->call when the step is another kind of request.
	 */
	void		(*build) (Job *job, ApiRequest *req);

	/*
	 * Judge an answer, outside any transaction.  Returns whether the request
	 * counts as successful; sets job->next (default NEXT_RECORD) and, on
	 * failure, may set job->message to what the statistics should show.
	 */
	bool		(*judge) (Job *job, const ApiResponse *r, ResponseClass cls);

	/* Nothing was sent (the request could not even be started). */
	void		(*not_sent) (Job *job, const char *error);

	/* Record the verdict; runs in a subtransaction of its own. */
	void		(*record) (Job *job);

	/*
	 * Optional: record many verdicts of this kind in one statement, in one
	 * subtransaction (the common verdict of a busy turn: a poll's new state).
	 * batchable says which verdicts it can take; should the batch fail, each
	 * is recorded on its own by record, so one bad row still rolls back no
	 * other.
	 */
	bool		(*batchable) (Job *job);
	void		(*record_batch) (Job **jobs, int n);

	/*
	 * The verdict could not be recorded (error): say so on the row, in a
	 * subtransaction of its own, so the work does not loop.  NULL when
	 * nothing safe can be written: the verdict is then tried again and given
	 * up after a few tries.
	 */
	void		(*record_failure) (Job *job, const char *error);

	/*
	 * After the verdict is committed (or NEXT_FINISHED; job->record_failed
	 * when the table refused the verdict and only its failure was recorded,
	 * or not even that): bring the worker's memory in line.  Return true to
	 * send the job's next request (its next page), false to end the job.
	 */
	bool		(*recorded) (Job *job, TimestampTz now);

	/* Optional: the job is dropped unfinished (the extension went away). */
	void		(*dropped) (Job *job);
} JobKind;

struct Job
{
	dlist_node	node;
	MemoryContext cxt;			/* the job, its kind's data and its verdict */
	MemoryContext req_cxt;		/* the current request and its answer */
	const JobKind *kind;
	ApiCallKind call;			/* of the current request (build may change
								 * it) */
	int64		row_id;
	bool		is_retry;		/* counted as a retry in the statistics */
	void	   *data;			/* the kind's own state, in cxt */
	int64		budget_seq;		/* the budget's number of the request sent */

	/* the verdict, set by judge or not_sent */
	JobNext		next;
	int			verdict;		/* the kind's own verdict code */
	char	   *message;		/* for the row's last_error, or NULL */
	TimestampTz retry_at;

	/* recording */
	TimestampTz not_before;		/* the row was locked by someone: wait */
	int			record_failures;
	bool		recorded;		/* in the transaction being committed */
	bool		record_failed;	/* ... as a failure: the verdict was refused */

	/* for the DEBUG1 line */
	const char *method;
	char	   *url;
};

extern void jobs_init(void);

/* A new job of `kind` for row `row_id`, with `data_size` bytes of kind data. */
extern Job *job_new(const JobKind *kind, int64 row_id, size_t data_size);

/*
 * Send the job's (next) request: now when the request budget allows, else
 * held until it does (jobs_release_held, in order, urgent kinds first).
 */
extern void job_submit(Job *job);
extern void jobs_release_held(void);
extern int	jobs_held(void);

/* When a held request could go out (0: none is held). */
extern TimestampTz jobs_next_release_at(void);

/*
 * A verdict reached without a request of its own (a list page refreshes
 * many scans): record it like any other.
 */
extern void job_enqueue_verdict(Job *job);

/* Give a verdict to be recorded: message for last_error, retry time. */
extern void job_verdict(Job *job, int verdict, const char *message, TimestampTz retry_at);

/*
 * When table-scheduled work that failed with `cls` is tried again: now
 * under a whole-API pause (which decides), else after the row's backoff.
 */
extern TimestampTz job_retry_time(Job *job, ResponseClass cls);

/* The request URL for an API path (base_url + api_path + suffix). */
extern char *job_api_url(const char *suffix);

/*
 * Multi-page work: whether `cursor` was followed before; if not, remember
 * it (a copy in cxt, appended to *seen).
 */
extern bool job_cursor_seen(MemoryContext cxt, List **seen, const char *cursor);

/* Consecutive failures of table-scheduled work, by row id (backoff). */
extern int	job_note_row_failure(int64 id);
extern int	job_row_failures(int64 id);
extern void job_clear_row_failures(int64 id);
extern void jobs_forget_failures(void);

/*
 * Requests in flight, and the row ids (in table `rows`) of every job not
 * finished.
 */
extern int	jobs_in_flight(void);
extern int	jobs_busy_ids(JobRows rows, int64 **ids);

/* Take finished transfers and judge them (outside any transaction). */
extern void jobs_collect(void);

/*
 * Verdicts waiting to be recorded and due now, and when the next one is
 * due (0 = none): a verdict whose row another session has locked waits.
 */
extern bool jobs_record_due(TimestampTz now);
extern TimestampTz jobs_next_record_due(void);

/*
 * Record the due verdicts in one transaction, each in a subtransaction of
 * its own.  Returns false when the extension is gone (the verdicts are
 * dropped); an error from the transaction itself is thrown on, with the
 * verdicts kept for the next try.  *table_changed says whether a recorded
 * verdict added or moved work the table schedules.
 */
extern bool jobs_record(bool *table_changed);

/* The extension went away: drop unrecorded verdicts and held requests. */
extern void jobs_discard_waiting(void);

/* A recorded verdict scheduled work through the table (look at it again). */
extern void jobs_table_changed(void);

#endif

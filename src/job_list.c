/*
 * job_list.c
 *		List rounds: the running scans refreshed a page at a time with
 *		GET /scans?l=99&q=scan_status:<the filter's running values>, and
 *		those that ended with GET /scans?l=99&q=scan_status:completed,failed,
 *		instead of one GET /scans/{id} per scan.
 *
 * A round starts when the first scan it is to refresh is due
 * (poll_schedule.c).  Its pages are asked for one after another, each once
 * the previous one is judged.  Every listed scan the worker tracks is
 * refreshed exactly as its own GET would refresh it: an answer byte for
 * byte the one its row holds needs nothing; any other becomes a verdict of
 * job_poll.c, recorded in a subtransaction of its own.  A running scan no
 * row tracks is noted for invicti_untracked_scans (untracked_scans.c).
 *
 * Two phases.  The running phase lists the scans in the filter's running
 * statuses (scheduled, queued, starting, processing, aborting: the spec's
 * q lists no other).  A tracked scan it did not show has most likely
 * ended, so the ended phase then lists completed and failed scans, for at
 * most as many pages as those scans could fill plus one (the server lists
 * newest first, or the ended ones are simply not found there), and stops
 * as soon as every one of them was seen.  Only what neither phase showed
 * gets a request of its own (a scan paused, pausing, resuming or aborted,
 * which the filter cannot name; one that moved between pages; any scan on
 * a server whose lists do not order or filter as hoped), so no scan's end
 * is missed, and a scan that enters or leaves the running set costs no
 * request of its own while the lists can say.
 *
 * The API drives the loop, so it ends: a cursor seen before, or more pages
 * than the tracked scans could fill twice over (plus ten), ends the
 * running phase as if it were complete; the ended phase's page limit ends
 * it.
 *
 * Falling back.  With invicti_scan.poll_method = auto, the worker polls
 * scan by scan instead, says so once at LOG and in invicti_scan_stats, when
 * the server shows a scan the running filter excludes (it ignores the
 * filter), lists scans without their current_session, or refuses the
 * filtered list (a 4xx other than 401, 403 and 429).  That lasts until the
 * configuration is reloaded or the worker restarts.  With poll_method =
 * list, a refused list ends the round as if it had shown nothing: every
 * scan of the round is then fetched alone, so none goes unrefreshed.  A
 * refused ended phase only stops the ended phase (until a reload).  A page
 * that fails otherwise (5xx, network, an answer that cannot be read) is no
 * reason to fall back: the round is tried again with backoff, and no scan
 * is fetched on its own for it (that would be the very burst rounds exist
 * to avoid).
 *
 * Nothing here writes to the database (untracked_scans.c does, at the end
 * of a round).
 */
#include "postgres.h"

#include "common/hashfn.h"

#include "jobs.h"
#include "job_kinds.h"
#include "poll_schedule.h"
#include "retry_policy.h"
#include "scan_state.h"
#include "settings.h"
#include "untracked_scans.h"

#define WHAT api_call_nouns[CALL_POLL_LIST]

typedef enum ListPhase
{
	PHASE_RUNNING,				/* scan_status:<scan_filter_running> */
	PHASE_ENDED					/* scan_status:<scan_filter_ended> */
} ListPhase;

typedef struct ListData
{
	ListPhase	phase;
	char	   *cursor;			/* the page being fetched; NULL: the first */
	List	   *seen_cursors;
	int			pages;			/* of this phase */
	int			max_pages;		/* of this phase */
	bool		failed;			/* the round ends without being complete */
} ListData;

/* The rounds' state, across rounds. */
static struct
{
	bool		running;
	TimestampTz not_before;		/* after a failed round */
	int			failures;
	bool		ended_refused;	/* the server refused the ended phase */
	char		fallback[200];	/* why auto polls scan by scan; "" if not */
}			rounds;

static bool
rounds_on(void)
{
	return invicti_poll_method == POLL_METHOD_LIST ||
		(invicti_poll_method == POLL_METHOD_AUTO && rounds.fallback[0] == '\0');
}

void
job_list_configure(void)
{
	rounds.fallback[0] = '\0';
	rounds.failures = 0;
	rounds.not_before = 0;
	rounds.ended_refused = false;

	poll_schedule_set_list_rounds(rounds_on());
}

const char *
job_list_method(void)
{
	static char buf[256];

	if (rounds_on())
		return "list";
	if (invicti_poll_method == POLL_METHOD_SCAN)
		return "scan";
	snprintf(buf, sizeof(buf), "scan (fallback: %s)", rounds.fallback);
	return buf;
}

/* auto: poll scan by scan from now on, and say why once. */
static void
fall_back(const char *reason)
{
	if (invicti_poll_method != POLL_METHOD_AUTO || rounds.fallback[0] != '\0')
		return;
	strlcpy(rounds.fallback, reason, sizeof(rounds.fallback));
	ereport(LOG,
			(errmsg("invicti_scan worker: polling scan by scan from now on: %s", reason),
			 errdetail("invicti_scan.poll_method is \"auto\": running scans are listed a page at a time only when the server filters its scan list by status and includes each scan's current_session."),
			 errhint("Reload the configuration to try the list again, or set invicti_scan.poll_method to \"scan\".")));
	poll_schedule_set_list_rounds(false);
}

static void
list_build(Job *job, ApiRequest *req)
{
	ListData   *d = job->data;

	req->method = "GET";
	req->url = job_api_url(psprintf("/scans?l=%d&q=scan_status:%s%s%s", API_LIST_LIMIT,
									d->phase == PHASE_RUNNING ? scan_filter_running
									: scan_filter_ended,
									d->cursor ? "&c=" : "",
									d->cursor ? api_client_escape(d->cursor) : ""));
}

static void
list_not_sent(Job *job, const char *error pg_attribute_unused())
{
	((ListData *) job->data)->failed = true;
}

/* One listed scan: refresh its row if the worker tracks it. */
static const char *
take_item(ListPhase phase, JsonbValue *item, TimestampTz now)
{
	pg_uuid_t	scan_id;
	bool		has_session;
	ApiScanState state;
	char	   *error;
	int64		id;
	uint64		hash;

	if (!api_scan_list_state(item, &scan_id, &has_session, &state, &error))
		return NULL;			/* not ours to judge; a tracked scan is
								 * fetched alone */
	if (!has_session)
		return "the server lists scans without their current_session";
	if (phase == PHASE_RUNNING && state.status &&
		!scan_status_in(scan_filter_running, state.status) &&
		invicti_poll_method == POLL_METHOD_AUTO)
		return psprintf("the server lists a scan with status \"%s\" although the list asked for running scans only (it ignores the scan_status filter)",
						api_printable(state.status, 40));
	if (!poll_schedule_round_saw(&scan_id, &id))
	{
		if (phase == PHASE_RUNNING && !poll_schedule_knows(&scan_id))
			untracked_scans_note(&scan_id, &state, item);
		return NULL;
	}
	hash = hash_bytes_extended((const unsigned char *) item->val.binary.data,
							   item->val.binary.len, 0) | 1;
	if (hash == poll_schedule_recorded_answer(id))
		poll_schedule_done(id, POLL_OK, now);
	else
		job_poll_from_list(id, &scan_id, item, hash);
	return NULL;
}

/*
 * The running phase is over: list the ended scans when some scans of the
 * round were not shown, else end the round.
 */
static void
next_phase(Job *job)
{
	ListData   *d = job->data;
	int			unseen = poll_schedule_round_unseen();

	job->next = NEXT_FINISHED;
	if (d->phase != PHASE_RUNNING || unseen == 0 || rounds.ended_refused)
		return;
	d->phase = PHASE_ENDED;
	d->cursor = NULL;
	d->seen_cursors = NIL;
	d->pages = 0;
	d->max_pages = unseen / API_LIST_LIMIT + 2;
	job->next = NEXT_REQUEST;
}

static bool
list_judge(Job *job, const ApiResponse *r, ResponseClass cls)
{
	ListData   *d = job->data;
	char	   *err;
	Jsonb	   *body;
	ListPage	page;
	TimestampTz now = GetCurrentTimestamp();
	const char *reason = NULL;
	int			i;

	job->next = NEXT_FINISHED;
	if (cls == RESP_REJECTED || cls == RESP_NOT_FOUND)
	{
		if (d->phase == PHASE_ENDED)
		{
			/* what it would have shown is fetched scan by scan */
			if (!rounds.ended_refused)
				ereport(LOG,
						(errmsg("invicti_scan worker: the server refused the list of ended scans (HTTP %ld); scans that leave the running set are fetched one by one from now on",
								r->http_status),
						 errhint("Reload the configuration to try the list again.")));
			rounds.ended_refused = true;
			return false;
		}
		fall_back(psprintf("the server refused the filtered scan list (HTTP %ld)", r->http_status));
		/* list mode: the round showed nothing, so each scan is fetched alone */
		d->failed = invicti_poll_method != POLL_METHOD_LIST;
		return false;
	}
	body = cls == RESP_SUCCESS ? api_parse_json(r, &err) : NULL;
	if (body == NULL || !api_list_page(body, "scans", &page, &err))
	{
		d->failed = true;
		if (cls == RESP_SUCCESS)
			job->message = psprintf("%s: %s", WHAT, err);
		return false;
	}
	for (i = 0; i < page.n_items && reason == NULL; i++)
		reason = take_item(d->phase, page.items[i], now);
	if (reason)
	{
		d->failed = true;
		fall_back(reason);
		return true;			/* the request itself went well */
	}
	d->pages++;
	if (page.next_cursor && d->pages < d->max_pages &&
		(d->phase == PHASE_RUNNING || poll_schedule_round_unseen() > 0) &&
		!job_cursor_seen(job->cxt, &d->seen_cursors, page.next_cursor))
	{
		d->cursor = (char *) llast(d->seen_cursors);
		job->next = NEXT_REQUEST;
	}
	else
		next_phase(job);
	return true;
}

/* Never asked to record: a round writes through job_poll.c's verdicts. */
static void
list_record(Job *job pg_attribute_unused())
{
}

static bool
list_recorded(Job *job, TimestampTz now)
{
	ListData   *d = job->data;

	rounds.running = false;
	untracked_scans_flush();

	if (!d->failed)
	{
		int			missed = poll_schedule_round_end(now);

		rounds.failures = 0;
		rounds.not_before = 0;

		if (missed > 0)
			elog(DEBUG1, "invicti_scan worker: list round did not show %d scans; fetching them one by one",
				 missed);
	}
	else if (rounds_on())
	{
		rounds.failures++;
		rounds.not_before = TimestampTzPlusMilliseconds(now,
														Min(retry_policy_delay_ms(rounds.failures),
															(int64) invicti_poll_interval_s * 1000));
	}
	return false;
}

static const JobKind list_kind = {
	.call = CALL_POLL_LIST,
	.durable = false,
	.build = list_build,
	.judge = list_judge,
	.not_sent = list_not_sent,
	.record = list_record,
	.record_failure = NULL,
	.recorded = list_recorded,
};

TimestampTz
job_list_next_round_at(void)
{
	TimestampTz due;

	if (!rounds_on() || rounds.running || (due = poll_schedule_round_due()) == 0)
		return 0;
	return Max(due, rounds.not_before);
}

bool
job_list_start_round(TimestampTz now)
{
	TimestampTz at = job_list_next_round_at();
	Job		   *job;
	ListData   *d;

	if (at == 0 || at > now)
		return false;
	job = job_new(&list_kind, 0, sizeof(ListData));
	d = job->data;
	d->phase = PHASE_RUNNING;
	d->max_pages = 2 * (poll_schedule_count() / API_LIST_LIMIT + 1) + 10;
	rounds.running = true;

	poll_schedule_round_begin();
	job_submit(job);
	return true;
}

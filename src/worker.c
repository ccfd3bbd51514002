/*
 * worker.c
 *		The invicti_scan background worker: its lifecycle and main loop.
 *
 * One worker per cluster, started by the postmaster once the server
 * accepts writes (never on a standby; after promotion it starts and takes
 * over every running scan), connected to invicti_scan.database_name.
 *
 * Each turn of the loop:
 *   1. take finished HTTP transfers and judge them (jobs.c), no
 *      transaction open;
 *   2. record the verdicts that are due, in one transaction;
 *   3. when woken by a commit, or when table-scheduled work is due, claim
 *      launches and other table work in one durable transaction
 *      (table_work.c);
 *   4. take invicti_refresh_scan() requests, release requests the budget
 *      held (request_budget.c), then start what is due of the running
 *      scans: a list round (job_list.c) or single polls (poll_schedule.c),
 *      and a sync round of the catalogs (job_sync.c), as far as the budget
 *      allows;
 *   5. sleep in a WaitEventSet on the latch, postmaster death and libcurl's
 *      sockets, until the earliest thing that is due.
 * The worker learns of new work at commit, through its latch (launches,
 * aborts, and the invicti_scans_changed trigger: commit_wake.c); it reads
 * the table only when something is due or was signalled.
 *
 * Failure handling: an error in a turn is caught here, logged (at WARNING,
 * at most a few a minute: log_limit.c), and database work backs off; the
 * worker does not exit.  If the extension is missing or of another version
 * (extension_watch.c), or the settings forbid sending (worker_config.c),
 * the worker says so once and waits quietly.
 *
 * This file must not contain SQL, HTTP or API details, nor decide what an
 * answer means: it only decides when each step runs.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "api_client.h"
#include "commit_wake.h"
#include "database_wait.h"
#include "extension_watch.h"
#include "invicti_scan.h"
#include "jobs.h"
#include "job_kinds.h"
#include "log_limit.h"
#include "pg_compat.h"
#include "poll_schedule.h"
#include "request_budget.h"
#include "retry_policy.h"
#include "settings.h"
#include "shared_state.h"
#include "table_work.h"
#include "worker_config.h"

/* Longest sleep, whatever is due: a safety net, not a schedule. */
#define MAX_SLEEP_MS 60000
/* Backoff of database work after an error. */
#define DB_RETRY_MAX_MS 30000
/* Retention: rows deleted per transaction, and the pause between runs. */
#define RETENTION_BATCH 1000
#define RETENTION_INTERVAL_MS (10 * 60 * 1000)

/* Everything the loop keeps from one turn to the next. */
typedef struct WorkerLoop
{
	MemoryContext turn_cxt;		/* reset at the start of every turn */
	bool		claim_needed;	/* woken, or the table may have new work */
	TimestampTz next_table_due; /* earliest next_attempt_at, 0 = none */
	bool		resync_pending; /* the table changed behind our back */
	bool		sweep_needed;	/* rows may have been left 'sending' */
	TimestampTz db_retry_at;	/* no database work before this */
	int			db_error_streak;
	LogLimit	error_log;
	TimestampTz retention_due;
	int64		retention_deleted;	/* in the current run */
	WaitEventSet *latch_only_set;	/* kept for the worker's life */
} WorkerLoop;

static WorkerLoop w;

/*
 * Settings a database owner could set for the database (or for a role)
 * that would change what the worker's statements do.  They are pinned at
 * connection, above any per-database or per-role value.
 */
static const char *const pinned_settings[][2] = {
	{"search_path", "pg_catalog, pg_temp"},
	{"default_transaction_read_only", "off"},
	{"default_transaction_isolation", "read committed"},
	{"statement_timeout", "0"},
	{"idle_in_transaction_session_timeout", "0"},
	{"DateStyle", "ISO, MDY"},
	{"IntervalStyle", "postgres"},
	{"row_security", "on"},
	/* never wait long behind a user's lock; SKIP LOCKED makes this rare */
	{"lock_timeout", "5s"},
};

/* ---- one turn ---- */

static int
free_slots(void)
{
	return Max(invicti_max_concurrent - jobs_in_flight() - jobs_held(), 0);
}

static bool
may_send(void)
{
	return worker_config_problem() == NULL && api_paused_until() == 0 && free_slots() > 0;
}

/* What the worker held belongs to a schema that is gone (or not usable). */
static void
drop_work(void)
{
	jobs_discard_waiting();
	poll_schedule_reset();
	jobs_forget_failures();
}

static void
record_verdicts(void)
{
	bool		table_changed = false;

	if (!jobs_record(&table_changed))
	{
		(void) extension_watch_note(STORE_NO_EXTENSION);
		drop_work();
		return;
	}
	/* verdicts that (re)scheduled table work: look at the table again */
	if (table_changed)
		w.claim_needed = true;
}

static void
claim_table_work(TimestampTz now)
{
	ClaimRequest req;
	ClaimResult res;
	StoreStatus status;
	bool		sending = may_send();

	/* without sending, only the resync and the sweep are done: claim later */
	if (sending)
		w.claim_needed = false;
	/* as many as the budget allows now: the rest on a later turn */
	req.slots = sending ? budget_available(true, free_slots()) : 0;
	req.sweep = w.sweep_needed;
	req.resync = w.resync_pending;
	req.imports = invicti_import_vulnerabilities;
	req.reconcile_at = TimestampTzPlusMilliseconds(now, invicti_request_timeout_ms);

	status = table_work_claim(&req, &res);
	if (!extension_watch_note(status))
	{
		drop_work();
		return;					/* looked again at the recheck time, or when
								 * woken */
	}
	w.next_table_due = res.next_due;
	w.resync_pending = false;
	w.sweep_needed = false;
	if (sending)
		w.claim_needed = (res.started == req.slots && req.slots > 0);
}

/*
 * Delete finished scans older than invicti_scan.history_days, one small
 * batch per turn so that other work goes on in between.
 */
static void
apply_retention(TimestampTz now)
{
	int			deleted;

	if (table_work_retention(invicti_history_days, RETENTION_BATCH, &deleted) != STORE_READY)
		return;
	w.retention_deleted += deleted;
	if (deleted == RETENTION_BATCH)
		w.retention_due = now;	/* more to do: next turn */
	else
	{
		if (w.retention_deleted > 0)
			ereport(LOG,
					(errmsg("invicti_scan worker: deleted " INT64_FORMAT " finished scans older than %d days",
							w.retention_deleted, invicti_history_days)));
		w.retention_deleted = 0;
		w.retention_due = TimestampTzPlusMilliseconds(now, RETENTION_INTERVAL_MS);
	}
}

/* invicti_refresh_scan(): the scans users asked to see now. */
static void
take_refresh_requests(TimestampTz now)
{
	int64		ids[INVICTI_REFRESH_QUEUE];
	int			n;
	bool		overflow;
	int			i;

	n = invicti_take_refresh_requests(ids, &overflow);
	for (i = 0; i < n; i++)
		(void) poll_schedule_refresh(ids[i], now);
	if (overflow)
		poll_schedule_all_due(now);
}

/*
 * Refresh what is due: a list round when one is due, and the scans that
 * are refreshed by a request of their own, as the budget allows (what it
 * does not allow now stays due).
 */
static void
start_due_polls(TimestampTz now)
{
	int64		id;
	pg_uuid_t	scan_id;
	int			failures;

	TimestampTz due;

	if (may_send() && budget_available(false, 1) > 0)
		(void) job_list_start_round(now);
	if (may_send() && budget_available(false, 1) > 0)
		(void) job_sync_start_round(now);
	while (may_send() && budget_available(false, 1) > 0 &&
		   poll_schedule_take_due(now, &id, &scan_id, &failures))
		job_poll_start(id, &scan_id);
	/* refreshes due that the budget puts off (counted once a turn) */
	if (may_send() && budget_available(false, 1) == 0 &&
		(((due = poll_schedule_next_due()) != 0 && due <= now) ||
		 ((due = job_list_next_round_at()) != 0 && due <= now)))
		budget_note_wait();
}

static void
run_turn(void)
{
	TimestampTz now;

	api_client_run_timers();
	jobs_collect();

	now = GetCurrentTimestamp();
	if (now < w.db_retry_at)
		return;

	if (jobs_record_due(now))
		record_verdicts();

	if (!extension_watch_ready() && now < extension_watch_recheck_at() && !w.claim_needed)
		return;
	if (invicti_take_resync_request())
		w.resync_pending = true;

	/*
	 * Read the table only when there is something to do with what it says:
	 * nothing is claimed while no request may be sent (a whole-API pause, a
	 * configuration problem, every slot busy); claim_needed stays set.
	 */
	if (!extension_watch_ready() || w.resync_pending || w.sweep_needed ||
		(may_send() && (w.claim_needed || (w.next_table_due != 0 && w.next_table_due <= now))))
		claim_table_work(now);

	if (store_stats_flush_due() != 0 && store_stats_flush_due() <= now)
		store_flush_stats(true);

	jobs_release_held();
	if (extension_watch_ready())
	{
		take_refresh_requests(now);
		start_due_polls(now);
		if (invicti_history_days > 0 && now >= w.retention_due)
			apply_retention(now);
	}
	w.db_error_streak = 0;
}

/* Turn an error in a turn into a log line and a pause, not an exit. */
static void
recover_from_error(void)
{
	ErrorData  *edata;
	int64		backoff;
	int			suppressed;

	MemoryContextSwitchTo(w.turn_cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	w.sweep_needed = true;

	w.db_error_streak++;
	backoff = Min((int64) 1000 << Min(w.db_error_streak - 1, 10), DB_RETRY_MAX_MS);
	w.db_retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff);
	w.claim_needed = true;
	extension_watch_forget();

	if (log_limit_allow(&w.error_log, &suppressed))
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg_internal("invicti_scan worker: %s", edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
				 errhint("The worker retries in %.1f s.%s", backoff / 1000.0,
						 suppressed ? psprintf(" %d similar errors were not logged.", suppressed) : "")));
	FreeErrorData(edata);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* ---- waiting ---- */

static long
ms_until(TimestampTz when, TimestampTz now)
{
	if (when <= now)
		return 0;
	return (long) Min((when - now + 999) / 1000, (TimestampTz) MAX_SLEEP_MS);
}

static long
sleep_ms(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz paused = api_paused_until();
	TimestampTz record_due = jobs_next_record_due();
	long		t = MAX_SLEEP_MS;
	long		curl_t = api_client_timeout_ms();

	if (curl_t >= 0)
		t = Min(t, curl_t);
	if (now < w.db_retry_at)
		return Min(t, ms_until(w.db_retry_at, now));
	if (record_due != 0)
		t = Min(t, ms_until(record_due, now));
	if (w.claim_needed && may_send())
		return 0;
	if (!extension_watch_ready())
		return Min(t, ms_until(extension_watch_recheck_at(), now));
	if (invicti_history_days > 0)
		t = Min(t, ms_until(w.retention_due, now));
	if (store_stats_flush_due() != 0)
		t = Min(t, ms_until(store_stats_flush_due(), now));
	if (paused != 0)
		t = Min(t, ms_until(paused, now));
	else if (worker_config_problem() == NULL)
	{
		TimestampTz held = jobs_next_release_at();
		TimestampTz poll_due = poll_schedule_next_due();
		TimestampTz round_due = job_list_next_round_at();
		TimestampTz sync_due = job_sync_next_round_at();

		if (held != 0)
			t = Min(t, ms_until(held, now));
		if (free_slots() > 0)
		{
			TimestampTz budget = budget_next_at(false);

			if (poll_due != 0)
				t = Min(t, ms_until(Max(poll_due, budget), now));
			if (round_due != 0)
				t = Min(t, ms_until(Max(round_due, budget), now));
			if (sync_due != 0)
				t = Min(t, ms_until(Max(sync_due, budget), now));
			if (w.next_table_due != 0)
				t = Min(t, ms_until(Max(w.next_table_due, budget_next_at(true)), now));
		}
	}
	return t;
}

static void
handle_events(WaitEventSet *set, int nevents, long timeout)
{
	WaitEvent  *events = palloc(sizeof(WaitEvent) * nevents);
	int			n = WaitEventSetWait(set, timeout, events, nevents, PG_WAIT_EXTENSION);
	int			i;

	for (i = 0; i < n; i++)
	{
		if (events[i].events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			w.claim_needed = true;
		}
		else if (events[i].events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
			api_client_socket_ready(events[i].fd, events[i].events);
	}
}

/* A set for this wait only: libcurl's sockets change from turn to turn. */
static void
wait_with_sockets(int nsockets, long timeout)
{
	WaitEventSet *set = compat_create_wait_event_set(nsockets + 2);

	PG_TRY();
	{
		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		api_client_add_sockets(set);
		handle_events(set, nsockets + 2, timeout);
	}
	PG_CATCH();
	{
		FreeWaitEventSet(set);
		PG_RE_THROW();
	}
	PG_END_TRY();
	FreeWaitEventSet(set);
}

/* What invicti_scan_stats shows of the worker's state now. */
static void
publish_activity(void)
{
	int			configured;
	double		effective;
	int			last_minute;
	int64		waits;
	int64		cuts;

	budget_stats(&configured, &effective, &last_minute, &waits, &cuts);
	invicti_stats_set_activity(jobs_in_flight(), api_paused_until(), job_list_method(),
							   configured, effective, last_minute, waits, cuts);
}

/*
 * The wait without sockets (idle, or every request paused) is the one a
 * busy database wakes at each commit: its WaitEventSet is kept for the
 * life of the worker instead of making an epoll set per wait.  With
 * libcurl's sockets, whose number changes from turn to turn, a set is made
 * per wait, and freed even if the wait fails (it holds a descriptor).
 */
static void
wait_for_events(void)
{
	int			nsockets = api_client_socket_count();
	long		timeout = sleep_ms();

	publish_activity();
	if (timeout == 0)
	{
		CHECK_FOR_INTERRUPTS();
		return;
	}

	if (nsockets == 0)
	{
		if (w.latch_only_set == NULL)
		{
			w.latch_only_set = compat_create_wait_event_set(2);
			AddWaitEventToSet(w.latch_only_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
			AddWaitEventToSet(w.latch_only_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		}
		handle_events(w.latch_only_set, 2, timeout);
	}
	else
		wait_with_sockets(nsockets, timeout);
	CHECK_FOR_INTERRUPTS();
}

/* ---- lifecycle ---- */

static void
worker_exit(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	api_client_cleanup();
	invicti_worker_detach();
}

/*
 * Connect to the worker's database with nothing its owner configured able
 * to change what the worker's statements mean.
 */
static void
connect_to_database(void)
{
	int			i;

	database_wait();
	BackgroundWorkerInitializeConnection(invicti_database_name, NULL, 0);
	pgstat_report_appname(INVICTI_WORKER_NAME);
	SetConfigOption("application_name", INVICTI_WORKER_NAME, PGC_USERSET, PGC_S_OVERRIDE);
	for (i = 0; i < (int) lengthof(pinned_settings); i++)
		SetConfigOption(pinned_settings[i][0], pinned_settings[i][1],
						PGC_SUSET, PGC_S_OVERRIDE);
	compat_pin_release_settings();
}

void
invicti_worker_main(Datum main_arg pg_attribute_unused())
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	connect_to_database();

	memset(&w, 0, sizeof(w));
	w.turn_cxt = AllocSetContextCreate(TopMemoryContext, "invicti_scan turn",
									   ALLOCSET_DEFAULT_SIZES);
	w.claim_needed = true;
	w.sweep_needed = true;
	invicti_commit_wake_in_worker();
	api_client_init();
	jobs_init();
	poll_schedule_reset();
	invicti_worker_attach();
	before_shmem_exit(worker_exit, (Datum) 0);

	ereport(LOG,
			(errmsg("invicti_scan worker started in database \"%s\"", invicti_database_name),
			 errdetail("API at \"%s%s\", User-Agent \"%s\".",
					   invicti_base_url, invicti_api_path, api_client_user_agent())));
	worker_config_load();
	budget_configure();
	job_list_configure();
	job_sync_configure();

	for (;;)
	{
		MemoryContextSwitchTo(w.turn_cxt);
		MemoryContextReset(w.turn_cxt);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			int			old_interval = invicti_poll_interval_s;

			(void) worker_config_reload();
			budget_configure();
			job_list_configure();
			job_sync_configure();
			/* a shorter poll_interval applies now, not after the old one */
			if (invicti_poll_interval_s < old_interval)
				poll_schedule_clamp(TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
																(int64) invicti_poll_interval_s * 1000));
			w.claim_needed = true;
			w.retention_due = 0;	/* history_days may have changed: look now */
		}

		PG_TRY();
		{
			run_turn();
		}
		PG_CATCH();
		{
			recover_from_error();
		}
		PG_END_TRY();

		MemoryContextSwitchTo(w.turn_cxt);
		wait_for_events();
	}
}

/*
 * worker.c
 *		The invicti_scan background worker: its lifecycle and main loop.
 *
 * One worker per cluster, started by the postmaster once the server
 * accepts writes (never on a standby; after promotion it starts and takes
 * over every running scan), connected to invicti_scan.database_name.
 *
 * Each turn of the loop:
 *   1. take finished HTTP transfers and judge them (scan_jobs.c), no
 *      transaction open;
 *   2. record the verdicts in one transaction;
 *   3. when woken by a commit, or when table-scheduled work is due, claim
 *      launches and reconciliations in one (durable) transaction;
 *   4. start the polls that are due (poll_schedule.c);
 *   5. sleep in a WaitEventSet on the latch, postmaster death and libcurl's
 *      sockets, until the earliest thing that is due.
 * Nothing is polled on a timer: launches wake the worker through its latch
 * at commit; the table is read only when something is due or was signalled.
 *
 * Failure handling: an error in a turn is caught here, the transaction is
 * aborted, the error logged, and database work backs off; the worker does
 * not exit.  If the extension is missing (not yet created, dropped) or of
 * another version, the worker says so once at LOG and waits quietly.
 *
 * This file must not contain SQL or HTTP details: those live in
 * scan_store.c and api_client.c.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "api_client.h"
#include "commit_wake.h"
#include "invicti_scan.h"
#include "poll_schedule.h"
#include "retry_policy.h"
#include "scan_jobs.h"
#include "scan_store.h"
#include "settings.h"
#include "shared_state.h"

/* How often to look again for a missing extension (also woken by CREATE). */
#define EXTENSION_RECHECK_MS 10000
/* Longest sleep, whatever is due: a safety net, not a schedule. */
#define MAX_SLEEP_MS 60000
/* Backoff of database work after an error. */
#define DB_RETRY_MAX_MS 30000
/* Retention: rows deleted per transaction, and the pause between runs. */
#define RETENTION_BATCH 1000
#define RETENTION_INTERVAL_MS (10 * 60 * 1000)

typedef enum ExtensionState
{
	EXT_UNKNOWN,
	EXT_READY,
	EXT_MISSING,
	EXT_WRONG_VERSION
} ExtensionState;

static MemoryContext turn_cxt = NULL;

static ExtensionState ext_state = EXT_UNKNOWN;
static TimestampTz ext_recheck_at = 0;

static bool claim_needed = true;	/* woken, or the table may have new work */
static TimestampTz next_table_due = 0;	/* earliest next_attempt_at, 0 = none */
static bool resync_pending = false;	/* the table changed behind our back */
static bool sweep_needed = true;	/* rows may have been left 'sending' */
static TimestampTz db_retry_at = 0;
static int	db_error_streak = 0;
static bool record_one_by_one = false;
static TimestampTz retention_due = 0;
static int64 retention_deleted = 0;	/* in the current run */

static const char *config_problem = NULL;
static char *config_problem_logged = NULL;
static uint32 api_settings_hash = 0;

/* ---- configuration ---- */

/* A hash of everything that decides where and how requests go. */
static uint32
hash_api_settings(void)
{
	const char *problem;
	const char *parts[6];
	uint32		h = 0;
	int			i;

	parts[0] = invicti_base_url;
	parts[1] = invicti_api_path;
	parts[2] = invicti_api_token(&problem);
	parts[3] = invicti_ca_file;
	parts[4] = invicti_allow_insecure_http ? "on" : "off";
	parts[5] = invicti_api_token_file;
	for (i = 0; i < (int) lengthof(parts); i++)
		h = hash_combine(h, hash_bytes((const unsigned char *) parts[i], strlen(parts[i])));
	return h;
}

/* Why no request may be sent now, or NULL. */
static const char *
find_config_problem(void)
{
	const char *problem;

	if (invicti_base_url == NULL || invicti_base_url[0] == '\0')
		return "invicti_scan.base_url is not set";
	if (pg_strncasecmp(invicti_base_url, "http://", 7) == 0 &&
		!invicti_allow_insecure_http && !invicti_url_is_loopback(invicti_base_url))
		return "invicti_scan.base_url uses plain http:// to a host that is not a loopback address, so the API token would cross the network unencrypted; use https:// or set invicti_scan.allow_insecure_http = on";
	(void) invicti_api_token(&problem);
	return problem;
}

static void
check_config(void)
{
	config_problem = find_config_problem();
	if (config_problem == NULL && config_problem_logged != NULL)
	{
		ereport(LOG,
				(errmsg("invicti_scan worker: configuration is complete; sending requests to %s",
						invicti_base_url)));
		pfree(config_problem_logged);
		config_problem_logged = NULL;
	}
	else if (config_problem != NULL &&
			 (config_problem_logged == NULL ||
			  strcmp(config_problem_logged, config_problem) != 0))
	{
		ereport(WARNING,
				(errmsg("invicti_scan worker: not sending requests: %s", config_problem),
				 errdetail("Scans stay pending until this is fixed; nothing is lost."),
				 errhint("Fix the setting in postgresql.conf and reload the configuration.")));
		if (config_problem_logged)
			pfree(config_problem_logged);
		config_problem_logged = MemoryContextStrdup(TopMemoryContext, config_problem);
	}
}

static void
reload_settings(void)
{
	uint32		before = api_settings_hash;

	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	invicti_reload_token_file();
	api_settings_hash = hash_api_settings();
	if (api_settings_hash != before)
	{
		ereport(LOG,
				(errmsg("invicti_scan worker: API settings changed; retrying paused requests now")));
		api_pause_reset();
	}
	check_config();
	claim_needed = true;
	retention_due = 0;			/* history_days may have changed: look now */
}

/* ---- extension presence ---- */

static void
note_extension_state(StoreStatus status)
{
	ExtensionState now = status == STORE_READY ? EXT_READY :
		status == STORE_NO_EXTENSION ? EXT_MISSING : EXT_WRONG_VERSION;

	if (now != EXT_READY)
		ext_recheck_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													 EXTENSION_RECHECK_MS);
	if (now == ext_state)
		return;

	if (now == EXT_MISSING)
		ereport(LOG,
				(errmsg("invicti_scan worker: extension \"%s\" is not installed in database \"%s\"; waiting for CREATE EXTENSION",
						INVICTI_EXTENSION_NAME, invicti_database_name)));
	else if (now == EXT_WRONG_VERSION)
		ereport(WARNING,
				(errmsg("invicti_scan worker: the installed extension is version %s but the library is version %s; waiting",
						store_installed_version(), INVICTI_SCAN_VERSION),
				 errhint("Run ALTER EXTENSION invicti_scan UPDATE in database \"%s\".",
						 invicti_database_name)));
	if (now != EXT_READY)
	{
		/* whatever was in progress belongs to a schema that is gone */
		jobs_discard_waiting();
		poll_schedule_reset();
		jobs_forget_failures();
	}
	ext_state = now;
}

static void
load_running_scans(int64 id, const pg_uuid_t *scan_id)
{
	poll_schedule_add(id, scan_id, GetCurrentTimestamp());
}

/* ---- one turn ---- */

static int
free_slots(void)
{
	return Max(invicti_max_concurrent - jobs_in_flight(), 0);
}

static bool
may_send(void)
{
	return config_problem == NULL && api_paused_until() == 0 && free_slots() > 0;
}

/* Record `max` verdicts (0 = all) in one transaction. */
static bool
record_in_one_transaction(int max)
{
	StoreStatus status;

	status = store_begin("recording Invicti API results",
						 jobs_waiting_need_durability());
	if (status != STORE_READY)
	{
		note_extension_state(status);
		jobs_discard_waiting();
		return false;
	}
	jobs_record(max);
	store_commit();
	/* verdicts that (re)scheduled table work: look at the table again */
	if (jobs_recorded())
		claim_needed = true;
	return true;
}

/*
 * After a batch failed, record each verdict in its own transaction, so one
 * the table refuses cannot hold up the others.  A verdict that fails is
 * logged and retried in a later turn; after three failures it is dropped
 * (see jobs_record_failed).
 */
static void
record_one_at_a_time(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	int			n = jobs_waiting();
	int			i;

	for (i = 0; i < n && jobs_waiting() > 0; i++)
	{
		volatile bool go_on = true;

		PG_TRY();
		{
			go_on = record_in_one_transaction(1);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			jobs_record_failed();
			sweep_needed = true;
			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("invicti_scan worker: could not record a result: %s",
							edata->message)));
			FreeErrorData(edata);
		}
		PG_END_TRY();
		if (!go_on)
			break;
	}
	if (jobs_waiting() == 0)
		record_one_by_one = false;
}

static void
record_verdicts(void)
{
	if (record_one_by_one)
		record_one_at_a_time();
	else
		(void) record_in_one_transaction(0);
}

static void
claim_table_work(TimestampTz now)
{
	StoreStatus status;
	int64	   *busy;
	int			nbusy;
	int			slots;
	LaunchClaim *launches = NULL;
	TableClaim *work = NULL;
	int			nl = 0;
	int			nw = 0;
	int			i;
	bool		sending = may_send();

	/* without sending, only the resync and the sweep are done: claim later */
	if (sending)
		claim_needed = false;
	status = store_begin("claiming due Invicti work", true);
	note_extension_state(status);
	if (status != STORE_READY)
		return;					/* looked again at ext_recheck_at, or when woken */

	if (store_extension_changed())
	{
		sweep_needed = true;
		poll_schedule_reset();
		jobs_forget_failures();
		store_load_polls(load_running_scans);
		ereport(LOG,
				(errmsg("invicti_scan worker: using extension %s %s in database \"%s\"; %d running scans to track",
						INVICTI_EXTENSION_NAME, INVICTI_SCAN_VERSION,
						invicti_database_name, poll_schedule_count())));
	}
	else if (resync_pending)
	{
		int			forgotten;

		poll_schedule_sync_begin();
		store_load_polls(load_running_scans);
		forgotten = poll_schedule_sync_end();
		elog(DEBUG1, "invicti_scan worker: the table changed; %d running scans to track, %d no longer",
			 poll_schedule_count(), forgotten);
	}

	/*
	 * Rows left 'sending' by a previous worker (or by a verdict that could
	 * not be recorded) get reconciled, never resent.
	 */
	nbusy = jobs_busy_ids(&busy);
	if (sweep_needed)
		(void) store_sweep_sending(busy, nbusy,
								   TimestampTzPlusMilliseconds(now, invicti_request_timeout_ms));

	slots = free_slots();
	if (sending)
	{
		nl = store_claim_launches(slots, &launches);
		if (slots - nl > 0)
			nw = store_claim_table_work(busy, nbusy, slots - nl,
										invicti_import_vulnerabilities, &work);
	}
	{
		int64	   *all = palloc(sizeof(int64) * (nbusy + nw + 1));

		memcpy(all, busy, sizeof(int64) * nbusy);
		for (i = 0; i < nw; i++)
			all[nbusy + i] = work[i].id;
		next_table_due = store_next_due(all, nbusy + nw, invicti_import_vulnerabilities);
	}
	store_commit();
	resync_pending = false;
	sweep_needed = false;

	/* Only now, with the 'sending' marks committed, do requests go out. */
	for (i = 0; i < nl; i++)
		jobs_start_launch(&launches[i]);
	for (i = 0; i < nw; i++)
		jobs_start_table_work(&work[i]);
	if (sending)
		claim_needed = (nl + nw == slots && slots > 0);
}

/*
 * Delete finished scans older than invicti_scan.history_days, one small
 * batch per turn so that other work goes on in between.
 */
static void
apply_retention(TimestampTz now)
{
	int			deleted;

	if (store_begin("deleting old Invicti scans", false) != STORE_READY)
		return;
	deleted = store_delete_old_scans(invicti_history_days, RETENTION_BATCH);
	store_commit();

	retention_deleted += deleted;
	if (deleted == RETENTION_BATCH)
		retention_due = now;	/* more to do: next turn */
	else
	{
		if (retention_deleted > 0)
			ereport(LOG,
					(errmsg("invicti_scan worker: deleted " INT64_FORMAT " finished scans older than %d days",
							retention_deleted, invicti_history_days)));
		retention_deleted = 0;
		retention_due = TimestampTzPlusMilliseconds(now, RETENTION_INTERVAL_MS);
	}
}

static void
start_due_polls(TimestampTz now)
{
	int64		id;
	pg_uuid_t	scan_id;
	int			failures;

	while (may_send() && poll_schedule_take_due(now, &id, &scan_id, &failures))
		jobs_start_poll(id, &scan_id);
}

static void
run_turn(void)
{
	TimestampTz now;

	api_client_run_timers();
	jobs_collect();

	now = GetCurrentTimestamp();
	if (now < db_retry_at)
		return;

	if (jobs_waiting() > 0)
		record_verdicts();

	if (ext_state != EXT_READY && now < ext_recheck_at && !claim_needed)
		return;
	if (invicti_take_resync_request())
		resync_pending = true;

	/*
	 * Read the table only when there is something to do with what it says:
	 * nothing is claimed while no request may be sent (a whole-API pause, a
	 * configuration problem, every slot busy); claim_needed stays set.
	 */
	if (ext_state != EXT_READY || resync_pending || sweep_needed ||
		(may_send() && (claim_needed || (next_table_due != 0 && next_table_due <= now))))
		claim_table_work(now);

	if (store_stats_flush_due() != 0 && store_stats_flush_due() <= now)
		store_flush_stats(true);

	if (ext_state == EXT_READY)
	{
		start_due_polls(now);
		if (invicti_history_days > 0 && now >= retention_due)
			apply_retention(now);
	}
	db_error_streak = 0;
}

/* Turn an error in a turn into a log line and a pause, not an exit. */
static void
recover_from_error(void)
{
	ErrorData  *edata;
	int64		backoff;

	MemoryContextSwitchTo(turn_cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	store_forget_plans();
	jobs_record_failed();
	record_one_by_one = true;
	sweep_needed = true;

	db_error_streak++;
	backoff = Min((int64) 1000 << Min(db_error_streak - 1, 10), DB_RETRY_MAX_MS);
	db_retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff);
	claim_needed = true;
	ext_state = EXT_UNKNOWN;

	ereport(db_error_streak <= 3 ? WARNING : DEBUG1,
			(errcode(edata->sqlerrcode),
			 errmsg("invicti_scan worker: %s", edata->message),
			 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
			 errhint("The worker retries in %.1f s.", backoff / 1000.0)));
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
	long		t = MAX_SLEEP_MS;
	long		curl_t = api_client_timeout_ms();

	if (curl_t >= 0)
		t = Min(t, curl_t);
	if (now < db_retry_at)
		return Min(t, ms_until(db_retry_at, now));
	if (jobs_waiting() > 0 || (claim_needed && may_send()))
		return 0;
	if (ext_state != EXT_READY)
		return Min(t, ms_until(ext_recheck_at, now));
	if (invicti_history_days > 0)
		t = Min(t, ms_until(retention_due, now));
	if (store_stats_flush_due() != 0)
		t = Min(t, ms_until(store_stats_flush_due(), now));
	if (paused != 0)
		t = Min(t, ms_until(paused, now));
	else if (config_problem == NULL && free_slots() > 0)
	{
		TimestampTz poll_due = poll_schedule_next_due();

		if (poll_due != 0)
			t = Min(t, ms_until(poll_due, now));
		if (next_table_due != 0)
			t = Min(t, ms_until(next_table_due, now));
	}
	return t;
}

/*
 * The wait without sockets (idle, or every request paused) is the one a
 * busy database wakes at each commit: keep its WaitEventSet for the life of
 * the worker instead of making an epoll set per wait.  With libcurl's
 * sockets, whose number changes from turn to turn, a set is made per wait.
 */
static WaitEventSet *latch_only_set = NULL;

static void
wait_for_events(void)
{
	WaitEventSet *set = latch_only_set;
	int			nsockets = api_client_socket_count();
	WaitEvent  *events;
	int			n;
	int			i;
	long		timeout = sleep_ms();

	invicti_stats_set_activity(jobs_in_flight(), api_paused_until());
	if (timeout == 0)
	{
		CHECK_FOR_INTERRUPTS();
		return;
	}

	if (nsockets > 0 || set == NULL)
	{
		set = CreateWaitEventSet(nsockets > 0 ? CurrentMemoryContext : TopMemoryContext,
								 nsockets + 2);
		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		if (nsockets > 0)
			api_client_add_sockets(set);
		else
			latch_only_set = set;
	}

	events = palloc(sizeof(WaitEvent) * (nsockets + 2));
	n = WaitEventSetWait(set, timeout, events, nsockets + 2, PG_WAIT_EXTENSION);
	for (i = 0; i < n; i++)
	{
		if (events[i].events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			claim_needed = true;
		}
		else if (events[i].events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
			api_client_socket_ready(events[i].fd, events[i].events);
	}
	if (set != latch_only_set)
		FreeWaitEventSet(set);
	CHECK_FOR_INTERRUPTS();
}

/* ---- lifecycle ---- */

/*
 * A short-lived helper: connected to no database (shared catalogs only), it
 * says whether invicti_scan.database_name exists, so that the worker does
 * not die with FATAL, and restart, every few seconds while it does not.
 */
void
invicti_database_check_main(Datum main_arg pg_attribute_unused())
{
	bool		exists = false;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	/* a plain heap scan: without a database, indexes cannot be opened */
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (!exists && (tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		exists = strcmp(NameStr(((Form_pg_database) GETSTRUCT(tup))->datname),
						invicti_database_name) == 0;
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	invicti_set_database_exists(exists);
}

/* Return once the database exists; wait quietly (one LOG line) until then. */
static void
wait_for_database(void)
{
	bool		said = false;

	for (;;)
	{
		BackgroundWorker check;
		BackgroundWorkerHandle *handle;

		memset(&check, 0, sizeof(check));
		check.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		check.bgw_start_time = BgWorkerStart_RecoveryFinished;
		check.bgw_restart_time = BGW_NEVER_RESTART;
		check.bgw_notify_pid = MyProcPid;
		snprintf(check.bgw_library_name, BGW_MAXLEN, INVICTI_EXTENSION_NAME);
		snprintf(check.bgw_function_name, BGW_MAXLEN, "invicti_database_check_main");
		snprintf(check.bgw_name, BGW_MAXLEN, "invicti_scan database check");
		snprintf(check.bgw_type, BGW_MAXLEN, "invicti_scan database check");

		invicti_set_database_exists(false);
		if (RegisterDynamicBackgroundWorker(&check, &handle))
		{
			BgwHandleStatus status = WaitForBackgroundWorkerShutdown(handle);

			pfree(handle);		/* one per try: don't let a long wait grow */
			if (status == BGWH_POSTMASTER_DIED)
				proc_exit(1);
			if (invicti_database_exists())
				return;
			if (!said)
				ereport(LOG,
						(errmsg("invicti_scan worker: database \"%s\" does not exist; waiting for it",
								invicti_database_name),
						 errhint("Create the database, or set invicti_scan.database_name and restart the server.")));
		}
		else if (!said)
			ereport(LOG,
					(errmsg("invicti_scan worker: no background worker slot free to check for database \"%s\"; retrying",
							invicti_database_name),
					 errhint("Consider increasing max_worker_processes.")));
		said = true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 EXTENSION_RECHECK_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static void
worker_exit(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	api_client_cleanup();
	invicti_worker_detach();
}

void
invicti_worker_main(Datum main_arg pg_attribute_unused())
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	wait_for_database();
	BackgroundWorkerInitializeConnection(invicti_database_name, NULL, 0);
	pgstat_report_appname(INVICTI_WORKER_NAME);
	SetConfigOption("application_name", INVICTI_WORKER_NAME, PGC_USERSET, PGC_S_OVERRIDE);
	/* never wait long behind a user's row lock; the turn is retried */
	SetConfigOption("lock_timeout", "5s", PGC_SUSET, PGC_S_OVERRIDE);

	turn_cxt = AllocSetContextCreate(TopMemoryContext, "invicti_scan turn",
									 ALLOCSET_DEFAULT_SIZES);
	invicti_commit_wake_in_worker();
	api_client_init();
	jobs_init();
	poll_schedule_reset();
	invicti_worker_attach();
	before_shmem_exit(worker_exit, (Datum) 0);

	invicti_reload_token_file();
	api_settings_hash = hash_api_settings();
	ereport(LOG,
			(errmsg("invicti_scan worker started in database \"%s\"", invicti_database_name),
			 errdetail("API at \"%s%s\", User-Agent \"%s\".",
					   invicti_base_url, invicti_api_path, api_client_user_agent())));
	check_config();

	for (;;)
	{
		MemoryContextSwitchTo(turn_cxt);
		MemoryContextReset(turn_cxt);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
			reload_settings();

		PG_TRY();
		{
			run_turn();
		}
		PG_CATCH();
		{
			recover_from_error();
		}
		PG_END_TRY();

		MemoryContextSwitchTo(turn_cxt);
		wait_for_events();
	}
}

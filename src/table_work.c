/*
 * table_work.c
 *		Reading what the invicti_scans, invicti_target_requests and
 *		invicti_reports tables say is due, and claiming it.
 *
 * Launches, reconciliations, aborts and imports are scheduled in the table
 * (next_attempt_at, indexed only for rows not 'poll' or 'done'), so they
 * survive restarts; running scans are scheduled in the worker's memory
 * (poll_schedule.c) and loaded from the table only when the extension
 * appears or the table was changed by hand.  A claimed launch is committed
 * as 'sending', durably, before its request leaves: that is what makes a
 * launch at most once (job_launch.c).
 *
 * Rules: no request starts inside the transaction; nothing here waits on a
 * row another session holds (the statements skip locked rows).
 */
#include "postgres.h"

#include "catalog_store.h"
#include "jobs.h"
#include "job_kinds.h"
#include "invicti_scan.h"
#include "poll_schedule.h"
#include "report_store.h"
#include "scan_store.h"
#include "server_origin.h"
#include "settings.h"
#include "table_work.h"
#include "untracked_scans.h"

typedef struct ClaimArgs
{
	const ClaimRequest *req;
	ClaimResult *res;
	int			nl;
	LaunchClaim *launches;
	int			nw;
	TableClaim *work;
	int			nt;
	TargetClaim *targets;
	int			nr;
	ReportClaim *reports;
	TimestampTz sync_requested_at;
} ClaimArgs;

static TimestampTz
earliest(TimestampTz a, TimestampTz b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return Min(a, b);
}

/*
 * The busy row ids followed by those of the n claims just made: claims is
 * an array of structs of `stride` bytes whose int64 id is at id_offset.
 */
static int64 *
busy_and_claimed(const int64 *busy, int nbusy, const void *claims, int n, size_t stride,
				 size_t id_offset)
{
	int64	   *all = palloc(sizeof(int64) * (nbusy + n + 1));
	int			i;

	memcpy(all, busy, sizeof(int64) * nbusy);
	for (i = 0; i < n; i++)
		memcpy(&all[nbusy + i], (const char *) claims + i * stride + id_offset, sizeof(int64));
	return all;
}

/*
 * invicti_target_requests and invicti_reports: like launches (a request is
 * marked 'sending' before it leaves); and the sync invicti_sync() asked for.
 * Returns when the next of them is due.
 */
static TimestampTz
claim_catalog_work(ClaimArgs *a, bool sweep, int slots)
{
	int64	   *tbusy;
	int64	   *rbusy;
	int			ntbusy = jobs_busy_ids(ROWS_TARGET_REQUESTS, &tbusy);
	int			nrbusy = jobs_busy_ids(ROWS_REPORTS, &rbusy);
	TimestampTz due;

	if (sweep)
	{
		(void) catalog_store_sweep_targets(tbusy, ntbusy, a->req->reconcile_at);
		(void) report_store_sweep(rbusy, nrbusy);
	}
	if (slots > 0)
		a->nt = catalog_store_claim_targets(tbusy, ntbusy, slots, &a->targets);
	if (slots - a->nt > 0)
		a->nr = report_store_claim(rbusy, nrbusy, slots - a->nt, &a->reports);
	a->sync_requested_at = catalog_store_sync_requested_at();
	due = catalog_store_targets_next_due(busy_and_claimed(tbusy, ntbusy, a->targets, a->nt,
														  sizeof(TargetClaim),
														  offsetof(TargetClaim, id)),
										 ntbusy + a->nt);
	return earliest(due, report_store_next_due(busy_and_claimed(rbusy, nrbusy, a->reports, a->nr,
																sizeof(ReportClaim),
																offsetof(ReportClaim, id)),
											   nrbusy + a->nr));
}

static void
add_running_scan(int64 id, const pg_uuid_t *scan_id)
{
	poll_schedule_add(id, scan_id, GetCurrentTimestamp(), false);
}

static void
claim(void *arg)
{
	ClaimArgs  *a = (ClaimArgs *) arg;
	const ClaimRequest *req = a->req;
	int64	   *busy;
	int64	   *all;
	int			nbusy;
	bool		sweep = req->sweep;

	if (store_extension_changed())
	{
		sweep = true;
		poll_schedule_reset();
		untracked_scans_forget();
		jobs_forget_failures();
		scan_store_load_polls(add_running_scan);
		(void) server_origin_check();
		ereport(LOG,
				(errmsg("invicti_scan worker: using extension %s %s in database \"%s\"; %d running scans to track",
						INVICTI_EXTENSION_NAME, INVICTI_SCAN_VERSION,
						invicti_database_name, poll_schedule_count())));
	}
	else if (req->resync)
	{
		int			forgotten;

		poll_schedule_sync_begin();
		scan_store_load_polls(add_running_scan);
		forgotten = poll_schedule_sync_end();
		elog(DEBUG1, "invicti_scan worker: the table changed; %d running scans to track, %d no longer",
			 poll_schedule_count(), forgotten);
	}

	/*
	 * Rows left 'sending' by a previous worker (or by a verdict that could
	 * not be recorded) get reconciled, never resent.
	 */
	nbusy = jobs_busy_ids(ROWS_SCANS, &busy);
	if (sweep)
		(void) scan_store_sweep_sending(busy, nbusy, req->reconcile_at);

	if (req->slots > 0)
	{
		a->nl = scan_store_claim_launches(req->slots, &a->launches);
		if (req->slots - a->nl > 0)
			a->nw = scan_store_claim_table_work(busy, nbusy, req->slots - a->nl,
												req->imports, &a->work);
	}
	all = busy_and_claimed(busy, nbusy, a->work, a->nw, sizeof(TableClaim),
						   offsetof(TableClaim, id));
	a->res->next_due = scan_store_next_due(all, nbusy + a->nw, req->imports);

	a->res->next_due = earliest(a->res->next_due,
								claim_catalog_work(a, sweep, req->slots - a->nl - a->nw));
}

StoreStatus
table_work_claim(const ClaimRequest *req, ClaimResult *res)
{
	ClaimArgs	a;
	StoreStatus status;
	int			i;

	memset(&a, 0, sizeof(a));
	memset(res, 0, sizeof(ClaimResult));
	a.req = req;
	a.res = res;
	status = store_run("claiming due Invicti work", true, claim, &a);
	if (status != STORE_READY)
		return status;

	/* Only now, with the 'sending' marks committed, do requests go out. */
	for (i = 0; i < a.nl; i++)
		job_launch_start(&a.launches[i]);
	for (i = 0; i < a.nw; i++)
	{
		switch (a.work[i].state)
		{
			case WS_ABORT:
				job_abort_start(&a.work[i]);
				break;
			case WS_IMPORT:
				job_import_start(&a.work[i]);
				break;
			default:
				job_reconcile_start(&a.work[i]);
				break;
		}
	}
	for (i = 0; i < a.nt; i++)
		job_target_start(&a.targets[i]);
	for (i = 0; i < a.nr; i++)
		job_report_start(&a.reports[i]);
	job_sync_note_request(a.sync_requested_at);
	res->started = a.nl + a.nw + a.nt + a.nr;
	return STORE_READY;
}

typedef struct RetentionArgs
{
	int			days;
	int			limit;
	int			deleted;
} RetentionArgs;

static void
retention(void *arg)
{
	RetentionArgs *a = (RetentionArgs *) arg;

	a->deleted = scan_store_delete_old_scans(a->days, a->limit);
}

StoreStatus
table_work_retention(int days, int limit, int *deleted)
{
	RetentionArgs a = {days, limit, 0};
	StoreStatus status = store_run("deleting old Invicti scans", false, retention, &a);

	*deleted = a.deleted;
	return status;
}

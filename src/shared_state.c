/*
 * shared_state.c
 *		A fixed block of shared memory: where the worker's latch is, and the
 *		worker's counters for invicti_scan_stats.
 *
 * Rules: only plain values live here, never a pointer (each process maps
 * memory on its own), so the worker publishes its PGPROC number, not its
 * latch's address.  The worker is the only writer of the counters; a
 * spinlock makes readers see a consistent copy.  Nothing here allocates,
 * errors out or calls libcurl while holding the spinlock.
 *
 * The block exists only when the library is in shared_preload_libraries;
 * everything here degrades to a no-op (or "not available") otherwise.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "pg_compat.h"
#include "shared_state.h"

typedef struct InvictiShared
{
	slock_t		mutex;
	int			worker_pgprocno;	/* -1 when no worker runs */
	bool		database_exists;	/* last answer of the database check */
	pg_atomic_uint32 resync_requested;	/* the table changed behind the worker */
	int			refresh_n;		/* invicti_refresh_scan() requests queued */
	bool		refresh_overflow;
	int64		refresh_ids[INVICTI_REFRESH_QUEUE];
	ConditionVariable scans_changed;	/* invicti_wait_scan() sleeps here */
	InvictiStats stats;
} InvictiShared;

static InvictiShared *shared = NULL;

void
invicti_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(InvictiShared)));
}

void
invicti_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("invicti_scan", sizeof(InvictiShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(InvictiShared));
		SpinLockInit(&shared->mutex);
		shared->worker_pgprocno = -1;
		pg_atomic_init_u32(&shared->resync_requested, 0);
		ConditionVariableInit(&shared->scans_changed);
	}
	LWLockRelease(AddinShmemInitLock);
}

bool
invicti_shmem_available(void)
{
	return shared != NULL;
}

void
invicti_wake_worker(void)
{
	int			procno;

	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	procno = shared->worker_pgprocno;
	SpinLockRelease(&shared->mutex);
	if (procno >= 0)
		SetLatch(compat_proc_latch(procno));
}

void
invicti_announce_scan_changes(void)
{
	if (shared != NULL)
		ConditionVariableBroadcast(&shared->scans_changed);
}

bool
invicti_wait_for_scan_changes(long timeout_ms, uint32 wait_event_info)
{
	if (shared == NULL)
		return false;
	return !ConditionVariableTimedSleep(&shared->scans_changed, timeout_ms, wait_event_info);
}

void
invicti_stop_waiting_for_scan_changes(void)
{
	ConditionVariableCancelSleep();
}

void
invicti_request_resync(void)
{
	if (shared != NULL)
		pg_atomic_write_u32(&shared->resync_requested, 1);
}

bool
invicti_take_resync_request(void)
{
	return shared != NULL && pg_atomic_exchange_u32(&shared->resync_requested, 0) != 0;
}

void
invicti_worker_attach(void)
{
	Assert(shared != NULL);
	SpinLockAcquire(&shared->mutex);
	shared->worker_pgprocno = compat_my_procno();
	shared->stats.worker_pid = MyProcPid;
	shared->stats.worker_started_at = GetCurrentTimestamp();
	shared->stats.in_flight = 0;
	shared->stats.paused_until = 0;
	SpinLockRelease(&shared->mutex);
}

void
invicti_worker_detach(void)
{
	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	shared->worker_pgprocno = -1;
	shared->stats.worker_pid = 0;
	shared->stats.in_flight = 0;
	SpinLockRelease(&shared->mutex);
}

void
invicti_stats_count(ApiCallKind kind, ApiOutcome outcome,
					bool is_retry, const char *error)
{
	TimestampTz now = GetCurrentTimestamp();
	int			cut = 0;

	if (shared == NULL)
		return;
	/* whole characters only: a reader in another encoding must not choke */
	if (error != NULL)
		cut = pg_mbcliplen(error, strlen(error), sizeof(shared->stats.last_error) - 1);
	SpinLockAcquire(&shared->mutex);
	shared->stats.requests[kind][outcome]++;
	if (is_retry)
		shared->stats.retries++;
	if (outcome == OUTCOME_OK)
		shared->stats.last_success_at = now;
	else if (error != NULL)
	{
		shared->stats.last_error_at = now;
		memcpy(shared->stats.last_error, error, cut);
		shared->stats.last_error[cut] = '\0';
	}
	SpinLockRelease(&shared->mutex);
}

void
invicti_stats_set_activity(int in_flight, TimestampTz paused_until,
						   const char *poll_method, int budget_per_minute,
						   double budget_effective, int requests_last_minute,
						   int64 budget_waits, int64 rate_cuts)
{
	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	shared->stats.in_flight = in_flight;
	shared->stats.paused_until = paused_until;
	strlcpy(shared->stats.poll_method, poll_method, sizeof(shared->stats.poll_method));
	shared->stats.budget_per_minute = budget_per_minute;
	shared->stats.budget_effective = budget_effective;
	shared->stats.requests_last_minute = requests_last_minute;
	shared->stats.budget_waits = budget_waits;
	shared->stats.rate_cuts = rate_cuts;
	SpinLockRelease(&shared->mutex);
}

void
invicti_request_refresh(int64 id)
{
	int			i;
	bool		queued = false;

	/* a bounded scan of the queue (a few hundred compares) under the lock */
	SpinLockAcquire(&shared->mutex);
	for (i = 0; i < shared->refresh_n && !queued; i++)
		queued = shared->refresh_ids[i] == id;
	if (!queued)
	{
		if (shared->refresh_n < INVICTI_REFRESH_QUEUE)
			shared->refresh_ids[shared->refresh_n++] = id;
		else
			shared->refresh_overflow = true;
		shared->stats.refresh_requests++;
	}
	SpinLockRelease(&shared->mutex);
	invicti_wake_worker();
}

int
invicti_take_refresh_requests(int64 *ids, bool *overflow)
{
	int			n;

	SpinLockAcquire(&shared->mutex);
	n = shared->refresh_n;
	memcpy(ids, shared->refresh_ids, sizeof(int64) * n);
	*overflow = shared->refresh_overflow;
	shared->refresh_n = 0;
	shared->refresh_overflow = false;
	SpinLockRelease(&shared->mutex);
	return n;
}

void
invicti_set_database_exists(bool exists)
{
	SpinLockAcquire(&shared->mutex);
	shared->database_exists = exists;
	SpinLockRelease(&shared->mutex);
}

bool
invicti_database_exists(void)
{
	bool		exists;

	SpinLockAcquire(&shared->mutex);
	exists = shared->database_exists;
	SpinLockRelease(&shared->mutex);
	return exists;
}

bool
invicti_stats_read(InvictiStats *out)
{
	if (shared == NULL)
		return false;
	SpinLockAcquire(&shared->mutex);
	memcpy(out, &shared->stats, sizeof(InvictiStats));
	SpinLockRelease(&shared->mutex);
	return true;
}

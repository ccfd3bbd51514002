/*
 * scan_state.c
 *		The one definition of the state machine of an invicti_scans row.
 *
 * A row is in one worker_state at a time.  The moves below are every move
 * the worker and the SQL API make; the statements that make them
 * (scan_store.c) declare their moves, and a statement whose move is not in
 * this table fails when it is prepared, so the table cannot drift from the
 * code.  An operator may of course write any state by hand; the worker
 * copes (a hand-made move is announced by the invicti_scans_changed
 * trigger).
 *
 * The normal life of a row: launch -> sending -> poll -> import -> done.
 *
 * Rules: nothing here touches the database or the network.
 */
#include "postgres.h"

#include "scan_state.h"

const char *const worker_state_names[NUM_WORKER_STATES] = {
	[WS_LAUNCH] = "launch",
	[WS_SENDING] = "sending",
	[WS_RECONCILE] = "reconcile",
	[WS_POLL] = "poll",
	[WS_ABORT] = "abort",
	[WS_IMPORT] = "import",
	[WS_DONE] = "done",
};

#define MOVE(from, to) [from][to] = true

static const bool moves[NUM_WORKER_STATES][NUM_WORKER_STATES] = {
	/* the worker claims a launch, durably, before sending it */
	MOVE(WS_LAUNCH, WS_SENDING),
	/* invicti_abort_scan() on a launch that was never sent */
	MOVE(WS_LAUNCH, WS_DONE),
	/* another server may have sent it (a failover): ask the API first */
	MOVE(WS_LAUNCH, WS_RECONCILE),
	/* the launch was acknowledged: poll it, or abort it if asked meanwhile */
	MOVE(WS_SENDING, WS_POLL),
	MOVE(WS_SENDING, WS_ABORT),
	/* provably not received: send again (or, if aborted meanwhile, stop) */
	MOVE(WS_SENDING, WS_LAUNCH),
	MOVE(WS_SENDING, WS_DONE),
	/* may have been received: ask the API before sending again */
	MOVE(WS_SENDING, WS_RECONCILE),
	/* reconciliation found the scan, or found none and sends again */
	MOVE(WS_RECONCILE, WS_POLL),
	MOVE(WS_RECONCILE, WS_ABORT),
	MOVE(WS_RECONCILE, WS_LAUNCH),
	MOVE(WS_RECONCILE, WS_DONE),
	/* the scan ended (with findings to import or not), or vanished */
	MOVE(WS_POLL, WS_IMPORT),
	MOVE(WS_POLL, WS_DONE),
	/* invicti_abort_scan() on a running scan */
	MOVE(WS_POLL, WS_ABORT),
	/* the abort was sent (poll until aborted), or the scan vanished */
	MOVE(WS_ABORT, WS_POLL),
	MOVE(WS_ABORT, WS_DONE),
	/* the end date and every page of findings fetched, or given up */
	MOVE(WS_IMPORT, WS_DONE),
};

int
worker_state_from_name(const char *name)
{
	int			i;

	for (i = 0; i < NUM_WORKER_STATES; i++)
		if (strcmp(worker_state_names[i], name) == 0)
			return i;
	return -1;
}

bool
worker_state_move_allowed(WorkerState from, WorkerState to)
{
	return moves[from][to];
}

bool
worker_state_table_scheduled(WorkerState state)
{
	return state != WS_POLL && state != WS_DONE;
}

AbortAction
worker_state_abort_action(WorkerState state)
{
	switch (state)
	{
		case WS_DONE:
		case WS_IMPORT:
			return ABORT_REFUSE_FINISHED;
		case WS_ABORT:
			return ABORT_ALREADY_REQUESTED;
		case WS_LAUNCH:
			return ABORT_CANCEL_UNSENT;
		case WS_POLL:
			return ABORT_SEND_NOW;
		case WS_SENDING:
		case WS_RECONCILE:
		case NUM_WORKER_STATES:
			break;
	}
	return ABORT_AFTER_LAUNCH;
}

/*
 * The statuses after which a session does not change any more.  A status
 * nobody has seen before is not among them: it is stored and polled on.
 */
bool
scan_status_is_terminal(const char *status)
{
	return strcmp(status, "completed") == 0 ||
		strcmp(status, "failed") == 0 ||
		strcmp(status, "aborted") == 0;
}

/*
 * The spec's q filter of GET /scans lists exactly seven scan_status values:
 * aborting, completed, failed, processing, queued, scheduled, starting.  A
 * strict server refuses any other (the ScanInfo statuses pausing, paused
 * and aborted, and resuming, are not among them): a scan in one of those is
 * on neither list, and is refreshed by a request of its own.
 */
const char *const scan_filter_running = "scheduled,queued,starting,processing,aborting";
const char *const scan_filter_ended = "completed,failed";

bool
scan_status_in(const char *list, const char *status)
{
	size_t		n = strlen(status);
	const char *p = list;

	while (*p)
	{
		size_t		len = strcspn(p, ",");

		if (len == n && strncmp(p, status, n) == 0)
			return true;
		p += len;
		if (*p == ',')
			p++;
	}
	return false;
}

/*
 * Every ended session has its end date fetched when the poll did not carry
 * one (the spec's ScanInfo has none), and its findings imported: a failed
 * or aborted session's findings are findings too, of the part that ran.
 */
WorkerState
worker_state_after_poll(const char *status)
{
	if (status == NULL || !scan_status_is_terminal(status))
		return WS_POLL;
	return WS_IMPORT;
}

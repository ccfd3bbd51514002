/*
 * table_work.h
 *		Work the invicti_scans table schedules: claimed durably, then
 *		handed to the jobs; and the retention of old scans.
 */
#ifndef INVICTI_TABLE_WORK_H
#define INVICTI_TABLE_WORK_H

#include "datatype/timestamp.h"

#include "store_transaction.h"

typedef struct ClaimRequest
{
	int			slots;			/* requests that may start now; 0: claim
								 * nothing */
	bool		sweep;			/* rows may have been left 'sending' */
	bool		resync;			/* the table changed behind the worker's back */
	bool		imports;		/* invicti_scan.import_vulnerabilities */
	TimestampTz reconcile_at;	/* when swept rows are reconciled */
} ClaimRequest;

typedef struct ClaimResult
{
	int			started;		/* jobs started */
	TimestampTz next_due;		/* earliest table-scheduled work, 0 = none */
} ClaimResult;

/*
 * In one durable transaction: reload the running scans if the extension
 * changed or the table was changed by hand, reconcile rows left 'sending',
 * claim up to `slots` due launches and other table work, and find when the
 * next is due.  Only after the commit do the claimed requests start.
 */
extern StoreStatus table_work_claim(const ClaimRequest *req, ClaimResult *res);

/* Delete up to `limit` finished scans older than `days`; how many went. */
extern StoreStatus table_work_retention(int days, int limit, int *deleted);

#endif

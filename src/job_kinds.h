/*
 * job_kinds.h
 *		Starting each kind of API work (the kinds are in job_*.c).
 */
#ifndef INVICTI_JOB_KINDS_H
#define INVICTI_JOB_KINDS_H

#include "scan_store.h"

/* job_launch.c: a claimed launch, and a launch whose outcome is unknown. */
extern void job_launch_start(const LaunchClaim *claim);
extern void job_reconcile_start(const TableClaim *claim);

/* job_poll.c: a status request for a running scan. */
extern void job_poll_start(int64 id, const pg_uuid_t *scan_id);

/* job_abort.c: the abort request of a scan invicti_abort_scan() stopped. */
extern void job_abort_start(const TableClaim *claim);

/* job_import.c: the findings of a finished scan, page by page. */
extern void job_import_start(const TableClaim *claim);

#endif

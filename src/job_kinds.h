/*
 * job_kinds.h
 *		Starting each kind of API work (the kinds are in job_*.c).
 */
#ifndef INVICTI_JOB_KINDS_H
#define INVICTI_JOB_KINDS_H

#include "utils/jsonb.h"

#include "catalog_store.h"
#include "report_store.h"
#include "scan_store.h"

/* job_launch.c: a claimed launch, and a launch whose outcome is unknown. */
extern void job_launch_start(const LaunchClaim *claim);
extern void job_reconcile_start(const TableClaim *claim);

/*
 * job_poll.c: a status request for a running scan; and the same verdict
 * from an item of a list round (hash: of the item, as recorded_answer).
 */
extern void job_poll_start(int64 id, const pg_uuid_t *scan_id);
extern void job_poll_from_list(int64 id, const pg_uuid_t *scan_id, JsonbValue *item,
							   uint64 hash);

/*
 * job_list.c: list rounds.  configure at start and on reload; whether a
 * round may start and when (0: none is due or allowed); start one; the
 * method in use, for invicti_scan_stats.
 */
extern void job_list_configure(void);
extern TimestampTz job_list_next_round_at(void);
extern bool job_list_start_round(TimestampTz now);
extern const char *job_list_method(void);

/* job_abort.c: the abort request of a scan invicti_abort_scan() stopped. */
extern void job_abort_start(const TableClaim *claim);

/* job_import.c: the findings of a finished scan, page by page. */
extern void job_import_start(const TableClaim *claim);

/*
 * job_sync.c: sync rounds of the catalogs.  configure at start and on
 * reload; a sync invicti_sync() asked for at requested_at; when the next
 * round is due (0: none); start it when due.
 */
extern void job_sync_configure(void);
extern void job_sync_note_request(TimestampTz requested_at);
extern TimestampTz job_sync_next_round_at(void);
extern bool job_sync_start_round(TimestampTz now);

/* job_target.c: a claimed target request (sent, or reconciled). */
extern void job_target_start(const TargetClaim *claim);

/* job_report.c: a claimed report (asked for, or looked at again). */
extern void job_report_start(const ReportClaim *claim);

#endif

/*
 * report_store.h
 *		Every statement on invicti_reports.
 */
#ifndef INVICTI_REPORT_STORE_H
#define INVICTI_REPORT_STORE_H

#include "datatype/timestamp.h"
#include "utils/uuid.h"

/* A claimed report: to request (no report id yet) or to look at again. */
typedef struct ReportClaim
{
	int64		id;
	bool		has_report_id;
	pg_uuid_t	report_id;
	pg_uuid_t	template_id;
	char	   *format;			/* "pdf" or "html" */
	int			nscans;
	pg_uuid_t  *scan_ids;		/* the API's scan ids, the report's source */
	int32		attempts;
	TimestampTz created_at;
} ReportClaim;

/* ---- for the worker (inside store_run; the schema is catalog_store's) ---- */

/*
 * Reports left 'sending' (not in `busy`) go back to pending: a report asked
 * for twice costs the server a second file and nothing else.  Then claim up
 * to `limit` due reports (pending ones marked 'sending') and say when the
 * next is due.
 */
extern int	report_store_sweep(const int64 *busy, int nbusy);
extern int	report_store_claim(const int64 *busy, int nbusy, int limit, ReportClaim **out);
extern TimestampTz report_store_next_due(const int64 *busy, int nbusy);

/* The API made it: generating, looked at again at `when`. */
extern void report_store_generating(int64 id, const pg_uuid_t *report_id,
									const char *api_status, TimestampTz when,
									const char *note);

/* Not asked for: pending again at `when`. */
extern void report_store_retry(int64 id, TimestampTz when, const char *error);

/* The file, stored: ready. */
extern void report_store_ready(int64 id, const char *api_status, const char *content,
							   size_t len, const char *content_type);

extern void report_store_failed(int64 id, const char *api_status, const char *error);

#endif

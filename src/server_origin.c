/*
 * server_origin.c
 *		Noticing that this server is not the one that last sent requests
 *		to Invicti (a promoted standby, a point-in-time restore, a cluster
 *		copied or upgraded), and checking with the API before sending again.
 *
 * Why.  A launch is at most once because its 'sending' mark commits before
 * its request leaves (job_launch.c).  With asynchronous replication that
 * commit may never reach the standby: the old primary marked and sent ten
 * launches, crashed, and the promoted standby still reads them as 'launch',
 * never tried.  Sending them again would start a second attack on each
 * application.  So when the server's identity (pg_control's system
 * identifier and the WAL timeline, both new after a promotion, a PITR, a
 * pg_upgrade or an initdb) differs from the newest row of
 * invicti_server_history, every row that is not known to be unsent is
 * reconciled against the API first: queued launches go to 'reconcile'
 * (the scan is adopted if the API has one for the same target and profile
 * created since the row's last attempt), pending target requests too; the
 * rows left 'sending' are reconciled by the sweep that follows as always.
 * The change is written to invicti_server_history with what was moved and
 * logged once.  No history at all (a database restored from a plain dump
 * of an older version, or the rows deleted) counts as a change.
 *
 * What it cannot do: a scan the old primary launched for a row the standby
 * never received is not found here (no row asks for it); the list polling
 * shows it in invicti_untracked_scans instead.
 *
 * Rules: runs inside the worker's claim transaction (store_run) before any
 * claim; no network; nothing else decides whether the server changed.
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "catalog_store.h"
#include "scan_store.h"
#include "server_origin.h"

ServerIdentity
server_identity(void)
{
	ServerIdentity id;

	id.system_identifier = GetSystemIdentifier();
	id.timeline = GetWALInsertionTimeLine();
	return id;
}

bool
server_origin_check(void)
{
	ServerIdentity now = server_identity();
	char	   *sysid = psprintf(UINT64_FORMAT, now.system_identifier);
	bool		known = false;
	uint64		was_sysid = 0;
	int64		was_tli = 0;
	char	   *note;
	int			launches;
	int			targets;
	Oid			types[4] = {TEXTOID, INT4OID, INT4OID, INT4OID};
	Datum		v[4];

	catalog_store_exec("SELECT system_identifier::pg_catalog.text, timeline "
					   "FROM @S.invicti_server_history ORDER BY id DESC LIMIT 1",
					   0, NULL, NULL, NULL);
	if (SPI_processed == 1)
	{
		bool		isnull;
		char	   *s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		was_sysid = s ? strtou64(s, NULL, 10) : 0;
		was_tli = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											  2, &isnull));
		known = true;
		if (was_sysid == now.system_identifier && was_tli == (int64) now.timeline)
			return false;
	}

	if (!known)
		note = psprintf("this server (system identifier %s, timeline %u) has no record of the server "
						"that queued this request; it is checked with Invicti before it is sent",
						sysid, now.timeline);
	else if (was_sysid != now.system_identifier)
		note = psprintf("the database moved to another server (system identifier " UINT64_FORMAT
						" to %s); this request is checked with Invicti before it is sent",
						was_sysid, sysid);
	else
		note = psprintf("the WAL timeline changed from " INT64_FORMAT " to %u (a promotion or a "
						"point-in-time recovery); this request may have been sent by the former "
						"primary and is checked with Invicti before it is sent",
						was_tli, now.timeline);
	launches = scan_store_origin_reconcile(note);
	targets = catalog_store_origin_reconcile_targets(note);

	v[0] = CStringGetTextDatum(sysid);
	v[1] = Int32GetDatum((int32) now.timeline);
	v[2] = Int32GetDatum(launches);
	v[3] = Int32GetDatum(targets);
	catalog_store_exec("INSERT INTO @S.invicti_server_history "
					   "  (system_identifier, timeline, reconciled_launches, reconciled_target_requests) "
					   "VALUES ($1::pg_catalog.numeric, $2, $3, $4)",
					   4, types, v, NULL);
	ereport(LOG,
			(errmsg("invicti_scan worker: this server is not the one that last sent requests: %s",
					!known ? "no record of a previous server" :
					was_sysid != now.system_identifier ? "its system identifier changed" :
					psprintf("the WAL timeline changed from " INT64_FORMAT " to %u",
							 was_tli, now.timeline)),
			 errdetail("%d queued launches and %d target requests are checked with Invicti before anything is sent.",
					   launches, targets)));
	return true;
}

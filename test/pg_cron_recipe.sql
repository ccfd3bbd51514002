-- pg_cron_recipe.sql: scan every critical and high target every night with
-- pg_cron, straight from the targets the worker syncs from Invicti.
--
-- The README shows this file and test/t/011_pg_cron.pl runs it verbatim on a
-- real pg_cron (1.4, PostgreSQL 15), so the two cannot drift: change it here.
--
-- Before: in postgresql.conf, then restart the server,
--     shared_preload_libraries = 'pg_cron,invicti_scan'
--     cron.database_name = 'postgres'    -- the database invicti_scan uses
--     cron.use_background_workers = on   -- jobs run in background workers
--     max_worker_processes = 16          -- a job takes one while it runs
-- and in that database, as a superuser: CREATE EXTENSION pg_cron;
-- CREATE EXTENSION invicti_scan;  Then run this file there as a superuser
-- (psql -v ON_ERROR_STOP=1 -f pg_cron_recipe.sql).  Running it again is
-- harmless: it updates the jobs in place.
--
-- pg_cron 1.4 reads schedules in UTC ('0 2 * * *' is 02:00 UTC), to the
-- minute.  cron.job lists the jobs, cron.job_run_details every run.
--
-- Which targets: invicti_targets, as the worker last synced them (every
-- invicti_scan.sync_interval, an hour by default), with criticality 30
-- (critical) or 20 (high) and still listed by Invicti (vanished_at IS NULL).
-- Set a target's criticality in Invicti to take it in or out.  The profile
-- is Full Scan, by name.
--
-- invicti_scheduler: the role the nightly job runs as, so that its scans
--     show launched_by = 'invicti_scheduler'.  It may call
--     invicti_launch_scan() and read invicti_targets, nothing else; it
--     cannot even read invicti_scans.  It needs nothing on schema cron: the
--     superuser running this file schedules its job for it.  It has LOGIN
--     only because pg_cron needs it: cron.schedule_in_database() refuses a
--     NOLOGIN role, and PostgreSQL 15 would refuse to start its run anyway
--     ("role is not permitted to log in"), background worker or not.  It
--     has no password; keep people from logging in as it with these lines
--     at the top of pg_hba.conf:
--         local  all  invicti_scheduler        reject
--         host   all  invicti_scheduler  all   reject
--     Background workers do not go through pg_hba.conf, so the job still
--     runs.  (With cron.use_background_workers = off, pg_cron connects over
--     libpq instead, and the role would need a login path and a password.)
--
-- invicti-nightly, 02:00, as invicti_scheduler: one scan per critical or
--     high target, all queued in one transaction; the worker sends them
--     after commit.
--
-- invicti-findings-retention, 03:30, as the superuser running this file:
--     invicti_scan.history_days already deletes whole finished scans, and
--     their findings, by age.  This job is the complement for a long history:
--     it keeps every scan row (small, and what invicti_severity_trend,
--     invicti_latest_scans and invicti_scan_passed() read) but deletes the
--     detailed findings of a scan 90 days after their import once a newer
--     scan of the same target has had its findings imported.  So every
--     target keeps the findings of its latest imported scan however old,
--     and a failed or aborted later scan deletes nothing.  It also trims
--     pg_cron's own run log, which pg_cron 1.4 never deletes.  It runs as
--     the extension's owner because row-level security lets nobody else
--     delete from invicti_vulnerabilities.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles
                   WHERE rolname = 'invicti_scheduler') THEN
        CREATE ROLE invicti_scheduler LOGIN;
    END IF;
END
$$;
COMMENT ON ROLE invicti_scheduler IS
    'runs pg_cron job invicti-nightly (LOGIN for pg_cron only)';
GRANT EXECUTE ON FUNCTION invicti_launch_scan(uuid, uuid) TO invicti_scheduler;
GRANT SELECT ON invicti_targets TO invicti_scheduler;

SELECT cron.schedule_in_database('invicti-nightly', '0 2 * * *',
    $$SELECT invicti_launch_scan(target_id, 'Full Scan') FROM invicti_targets
       WHERE criticality >= 20 AND vanished_at IS NULL$$,
    current_database(), 'invicti_scheduler');

SELECT cron.schedule('invicti-findings-retention', '30 3 * * *',
$$DELETE FROM invicti_vulnerabilities v
 USING invicti_scans s
 WHERE s.id = v.scan_row_id
   AND v.imported_at < now() - interval '90 days'
   AND EXISTS (SELECT FROM invicti_scans newer
                WHERE newer.target_id = s.target_id
                  AND newer.findings_imported_at IS NOT NULL
                  AND (newer.created_at, newer.id) > (s.created_at, s.id));
DELETE FROM cron.job_run_details WHERE end_time < now() - interval '90 days'$$);

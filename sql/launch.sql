-- invicti_launch_scan(): what it inserts, what it refuses.
CREATE EXTENSION invicti_scan;

-- The seed's example works right after CREATE EXTENSION.
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111112') AS id \gset
SELECT :id > 0 AS got_id;

-- A well-formed pending row.
SELECT target_id, profile_id, status, scan_id, scan_session_id, progress,
       severity_counts, start_date, end_date, last_error,
       launched_by = current_user AS launched_by_me,
       created_at <= now() AND updated_at = created_at AS timestamps_set,
       worker_state, attempts, next_attempt_at <= now() AS due
FROM invicti_scans WHERE id = :id;

-- Each call is a new row with a new id.
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111111') > :id AS next_id_is_larger;
SELECT count(*) FROM invicti_scans;

-- NULLs are errors, not silent NULLs.
SELECT invicti_launch_scan(NULL, '11111111-1111-1111-1111-111111111112');
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054', NULL);
SELECT invicti_launch_scan(NULL, NULL);

-- Malformed ids fail with PostgreSQL's own uuid error.
SELECT invicti_launch_scan('not-a-uuid', '11111111-1111-1111-1111-111111111112');
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054', '1111');
SELECT invicti_launch_scan('', '11111111-1111-1111-1111-111111111112');

-- The nil UUID is never an Invicti id.
SELECT invicti_launch_scan('00000000-0000-0000-0000-000000000000',
                           '11111111-1111-1111-1111-111111111112');

-- Only the caller's transaction decides: a rolled-back launch leaves no row.
BEGIN;
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111113') IS NOT NULL AS launched;
SELECT count(*) FROM invicti_scans;
ROLLBACK;
SELECT count(*) FROM invicti_scans;

-- Same inside a subtransaction.
BEGIN;
SAVEPOINT s;
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111113') IS NOT NULL AS launched;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT count(*) FROM invicti_scans;

-- Many launches in one statement, e.g. one per target of a table.
SELECT count(invicti_launch_scan(t, '11111111-1111-1111-1111-111111111111'))
FROM (VALUES ('2df49409-ee21-4080-9640-eb46f4610054'::uuid),
             ('3df49409-ee21-4080-9640-eb46f4610054'::uuid)) v(t);
SELECT count(*), count(DISTINCT id) FROM invicti_scans;

-- The function is volatile, not strict, and returns bigint.
SELECT provolatile, proisstrict, prorettype::regtype, prosecdef
FROM pg_proc WHERE proname = 'invicti_launch_scan';

-- The table's constraints guard what the worker writes.
\set VERBOSITY terse
UPDATE invicti_scans SET progress = 101 WHERE id = :id;
UPDATE invicti_scans SET status = '' WHERE id = :id;
UPDATE invicti_scans SET worker_state = 'bogus' WHERE id = :id;
\set VERBOSITY default

-- pg_dump keeps the rows and the id sequence.
SELECT c.relname, x.extcondition
FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(cfg, extcondition)
JOIN pg_class c ON c.oid = x.cfg
WHERE e.extname = 'invicti_scan' ORDER BY 1;

-- Launch options: the spec's Scan fields beyond target and profile, checked
-- before anything is queued; every bad one is an error naming it.
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
  '11111111-1111-1111-1111-111111111111',
  '{"report_template_id": "11111111-1111-1111-1111-111111111111", "incremental": true,
    "max_scan_time": 90,
    "schedule": {"start_date": "2026-12-01T02:00:00+00:00", "recurrence": "FREQ=WEEKLY;BYDAY=MO",
                 "history_limit": 5, "time_sensitive": true}}') AS with_options \gset
SELECT launch_options FROM invicti_scans WHERE id = :with_options;
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
  '11111111-1111-1111-1111-111111111111', NULL) > 0 AS null_options_are_none;
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
  '11111111-1111-1111-1111-111111111111', '{"priority": "high"}');
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
  '11111111-1111-1111-1111-111111111111', '{"schedule": {"every": "day"}}');
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
  '11111111-1111-1111-1111-111111111111', '{"schedule": {"history_limit": 50}}');
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
  '11111111-1111-1111-1111-111111111111', format('{"schedule": {"recurrence": "FREQ=DAILY;%s"}}', repeat('X', 300))::jsonb);
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
  '11111111-1111-1111-1111-111111111111', '{"schedule": {"start_date": "tomorrow"}}');
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
  '11111111-1111-1111-1111-111111111111', '{"schedule": {"start_date": "2026-02-30T02:00:00Z"}}');
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
  '11111111-1111-1111-1111-111111111111', '{"max_scan_time": -1}');
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
  '11111111-1111-1111-1111-111111111111', '{"max_scan_time": 1.5}');
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
  '11111111-1111-1111-1111-111111111111', '{"incremental": "yes"}');
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
  '11111111-1111-1111-1111-111111111111', '{"report_template_id": "developer"}');
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
  '11111111-1111-1111-1111-111111111111', '[1, 2]');
SELECT count(*) AS only_the_valid_one_was_queued FROM invicti_scans WHERE launch_options IS NOT NULL;
DELETE FROM invicti_scans WHERE launch_options IS NOT NULL OR id = :with_options;

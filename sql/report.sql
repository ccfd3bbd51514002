-- invicti_request_report() and invicti_report_content(): every bad argument
-- is an error naming it, a report covers only scans its requester may read,
-- and a role reads a report when it may read every scan it covers.  (The
-- worker has no base_url here: reports are only queued; test/t/023_reports.pl
-- drives them against the API.)
CREATE ROLE invicti_rep_alice;
CREATE ROLE invicti_rep_bob;
CREATE ROLE invicti_rep_auditor IN ROLE invicti_scan_read_all;
CREATE ROLE invicti_rep_nobody;
GRANT EXECUTE ON FUNCTION invicti_launch_scan(uuid, uuid),
                          invicti_request_report(bigint[], text, text),
                          invicti_report_content(bigint)
  TO invicti_rep_alice, invicti_rep_bob, invicti_rep_auditor;
GRANT SELECT ON invicti_scans, invicti_reports TO invicti_rep_alice, invicti_rep_bob;

SELECT has_table_privilege('invicti_rep_nobody', 'invicti_reports', 'SELECT') AS nobody_reads,
       has_function_privilege('invicti_rep_nobody', 'invicti_request_report(bigint[], text, text)', 'EXECUTE') AS nobody_requests,
       has_function_privilege('invicti_rep_nobody', 'invicti_report_content(bigint)', 'EXECUTE') AS nobody_fetches,
       (SELECT relrowsecurity FROM pg_class WHERE relname = 'invicti_reports') AS rls,
       pg_get_userbyid((SELECT relowner FROM pg_class WHERE relname = 'invicti_reports')) AS owner;

-- scans of two launchers, made to look launched
SET ROLE invicti_rep_alice;
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054'::uuid,
                           '11111111-1111-1111-1111-111111111111'::uuid) AS alice1 \gset
SELECT invicti_launch_scan('3df49409-ee21-4080-9640-eb46f4610054'::uuid,
                           '11111111-1111-1111-1111-111111111111'::uuid) AS alice2 \gset
SELECT invicti_launch_scan('4df49409-ee21-4080-9640-eb46f4610054'::uuid,
                           '11111111-1111-1111-1111-111111111111'::uuid) AS alice_pending \gset
RESET ROLE;
SET ROLE invicti_rep_bob;
SELECT invicti_launch_scan('5df49409-ee21-4080-9640-eb46f4610054'::uuid,
                           '11111111-1111-1111-1111-111111111111'::uuid) AS bob1 \gset
RESET ROLE;
UPDATE invicti_scans SET status = 'completed', worker_state = 'done',
       scan_id = gen_random_uuid()
 WHERE id IN (:alice1, :alice2, :bob1);
INSERT INTO invicti_report_templates (template_id, name, raw, synced_at) VALUES
  ('11111111-1111-1111-1111-111111111111', 'Developer', '{}', now()),
  ('11111111-1111-1111-1111-111111111113', 'Executive Summary', '{}', now()),
  ('aaaaaaaa-2222-4222-8222-222222222222', 'Twin', '{}', now()),
  ('bbbbbbbb-2222-4222-8222-222222222222', 'Twin', '{}', now());

SET ROLE invicti_rep_alice;
-- every bad argument
SELECT invicti_request_report(NULL);
SELECT invicti_request_report(ARRAY[:alice1]::bigint[], NULL);
SELECT invicti_request_report(ARRAY[:alice1]::bigint[], 'Developer', NULL);
SELECT invicti_request_report('{}');
SELECT invicti_request_report(ARRAY[:alice1, NULL]::bigint[]);
SELECT invicti_request_report('{{1},{2}}'::bigint[]);
SELECT invicti_request_report(ARRAY(SELECT generate_series(1, 501))::bigint[]);
SELECT invicti_request_report(ARRAY[:alice1]::bigint[], 'Developer', 'docx');
SELECT invicti_request_report(ARRAY[:alice1, 999999]::bigint[]);
SELECT invicti_request_report(ARRAY[:alice1, :bob1]::bigint[]);
SELECT invicti_request_report(ARRAY[:alice_pending]::bigint[]);
SELECT invicti_request_report(ARRAY[:alice1]::bigint[], 'No Such Template');
SELECT invicti_request_report(ARRAY[:alice1]::bigint[], 'twin');
-- good ones: the default template by name, another by id, html, duplicates folded
SELECT invicti_request_report(ARRAY[:alice1]::bigint[]) AS alice_report \gset
SELECT invicti_request_report(ARRAY[:alice2, :alice1, :alice2]::bigint[],
                              '11111111-1111-1111-1111-111111111113', 'HTML') AS alice_html \gset
SELECT scan_ids = ARRAY[:alice1, :alice2]::bigint[] OR scan_ids = ARRAY[:alice1]::bigint[] AS ids_kept,
       template_name, format, status, requested_by = current_user AS mine
  FROM invicti_reports ORDER BY id;
-- not ready yet
SELECT invicti_report_content(:alice_report);
SELECT invicti_report_content(NULL);
-- nobody writes the table
UPDATE invicti_reports SET status = 'failed';
DELETE FROM invicti_reports;
RESET ROLE;

-- a report of scans of two launchers: only who may read both reads it
SET ROLE invicti_rep_auditor;
SELECT invicti_request_report(ARRAY[:alice1, :bob1]::bigint[], 'Developer') AS mixed \gset
RESET ROLE;
UPDATE invicti_reports SET status = 'ready', content = '\x255044462d312e34'::bytea WHERE id = :mixed;
SET ROLE invicti_rep_alice;
SELECT count(*) AS alice_sees FROM invicti_reports WHERE id = :mixed;
SELECT invicti_report_content(:mixed);
RESET ROLE;
SET ROLE invicti_rep_bob;
SELECT count(*) AS bob_sees FROM invicti_reports;
RESET ROLE;
SET ROLE invicti_rep_auditor;
SELECT count(*) AS auditor_sees FROM invicti_reports;
SELECT invicti_report_content(:mixed);
RESET ROLE;
SET ROLE invicti_rep_nobody;
SELECT invicti_request_report(ARRAY[:alice1]::bigint[]);
SELECT invicti_report_content(:mixed);
RESET ROLE;
-- a failed report says so, and why
UPDATE invicti_reports SET status = 'failed', last_error = 'the Invicti server could not generate the report (status failed)'
 WHERE id = :alice_report;
SET ROLE invicti_rep_alice;
SELECT invicti_report_content(:alice_report);
RESET ROLE;

DELETE FROM invicti_reports;
DELETE FROM invicti_report_templates;
DELETE FROM invicti_scans WHERE id IN (:alice1, :alice2, :alice_pending, :bob1);
REVOKE ALL ON invicti_scans, invicti_reports FROM invicti_rep_alice, invicti_rep_bob;
REVOKE ALL ON FUNCTION invicti_launch_scan(uuid, uuid),
                       invicti_request_report(bigint[], text, text),
                       invicti_report_content(bigint)
  FROM invicti_rep_alice, invicti_rep_bob, invicti_rep_auditor;
DROP ROLE invicti_rep_alice, invicti_rep_bob, invicti_rep_auditor, invicti_rep_nobody;

-- Reporting: the severity gate, the views, the worker's statistics.
-- Rows are written here as the worker would write them.
INSERT INTO invicti_scans (id, target_id, profile_id, status, worker_state, progress,
                           severity_counts, scan_id, created_at, end_date)
OVERRIDING SYSTEM VALUE VALUES
 (1001, '6df49409-ee21-4080-9640-eb46f4610054', '11111111-1111-1111-1111-111111111111',
  'completed', 'done', 100, '{"critical": 0, "high": 2, "medium": 4, "low": 1, "info": 3}',
  'c0000000-0000-4000-8000-000000000001', '2026-01-01', '2026-01-01 02:00'),
 (1002, '6df49409-ee21-4080-9640-eb46f4610054', '11111111-1111-1111-1111-111111111111',
  'completed', 'done', 100, '{"high": 0, "medium": 1, "low": 5}',
  'c0000000-0000-4000-8000-000000000002', '2026-02-01', '2026-02-01 03:00'),
 (1003, '7df49409-ee21-4080-9640-eb46f4610054', '11111111-1111-1111-1111-111111111111',
  'completed', 'done', 100, '{"critical": 1, "high": 0, "medium": 0, "low": 0}',
  'c0000000-0000-4000-8000-000000000003', '2026-01-15', '2026-01-15 01:00'),
 (1004, '7df49409-ee21-4080-9640-eb46f4610054', '11111111-1111-1111-1111-111111111111',
  'processing', 'poll', 42, '{"critical": 0, "high": 1}',
  'c0000000-0000-4000-8000-000000000004', '2026-02-15', NULL),
 (1005, '8df49409-ee21-4080-9640-eb46f4610054', '11111111-1111-1111-1111-111111111111',
  'failed', 'done', 30, '{}', 'c0000000-0000-4000-8000-000000000005', '2026-02-20', '2026-02-20 01:00');

-- The severity gate: critical counts as above high.
SELECT id, invicti_scan_passed(id) AS high_gate,
       invicti_scan_passed(id, 'critical') AS critical_gate,
       invicti_scan_passed(id, 'MEDIUM') AS medium_gate,
       invicti_scan_passed(id, 'info') AS info_gate
  FROM invicti_scans WHERE id IN (1001, 1002, 1003) ORDER BY id;
SELECT invicti_scan_passed(1004);
SELECT invicti_scan_passed(1005);
SELECT invicti_scan_passed(999999);
SELECT invicti_scan_passed(1001, 'severe');
SELECT invicti_scan_passed(NULL);

-- Latest scan per target, the trend, what is still running.
SELECT target_id, id, status, critical, high, medium, low, info
  FROM invicti_latest_scans WHERE id > 1000 ORDER BY target_id;
SELECT target_id, id, finished_at, critical, high, high_and_critical_change
  FROM invicti_severity_trend WHERE id > 1000 ORDER BY target_id, finished_at;
SELECT id, status, progress, progress_bar FROM invicti_running_scans WHERE id > 1000;

-- Findings by severity and type.
INSERT INTO invicti_vulnerabilities (scan_session_id, vuln_id, scan_row_id, target_id,
                                     vt_name, severity, status, raw)
VALUES ('d0000000-0000-4000-8000-000000000001', 'v1', 1001,
        '6df49409-ee21-4080-9640-eb46f4610054', 'SQL injection', 3, 'open', '{}'),
       ('d0000000-0000-4000-8000-000000000001', 'v2', 1001,
        '6df49409-ee21-4080-9640-eb46f4610054', 'SQL injection', 3, 'fixed', '{}'),
       ('d0000000-0000-4000-8000-000000000001', 'v3', 1001,
        '6df49409-ee21-4080-9640-eb46f4610054', 'Cookie without Secure flag', 1, 'open', '{}'),
       ('d0000000-0000-4000-8000-000000000003', 'v1', 1003,
        '7df49409-ee21-4080-9640-eb46f4610054', 'Remote code execution', 4, 'open', '{}');
SELECT severity, severity_name, vt_name, findings, open, targets FROM invicti_findings_summary;
-- The same finding of the same session is stored once.
INSERT INTO invicti_vulnerabilities (scan_session_id, vuln_id, scan_row_id, raw)
VALUES ('d0000000-0000-4000-8000-000000000001', 'v1', 1001, '{}');

-- Findings follow their scan's visibility, and go with it.
CREATE ROLE invicti_report_reader;
GRANT SELECT ON invicti_scans, invicti_vulnerabilities, invicti_findings_summary,
  invicti_latest_scans TO invicti_report_reader;
SET ROLE invicti_report_reader;
SELECT count(*) AS visible_findings FROM invicti_vulnerabilities;
SELECT count(*) AS visible_summary_rows FROM invicti_findings_summary;
SELECT count(*) AS visible_latest FROM invicti_latest_scans;
RESET ROLE;
GRANT invicti_scan_read_all TO invicti_report_reader;
SET ROLE invicti_report_reader;
SELECT count(*) AS visible_findings FROM invicti_vulnerabilities;
RESET ROLE;
DELETE FROM invicti_scans WHERE id = 1003;
SELECT count(*) AS findings_left FROM invicti_vulnerabilities;

-- The worker's statistics: readable by pg_monitor, not by PUBLIC.
SELECT in_flight, requests, requests_by_kind, rate_limited, retries, paused_until
  FROM invicti_scan_stats;
SET ROLE invicti_report_reader;
SELECT count(*) FROM invicti_scan_stats;
RESET ROLE;
CREATE ROLE invicti_monitor IN ROLE pg_monitor;
SET ROLE invicti_monitor;
SELECT count(*) FROM invicti_scan_stats;
RESET ROLE;

-- Every object of the extension has a comment.
SELECT pg_describe_object(classid, objid, objsubid) AS uncommented
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'invicti_scan')
   AND obj_description(objid, (SELECT relname FROM pg_class WHERE oid = classid)) IS NULL
   AND classid <> 'pg_type'::regclass
 ORDER BY 1;

DELETE FROM invicti_scans WHERE id > 1000;
REVOKE ALL ON invicti_scans, invicti_vulnerabilities, invicti_findings_summary,
  invicti_latest_scans FROM invicti_report_reader;
DROP ROLE invicti_report_reader, invicti_monitor;

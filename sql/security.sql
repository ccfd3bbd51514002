-- Trust boundaries that SQL can show (the worker's own are in
-- test/t/015_trust_boundaries.pl): who owns the tables, who owns a scan,
-- what the table accepts as severity counts, and a gate that fails closed.

-- The tables belong to a role that is not a superuser and cannot log in:
-- the worker and the SQL API act as that role.
SELECT c.relname, r.rolname, r.rolsuper, r.rolcanlogin, r.rolbypassrls
  FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
 WHERE c.relname IN ('invicti_scans', 'invicti_vulnerabilities', 'invicti_scans_id_seq')
 ORDER BY 1;

-- A scan belongs to the role that launched it, by the role's identity: a
-- new role that takes a dropped role's name sees and aborts none of its scans.
CREATE ROLE invicti_sec_alice;
GRANT EXECUTE ON FUNCTION invicti_launch_scan(uuid, uuid), invicti_abort_scan(bigint)
  TO invicti_sec_alice;
GRANT SELECT ON invicti_scans TO invicti_sec_alice;
SET ROLE invicti_sec_alice;
SELECT invicti_launch_scan('9df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111111') AS alice_scan \gset
SELECT count(*) AS alice_sees FROM invicti_scans;
RESET ROLE;
SELECT launched_by, launched_by_oid = 'invicti_sec_alice'::regrole AS by_alice
  FROM invicti_scans WHERE id = :alice_scan;
REVOKE ALL ON FUNCTION invicti_launch_scan(uuid, uuid), invicti_abort_scan(bigint)
  FROM invicti_sec_alice;
REVOKE ALL ON invicti_scans FROM invicti_sec_alice;
DROP ROLE invicti_sec_alice;
CREATE ROLE invicti_sec_alice;
GRANT EXECUTE ON FUNCTION invicti_abort_scan(bigint) TO invicti_sec_alice;
GRANT SELECT ON invicti_scans TO invicti_sec_alice;
SET ROLE invicti_sec_alice;
SELECT count(*) AS new_alice_sees FROM invicti_scans;
\set VERBOSITY terse
SELECT invicti_abort_scan(:alice_scan);
\set VERBOSITY default
RESET ROLE;
SELECT status FROM invicti_scans WHERE id = :alice_scan;

-- Severity counts: an object of whole numbers from 0, keyed critical, high,
-- medium, low, info (keys may be missing).  Anything else is refused.
SELECT counts, invicti_severity_counts_valid(counts::jsonb) AS valid
  FROM (VALUES ('{"critical": 0, "high": 2, "medium": 1, "low": 0, "info": 7}'),
               ('{"high": 1}'), ('{}'), ('{"critical": 1e3}'),
               ('{"critical": 2, "high": -2}'), ('{"Critical": 1}'),
               ('{"critical": "lots"}'), ('{"critical": 1.5}'),
               ('{"critical": null}'), ('{"critical": 3000000000}'),
               ('[1, 2]'), ('7')) v(counts);
\set VERBOSITY terse
UPDATE invicti_scans SET severity_counts = '{"critical": 2, "high": -2}' WHERE id = :alice_scan;
UPDATE invicti_scans SET severity_counts = '{"critical": "lots"}' WHERE id = :alice_scan;
\set VERBOSITY default

-- The gate fails closed: a completed scan whose counts are unknown does not pass.
UPDATE invicti_scans SET status = 'completed', worker_state = 'done', severity_counts = NULL
 WHERE id = :alice_scan;
SELECT invicti_scan_passed(:alice_scan) AS passed_without_counts;
UPDATE invicti_scans SET severity_counts = '{"low": 4, "info": 2}' WHERE id = :alice_scan;
SELECT invicti_scan_passed(:alice_scan) AS passed_high,
       invicti_scan_passed(:alice_scan, 'low') AS passed_low;

-- The gate reads as its caller, with search_path pinned: a hostile schema
-- first in the caller's path cannot stand in for the table or its operators.
CREATE SCHEMA invicti_sec_hostile;
CREATE TABLE invicti_sec_hostile.invicti_scans (id bigint, status text, severity_counts jsonb);
INSERT INTO invicti_sec_hostile.invicti_scans VALUES (:alice_scan, 'completed', '{"high": 5}');
CREATE FUNCTION invicti_sec_hostile.int8eq_evil(bigint, bigint) RETURNS boolean
  LANGUAGE sql AS $$ SELECT true $$;
CREATE OPERATOR invicti_sec_hostile.= (LEFTARG = bigint, RIGHTARG = bigint,
  FUNCTION = invicti_sec_hostile.int8eq_evil);
SET search_path = invicti_sec_hostile, public, pg_catalog;
SELECT public.invicti_scan_passed(:alice_scan) AS passed_high_from_hostile_path;
RESET search_path;
DROP SCHEMA invicti_sec_hostile CASCADE;

DELETE FROM invicti_scans WHERE id = :alice_scan;
REVOKE ALL ON FUNCTION invicti_abort_scan(bigint) FROM invicti_sec_alice;
REVOKE ALL ON invicti_scans FROM invicti_sec_alice;
DROP ROLE invicti_sec_alice;

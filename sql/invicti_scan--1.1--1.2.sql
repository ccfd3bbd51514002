/* invicti_scan--1.1--1.2.sql: the worker learns of changes at commit, not on a timer. */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION invicti_scan UPDATE TO '1.2'" to load this file. \quit

-- Until 1.1 the worker re-read the running scans every poll_interval (at
-- least every minute) to notice rows changed behind its back: an idle
-- worker still queried the table.  From 1.2 every statement that changes
-- invicti_scans, other than the worker's own and the SQL API's, tells the
-- worker at commit; an idle worker runs no query at all.
CREATE FUNCTION invicti_scan_table_changed() RETURNS trigger
AS 'MODULE_PATHNAME', 'invicti_scan_table_changed'
LANGUAGE C;
REVOKE ALL ON FUNCTION invicti_scan_table_changed() FROM PUBLIC;
COMMENT ON FUNCTION invicti_scan_table_changed() IS
    'trigger: when the transaction commits, tell the worker that invicti_scans changed';

CREATE TRIGGER invicti_scans_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON invicti_scans
    FOR EACH STATEMENT EXECUTE FUNCTION invicti_scan_table_changed();
COMMENT ON TRIGGER invicti_scans_changed ON invicti_scans IS
    'wake the worker at commit to re-read which scans it polls (changes made outside the worker and the SQL API)';

-- NOTIFY invicti_scan: the same payload, from C.  The PL/pgSQL function of
-- 1.1 (with its SET search_path) cost every launch about a third of its
-- speed (bench/run, "enqueue cost").  The triggers keep using it by OID.
CREATE OR REPLACE FUNCTION invicti_scan_notify() RETURNS trigger
AS 'MODULE_PATHNAME', 'invicti_scan_notify'
LANGUAGE C;

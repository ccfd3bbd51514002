/* invicti_scan--1.2--1.3.sql: least privilege, ownership by role identity, a
   gate that fails closed, a private event channel, and a movable schema. */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION invicti_scan UPDATE TO '1.3'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- The tables belong to a role without superuser rights.  The worker and the
-- SQL API act as the tables' owner, so whatever runs on their behalf can do
-- no more than write these two tables.  A role of that name made by someone
-- else (with LOGIN, or with members) is refused: whoever controls it would
-- control every scan.
-- ---------------------------------------------------------------------------
DO $$
DECLARE
    r record;
BEGIN
    SELECT rolcanlogin, rolsuper, rolbypassrls,
           EXISTS (SELECT FROM pg_catalog.pg_auth_members m WHERE m.roleid = a.oid) AS has_members
      INTO r
      FROM pg_catalog.pg_roles a WHERE rolname = 'invicti_scan_owner';
    IF NOT FOUND THEN
        CREATE ROLE invicti_scan_owner NOLOGIN;
        COMMENT ON ROLE invicti_scan_owner IS
            'owns the tables of extension invicti_scan; its worker and functions act as this role';
    ELSIF r.rolcanlogin OR r.rolsuper OR r.rolbypassrls OR r.has_members THEN
        RAISE EXCEPTION 'role "invicti_scan_owner" exists and is not safe to own invicti_scan''s tables'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'The role can log in, is a superuser, bypasses row-level security, or has members: whoever controls it would control every scan.',
                  HINT = 'Drop the role, or make it NOLOGIN NOSUPERUSER NOBYPASSRLS without members, then try again.';
    END IF;
END
$$;

ALTER TABLE invicti_scans OWNER TO invicti_scan_owner;
ALTER TABLE invicti_vulnerabilities OWNER TO invicti_scan_owner;
-- It must reach its tables: USAGE on the extension's schema (after ALTER
-- EXTENSION ... SET SCHEMA, grant it on the new schema: both the worker
-- and the functions say so if it is missing).
DO $$
BEGIN
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %I TO invicti_scan_owner',
                              pg_catalog.current_schema());
END
$$;

-- ---------------------------------------------------------------------------
-- A scan belongs to the role that launched it by the role's OID, not its
-- name: after DROP ROLE, a new role of the same name sees none of the old
-- one's scans.  Rows whose launcher no longer exists stay visible to the
-- tables' owner and to invicti_scan_read_all only.
-- ---------------------------------------------------------------------------
ALTER TABLE invicti_scans
    ADD COLUMN launched_by_oid oid
        DEFAULT pg_catalog.to_regrole(pg_catalog.quote_ident(CURRENT_USER))::oid;
UPDATE invicti_scans s SET launched_by_oid = r.oid
  FROM pg_catalog.pg_roles r WHERE r.rolname = s.launched_by;
COMMENT ON COLUMN invicti_scans.launched_by_oid IS
    'OID of the role that called invicti_launch_scan(): who owns the scan';
COMMENT ON COLUMN invicti_scans.launched_by IS
    'name of the role that called invicti_launch_scan(), when it did';

ALTER POLICY invicti_scans_visible ON invicti_scans
    USING (launched_by_oid = (SELECT r.oid FROM pg_catalog.pg_roles r
                              WHERE r.rolname = CURRENT_USER)
           OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                      WHERE r.rolname = 'invicti_scan_read_all'
                        AND pg_catalog.pg_has_role(r.oid, 'MEMBER')));

-- ---------------------------------------------------------------------------
-- Severity counts mean something or are not stored.  The worker refuses bad
-- counts where they arrive; the constraint keeps the table honest for
-- anyone else, so the gate and the views never read nonsense.  Counts that
-- 1.2 stored and that are not valid are cleared (the answer stays in
-- last_response) and the row says so.
-- ---------------------------------------------------------------------------
CREATE FUNCTION invicti_severity_counts_valid(counts jsonb) RETURNS boolean
AS 'MODULE_PATHNAME', 'invicti_severity_counts_valid'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION invicti_severity_counts_valid(jsonb) IS
    'true when counts is an object of whole numbers from 0 keyed critical, high, medium, low, info';

UPDATE invicti_scans
   SET severity_counts = NULL,
       last_error = 'the stored severity counts were not valid and were cleared by the update to 1.3; last_response holds the answer'
 WHERE NOT invicti_severity_counts_valid(severity_counts);
ALTER TABLE invicti_scans ADD CONSTRAINT invicti_scans_severity_counts_check
    CHECK (invicti_severity_counts_valid(severity_counts));

-- The gate, in C: it fails closed (unknown counts do not pass) and has no
-- schema name written into it, so the extension can move (below).
CREATE OR REPLACE FUNCTION invicti_scan_passed(id bigint, fail_on text DEFAULT 'high')
RETURNS boolean
AS 'MODULE_PATHNAME', 'invicti_scan_passed'
LANGUAGE C STABLE;
COMMENT ON FUNCTION invicti_scan_passed(bigint, text) IS
    'true when a completed scan found nothing at fail_on severity or above (critical > high > medium > low > info); false when its counts are unknown';

-- ---------------------------------------------------------------------------
-- The state machine, as the library defines it (for documentation, and so
-- that a test can hold the worker_state CHECK constraint to it).
-- ---------------------------------------------------------------------------
CREATE FUNCTION invicti_scan_state_moves(OUT from_state text, OUT to_state text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'invicti_scan_state_moves'
LANGUAGE C IMMUTABLE;
COMMENT ON FUNCTION invicti_scan_state_moves() IS
    'every move between worker states the worker and the SQL API make';
GRANT EXECUTE ON FUNCTION invicti_scan_state_moves() TO invicti_scan_read_all;

-- ---------------------------------------------------------------------------
-- Events: the NOTIFY channel has no privileges, so anyone who can connect
-- may LISTEN.  From 1.3 nothing is sent unless invicti_scan.notify = on,
-- and then the payload is only the row id: a listener reads the row, and
-- row-level security decides what it learns.  (The C function is the same;
-- only its behaviour changed.)
-- ---------------------------------------------------------------------------
COMMENT ON FUNCTION invicti_scan_notify() IS
    'trigger: when invicti_scan.notify is on, NOTIFY invicti_scan with the row id of a scan whose status changed';
COMMENT ON TRIGGER invicti_scans_notify_insert ON invicti_scans IS
    'announce new scans on channel invicti_scan (when invicti_scan.notify is on)';
COMMENT ON TRIGGER invicti_scans_notify_update ON invicti_scans IS
    'announce status changes on channel invicti_scan (when invicti_scan.notify is on)';

-- ---------------------------------------------------------------------------
-- Launch options: what the spec's Scan schema offers beyond target and
-- profile (report template, incremental, time limit, schedule), checked
-- before the row is inserted, kept on the row and sent as they are.  A
-- function of its own, so a grant on the two-argument launch does not also
-- allow schedules.
-- ---------------------------------------------------------------------------
ALTER TABLE invicti_scans ADD COLUMN launch_options jsonb;
COMMENT ON COLUMN invicti_scans.launch_options IS
    'options passed to invicti_launch_scan(target_id, profile_id, options), sent with the launch';

CREATE FUNCTION invicti_launch_scan(target_id uuid, profile_id uuid, options jsonb)
RETURNS bigint
AS 'MODULE_PATHNAME', 'invicti_launch_scan'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION invicti_launch_scan(uuid, uuid, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION invicti_launch_scan(uuid, uuid, jsonb) IS
    'queue an Invicti scan with launch options (report_template_id, incremental, max_scan_time, schedule); returns the row id';

/* invicti_scan--1.0--1.1.sql: abort, findings, reports, events, statistics. */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION invicti_scan UPDATE TO '1.1'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Scans: abort requests and the import of findings
-- ---------------------------------------------------------------------------

ALTER TABLE invicti_scans
    ADD COLUMN abort_requested_at timestamptz,
    ADD COLUMN aborted_by name,
    ADD COLUMN findings_imported_at timestamptz,
    ADD COLUMN import_cursor text;

ALTER TABLE invicti_scans DROP CONSTRAINT invicti_scans_worker_state_check;
ALTER TABLE invicti_scans ADD CONSTRAINT invicti_scans_worker_state_check
    CHECK (worker_state IN ('launch', 'sending', 'reconcile', 'poll', 'abort',
                            'import', 'done'));

-- Retention (invicti_scan.history_days) deletes finished scans by age.
CREATE INDEX invicti_scans_finished_idx ON invicti_scans (created_at)
    WHERE worker_state = 'done';

COMMENT ON SEQUENCE invicti_scans_id_seq IS 'ids of invicti_scans rows';
COMMENT ON COLUMN invicti_scans.abort_requested_at IS 'when invicti_abort_scan() was called';
COMMENT ON COLUMN invicti_scans.aborted_by IS 'role that called invicti_abort_scan()';
COMMENT ON COLUMN invicti_scans.findings_imported_at IS
    'when the findings of the completed session were imported into invicti_vulnerabilities';
COMMENT ON COLUMN invicti_scans.import_cursor IS
    'worker bookkeeping: the next page of findings to import';
COMMENT ON COLUMN invicti_scans.worker_state IS
    'worker bookkeeping: launch, sending, reconcile, poll, abort, import or done';

-- ---------------------------------------------------------------------------
-- Findings
-- ---------------------------------------------------------------------------

CREATE TABLE invicti_vulnerabilities (
    scan_session_id uuid NOT NULL,
    vuln_id         text NOT NULL,
    scan_row_id     bigint NOT NULL REFERENCES invicti_scans (id) ON DELETE CASCADE,
    target_id       uuid,
    vt_id           text,
    vt_name         text,
    severity        integer,
    severity_name   text GENERATED ALWAYS AS (
                        CASE severity WHEN 4 THEN 'critical' WHEN 3 THEN 'high'
                                      WHEN 2 THEN 'medium' WHEN 1 THEN 'low'
                                      WHEN 0 THEN 'info' END) STORED,
    confidence      integer,
    criticality     integer,
    affects_url     text,
    affects_detail  text,
    status          text,
    first_seen      timestamptz,
    last_seen       timestamptz,
    raw             jsonb NOT NULL,
    imported_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scan_session_id, vuln_id)
);
CREATE INDEX invicti_vulnerabilities_scan_idx ON invicti_vulnerabilities (scan_row_id);
CREATE INDEX invicti_vulnerabilities_target_idx ON invicti_vulnerabilities (target_id, severity);

COMMENT ON TABLE invicti_vulnerabilities IS
    'findings of completed scans, imported once per scan session by the invicti_scan worker';
COMMENT ON COLUMN invicti_vulnerabilities.scan_session_id IS 'the scan session the finding belongs to';
COMMENT ON COLUMN invicti_vulnerabilities.vuln_id IS 'Invicti vulnerability id';
COMMENT ON COLUMN invicti_vulnerabilities.scan_row_id IS 'invicti_scans.id of the scan';
COMMENT ON COLUMN invicti_vulnerabilities.target_id IS 'target the finding affects';
COMMENT ON COLUMN invicti_vulnerabilities.vt_id IS 'vulnerability type id';
COMMENT ON COLUMN invicti_vulnerabilities.vt_name IS 'vulnerability type, e.g. SQL injection';
COMMENT ON COLUMN invicti_vulnerabilities.severity IS '4 critical, 3 high, 2 medium, 1 low, 0 info';
COMMENT ON COLUMN invicti_vulnerabilities.severity_name IS 'severity as a word';
COMMENT ON COLUMN invicti_vulnerabilities.confidence IS 'Invicti''s confidence, percent';
COMMENT ON COLUMN invicti_vulnerabilities.criticality IS 'criticality of the target';
COMMENT ON COLUMN invicti_vulnerabilities.affects_url IS 'affected URL';
COMMENT ON COLUMN invicti_vulnerabilities.affects_detail IS 'affected parameter or detail';
COMMENT ON COLUMN invicti_vulnerabilities.status IS 'open, fixed, ignored or false_positive';
COMMENT ON COLUMN invicti_vulnerabilities.first_seen IS 'when Invicti first saw it';
COMMENT ON COLUMN invicti_vulnerabilities.last_seen IS 'when Invicti last saw it';
COMMENT ON COLUMN invicti_vulnerabilities.raw IS 'the item as the API sent it';
COMMENT ON COLUMN invicti_vulnerabilities.imported_at IS 'when the worker imported it';

-- A finding is visible to whoever may see its scan.
REVOKE ALL ON invicti_vulnerabilities FROM PUBLIC;
GRANT SELECT ON invicti_vulnerabilities TO invicti_scan_read_all;
ALTER TABLE invicti_vulnerabilities ENABLE ROW LEVEL SECURITY;
CREATE POLICY invicti_vulnerabilities_visible ON invicti_vulnerabilities FOR SELECT
    USING (EXISTS (SELECT 1 FROM invicti_scans s WHERE s.id = scan_row_id));
COMMENT ON POLICY invicti_vulnerabilities_visible ON invicti_vulnerabilities IS
    'a finding is visible to roles that can see its scan';

SELECT pg_catalog.pg_extension_config_dump('invicti_vulnerabilities', '');

-- ---------------------------------------------------------------------------
-- Abort
-- ---------------------------------------------------------------------------

CREATE FUNCTION invicti_abort_scan(id bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'invicti_abort_scan'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION invicti_abort_scan(bigint) FROM PUBLIC;
COMMENT ON FUNCTION invicti_abort_scan(bigint) IS
    'abort a scan: a pending one is cancelled at once, a running one is aborted through the API after commit; returns the new status';

-- ---------------------------------------------------------------------------
-- Severity gate
-- ---------------------------------------------------------------------------

CREATE FUNCTION invicti_scan_passed(id bigint, fail_on text DEFAULT 'high')
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    levels constant text[] := ARRAY['critical', 'high', 'medium', 'low', 'info'];
    threshold int := array_position(levels, lower(fail_on));
    s record;
    found_at_or_above bigint := 0;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF threshold IS NULL THEN
        RAISE EXCEPTION 'invalid fail_on value: "%"', fail_on
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use one of critical, high, medium, low, info.';
    END IF;
    SELECT sc.status, sc.severity_counts INTO s
        FROM @extschema@.invicti_scans sc WHERE sc.id = invicti_scan_passed.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'scan % does not exist', id
            USING ERRCODE = 'no_data_found',
                  HINT = 'Pass the id returned by invicti_launch_scan().';
    END IF;
    IF s.status <> 'completed' THEN
        RAISE EXCEPTION 'scan % has not completed: its status is %', id, s.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = CASE WHEN s.status IN ('failed', 'aborted', 'error')
                              THEN 'A scan that did not complete cannot pass; launch it again.'
                              ELSE 'Wait until the status is completed, e.g. by listening on channel invicti_scan.' END;
    END IF;
    -- critical counts as above high: every level from the top down to fail_on
    SELECT coalesce(sum((s.severity_counts ->> lvl)::bigint), 0)
        INTO found_at_or_above
        FROM unnest(levels[1:threshold]) AS lvl;
    RETURN found_at_or_above = 0;
END
$$;
REVOKE ALL ON FUNCTION invicti_scan_passed(bigint, text) FROM PUBLIC;
COMMENT ON FUNCTION invicti_scan_passed(bigint, text) IS
    'true when a completed scan found nothing at fail_on severity or above (critical > high > medium > low > info)';

-- ---------------------------------------------------------------------------
-- Events: NOTIFY invicti_scan on every status change, from the transaction
-- that records it
-- ---------------------------------------------------------------------------

CREATE FUNCTION invicti_scan_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_notify('invicti_scan',
        json_build_object('id', NEW.id, 'scan_id', NEW.scan_id,
                          'status', NEW.status, 'progress', NEW.progress)::text);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION invicti_scan_notify() FROM PUBLIC;
COMMENT ON FUNCTION invicti_scan_notify() IS
    'trigger: NOTIFY invicti_scan with {id, scan_id, status, progress} when a status is set';

CREATE TRIGGER invicti_scans_notify_insert AFTER INSERT ON invicti_scans
    FOR EACH ROW EXECUTE FUNCTION invicti_scan_notify();
CREATE TRIGGER invicti_scans_notify_update AFTER UPDATE OF status ON invicti_scans
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION invicti_scan_notify();
COMMENT ON TRIGGER invicti_scans_notify_insert ON invicti_scans IS
    'announce new scans on channel invicti_scan';
COMMENT ON TRIGGER invicti_scans_notify_update ON invicti_scans IS
    'announce status changes on channel invicti_scan';

-- ---------------------------------------------------------------------------
-- Worker statistics
-- ---------------------------------------------------------------------------

CREATE FUNCTION invicti_scan_worker_stats(
    OUT worker_pid integer,
    OUT worker_started_at timestamptz,
    OUT in_flight integer,
    OUT paused_until timestamptz,
    OUT requests bigint,
    OUT requests_by_kind jsonb,
    OUT rate_limited bigint,
    OUT retries bigint,
    OUT last_success_at timestamptz,
    OUT last_error_at timestamptz,
    OUT last_error text)
RETURNS record
AS 'MODULE_PATHNAME', 'invicti_scan_worker_stats'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION invicti_scan_worker_stats() FROM PUBLIC;
COMMENT ON FUNCTION invicti_scan_worker_stats() IS
    'the worker''s counters since the server started; use the invicti_scan_stats view';

CREATE VIEW invicti_scan_stats AS SELECT * FROM invicti_scan_worker_stats();
COMMENT ON VIEW invicti_scan_stats IS
    'health of the invicti_scan worker: requests by kind and outcome, rate limits, retries, last contact, last error';
REVOKE ALL ON invicti_scan_stats FROM PUBLIC;
GRANT SELECT ON invicti_scan_stats TO pg_monitor, invicti_scan_read_all;
GRANT EXECUTE ON FUNCTION invicti_scan_worker_stats() TO pg_monitor, invicti_scan_read_all;

-- ---------------------------------------------------------------------------
-- Reports.  security_invoker: a view shows what its reader may see.
-- ---------------------------------------------------------------------------

CREATE VIEW invicti_latest_scans WITH (security_invoker = true) AS
SELECT DISTINCT ON (s.target_id)
       s.target_id, s.id, s.status, s.progress, s.scan_id, s.scan_session_id,
       coalesce((s.severity_counts ->> 'critical')::int, 0) AS critical,
       coalesce((s.severity_counts ->> 'high')::int, 0) AS high,
       coalesce((s.severity_counts ->> 'medium')::int, 0) AS medium,
       coalesce((s.severity_counts ->> 'low')::int, 0) AS low,
       coalesce((s.severity_counts ->> 'info')::int, 0) AS info,
       s.start_date, s.end_date, s.created_at, s.launched_by, s.last_error
FROM invicti_scans s
ORDER BY s.target_id, s.created_at DESC, s.id DESC;
COMMENT ON VIEW invicti_latest_scans IS 'the most recently launched scan of each target';

CREATE VIEW invicti_severity_trend WITH (security_invoker = true) AS
SELECT s.target_id, s.id, coalesce(s.end_date, s.updated_at) AS finished_at,
       coalesce((s.severity_counts ->> 'critical')::int, 0) AS critical,
       coalesce((s.severity_counts ->> 'high')::int, 0) AS high,
       coalesce((s.severity_counts ->> 'medium')::int, 0) AS medium,
       coalesce((s.severity_counts ->> 'low')::int, 0) AS low,
       coalesce((s.severity_counts ->> 'info')::int, 0) AS info,
       coalesce((s.severity_counts ->> 'high')::int, 0)
         + coalesce((s.severity_counts ->> 'critical')::int, 0)
         - coalesce(lag(coalesce((s.severity_counts ->> 'high')::int, 0)
                        + coalesce((s.severity_counts ->> 'critical')::int, 0))
                    OVER w, 0) AS high_and_critical_change
FROM invicti_scans s
WHERE s.status = 'completed'
WINDOW w AS (PARTITION BY s.target_id ORDER BY coalesce(s.end_date, s.updated_at), s.id);
COMMENT ON VIEW invicti_severity_trend IS
    'severity totals of each completed scan per target over time, with the change in high+critical since the previous scan';

CREATE VIEW invicti_running_scans WITH (security_invoker = true) AS
SELECT s.id, s.target_id, s.status,
       coalesce(s.progress, 0) AS progress,
       '[' || rpad(repeat('#', coalesce(s.progress, 0) / 5), 20, '.') || '] '
           || lpad(coalesce(s.progress, 0)::text, 3) || '%' AS progress_bar,
       s.start_date, now() - coalesce(s.start_date, s.created_at) AS running_for,
       s.updated_at, s.scan_id, s.launched_by, s.last_error
FROM invicti_scans s
WHERE s.worker_state NOT IN ('done', 'import')
ORDER BY s.created_at, s.id;
COMMENT ON VIEW invicti_running_scans IS
    'scans not finished yet (pending ones included), with a progress bar for psql (\watch)';

CREATE VIEW invicti_findings_summary WITH (security_invoker = true) AS
SELECT v.severity, v.severity_name, v.vt_name,
       count(*) AS findings,
       count(*) FILTER (WHERE v.status = 'open') AS open,
       count(DISTINCT v.target_id) AS targets,
       max(v.last_seen) AS last_seen
FROM invicti_vulnerabilities v
GROUP BY v.severity, v.severity_name, v.vt_name
ORDER BY v.severity DESC, count(*) DESC, v.vt_name;
COMMENT ON VIEW invicti_findings_summary IS 'imported findings by severity and type';

-- Warn, as 1.0 does, when no worker will see this database.
CREATE FUNCTION invicti_scan_check_setup() RETURNS void
AS 'MODULE_PATHNAME', 'invicti_scan_check_setup'
LANGUAGE C VOLATILE;
SELECT invicti_scan_check_setup();
DROP FUNCTION invicti_scan_check_setup();

/* invicti_scan--1.3--1.4.sql: refresh on demand, waiting for a scan, and the
   statistics of list polling and the request budget. */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION invicti_scan UPDATE TO '1.4'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Refresh on demand: the worker fetches the scan at once (as the request
-- budget allows), through the authenticated API.  Granted like
-- invicti_abort_scan(): to no one until the owner says so.
-- ---------------------------------------------------------------------------

CREATE FUNCTION invicti_refresh_scan(id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'invicti_refresh_scan'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION invicti_refresh_scan(bigint) FROM PUBLIC;
COMMENT ON FUNCTION invicti_refresh_scan(bigint) IS
    'have the worker refresh a running scan now (as the request budget allows); false when the scan is not running';

CREATE FUNCTION invicti_refresh_scan(scan_id uuid)
RETURNS boolean
AS 'MODULE_PATHNAME', 'invicti_refresh_scan_by_scan_id'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION invicti_refresh_scan(uuid) FROM PUBLIC;
COMMENT ON FUNCTION invicti_refresh_scan(uuid) IS
    'have the worker refresh the running scan with this Invicti scan_id now; false when it is not running';

-- ---------------------------------------------------------------------------
-- Waiting from SQL: until the worker is finished with a scan (its findings
-- imported), on a condition variable the worker's commits broadcast.  Reads
-- as its caller, like invicti_scan_passed(), and is granted like it.
-- ---------------------------------------------------------------------------

CREATE FUNCTION invicti_wait_scan(id bigint, timeout interval DEFAULT '1 hour')
RETURNS text
AS 'MODULE_PATHNAME', 'invicti_wait_scan'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION invicti_wait_scan(bigint, interval) FROM PUBLIC;
COMMENT ON FUNCTION invicti_wait_scan(bigint, interval) IS
    'wait until the worker is finished with a scan (ended, findings imported) or the timeout passes; returns its status';

-- ---------------------------------------------------------------------------
-- Worker statistics gain how scans are polled and the request budget.
-- ---------------------------------------------------------------------------

DROP VIEW invicti_scan_stats;
DROP FUNCTION invicti_scan_worker_stats();

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
    OUT last_error text,
    OUT poll_method text,
    OUT budget_per_minute integer,
    OUT budget_effective_per_minute double precision,
    OUT requests_last_minute integer,
    OUT budget_waits bigint,
    OUT refresh_requests bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'invicti_scan_worker_stats'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION invicti_scan_worker_stats() FROM PUBLIC;
COMMENT ON FUNCTION invicti_scan_worker_stats() IS
    'the worker''s counters since the server started; use the invicti_scan_stats view';

CREATE VIEW invicti_scan_stats AS SELECT * FROM invicti_scan_worker_stats();
COMMENT ON VIEW invicti_scan_stats IS
    'health of the invicti_scan worker: requests by kind and outcome, rate limits, retries, last contact, last error, how scans are polled, the request budget';
REVOKE ALL ON invicti_scan_stats FROM PUBLIC;
GRANT SELECT ON invicti_scan_stats TO pg_monitor, invicti_scan_read_all;
GRANT EXECUTE ON FUNCTION invicti_scan_worker_stats() TO pg_monitor, invicti_scan_read_all;

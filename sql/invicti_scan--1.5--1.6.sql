/* invicti_scan--1.5--1.6.sql: holding up under load: the request rate
   learnt from the server's 429s (its cuts in invicti_scan_stats). */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION invicti_scan UPDATE TO '1.6'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- invicti_scan_stats: budget_per_minute is the operator's ceiling (NULL:
-- none, the default), budget_effective_per_minute the rate that applies now
-- (NULL: none, the worker sends as fast as requests are due), and rate_cuts
-- how often a 429 made the worker slow down.
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
    OUT refresh_requests bigint,
    OUT rate_cuts bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'invicti_scan_worker_stats'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION invicti_scan_worker_stats() FROM PUBLIC;
COMMENT ON FUNCTION invicti_scan_worker_stats() IS
    'the worker''s counters since the server started; use the invicti_scan_stats view';

CREATE VIEW invicti_scan_stats AS SELECT * FROM invicti_scan_worker_stats();
COMMENT ON VIEW invicti_scan_stats IS
    'health of the invicti_scan worker: requests by kind and outcome, rate limits, retries, last contact, last error, how scans are polled, the request rate and its cuts after 429s';
REVOKE ALL ON invicti_scan_stats FROM PUBLIC;
GRANT SELECT ON invicti_scan_stats TO pg_monitor, invicti_scan_read_all;
GRANT EXECUTE ON FUNCTION invicti_scan_worker_stats() TO pg_monitor, invicti_scan_read_all;

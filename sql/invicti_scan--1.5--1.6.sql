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

-- ---------------------------------------------------------------------------
-- Failover.  The worker remembers which server it last sent from (pg_control's
-- system identifier and the WAL timeline, both new after a promotion, a
-- point-in-time recovery or a pg_upgrade).  When it starts on another one,
-- every queued launch and target request is checked with the API before it
-- is sent: the former primary may have sent it in commits this server never
-- received (asynchronous replication).  See README, "Failover and high
-- availability".
-- ---------------------------------------------------------------------------

CREATE FUNCTION invicti_server_identity(
    OUT system_identifier numeric,
    OUT timeline integer)
RETURNS record
AS 'MODULE_PATHNAME', 'invicti_server_identity'
LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION invicti_server_identity() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION invicti_server_identity() TO invicti_scan_read_all;
COMMENT ON FUNCTION invicti_server_identity() IS
    'this server''s system identifier and WAL timeline, as the worker compares them with invicti_server_history';

CREATE TABLE invicti_server_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    system_identifier numeric NOT NULL,
    timeline integer NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    reconciled_launches integer NOT NULL DEFAULT 0,
    reconciled_target_requests integer NOT NULL DEFAULT 0
);
COMMENT ON TABLE invicti_server_history IS
    'each server the worker has sent from: a new row when it starts on a promoted standby, a restored or upgraded cluster, with how many queued requests it then checked with Invicti before sending';
ALTER TABLE invicti_server_history OWNER TO invicti_scan_owner;
REVOKE ALL ON invicti_server_history FROM PUBLIC;
GRANT SELECT ON invicti_server_history TO invicti_scan_read_all;
COMMENT ON SEQUENCE invicti_server_history_id_seq IS 'ids of invicti_server_history';
-- Not dumped: it describes servers, not data.  The worker writes its first
-- row when it starts; an empty history (a new install, a restored dump, an
-- update from 1.5) has every queued launch checked with Invicti first, as
-- a database restored from a dump may hold launches its source sent later.

-- Running scans the API lists that no row tracks: one the former primary
-- started for a launch this server never received, one started by another
-- client of the token, one whose row was deleted.  The worker writes what
-- its list rounds show (when a scan is first seen or its status changes);
-- the view leaves out every scan a row tracks at the time it is read.  It
-- is not security_invoker: it must see every row of invicti_scans to say
-- that none tracks a scan, and only invicti_scan_read_all (who sees every
-- row anyway) may read it.
CREATE TABLE invicti_listed_scans (
    scan_id uuid PRIMARY KEY,
    target_id uuid,
    profile_id uuid,
    status text,
    first_seen_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    status_seen_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    raw jsonb NOT NULL
);
COMMENT ON TABLE invicti_listed_scans IS
    'running scans a list round of the worker showed that no row of invicti_scans tracked then; read invicti_untracked_scans';
ALTER TABLE invicti_listed_scans OWNER TO invicti_scan_owner;
REVOKE ALL ON invicti_listed_scans FROM PUBLIC;
GRANT SELECT ON invicti_listed_scans TO invicti_scan_read_all;

CREATE VIEW invicti_untracked_scans AS
    SELECT l.scan_id, l.target_id, l.profile_id, l.status, l.first_seen_at,
           l.status_seen_at, l.raw
    FROM invicti_listed_scans l
    WHERE NOT EXISTS (SELECT FROM invicti_scans s WHERE s.scan_id = l.scan_id);
COMMENT ON VIEW invicti_untracked_scans IS
    'scans the API lists as running that no row of invicti_scans tracks (seen by the worker''s list polling), with target, profile, status and when first seen';
REVOKE ALL ON invicti_untracked_scans FROM PUBLIC;
GRANT SELECT ON invicti_untracked_scans TO invicti_scan_read_all;

-- Who may launch, read and write.  Runs after launch.sql.
CREATE ROLE invicti_outsider;
CREATE ROLE invicti_launcher;
CREATE ROLE invicti_other_launcher;
CREATE ROLE invicti_auditor;

-- Nothing is granted to PUBLIC.
SELECT has_function_privilege('invicti_outsider',
         'invicti_launch_scan(uuid, uuid)', 'EXECUTE') AS outsider_can_launch,
       has_table_privilege('invicti_outsider', 'invicti_scans', 'SELECT') AS can_read,
       has_table_privilege('invicti_outsider', 'invicti_scans',
         'INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES') AS can_write;

-- An ungranted role is refused.
SET ROLE invicti_outsider;
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111112');
SELECT count(*) FROM invicti_scans;
RESET ROLE;

-- EXECUTE is all a launcher needs; reading its rows needs SELECT.
GRANT EXECUTE ON FUNCTION invicti_launch_scan(uuid, uuid)
  TO invicti_launcher, invicti_other_launcher;
GRANT SELECT ON invicti_scans TO invicti_launcher, invicti_other_launcher;

SET ROLE invicti_launcher;
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111112') > 0 AS launched;
-- ... and sees only its own rows, recorded under its own name.
SELECT launched_by, status, count(*) FROM invicti_scans GROUP BY 1, 2;
-- but cannot write the table, directly or through the sequence.
INSERT INTO invicti_scans (target_id, profile_id)
  VALUES ('2df49409-ee21-4080-9640-eb46f4610054', '11111111-1111-1111-1111-111111111112');
UPDATE invicti_scans SET status = 'completed';
DELETE FROM invicti_scans;
TRUNCATE invicti_scans;
SELECT nextval(pg_get_serial_sequence('invicti_scans', 'id'));
RESET ROLE;

SET ROLE invicti_other_launcher;
SELECT count(*) AS others_rows_visible FROM invicti_scans;
RESET ROLE;

-- A SECURITY DEFINER wrapper owned by the launcher records the launcher.
CREATE FUNCTION launch_for_app(t uuid) RETURNS bigint
  LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ SELECT invicti_launch_scan(t, '11111111-1111-1111-1111-111111111111') $$;
ALTER FUNCTION launch_for_app(uuid) OWNER TO invicti_launcher;
SET ROLE invicti_outsider;
SELECT launch_for_app('2df49409-ee21-4080-9640-eb46f4610054') > 0 AS launched_via_wrapper;
RESET ROLE;
SELECT launched_by, count(*) FROM invicti_scans
  WHERE launched_by LIKE 'invicti_%' GROUP BY 1 ORDER BY 1;

-- Members of invicti_scan_read_all see every row.
GRANT invicti_scan_read_all TO invicti_auditor;
SET ROLE invicti_auditor;
SELECT count(*) = (SELECT count(*) FROM invicti_scans) AS sees_all
  FROM invicti_scans;
SELECT count(DISTINCT launched_by) > 1 AS sees_other_launchers FROM invicti_scans;
RESET ROLE;

-- search_path tricks cannot redirect the insert: a hostile schema that
-- shadows pg_catalog names is ignored by the launch.
CREATE SCHEMA hostile;
GRANT USAGE, CREATE ON SCHEMA hostile TO invicti_launcher;
SET ROLE invicti_launcher;
CREATE TABLE hostile.invicti_scans (id bigint);
CREATE FUNCTION hostile.now() RETURNS timestamptz LANGUAGE sql
  AS $$ SELECT 'epoch'::timestamptz $$;
SET search_path = hostile, public, pg_catalog;
SELECT public.invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
                                  '11111111-1111-1111-1111-111111111116') AS hostile_id \gset
SELECT count(*) AS hostile_rows FROM hostile.invicti_scans;
SELECT created_at > 'epoch' AS real_now FROM public.invicti_scans WHERE id = :hostile_id;
RESET search_path;
RESET ROLE;
DROP SCHEMA hostile CASCADE;

-- The API token is superuser-only and never shown, even to superusers.
SET ROLE invicti_launcher;
SHOW invicti_scan.api_token;
SELECT current_setting('invicti_scan.api_token');
SELECT count(*) FROM pg_settings WHERE name = 'invicti_scan.api_token';
SELECT name FROM pg_settings WHERE name LIKE 'invicti_scan.%' ORDER BY 1;
RESET ROLE;
SHOW invicti_scan.api_token;

-- Settings are server-wide; a session cannot change them.
SET invicti_scan.base_url = 'https://evil.example';
SET invicti_scan.poll_interval = '1s';
SET invicti_scan.no_such_setting = 1;

DROP FUNCTION launch_for_app(uuid);
DELETE FROM invicti_scans WHERE launched_by LIKE 'invicti_%';
REVOKE ALL ON FUNCTION invicti_launch_scan(uuid, uuid)
  FROM invicti_launcher, invicti_other_launcher;
REVOKE ALL ON invicti_scans FROM invicti_launcher, invicti_other_launcher;
DROP ROLE invicti_outsider, invicti_launcher, invicti_other_launcher, invicti_auditor;

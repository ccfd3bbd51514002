-- The configure step from SQL: invicti_add_target(), invicti_sync() and
-- launching by profile name.  (The worker has no base_url here: requests
-- are only queued; test/t/022_catalog.pl drives them against the API.)
CREATE ROLE invicti_cat_adder;
CREATE ROLE invicti_cat_other;
CREATE ROLE invicti_cat_reader IN ROLE invicti_scan_read_all;
CREATE ROLE invicti_cat_nobody;
GRANT EXECUTE ON FUNCTION invicti_add_target(text, text, integer)
  TO invicti_cat_adder, invicti_cat_other;
GRANT SELECT ON invicti_target_requests TO invicti_cat_adder, invicti_cat_other;

-- Nothing is granted to PUBLIC but the text launch, which defers to the
-- uuid launch's grants (below); the catalogs are read by grant only.
SELECT p.oid::regprocedure AS function
  FROM pg_proc p
 WHERE p.pronamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'invicti_scan')
   AND has_function_privilege('invicti_cat_nobody', p.oid, 'EXECUTE')
 ORDER BY p.oid::regprocedure::text COLLATE "C";
SELECT c.relname,
       has_table_privilege('invicti_cat_nobody', c.oid, 'SELECT') AS nobody_reads,
       has_table_privilege('invicti_scan_read_all', c.oid, 'SELECT') AS read_all_reads,
       has_table_privilege('invicti_cat_reader', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') AS reader_writes,
       c.relrowsecurity AS rls,
       pg_get_userbyid(c.relowner) AS owner
  FROM pg_class c
 WHERE c.relname IN ('invicti_targets', 'invicti_scanning_profiles', 'invicti_report_templates',
                     'invicti_sync_status', 'invicti_target_requests')
 ORDER BY 1;

-- ---- invicti_add_target(): every bad argument is an error naming it ----
SET ROLE invicti_cat_adder;
SELECT invicti_add_target(NULL);
SELECT invicti_add_target('https://shop.example.com', NULL);
SELECT invicti_add_target('https://shop.example.com', '', NULL);
SELECT invicti_add_target('');
SELECT invicti_add_target('https://shop.example.com/ path');
SELECT invicti_add_target('ftp://files.example.com');
SELECT invicti_add_target('https://');
SELECT invicti_add_target('https://admin:secret@shop.example.com');
SELECT invicti_add_target('shop..example.com');
SELECT invicti_add_target('-shop.example.com');
SELECT invicti_add_target('shop.example.com:0');
SELECT invicti_add_target('shop.example.com:http');
SELECT invicti_add_target('https://shop.example.com/' || repeat('a', 1001));
SELECT invicti_add_target('https://shop.example.com', repeat('d', 1025));
SELECT invicti_add_target('https://shop.example.com', '', 15);
SELECT invicti_add_target('https://shop.example.com', '', -10);

-- good ones: URLs, host names, ports, IPv4, long ones at the limit
SELECT invicti_add_target('https://shop.example.com', 'the shop', 30) AS shop \gset
SELECT invicti_add_target('http://intranet.example.com:8080/app/') > 0 AS added;
SELECT invicti_add_target('api.example.com') > 0 AS added;
SELECT invicti_add_target('10.1.2.3:8443', 'by address', 0) > 0 AS added;
SELECT invicti_add_target('https://x.example.com/' || repeat('a', 1002), repeat('d', 1024)) > 0 AS added;
SELECT invicti_add_target('https://exämple.com', 'ünïcode', 20) > 0 AS added;

-- at most one open request per address
SELECT invicti_add_target('https://shop.example.com', 'again');
SELECT left(address, 40) AS address, length(address) AS chars, left(description, 10) AS description,
       criticality, status, target_id, requested_by = current_user AS mine
  FROM invicti_target_requests ORDER BY id;
-- the requester cannot write the table, or queue for someone else
UPDATE invicti_target_requests SET status = 'created';
DELETE FROM invicti_target_requests;
INSERT INTO invicti_target_requests (address, requested_by, requested_by_oid)
  VALUES ('https://evil.example.com', 'postgres', 10);
RESET ROLE;

-- another role sees only its own requests; read_all sees every one
SET ROLE invicti_cat_other;
SELECT invicti_add_target('https://other.example.com') > 0 AS added;
SELECT count(*) AS visible, bool_and(requested_by = current_user) AS all_mine
  FROM invicti_target_requests;
RESET ROLE;
SET ROLE invicti_cat_reader;
SELECT count(*) AS visible FROM invicti_target_requests;
RESET ROLE;
SET ROLE invicti_cat_nobody;
SELECT invicti_add_target('https://nobody.example.com');
SELECT count(*) FROM invicti_target_requests;
SELECT count(*) FROM invicti_targets;
RESET ROLE;

-- an address already listed by the API is refused (unless it vanished)
INSERT INTO invicti_targets (target_id, address, raw, synced_at)
  VALUES ('2df49409-ee21-4080-9640-eb46f4610054', 'https://listed.example.com', '{}', now());
SET ROLE invicti_cat_adder;
SELECT invicti_add_target('https://listed.example.com');
RESET ROLE;
UPDATE invicti_targets SET vanished_at = now()
 WHERE target_id = '2df49409-ee21-4080-9640-eb46f4610054';
SET ROLE invicti_cat_adder;
SELECT invicti_add_target('https://listed.example.com') > 0 AS added_again;
RESET ROLE;

-- a rolled-back request queues nothing
BEGIN;
SELECT invicti_add_target('https://rolled-back.example.com') > 0 AS added;
ROLLBACK;
SELECT count(*) FROM invicti_target_requests WHERE address LIKE '%rolled-back%';

-- ---- invicti_sync(): only a request, recorded for the worker ----
GRANT EXECUTE ON FUNCTION invicti_sync() TO invicti_cat_adder;
SET ROLE invicti_cat_nobody;
SELECT invicti_sync();
RESET ROLE;
SET ROLE invicti_cat_adder;
SELECT invicti_sync();
RESET ROLE;
SELECT catalog, requested_at IS NOT NULL AS requested FROM invicti_sync_status ORDER BY 1;

-- ---- launching by profile name ----
GRANT EXECUTE ON FUNCTION invicti_launch_scan(uuid, uuid) TO invicti_cat_adder;
SET ROLE invicti_cat_adder;
-- nothing synced yet
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054', 'Full Scan');
RESET ROLE;
INSERT INTO invicti_scanning_profiles (profile_id, name, sort_order, raw, synced_at) VALUES
  ('11111111-1111-1111-1111-111111111111', 'Full Scan', 1, '{}', now()),
  ('11111111-1111-1111-1111-111111111112', 'High Risk', 2, '{}', now()),
  ('aaaaaaaa-1111-1111-1111-111111111111', 'Nightly', 10, '{}', now()),
  ('bbbbbbbb-1111-1111-1111-111111111111', 'Nightly', 11, '{}', now()),
  ('cccccccc-1111-1111-1111-111111111111', 'Old', 12, '{}', now()),
  ('dddddddd-1111-1111-1111-111111111111', 'Case', 13, '{}', now()),
  ('eeeeeeee-1111-1111-1111-111111111111', 'CASE', 14, '{}', now());
UPDATE invicti_scanning_profiles SET vanished_at = now() WHERE name = 'Old';
SET ROLE invicti_cat_adder;
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054', 'Full Scan') AS by_name \gset
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054', 'high risk') AS folded \gset
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054', 'Case') AS exact \gset
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
                           'CCCCCCCC-1111-1111-1111-111111111111') AS by_id_text \gset
RESET ROLE;
SELECT id = :by_name AS by_name, id = :folded AS folded, id = :exact AS exact,
       id = :by_id_text AS by_id_text, profile_id
  FROM invicti_scans WHERE id IN (:by_name, :folded, :exact, :by_id_text) ORDER BY id;
SET ROLE invicti_cat_adder;
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054', 'Nightly');
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054', 'case');
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054', 'Old');
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054', 'No Such Profile');
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054', NULL::text);
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
                           '00000000-0000-0000-0000-000000000000');
RESET ROLE;
-- the text launch lets in exactly the roles the uuid launch does
SET ROLE invicti_cat_nobody;
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054', 'Full Scan');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION invicti_launch_scan(uuid, uuid) FROM invicti_cat_adder;
SET ROLE invicti_cat_adder;
SELECT invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054', 'Full Scan');
RESET ROLE;

DELETE FROM invicti_scans WHERE id IN (:by_name, :folded, :exact, :by_id_text);
DELETE FROM invicti_target_requests;
DELETE FROM invicti_targets;
DELETE FROM invicti_scanning_profiles;
UPDATE invicti_sync_status SET requested_at = NULL;
REVOKE ALL ON invicti_target_requests FROM invicti_cat_adder, invicti_cat_other;
REVOKE ALL ON FUNCTION invicti_add_target(text, text, integer), invicti_sync()
  FROM invicti_cat_adder, invicti_cat_other;
DROP ROLE invicti_cat_adder, invicti_cat_other, invicti_cat_reader, invicti_cat_nobody;

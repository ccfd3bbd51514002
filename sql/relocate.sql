-- The extension can move to a schema of its own (the README's advice, so
-- that no look-alike function in a shared schema can catch a call), and
-- everything keeps working there.  It moves the extension back at the end.
CREATE SCHEMA invicti;
ALTER EXTENSION invicti_scan SET SCHEMA invicti;
-- The tables' owner must reach them: without USAGE, a clear error.
SELECT invicti.invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
                                   '11111111-1111-1111-1111-111111111112');
GRANT USAGE ON SCHEMA invicti TO invicti_scan_owner;
SELECT e.extrelocatable, n.nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'invicti_scan';
SELECT count(*) AS objects_left_in_public
  FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'invicti_scan')
   AND c.relnamespace = 'public'::regnamespace;

-- A look-alike in public cannot catch the qualified call the README shows.
CREATE FUNCTION public.invicti_launch_scan(text, text) RETURNS bigint
  LANGUAGE sql AS $$ SELECT -1::bigint $$;
SELECT invicti.invicti_launch_scan('2df49409-ee21-4080-9640-eb46f4610054',
                                   '11111111-1111-1111-1111-111111111112') > 0 AS launched;
DROP FUNCTION public.invicti_launch_scan(text, text);
SELECT count(*) AS rows_in_the_new_schema FROM invicti.invicti_scans WHERE status = 'pending';
UPDATE invicti.invicti_scans SET status = 'completed', worker_state = 'done',
       severity_counts = '{"high": 0}'
 WHERE status = 'pending';
SELECT bool_and(invicti.invicti_scan_passed(id)) AS gate_works
  FROM invicti.invicti_scans WHERE status = 'completed';
SELECT count(*) > 0 AS views_work FROM invicti.invicti_latest_scans;
DELETE FROM invicti.invicti_scans;

ALTER EXTENSION invicti_scan SET SCHEMA public;
DROP SCHEMA invicti;

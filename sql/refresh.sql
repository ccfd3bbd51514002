-- invicti_refresh_scan(): queue a refresh of a running scan, by row id or by
-- Invicti scan id; false when there is nothing to refresh; an error naming
-- what is wrong otherwise.  (The worker has no base_url here: the refresh
-- is only queued.)
CREATE ROLE invicti_refresh_owner;
CREATE ROLE invicti_refresh_stranger;
CREATE ROLE invicti_refresh_reader IN ROLE invicti_scan_read_all;
CREATE ROLE invicti_refresh_nobody;
GRANT EXECUTE ON FUNCTION invicti_launch_scan(uuid, uuid) TO invicti_refresh_owner;
GRANT EXECUTE ON FUNCTION invicti_refresh_scan(bigint), invicti_refresh_scan(uuid)
  TO invicti_refresh_owner, invicti_refresh_stranger, invicti_refresh_reader;

SET ROLE invicti_refresh_owner;
SELECT invicti_launch_scan('6df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111111') AS queued_id \gset
SELECT invicti_launch_scan('6df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111111') AS running_id \gset
RESET ROLE;
UPDATE invicti_scans SET worker_state = 'poll', status = 'processing',
       scan_id = 'ed0f3cf1-5a2d-41eb-a9fb-5fa661167fd9'
 WHERE id = :running_id;

SET ROLE invicti_refresh_owner;
-- a running scan: queued (true), as often as asked
SELECT invicti_refresh_scan(:running_id);
SELECT invicti_refresh_scan(:running_id);
SELECT invicti_refresh_scan('ed0f3cf1-5a2d-41eb-a9fb-5fa661167fd9'::uuid);
-- not sent yet: nothing to refresh
SELECT invicti_refresh_scan(:queued_id);
-- what does not exist, and NULL
SELECT invicti_refresh_scan(-1);
SELECT invicti_refresh_scan('00000000-0000-0000-0000-000000000001'::uuid);
SELECT invicti_refresh_scan(NULL::bigint);
SELECT invicti_refresh_scan(NULL::uuid);

-- another role's scan does not exist for it; invicti_scan_read_all members
-- may refresh any scan; without the grant, no call at all
SET ROLE invicti_refresh_stranger;
SELECT invicti_refresh_scan(:running_id);
SET ROLE invicti_refresh_reader;
SELECT invicti_refresh_scan(:running_id);
SET ROLE invicti_refresh_nobody;
SELECT invicti_refresh_scan(:running_id);
RESET ROLE;

-- the refreshes are counted
SELECT refresh_requests > 0 AS counted FROM invicti_scan_stats;

DELETE FROM invicti_scans WHERE id IN (:queued_id, :running_id);
DROP OWNED BY invicti_refresh_owner, invicti_refresh_stranger, invicti_refresh_reader;
DROP ROLE invicti_refresh_owner, invicti_refresh_stranger, invicti_refresh_reader,
  invicti_refresh_nobody;

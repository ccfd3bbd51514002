-- invicti_abort_scan(): cancel what was never sent, mark the rest for the
-- worker, refuse what cannot be aborted.  (The worker has no base_url here,
-- so rows stay where this file puts them.)
CREATE ROLE invicti_abort_owner;
CREATE ROLE invicti_abort_stranger;
GRANT EXECUTE ON FUNCTION invicti_launch_scan(uuid, uuid), invicti_abort_scan(bigint)
  TO invicti_abort_owner, invicti_abort_stranger;
GRANT SELECT ON invicti_scans TO invicti_abort_owner, invicti_abort_stranger;

SET ROLE invicti_abort_owner;
SELECT invicti_launch_scan('5df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111111') AS pending_id \gset
SELECT invicti_launch_scan('5df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111111') AS running_id \gset
SELECT invicti_launch_scan('5df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111111') AS sending_id \gset
SELECT invicti_launch_scan('5df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111111') AS done_id \gset
RESET ROLE;

-- Put rows where the worker would have: one running, one being sent, one done.
UPDATE invicti_scans SET worker_state = 'poll', status = 'processing',
       scan_id = 'cda0f3cf-5a2d-41eb-a9fb-5fa661167fd9'
 WHERE id = :running_id;
UPDATE invicti_scans SET worker_state = 'sending' WHERE id = :sending_id;
UPDATE invicti_scans SET worker_state = 'done', status = 'completed' WHERE id = :done_id;

-- Another role cannot abort (or even learn about) someone else's scan.
SET ROLE invicti_abort_stranger;
SELECT invicti_abort_scan(:pending_id);
RESET ROLE;

SET ROLE invicti_abort_owner;
-- A pending scan is cancelled at once, without any request.
SELECT invicti_abort_scan(:pending_id);
SELECT status, worker_state, aborted_by, abort_requested_at IS NOT NULL AS requested
  FROM invicti_scans WHERE id = :pending_id;
-- A running scan is marked for the worker, which sends the abort.
SELECT invicti_abort_scan(:running_id);
SELECT status, worker_state, next_attempt_at <= now() AS due
  FROM invicti_scans WHERE id = :running_id;
-- Asking twice is harmless.
SELECT invicti_abort_scan(:running_id);
-- A launch under way keeps going; the worker aborts it once it has an id.
SELECT invicti_abort_scan(:sending_id);
SELECT status, worker_state FROM invicti_scans WHERE id = :sending_id;

-- Errors: finished, unknown, NULL.
SELECT invicti_abort_scan(:done_id);
SELECT invicti_abort_scan(:pending_id);
SELECT invicti_abort_scan(-1);
SELECT invicti_abort_scan(NULL);
RESET ROLE;

-- Nobody may abort without a grant.
REVOKE EXECUTE ON FUNCTION invicti_abort_scan(bigint) FROM invicti_abort_stranger;
SET ROLE invicti_abort_stranger;
SELECT invicti_abort_scan(:running_id);
RESET ROLE;

-- The table owner may abort anyone's scan.
SELECT invicti_launch_scan('5df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111111') AS owners_id \gset
UPDATE invicti_scans SET launched_by = 'invicti_abort_owner' WHERE id = :owners_id;
SELECT invicti_abort_scan(:owners_id);

DELETE FROM invicti_scans WHERE launched_by = 'invicti_abort_owner';
REVOKE ALL ON FUNCTION invicti_launch_scan(uuid, uuid), invicti_abort_scan(bigint)
  FROM invicti_abort_owner, invicti_abort_stranger;
REVOKE ALL ON invicti_scans FROM invicti_abort_owner, invicti_abort_stranger;
DROP ROLE invicti_abort_owner, invicti_abort_stranger;

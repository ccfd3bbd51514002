-- invicti_wait_scan(): the status once the worker is finished with a scan,
-- or at the timeout (with a NOTICE); an error naming what is wrong
-- otherwise.  (The worker has no base_url here, so a queued scan never
-- moves: the waits below end at their timeout, or at once for a finished
-- scan.  test/t/021_wait.pl waits for a real one.)
CREATE ROLE invicti_wait_owner;
CREATE ROLE invicti_wait_stranger;
CREATE ROLE invicti_wait_blind;
CREATE ROLE invicti_wait_nobody;
GRANT EXECUTE ON FUNCTION invicti_launch_scan(uuid, uuid) TO invicti_wait_owner;
GRANT EXECUTE ON FUNCTION invicti_wait_scan(bigint, interval)
  TO invicti_wait_owner, invicti_wait_stranger, invicti_wait_blind;
GRANT SELECT ON invicti_scans TO invicti_wait_owner, invicti_wait_stranger;

SET ROLE invicti_wait_owner;
SELECT invicti_launch_scan('7df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111111') AS queued_id \gset
SELECT invicti_launch_scan('7df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111111') AS done_id \gset
RESET ROLE;
UPDATE invicti_scans SET worker_state = 'done', status = 'completed'
 WHERE id = :done_id;

SET ROLE invicti_wait_owner;
-- finished: its status at once
SELECT invicti_wait_scan(:done_id);
-- not finished: its status at the timeout, and a NOTICE
SELECT invicti_wait_scan(:queued_id, '0');
SELECT invicti_wait_scan(:queued_id, '200 milliseconds');
-- bad arguments
SELECT invicti_wait_scan(NULL);
SELECT invicti_wait_scan(:queued_id, NULL);
SELECT invicti_wait_scan(:queued_id, '-1 second');
SELECT invicti_wait_scan(:queued_id, '25 hours');
SELECT invicti_wait_scan(:queued_id, '1 mon');
SELECT invicti_wait_scan(-1);
-- a scan launched in the waiting transaction: the worker cannot see it yet
BEGIN;
SELECT invicti_launch_scan('7df49409-ee21-4080-9640-eb46f4610054',
                           '11111111-1111-1111-1111-111111111111') AS new_id \gset
SELECT invicti_wait_scan(:new_id, '1 second');
ROLLBACK;
-- a snapshot that never moves
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT invicti_wait_scan(:queued_id, '1 second');
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT invicti_wait_scan(:queued_id, '1 second');
ROLLBACK;

-- another role's scan does not exist for it; without SELECT on the table,
-- nothing to read; without the grant, no call
SET ROLE invicti_wait_stranger;
SELECT invicti_wait_scan(:done_id);
SET ROLE invicti_wait_blind;
SELECT invicti_wait_scan(:done_id);
SET ROLE invicti_wait_nobody;
SELECT invicti_wait_scan(:done_id);
RESET ROLE;

-- whatever the caller's search_path holds, the wait reads the extension's table
CREATE SCHEMA invicti_wait_trap;
CREATE TABLE invicti_wait_trap.invicti_scans (id bigint, status text, worker_state text);
SET search_path = invicti_wait_trap, public;
SELECT invicti_wait_scan(:done_id);
RESET search_path;
DROP SCHEMA invicti_wait_trap CASCADE;

DELETE FROM invicti_scans WHERE id IN (:queued_id, :done_id);
DROP OWNED BY invicti_wait_owner, invicti_wait_stranger, invicti_wait_blind;
DROP ROLE invicti_wait_owner, invicti_wait_stranger, invicti_wait_blind,
  invicti_wait_nobody;

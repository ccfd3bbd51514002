-- The worker_state CHECK constraint holds exactly the states the library's
-- state machine (src/scan_state.c) knows, and every move the library makes
-- is between states the constraint allows.
WITH check_states AS (
  SELECT DISTINCT m[1] AS state
    FROM pg_constraint c,
         regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''::text', 'g') AS m
   WHERE c.conrelid = 'invicti_scans'::regclass
     AND c.conname = 'invicti_scans_worker_state_check'),
library_states AS (
  SELECT from_state AS state FROM invicti_scan_state_moves()
  UNION SELECT to_state FROM invicti_scan_state_moves())
SELECT coalesce(c.state, l.state) AS state,
       c.state IS NOT NULL AS in_check_constraint,
       l.state IS NOT NULL AS in_library
  FROM check_states c FULL JOIN library_states l USING (state)
 ORDER BY 1;

-- The moves themselves, as documented in the README.
SELECT from_state, string_agg(to_state, ', ' ORDER BY to_state) AS to_states
  FROM invicti_scan_state_moves() GROUP BY from_state ORDER BY from_state;

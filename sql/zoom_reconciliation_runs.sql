-- name: select_due_reconciliations
-- Bookings due for reconciliation, oldest scheduled end first: a Zoom meeting, status paid or
-- completed, no final outcome yet, and a scheduled end between $1 days and 30 minutes ago.
-- The scheduled end is the request's starts_at + duration_minutes; a booking without a request
-- ends 24 h after its created_at. Each branch is narrowed on an indexed column first
-- (migration 140; a request lasts at most 1440 minutes). No rows: nothing is due.
WITH window_bounds AS (
    SELECT now() - make_interval(days => $1) AS earliest,
           now() - interval '30 minutes' AS latest
), scheduled AS (
    SELECT r.booking_id, r.starts_at + make_interval(mins => r.duration_minutes) AS ends_at
      FROM booking_requests AS r, window_bounds AS w
     WHERE r.booking_id IS NOT NULL
       AND r.starts_at BETWEEN w.earliest - interval '1440 minutes' AND w.latest
    UNION ALL
    SELECT b.id, b.created_at + interval '24 hours'
      FROM bookings AS b, window_bounds AS w
     WHERE b.zoom_meeting_id IS NOT NULL
       AND b.status IN ('paid', 'completed')
       AND b.created_at BETWEEN w.earliest - interval '24 hours' AND w.latest - interval '24 hours'
       AND NOT EXISTS (SELECT 1 FROM booking_requests AS r WHERE r.booking_id = b.id)
)
SELECT DISTINCT ON (s.ends_at, b.id) b.id, b.zoom_meeting_id, b.status, s.ends_at
  FROM scheduled AS s
  JOIN bookings AS b ON b.id = s.booking_id
 CROSS JOIN window_bounds AS w
 WHERE s.ends_at BETWEEN w.earliest AND w.latest
   AND b.zoom_meeting_id IS NOT NULL
   AND b.status IN ('paid', 'completed')
   AND NOT EXISTS (SELECT 1
                     FROM zoom_reconciliation_runs AS run
                    WHERE run.booking_id = b.id
                      AND run.outcome IN ('recovered', 'complete', 'no_meeting'))
 ORDER BY s.ends_at, b.id;

-- name: try_lock_booking_reconciliation
-- Take the lock that lets one reconciliation of booking $1 run at a time, across processes and
-- replicas, until the transaction ends; false when another transaction holds it. Transaction-
-- scoped, so that it also holds behind PgBouncer in transaction mode, and a crashed run frees
-- it with its connection.
SELECT pg_try_advisory_xact_lock(hashtextextended('zoom_reconcile:' || $1::uuid::text, 0));

-- name: insert_reconciliation_run
-- Record how reconciling booking $1 (meeting $2) ended: $3 when it started, $4 outcome,
-- $5 ended instances found, $6 events stored, $7 a sentence on a failure (else NULL).
INSERT INTO zoom_reconciliation_runs
       (booking_id, zoom_meeting_id, started_at, outcome, instances, recovered, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id, finished_at;

-- name: select_reconciled_at
-- When booking $1 last reached a final outcome; NULL while it has none.
SELECT max(run.finished_at) AS reconciled_at
  FROM zoom_reconciliation_runs AS run
 WHERE run.booking_id = $1
   AND run.outcome IN ('recovered', 'complete', 'no_meeting');

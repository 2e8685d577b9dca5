-- name: lock_booking_request
-- The request being accepted, row-locked until the transaction ends: one accept at a time
-- creates its meeting, and a racing accept then sees it accepted. NOWAIT: a racer fails at
-- once (SQLSTATE 55P03) and polls, instead of holding a pooled connection while it waits.
-- $1 request id. No row: no such request.
SELECT r.id, r.coach_id, r.athlete_id, r.starts_at, r.duration_minutes, r.status, r.booking_id
  FROM booking_requests AS r
 WHERE r.id = $1
   FOR UPDATE NOWAIT;

-- name: accept_booking_request
-- Mark a pending request accepted, pointing at its new booking. $1 request id, $2 booking id.
-- No row: the request was no longer pending, and the caller rolls back.
UPDATE booking_requests
   SET status = 'accepted',
       booking_id = $2
 WHERE id = $1
   AND status = 'pending'
RETURNING id;

-- name: select_booking_schedule
-- When a booking's meeting was planned: its request's start and end. $1 booking id.
-- No row: the booking came without a request (the web app inserted it directly).
SELECT r.starts_at,
       r.starts_at + make_interval(mins => r.duration_minutes) AS ends_at
  FROM booking_requests AS r
 WHERE r.booking_id = $1
 ORDER BY r.starts_at
 LIMIT 1;

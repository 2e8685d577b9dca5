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

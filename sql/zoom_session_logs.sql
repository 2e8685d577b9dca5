-- name: insert_session_log
-- Record a Start/Join click, copying coach and athlete from the booking in the same statement.
-- $1 booking_id, $2 action_type. No row back: the booking does not exist.
INSERT INTO zoom_session_logs (booking_id, coach_id, athlete_id, action_type)
SELECT b.id, b.coach_id, b.athlete_id, $2
  FROM bookings AS b
 WHERE b.id = $1
RETURNING id, booking_id, coach_id, athlete_id, action_type, created_at;

-- name: select_session_logs
-- A booking's clicks, oldest first. $1 booking_id. No rows: no clicks (or no such booking).
SELECT l.id, l.action_type, l.coach_id, l.athlete_id, l.created_at
  FROM zoom_session_logs AS l
 WHERE l.booking_id = $1
 ORDER BY l.created_at, l.id;

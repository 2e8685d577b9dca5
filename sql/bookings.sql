-- name: select_booking
-- One booking as the API shows it. $1 booking id. No row: no such booking.
SELECT b.id, b.coach_id, b.athlete_id, b.status, b.zoom_meeting_id, b.zoom_join_url,
       b.zoom_start_url, b.created_at, b.updated_at
  FROM bookings AS b
 WHERE b.id = $1;

-- name: insert_booking_for_request
-- The paid booking of a request being accepted, coach and athlete copied from the request.
-- Inserting it fires migration 032's trigger, which links the meeting's orphan webhook events
-- (and completes the booking if its meeting.ended is among them).
-- $1 request id, $2 Zoom meeting id, $3 join URL, $4 start URL. No row: no such request.
INSERT INTO bookings (coach_id, athlete_id, status, zoom_meeting_id, zoom_join_url, zoom_start_url)
SELECT r.coach_id, r.athlete_id, 'paid', $2, $3, $4
  FROM booking_requests AS r
 WHERE r.id = $1
RETURNING id;

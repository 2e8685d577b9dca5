-- name: select_booking
-- One booking as the API shows it. $1 booking id. No row: no such booking.
SELECT b.id, b.coach_id, b.athlete_id, b.status, b.zoom_meeting_id, b.zoom_join_url,
       b.zoom_start_url, b.created_at, b.updated_at
  FROM bookings AS b
 WHERE b.id = $1;

DROP TABLE zoom_webhook_events;
DROP INDEX bookings_zoom_meeting_id_idx;
ALTER TABLE bookings DROP COLUMN zoom_meeting_id;

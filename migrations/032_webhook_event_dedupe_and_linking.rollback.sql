DROP TRIGGER bookings_link_zoom_webhook_events ON bookings;
DROP FUNCTION link_zoom_webhook_events();
DROP FUNCTION zoom_meeting_lock_key(TEXT);
DROP INDEX zoom_webhook_events_booking_occurred_idx;
DROP INDEX zoom_webhook_events_dedupe_key_idx;
ALTER TABLE zoom_webhook_events DROP COLUMN meeting_uuid;
ALTER TABLE zoom_webhook_events DROP COLUMN dedupe_key;
ALTER TABLE zoom_webhook_events ALTER COLUMN id DROP DEFAULT;

DROP INDEX bookings_reconcilable_created_idx;
DROP INDEX booking_requests_scheduled_idx;
DROP TABLE zoom_reconciliation_runs;
ALTER TABLE zoom_webhook_events DROP COLUMN source;

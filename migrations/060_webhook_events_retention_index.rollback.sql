-- transactional: false
DROP INDEX CONCURRENTLY zoom_webhook_events_unstripped_idx;
